//! The Convene client library.
//!
//! Layers, from the wire up: [`transport`] speaks the relay protocol over a
//! websocket; [`device_key`] holds the key a device authenticates with;
//! [`store`] keeps the local state; [`mls`] runs MLS over it.

pub mod device_key;
pub mod mls;
pub mod store;
pub mod transport;

pub use device_key::DeviceKey;
pub use transport::{ConnectOptions, RelayConnection, RelayRefusal, TransportError, TrustRoots};
