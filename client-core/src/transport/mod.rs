//! The connection to the relay: one websocket carrying requests, responses
//! and pushes, as `convene-proto` describes.
//!
//! The rest of the client sees the relay only through [`Connector`] and
//! [`Connection`], so an app can bring its own transport and a test can put
//! a hostile relay in between. [`WebSocketConnector`] is the real one.

mod auth;
mod connection;
mod error;
#[cfg(any(test, feature = "testing"))]
pub mod scripted;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use convene_proto::relay::{push, request, response};
use tokio::sync::mpsc;

pub use auth::{
    authenticate, authenticate_continuing, enrol, get_invite, Continuity, EnrolRequest,
};
pub use connection::{ConnectOptions, RelayConnection};
pub use error::{RelayRefusal, TransportError};
pub use tls::TrustRoots;

/// A boxed future, so that the transport traits can be used as objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Pushes from the relay, in the order it sent them; closed when the
/// connection ends.
pub type PushReceiver = mpsc::Receiver<push::Kind>;

/// Pushes a connection queues for its reader at most. An honest relay
/// waits for acknowledgements long before (its push window); a connection
/// whose relay sends more than this is closed, and the client reconnects
/// and resumes from what it acknowledged.
pub const MAX_QUEUED_PUSHES: usize = 8_192;

/// A new connection with its pushes, as a [`Connector`] returns it.
pub type Connected = (Arc<dyn Connection>, PushReceiver);

/// An open connection to a relay.
pub trait Connection: Send + Sync {
    /// The relay identity from the connection's challenge.
    fn relay_id(&self) -> [u8; 16];
    /// The connection's challenge nonce.
    fn nonce(&self) -> [u8; 32];
    /// Sends a request and waits for its response; an error response is
    /// [`TransportError::Refused`].
    fn request(
        &self,
        kind: request::Kind,
    ) -> BoxFuture<'_, Result<response::Result, TransportError>>;
}

/// Opens connections to one relay.
pub trait Connector: Send + Sync {
    /// The relay's address, for messages.
    fn url(&self) -> &str;
    /// Opens a connection and returns it with its pushes.
    fn connect(&self) -> BoxFuture<'_, Result<Connected, TransportError>>;
}

/// The real transport: websockets (over TLS for `wss://`).
#[derive(Debug, Clone)]
pub struct WebSocketConnector {
    url: String,
    options: ConnectOptions,
}

impl WebSocketConnector {
    /// A connector to the relay at `url` (`ws://` or `wss://`), with
    /// `options`; nothing is opened until [`Connector::connect`].
    pub fn new(url: impl Into<String>, options: ConnectOptions) -> Self {
        WebSocketConnector {
            url: url.into(),
            options,
        }
    }
}

impl Connector for WebSocketConnector {
    fn url(&self) -> &str {
        &self.url
    }

    fn connect(&self) -> BoxFuture<'_, Result<Connected, TransportError>> {
        Box::pin(async move {
            let mut connection = RelayConnection::connect(&self.url, &self.options).await?;
            let pushes = connection.take_pushes();
            Ok((Arc::new(connection) as Arc<dyn Connection>, pushes))
        })
    }
}

impl Connection for RelayConnection {
    fn relay_id(&self) -> [u8; 16] {
        RelayConnection::relay_id(self)
    }

    fn nonce(&self) -> [u8; 32] {
        RelayConnection::nonce(self)
    }

    fn request(
        &self,
        kind: request::Kind,
    ) -> BoxFuture<'_, Result<response::Result, TransportError>> {
        Box::pin(RelayConnection::request(self, kind))
    }
}
