//! The Convene relay: an MLS Delivery Service (RFC 9420, RFC 9750).
//!
//! It stores and forwards MLS ciphertext and public key material between
//! devices and never holds a key that decrypts content. The modules follow
//! the life of a request:
//!
//! - [`server`] accepts connections and bounds them; [`tls`] wraps them;
//! - [`session`] authenticates a device and reads its requests;
//!   [`connection`] moves frames over the websocket;
//! - [`handlers`] serve each request against the [`store`] (sled);
//! - [`durability`] makes writes durable before they are acknowledged, and
//!   [`visibility`] delivers only what is durable;
//! - [`hub`] knows the connected devices, and each one's [`pump`] pushes its
//!   streams;
//! - [`maintenance`] trims and sweeps; [`shutdown`] ends it all in order.
//!
//! [`config`] describes every setting, [`error`] every failure.

pub mod acks;
pub mod admission;
pub mod config;
pub mod connection;
pub mod durability;
pub mod error;
pub mod fd_limit;
pub mod frames;
pub mod handlers;
pub mod hub;
pub mod maintenance;
pub mod pump;
pub mod rate_limit;
pub mod relay;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod visibility;
