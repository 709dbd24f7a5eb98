//! The connection as the app sees it ([`crate::Client::watch_status`]):
//! a summary the engine keeps current, never the engine's own state.

use crate::transport::TransportError;

/// Where the client stands with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected; the engine retries with backoff.
    Offline,
    /// Connected and authenticated; catching up on the backlog.
    Connected,
    /// Connected, and everything the relay held has been processed.
    CaughtUp,
}

/// Why the connection to the relay is down, or the last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionProblem {
    /// Connecting, authenticating or a request failed; the transport error
    /// says how.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The relay ended the connection.
    #[error("the relay closed the connection")]
    ClosedByRelay,
    /// This device could not process what the relay sent, or could not
    /// store its own state; its log has the cause. It reconnects and the
    /// relay sends again what was not acknowledged.
    #[error("this device could not process or store what it received")]
    LocalFailure,
    /// Staff revoked this device (or suspended its user); it no longer
    /// connects.
    #[error("this device was revoked by the organisation")]
    Revoked,
}

/// The connection as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// Whether the client is offline, connected, or caught up.
    pub state: ConnectionState,
    /// Connection attempts that failed since the last success.
    pub failed_attempts: u32,
    /// Why the last attempt failed, or why the last connection ended.
    pub last_error: Option<ConnectionProblem>,
    /// The relay refused this device for good: it was revoked or removed.
    pub revoked: bool,
    /// The relay refused this device's state as a copy (restored from a
    /// backup, or cloned) that another copy has moved past: re-link the
    /// device, or [`crate::Client::take_over`] if this copy is the one to
    /// keep.
    pub copied: bool,
    /// How far this device's clock was ahead of the relay's at the last
    /// connection, in ms (behind, if negative).
    pub clock_offset_ms: i64,
}

impl Default for ConnectionStatus {
    fn default() -> Self {
        ConnectionStatus {
            state: ConnectionState::Offline,
            failed_attempts: 0,
            last_error: None,
            revoked: false,
            copied: false,
            clock_offset_ms: 0,
        }
    }
}
