//! The one stream of events an app consumes.

use tokio::sync::broadcast;

use crate::types::{GroupId, GroupSummary, Message, MessageId};

/// Something that happened, in the order it happened on this device.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A message from another member, stored in the history.
    MessageReceived(Message),
    /// A message from this device, accepted by the relay.
    MessageSent(Message),
    /// This device created a group.
    GroupCreated(GroupSummary),
    /// This device was added to a group.
    JoinedGroup(GroupSummary),
    /// Members joined or left a group.
    MembersChanged {
        /// The group whose members changed.
        group: GroupId,
        /// The users added (user ids, sorted).
        added: Vec<String>,
        /// The users removed (user ids, sorted).
        removed: Vec<String>,
        /// Who proposed the change (a member, or staff managing the group
        /// from outside), when one user did; `None` when several did or it
        /// cannot be told.
        by: Option<String>,
    },
    /// A member's devices in a group changed while the member stayed in
    /// it: they linked a new device, or one of theirs was removed.
    MemberDevicesChanged {
        /// The group.
        group: GroupId,
        /// The member.
        user_id: String,
        /// Devices of theirs added to the group.
        added: usize,
        /// Devices of theirs removed from it.
        removed: usize,
    },
    /// This device was removed from a group.
    RemovedFromGroup {
        /// The group this device was removed from.
        group: GroupId,
    },
    /// An operation was given up; `reason` says why.
    DeliveryFailed {
        /// The group the operation was for.
        group: GroupId,
        /// The message that was not sent, when the operation was a send.
        message: Option<MessageId>,
        /// Why it was given up, a sentence for humans.
        reason: String,
    },
    /// Staff suspended a user (`device` is `None`) or revoked one of their
    /// devices. This client removes them from the groups it may change.
    Revoked {
        /// The user suspended, or whose device was revoked.
        user_id: String,
        /// The revoked device's key (32 bytes); `None` when the whole user is
        /// suspended.
        device: Option<Vec<u8>>,
    },
    /// Staff ended staff member `user_id`'s delegation to certify users:
    /// users it certified that the authority has not renewed are refused
    /// from now on. The staff member stays.
    DelegationRevoked {
        /// The staff member whose delegation ended.
        user_id: String,
    },
    /// A member, device, KeyPackage or change failed the organisation's
    /// chain of trust or the group's policy, and was refused. The group
    /// stays as it was.
    Untrusted {
        /// The group concerned; `None` when the refusal concerns no one group
        /// (a revocation that does not verify).
        group: Option<GroupId>,
        /// What was refused and why, a sentence for humans.
        detail: String,
    },
    /// A user's identity key is not the one this device knew them by: their
    /// safety number changed. Either staff re-issued their identity (a new
    /// phone with no old device to link it), or someone holding the
    /// organisation's authority key is impersonating them. Show it loudly
    /// and ask the user to compare safety numbers again.
    IdentityChanged {
        /// The user whose identity key changed.
        user_id: String,
        /// The group whose members' keys showed the change.
        group: GroupId,
    },
    /// Something looked wrong and was set aside (an unreadable message, a
    /// commit whose declared routing did not match its content).
    Warning {
        /// The group concerned, if any.
        group: Option<GroupId>,
        /// What was set aside and why, a sentence for humans.
        detail: String,
    },
    /// This device cannot follow the group right now: it missed or could
    /// not process a change (its state was restored from a copy, a commit
    /// was refused or trimmed away before this device fetched it, its
    /// invitation could not be opened). It has asked the group's members to
    /// add it back, and keeps what arrives meanwhile.
    GroupStalled {
        /// The group this device cannot follow.
        group: GroupId,
        /// Why, a sentence for humans.
        reason: String,
    },
    /// This device follows the group again. `missed` entries that arrived
    /// in between could not be read (they were encrypted for a state this
    /// device never had).
    GroupRecovered {
        /// The group this device follows again.
        group: GroupId,
        /// How many entries could not be read meanwhile.
        missed: u64,
    },
    /// `count` entries of the group were dropped before this device could
    /// read them: the relay keeps a group's entries for a bounded time and
    /// number however long a device stays away, and this device keeps a
    /// bounded number for a group it cannot follow yet.
    EntriesDropped {
        /// The group whose entries were dropped.
        group: GroupId,
        /// How many entries were dropped.
        count: u64,
    },
    /// This device's clock is off from the relay's by more than the
    /// leeway certificates are checked with
    /// ([`crate::trust::CLOCK_LEEWAY_MS`]): `offset_ms` ahead (behind, if
    /// negative). Certificates may be refused until it is set right; tell
    /// the user to set the device's date and time.
    ClockSkew {
        /// This device's clock minus the relay's, in ms.
        offset_ms: i64,
    },
    /// The relay refused this device's state as a copy: another copy of
    /// this device (the original, or another restore of the same backup)
    /// connected since this state was saved. Two copies acting as one
    /// device would split its messages and fork its groups, so this one
    /// stops. Re-link this device as a new one, or, if this copy is the one
    /// to keep (a backup restored onto a new phone), take over with
    /// [`crate::Client::take_over`]: the other copy is then refused.
    StateCopied,
    /// Staff renewed this user's certificate and this device now uses it,
    /// valid until `valid_until_ms` (ms since the Unix epoch). Nothing to
    /// do: the safety number is unchanged.
    CertificateRenewed {
        /// When the renewed certificate ends, ms since the Unix epoch.
        valid_until_ms: u64,
    },
    /// The connection to the relay dropped; the client reconnects by itself.
    ConnectionLost {
        /// Why it dropped.
        reason: crate::engine::ConnectionProblem,
    },
    /// The connection to the relay is back.
    ConnectionRestored,
    /// Everything the relay held for this device has been processed.
    CaughtUp,
}

/// A receiver of [`Event`]s. An app that falls far behind loses the oldest
/// events (the history keeps every message regardless).
pub struct EventStream {
    pub(crate) receiver: broadcast::Receiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the client has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "the app fell behind the event stream");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is already there, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "the app fell behind the event stream");
                }
                Err(_) => return None,
            }
        }
    }
}
