//! What can go wrong between a device and the relay.

use convene_proto::relay::{Error as WireError, ErrorCode};

/// The relay refused a request; [`RelayRefusal::code`] says why (and the
/// CLI's `--json` shows it), the message says it to people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the relay refused the request: {message}")]
pub struct RelayRefusal {
    /// The stable error code.
    pub code: ErrorCode,
    /// The relay's sentence for humans.
    pub message: String,
    /// With [`ErrorCode::StaleEpoch`]: the group's current epoch.
    pub current_epoch: u64,
    /// With [`ErrorCode::RateLimited`]: how long to wait.
    pub retry_after_ms: u32,
    /// With [`ErrorCode::Revoked`]: the signed revocation the relay says
    /// covers this device (an encoded `Signed`), for the client to check;
    /// empty when it has none.
    pub revocation: Vec<u8>,
}

impl From<WireError> for RelayRefusal {
    fn from(error: WireError) -> Self {
        RelayRefusal {
            // Codes this client does not know are treated as internal errors.
            code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Internal),
            message: error.message,
            current_epoch: error.current_epoch,
            retry_after_ms: error.retry_after_ms,
            revocation: error.revocation.to_vec(),
        }
    }
}

/// A failure of the relay connection or of one request over it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The relay address is not a `ws://` or `wss://` URL.
    #[error("invalid relay address {url:?}: {reason}")]
    InvalidUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The relay could not be reached.
    #[error("no connection to {url}: {reason}")]
    Unreachable {
        /// The relay's address.
        url: String,
        /// Why it could not be reached.
        reason: String,
    },
    /// TLS failed (wrong certificate, wrong name, ...).
    #[error("secure connection to the relay failed: {0}")]
    Tls(String),
    /// The websocket handshake failed.
    #[error("the relay did not accept the websocket connection: {0}")]
    Handshake(String),
    /// The relay sent something this client does not understand.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// The relay answered with a different identity than the one pinned.
    #[error("this is not the relay this device enrolled with")]
    WrongRelay,
    /// The relay refused the request.
    #[error(transparent)]
    Refused(#[from] RelayRefusal),
    /// The connection closed before the answer came.
    #[error("the connection to the relay closed{}", match (code, reason.is_empty()) {
        (Some(code), false) => format!(" ({code}: {reason})"),
        (Some(code), true) => format!(" ({code})"),
        (None, _) => String::new(),
    })]
    Closed {
        /// The websocket close code, if the relay sent one.
        code: Option<u16>,
        /// The relay's reason, if any.
        reason: String,
    },
    /// No answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
}

impl TransportError {
    /// The relay's error code, when the relay refused the request.
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            TransportError::Refused(refusal) => Some(refusal.code),
            _ => None,
        }
    }
}
