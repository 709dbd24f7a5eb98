//! The Convene client library: end-to-end encrypted groups and one-to-one
//! channels over a Convene relay, for apps to embed.
//!
//! Start with [`ClientBuilder`]: enrol a device once with an invite, then
//! [`open`](ClientBuilder::open) it to get a [`Client`], and read its
//! [`events`](Client::events). See `examples/two_clients.rs`.
//!
//! Layers, from the bottom: [`store`] keeps the local state (one atomic
//! write per operation); [`mls`] runs MLS over it and knows nothing of the
//! network; [`transport`] speaks the relay protocol behind the
//! [`Connector`] trait; the engine (private) ties them together in one task;
//! [`Client`] is the app's handle on it. The library installs no logger: it
//! logs through `tracing` for the app to collect.

#![warn(missing_docs)]

mod builder;
mod client;
pub mod device_key;
pub mod directory;
mod engine;
mod enrolment;
mod error;
mod events;
pub mod help;
pub mod lifecycle;
pub mod link;
pub mod mls;
mod sealing;
mod settle;
pub mod store;
pub mod transport;
pub mod trust;
mod types;

pub use builder::ClientBuilder;
pub use client::{
    direct_group_id, AskDraft, Client, Cohort, DeviceInfo, LinkRequest, SafetyNumber,
    MAX_DEVICE_NAME_CHARS,
};
pub use device_key::DeviceKey;
pub use engine::{ConnectionProblem, ConnectionState, ConnectionStatus};
pub use error::{ClientError, GaveUp, InviteRefusal};
pub use events::{Event, EventStream};
pub use lifecycle::KeyLifecycle;
pub use link::PendingLink;
pub use store::StoreKey;
pub use transport::{
    ConnectOptions, Connection, Connector, RelayConnection, RelayRefusal, TransportError,
    TrustRoots, WebSocketConnector,
};
pub use types::{
    hex, GroupId, GroupKind, GroupSummary, Identity, Invite, Member, Message, MessageId,
    MessageKind, Role, UserInfo,
};

pub(crate) use convene_proto::now_ms;

/// `N` random bytes from the operating system's generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}
