//! The connection to the relay: one websocket carrying requests, responses
//! and pushes, as `convene-proto` describes.
//!
//! [`RelayConnection`] is deliberately low level: it authenticates, matches
//! responses to requests, and hands pushes over in order. What to do with
//! them (MLS, storage, acknowledgements) belongs to the layers above.

mod connection;
mod error;
mod tls;

pub use connection::{ConnectOptions, RelayConnection};
pub use error::{RelayRefusal, TransportError};
pub use tls::TrustRoots;
