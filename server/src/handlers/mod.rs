//! Request handlers: one module per family of requests, like the commands
//! of mini-redis.
//!
//! A handler checks the request, performs it on the store (synchronously,
//! under the store's locks) and returns a [`Reply`]: the response, whether
//! it may only be sent once the store is flushed, and the [`Effect`]s that
//! must follow the flush (making new entries visible, waking recipients).
//! Handlers never touch a socket, which keeps them testable and keeps the
//! order of a device's requests the order in which they reach the store.

mod accounts;
mod blobs;
mod certificates;
mod delivery;
mod directory;
mod groups;
mod key_packages;
mod links;
mod revocations;

pub(crate) use accounts::invite_details;
pub use accounts::MAX_CERTIFICATE_BYTES;
pub use delivery::MAX_ACKS;
pub use directory::{MAX_PROFILE_BYTES, MAX_USERS_PER_LOOKUP};
pub(crate) use key_packages::wire_stock;
pub(crate) use links::{link_status, request_link};
pub use links::{LINK_TTL_MS, MAX_DEVICE_LABEL_BYTES, MAX_SEALED_BYTES};

use convene_proto::ids::{GroupId, Position, UserId};
use convene_proto::relay::{request, response, Pong, Role};

use crate::error::{Refusal, RelayResult};
use crate::hub::LiveConnection;
use crate::relay::Relay;
use crate::store::{now_ms, DevicePublicKey, KeyPackageStock};

/// The authenticated device a request comes from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub device: DevicePublicKey,
    pub user_id: UserId,
    pub role: Role,
}

/// What follows a request once its writes are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A group log grew to `position`: make it visible and wake its
    /// followers.
    GroupAppended {
        group_id: GroupId,
        position: Position,
    },
    /// A device inbox grew to `position`.
    InboxAppended {
        device: DevicePublicKey,
        position: u64,
    },
    /// A device's one-time KeyPackages are running low.
    KeyPackagesLow {
        device: DevicePublicKey,
        stock: KeyPackageStock,
    },
    /// Staff revoked these devices: close their connections, and tell every
    /// connected device to fetch revocations up to `sequence`.
    Revoked {
        devices: Vec<DevicePublicKey>,
        sequence: u64,
    },
    /// A user removed these devices of theirs: close their connections.
    DevicesRemoved { devices: Vec<DevicePublicKey> },
    /// A user's directory entry changed: tell every connected device.
    DirectoryChanged,
}

/// A handler's answer.
#[derive(Debug)]
pub struct Reply {
    pub result: response::Result,
    /// Send only after a flush that covers this request's writes.
    pub durable: bool,
    pub effects: Vec<Effect>,
}

impl Reply {
    /// A reply to a request that wrote (or read what others may have just
    /// written): sent after the flush.
    pub fn durable(result: response::Result) -> Self {
        Reply {
            result,
            durable: true,
            effects: Vec::new(),
        }
    }

    /// A reply that depends on no recent write.
    pub fn immediate(result: response::Result) -> Self {
        Reply {
            result,
            durable: false,
            effects: Vec::new(),
        }
    }

    fn with_effects(mut self, effects: Vec<Effect>) -> Self {
        self.effects = effects;
        self
    }
}

/// Serves one request of an authenticated device.
pub fn handle(
    relay: &Relay,
    caller: &Caller,
    live: &LiveConnection,
    request: request::Kind,
) -> RelayResult<Reply> {
    use request::Kind;
    match request {
        Kind::Authenticate(_) | Kind::Enrol(_) => Err(Refusal::AlreadyAuthenticated.into()),
        Kind::CreateInvite(req) => accounts::create_invite(relay, caller, req),
        Kind::GetUser(req) => directory::get_user(relay, caller, req),
        Kind::GetUsers(req) => directory::get_users(relay, caller, req),
        Kind::ListUsers(req) => directory::list_users(relay, req),
        Kind::SetProfile(req) => directory::set_profile(relay, caller, req),
        Kind::UploadKeyPackages(req) => key_packages::upload(relay, caller, req),
        Kind::ClaimKeyPackages(req) => key_packages::claim(relay, caller, req),
        Kind::CreateGroup(req) => groups::create(relay, caller, req),
        Kind::GetGroup(req) => groups::get(relay, caller, req),
        Kind::SubmitCommit(req) => groups::submit_commit(relay, caller, req),
        Kind::SendMessage(req) => groups::send_message(relay, caller, req),
        Kind::Ack(req) => delivery::ack(relay, caller, live, req),
        Kind::BeginBlob(req) => blobs::begin(relay, caller, req),
        Kind::PutBlobChunk(req) => blobs::put(relay, caller, req),
        Kind::GetBlob(req) => blobs::get(relay, req),
        Kind::Ping(_) => Ok(pong()),
        Kind::GetInvite(req) => Ok(Reply::immediate(accounts::invite_details(relay, &req)?)),
        Kind::Revoke(req) => revocations::revoke(relay, caller, req),
        Kind::ListRevocations(req) => revocations::list(relay, req),
        Kind::RequestLink(_) => Err(Refusal::AlreadyAuthenticated.into()),
        // An approval just stored may not be on disk yet: the new device
        // must not enrol on one a crash could take back.
        Kind::GetLink(req) => Ok(Reply::durable(links::link_status(relay, &req)?)),
        Kind::ListLinks(_) => links::list(relay, caller),
        Kind::ApproveLink(req) => links::approve(relay, caller, req),
        Kind::RemoveDevice(req) => links::remove_device(relay, caller, req),
        Kind::SetDeviceLabel(req) => links::set_label(relay, caller, req),
        Kind::RenewCertificate(req) => certificates::renew(relay, caller, req),
        Kind::UpdateCredential(req) => certificates::update_credential(relay, caller, req),
        Kind::Delegate(req) => certificates::delegate(relay, caller, req),
    }
}

/// The answer to `Ping`, before or after authentication.
pub fn pong() -> Reply {
    Reply::immediate(response::Result::Pong(Pong {
        relay_time_ms: now_ms(),
    }))
}

/// Parses a list of 32-byte device keys, refusing too many.
fn device_keys(
    field: &'static str,
    raw: &[bytes::Bytes],
    max: u32,
) -> RelayResult<Vec<DevicePublicKey>> {
    if raw.len() > max as usize {
        return Err(Refusal::TooLarge(format!("{field} names more than {max} devices")).into());
    }
    raw.iter()
        .map(|key| Ok(DevicePublicKey::from_field(field, key)?))
        .collect()
}

fn check_size(field: &str, len: usize, max: u32) -> RelayResult<()> {
    if len > max as usize {
        return Err(
            Refusal::TooLarge(format!("{field} is {len} bytes; the limit is {max}")).into(),
        );
    }
    Ok(())
}

/// A role as the relay's log spells it, one spelling everywhere.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Staff => "staff",
        Role::Unspecified => "unspecified",
    }
}
