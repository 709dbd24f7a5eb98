//! The Convene relay: an MLS Delivery Service (RFC 9420, RFC 9750).
//!
//! It stores and forwards MLS ciphertext and public key material between
//! devices and never holds a key that decrypts content. The modules follow
//! the life of a request:
//!
//! - [`server`] accepts connections and bounds them (`admission`,
//!   `fd_limit`); [`tls`] wraps them;
//! - `session` authenticates a device and reads its requests;
//!   `connection` moves frames over the websocket;
//! - `handlers` serve each request against the [`store`] (fjall);
//! - `durability` makes writes durable before they are acknowledged, and
//!   `visibility` delivers only what is durable;
//! - `hub` knows the connected devices, and each one's `pump` pushes its
//!   streams;
//! - `maintenance` trims and sweeps; `shutdown` ends it all in order.
//!
//! [`config`] describes every setting, `error` every failure, and
//! [`relay`] holds what every connection shares. Only these and
//! [`protocol`]'s bounds are public: the binary, the end-to-end tests and
//! docs/PROTOCOL.md's check need nothing else.

mod acks;
mod admission;
pub mod config;
mod connection;
mod durability;
mod error;
mod fd_limit;
mod frames;
mod handlers;
mod hub;
mod locked;
mod maintenance;
mod pump;
mod rate_limit;
pub mod relay;
pub mod server;
mod session;
mod shutdown;
pub mod store;
pub mod tls;
mod visibility;

/// A user id for unit tests.
#[cfg(test)]
pub(crate) fn test_user_id(name: &str) -> convene_proto::ids::UserId {
    convene_proto::ids::UserId::parse(name).unwrap_or_else(|err| panic!("{err}"))
}

/// A group id for unit tests, from a short name.
#[cfg(test)]
pub(crate) fn test_group_id(name: &[u8]) -> convene_proto::ids::GroupId {
    convene_proto::ids::GroupId::from_field(name).unwrap_or_else(|err| panic!("{err}"))
}

/// The protocol's bounds and close codes that clients and docs/PROTOCOL.md
/// rely on, from the modules that enforce them.
pub mod protocol {
    pub use crate::connection::close;
    pub use crate::handlers::{
        LINK_TTL_MS, MAX_ACKS, MAX_CERTIFICATE_BYTES, MAX_DEVICE_LABEL_BYTES, MAX_PROFILE_BYTES,
        MAX_SEALED_BYTES, MAX_USERS_PER_LOOKUP,
    };
}
