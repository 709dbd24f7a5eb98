//! The Convene wire protocol.
//!
//! The `.proto` files under `proto/` are the source of truth; this crate
//! compiles them with prost at build time ([`relay`]) and adds the few byte
//! layouts that both the relay and the client must agree on exactly and that
//! protobuf cannot express: the signed authentication transcript
//! ([`auth`]), invite codes ([`invite`]), the bytes the chain of trust
//! signs ([`trust`]), the clear fields of MLS framing the relay reads
//! ([`mls_frame`]), and the framing helpers
//! ([`frame`]) that encode and decode one [`relay::Envelope`] per websocket
//! message.
//!
//! Both the relay (`convene-server`) and the client library
//! (`convene-client-core`) depend on this crate; neither depends on the other.

#![warn(missing_docs)]

pub mod auth;
pub mod direct;
pub mod frame;
pub mod ids;
pub mod invite;
pub mod mls_frame;
pub mod network;
pub mod text;
pub mod trust;
pub mod vocabulary;

/// Types generated from `proto/convene/relay/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/convene.relay.v1.rs"));
}

/// Types generated from `proto/convene/content/v1/content.proto`: what
/// clients put inside MLS.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod content {
    include!(concat!(env!("OUT_DIR"), "/convene.content.v1.rs"));
}

pub use frame::{decode_envelope, encode_envelope, FrameError};

/// Milliseconds since the Unix epoch (0 if the clock is before it): the
/// protocol's unit of time, on the relay and on every device.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
