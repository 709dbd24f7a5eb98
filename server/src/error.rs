//! Errors of the relay, and how each one reaches the device that caused it.
//!
//! A [`Refusal`] is the relay saying no to a request for a reason the device
//! can act on; it becomes a protocol error with a stable code. Everything
//! else ([`RelayError::Storage`], [`RelayError::Corrupt`]) is the relay's own
//! failure: it is logged here and reaches the device only as
//! `ERROR_CODE_INTERNAL`, so no internal detail leaks to the network.

use convene_proto::ids::IdError;
use convene_proto::relay::{Error as WireError, ErrorCode};

/// A request refused for a reason the device can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no invite has this code")]
    InviteUnknown,
    #[error("this invite was already used")]
    InviteUsed,
    #[error("this invite has expired; ask staff for a new one")]
    InviteExpired,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("this device is not a member of the group")]
    NotAMember,
    #[error("the message was built on epoch {submitted}, but the group is at epoch {current}")]
    StaleEpoch { submitted: u64, current: u64 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    QueueFull(&'static str),
    #[error("too many requests")]
    RateLimited { retry_after_ms: u32 },
    #[error("authentication failed")]
    AuthenticationFailed,
    #[error("this connection is not authenticated")]
    NotAuthenticated,
    #[error("this connection is already authenticated")]
    AlreadyAuthenticated,
    #[error("the relay is shutting down")]
    ShuttingDown,
    #[error("this device was revoked, or its user suspended")]
    Revoked,
    /// [`Refusal::Revoked`], with the signed revocation that did it, for
    /// the device to check.
    #[error("this device was revoked, or its user suspended")]
    RevokedBy { revocation: Vec<u8> },
    #[error("this device's state is older than its last authentication: it is a copy (restored or cloned) of a device another copy may be using")]
    StateCopied,
}

impl Refusal {
    /// The stable protocol code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::InviteUnknown => ErrorCode::InviteUnknown,
            Refusal::InviteUsed => ErrorCode::InviteUsed,
            Refusal::InviteExpired => ErrorCode::InviteExpired,
            Refusal::Forbidden(_) => ErrorCode::Forbidden,
            Refusal::NotFound(_) => ErrorCode::NotFound,
            Refusal::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Refusal::NotAMember => ErrorCode::NotAMember,
            Refusal::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            Refusal::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Refusal::TooLarge(_) => ErrorCode::TooLarge,
            Refusal::QueueFull(_) => ErrorCode::QueueFull,
            Refusal::RateLimited { .. } => ErrorCode::RateLimited,
            Refusal::AuthenticationFailed => ErrorCode::AuthenticationFailed,
            Refusal::NotAuthenticated => ErrorCode::NotAuthenticated,
            Refusal::AlreadyAuthenticated => ErrorCode::AlreadyAuthenticated,
            Refusal::ShuttingDown => ErrorCode::ShuttingDown,
            Refusal::Revoked | Refusal::RevokedBy { .. } => ErrorCode::Revoked,
            Refusal::StateCopied => ErrorCode::StateCopied,
        }
    }

    /// The protocol error sent to the device.
    pub fn to_wire(&self) -> WireError {
        let mut error = WireError::new(self.code(), self.to_string());
        match self {
            Refusal::StaleEpoch { current, .. } => error.current_epoch = *current,
            Refusal::RateLimited { retry_after_ms } => error.retry_after_ms = *retry_after_ms,
            Refusal::RevokedBy { revocation } => error.revocation = revocation.clone().into(),
            _ => {}
        }
        error
    }
}

impl From<IdError> for Refusal {
    fn from(err: IdError) -> Self {
        Refusal::InvalidArgument(err.to_string())
    }
}

/// Any failure while serving a request or running the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The request was refused; the device is told why.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The embedded store failed (disk full, I/O error, ...).
    #[error("storage failure")]
    Storage(#[from] crate::store::EngineError),
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<prost::DecodeError> for RelayError {
    fn from(err: prost::DecodeError) -> Self {
        RelayError::Corrupt(err.to_string())
    }
}

impl From<IdError> for RelayError {
    fn from(err: IdError) -> Self {
        RelayError::Refused(err.into())
    }
}

impl RelayError {
    /// The protocol error sent to the device. Internal failures are logged
    /// by the caller and reported without detail.
    pub fn to_wire(&self) -> WireError {
        match self {
            RelayError::Refused(refusal) => refusal.to_wire(),
            RelayError::Storage(_) | RelayError::Corrupt(_) => WireError::new(
                ErrorCode::Internal,
                "the relay failed internally; retry later",
            ),
        }
    }
}

/// Shorthand for results of relay operations.
pub type RelayResult<T> = Result<T, RelayError>;
