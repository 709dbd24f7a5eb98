//! The client's errors, each with a stable code for apps and scripts.

use crate::mls::{MlsError, ReadGroupInfoError};
use crate::store::{MlsStorageError, PassphraseError, StoreError};
use crate::transport::{RelayRefusal, TransportError};

/// Everything that can go wrong in the client library.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The state directory has no enrolled device.
    /// (What to do — enrol with an invite, or link to an existing account
    /// — is the app's to say, in its own words.)
    #[error("no device is enrolled here yet")]
    NotEnrolled,
    /// The state directory already has an enrolled device.
    #[error("this state directory already belongs to {0}")]
    AlreadyEnrolled(String),
    /// The invite was refused; the source says why.
    #[error("the invite was refused")]
    InvalidInvite(#[source] InviteRefusal),
    /// No such user on the relay.
    #[error("no user is called {0:?}")]
    UnknownUser(String),
    /// No such group on this device.
    #[error("no group matches {0:?}")]
    UnknownGroup(String),
    /// No group this device is in has the name or id a person gave;
    /// `suggestions` are the names closest to it (at most three).
    #[error("no group matches {query:?}{}", did_you_mean(suggestions))]
    NoGroupMatches {
        /// What was asked for.
        query: String,
        /// The closest group names, best first.
        suggestions: Vec<String>,
    },
    /// This device is not (or no longer) a member of the group.
    #[error("this device is not a member of that group")]
    NotAMember,
    /// A passphrase was refused as too weak, or the salt files around it
    /// failed (see [`crate::store::passphrase`]).
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The key given does not open the local state.
    #[error("the local state cannot be opened with this key (is the passphrase right?)")]
    WrongStoreKey,
    /// Something failed the organisation's chain of trust: a certificate,
    /// a member, or the authority the relay showed.
    #[error("refused as untrusted: {0}")]
    Untrusted(String),
    /// A request the caller may not make.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// An argument the library does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// The relay cannot be reached; the source says why.
    #[error("cannot reach the relay")]
    RelayUnreachable(#[source] crate::engine::ConnectionProblem),
    /// Staff revoked this device or suspended its user, or the user removed
    /// it from another device: it can no longer connect.
    #[error("this device was removed from its account (or the account suspended)")]
    Revoked,
    /// This device's state is a copy another copy has moved past (see
    /// [`crate::Event::StateCopied`]).
    /// (What to do — take over with this copy, or link this device again —
    /// is the app's to say.)
    #[error("this device's state is a copy (restored from a backup, or cloned) and another copy has connected since")]
    StateCopied,
    /// The relay refused a request.
    #[error(transparent)]
    Refused(RelayRefusal),
    /// The connection to the relay failed.
    #[error(transparent)]
    Transport(TransportError),
    /// The local state failed.
    #[error(transparent)]
    Storage(StoreError),
    /// MLS refused an operation or an input.
    #[error(transparent)]
    Mls(#[from] MlsError),
    /// The relay accepted this device's commit, but the device no longer
    /// holds it (its state was restored from a copy): it cannot follow the
    /// group until it is re-added.
    #[error("this device lost its own accepted change to the group")]
    LostCommit,
    /// The operation was given up; the reason says why.
    #[error("the operation did not go through")]
    GaveUp(#[source] GaveUp),
    /// None of the named users has a device that can be added now (no
    /// KeyPackage the relay can hand out passes the chain of trust).
    #[error("no device of {} can be added right now", users.join(", "))]
    NoDeviceToAdd {
        /// The users asked for.
        users: Vec<String>,
    },
    /// This device's own state is not as the client left it: a record it
    /// wrote is damaged or missing. Nothing else was changed.
    #[error("this device's state is damaged: {0}")]
    DamagedState(&'static str),
    /// A cryptographic operation that does not fail on well-formed input
    /// (key generation, sealing) failed.
    #[error("a cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// The client has stopped.
    #[error("the client has stopped")]
    Stopped,
}

/// Why an invite cannot be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteRefusal {
    /// The code was mistyped or cut short.
    #[error(transparent)]
    Code(#[from] convene_proto::invite::InviteCodeError),
    /// The relay does not know it.
    #[error("the relay does not know this invite")]
    Unknown,
    /// It was redeemed already.
    #[error("this invite has already been used")]
    Used,
    /// It expired.
    #[error("this invite has expired")]
    Expired,
    /// A bootstrap invite, but the organisation already has an authority.
    #[error("this organisation already has an authority; ask its staff for an invite")]
    AuthorityExists,
    /// A staff invite that names no authority.
    #[error("the invite names no organisation authority")]
    NoAuthority,
}

impl ClientError {
    /// The relay answered a request with a response of another kind.
    pub(crate) fn unexpected_response() -> ClientError {
        ClientError::Transport(TransportError::Protocol("unexpected response".into()))
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::NotEnrolled => "not_enrolled",
            ClientError::AlreadyEnrolled(_) => "already_enrolled",
            ClientError::InvalidInvite(_) => "invalid_invite",
            ClientError::UnknownUser(_) => "unknown_user",
            ClientError::UnknownGroup(_) | ClientError::NoGroupMatches { .. } => "unknown_group",
            ClientError::NotAMember => "not_a_member",
            ClientError::Forbidden(_) => "forbidden",
            ClientError::Untrusted(_) => "untrusted",
            ClientError::WrongStoreKey => "wrong_key",
            ClientError::Passphrase(err) if err.is_weak() => "weak_passphrase",
            ClientError::Passphrase(_) => "storage",
            ClientError::InvalidArgument(_) => "invalid_argument",
            ClientError::RelayUnreachable(_) => "relay_unreachable",
            ClientError::Revoked => "revoked",
            ClientError::StateCopied => "state_copied",
            ClientError::Refused(_) => "relay_refused",
            ClientError::Transport(_) => "transport",
            ClientError::Storage(_) => "storage",
            ClientError::Mls(_) => "mls",
            ClientError::LostCommit => "lost_commit",
            ClientError::GaveUp(_) => "gave_up",
            ClientError::NoDeviceToAdd { .. } => "no_device_to_add",
            ClientError::DamagedState(_) => "damaged_state",
            ClientError::Crypto(_) => "crypto",
            ClientError::Stopped => "stopped",
        }
    }
}

/// Why the client gave an operation up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GaveUp {
    /// Other members' commits won the group's epoch every time this
    /// change was tried.
    #[error("the group changed too often while this change was being made")]
    TooManyConflicts,
    /// The relay refused the message's epoch though this device was not
    /// behind: what reached the relay is not what was encrypted.
    #[error("the relay keeps refusing this message's epoch")]
    EpochRefused,
    /// A newly linked device was to join a group, but never published a
    /// KeyPackage.
    #[error("the linked device never came online to join this group")]
    LinkedDeviceAbsent,
    /// A managed group's GroupInfo stayed behind its epoch.
    #[error("the group's newest state is not available to its managers")]
    GroupInfoStale,
    /// The group has no GroupInfo for managers: it was not created to be
    /// managed from outside.
    #[error("the relay has no GroupInfo for this group: it was not created to be managed")]
    NotManaged,
    /// No device of the user approved the link request in time.
    #[error("no device of this user approved the link in time")]
    LinkNotApproved,
    /// The link request expired at the relay.
    #[error("the link request expired; ask to link again")]
    LinkExpired,
}

impl From<ReadGroupInfoError> for ClientError {
    fn from(err: ReadGroupInfoError) -> Self {
        match err {
            ReadGroupInfoError::NotManager => {
                ClientError::Forbidden("this device does not manage the group".into())
            }
            ReadGroupInfoError::Store(err) => err.into(),
            ReadGroupInfoError::Mls(err) => err.into(),
        }
    }
}

impl From<GaveUp> for ClientError {
    fn from(reason: GaveUp) -> Self {
        ClientError::GaveUp(reason)
    }
}

impl From<TransportError> for ClientError {
    fn from(err: TransportError) -> Self {
        match err {
            err @ TransportError::Unreachable { .. } => {
                ClientError::RelayUnreachable(crate::engine::ConnectionProblem::Transport(err))
            }
            TransportError::Refused(refusal) => ClientError::Refused(refusal),
            other => ClientError::Transport(other),
        }
    }
}

impl From<MlsStorageError> for ClientError {
    fn from(err: MlsStorageError) -> Self {
        match err {
            MlsStorageError::Store(store) => ClientError::Storage(store),
            other => ClientError::Storage(StoreError::Corrupt(with_causes(&other))),
        }
    }
}

impl From<StoreError> for ClientError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::WrongKey => ClientError::WrongStoreKey,
            other => ClientError::Storage(other),
        }
    }
}

/// An identifier the relay sent (a group id in a push or a response) that
/// no honest relay sends: the relay broke the protocol.
impl From<convene_proto::ids::IdError> for ClientError {
    fn from(err: convene_proto::ids::IdError) -> Self {
        ClientError::Transport(TransportError::Protocol(err.to_string()))
    }
}

/// "; did you mean ...?" for the suggested names, or nothing.
fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean {one:?}?"),
        [first @ .., last] => format!(
            "; did you mean {} or {last:?}?",
            first
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An error with its causes, joined by ": ": what a person is told (an
/// event's detail), since each error's own text says one layer only.
pub(crate) fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::TrustError;

    #[test]
    fn an_error_says_one_layer_and_a_person_is_told_every_cause() {
        let err = MlsError::Untrusted {
            who: "bob".into(),
            reason: TrustError::Revoked,
        };
        assert_eq!(err.to_string(), "refused an untrusted member (bob)");
        assert_eq!(
            with_causes(&err),
            "refused an untrusted member (bob): the device was revoked by the organisation"
        );
    }
}
