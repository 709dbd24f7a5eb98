//! The user directory: who is registered, with what certificate, devices
//! and profile. The relay serves it and stores each user's own profile, but
//! every part of it is signed by the authority or by the user, and clients
//! verify it; what the relay adds is the `directory_stamp` that lets a
//! client fetch again only the users that changed.

use convene_proto::ids::UserId;
use convene_proto::relay::{
    response, Device, GetUser, GetUsers, ListUsers, ProfileSet, SetProfile, User, UserList,
};
use convene_proto::trust::{Profile, Signed};
use prost::Message;
use sha2::{Digest, Sha256};

use super::{Caller, Reply};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::records::{DeviceRecord, UserRecord};
use crate::store::DevicePublicKey;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

/// Most users one `GetUsers` names.
pub const MAX_USERS_PER_LOOKUP: usize = 50;

/// Largest profile (`SetProfile`) the relay stores, in bytes.
pub const MAX_PROFILE_BYTES: usize = 4096;

pub(super) fn get_user(relay: &Relay, caller: &Caller, req: GetUser) -> RelayResult<Reply> {
    let user_id = UserId::parse(&req.user_id)?;
    let user = full_user(relay, caller, &user_id)?.ok_or(Refusal::NotFound("user"))?;
    Ok(Reply::durable(response::Result::User(user)))
}

pub(super) fn get_users(relay: &Relay, caller: &Caller, req: GetUsers) -> RelayResult<Reply> {
    if req.user_ids.len() > MAX_USERS_PER_LOOKUP {
        return Err(Refusal::TooLarge(format!(
            "GetUsers names at most {MAX_USERS_PER_LOOKUP} users"
        ))
        .into());
    }
    let mut users = Vec::with_capacity(req.user_ids.len());
    for id in &req.user_ids {
        let user_id = UserId::parse(id)?;
        users.extend(full_user(relay, caller, &user_id)?);
    }
    Ok(Reply::durable(response::Result::UserList(UserList {
        users,
        more: false,
    })))
}

pub(super) fn list_users(relay: &Relay, req: ListUsers) -> RelayResult<Reply> {
    let limit = match req.limit {
        0 => DEFAULT_PAGE,
        asked => asked.min(MAX_PAGE),
    };
    let (records, more) = relay.store.list_users(&req.after_user_id, limit as usize)?;
    let mut users = Vec::with_capacity(records.len());
    for record in records {
        let user_id = UserId::parse(&record.user_id)
            .map_err(|_| crate::error::RelayError::Corrupt("a stored user id".into()))?;
        let devices = relay.store.user_devices(&user_id)?;
        let stamp = directory_stamp(&record, &devices);
        let mut user = wire_user(record);
        user.directory_stamp = stamp.to_vec().into();
        users.push(user);
    }
    Ok(Reply::durable(response::Result::UserList(UserList {
        users,
        more,
    })))
}

/// How long a device that wrote too many profiles is asked to wait.
const PROFILE_RETRY_MS: u32 = 60_000;

pub(super) fn set_profile(relay: &Relay, caller: &Caller, req: SetProfile) -> RelayResult<Reply> {
    if req.profile.len() > MAX_PROFILE_BYTES {
        return Err(
            Refusal::TooLarge(format!("a profile is at most {MAX_PROFILE_BYTES} bytes")).into(),
        );
    }
    let profile = Signed::decode(req.profile.as_ref())
        .ok()
        .and_then(|signed| Profile::decode(signed.body.as_slice()).ok())
        .ok_or_else(|| Refusal::InvalidArgument("not a signed profile".into()))?;
    if profile.user_id != caller.user_id.as_str() {
        return Err(Refusal::Forbidden("a profile names the user who stores it").into());
    }
    if !relay
        .profiles_per_device
        .take(caller.device, std::time::Instant::now())
    {
        return Err(Refusal::RateLimited {
            retry_after_ms: PROFILE_RETRY_MS,
        }
        .into());
    }
    relay
        .store
        .set_profile(&caller.user_id, &req.profile, profile.revision)?;
    tracing::info!(user = %caller.user_id, revision = profile.revision, "profile stored");
    let mut reply = Reply::durable(response::Result::ProfileSet(ProfileSet {
        revision: profile.revision,
    }));
    reply.effects.push(super::Effect::DirectoryChanged);
    Ok(reply)
}

/// The user with devices, certificate and profile, or `None` if unknown.
fn full_user(relay: &Relay, caller: &Caller, user_id: &UserId) -> RelayResult<Option<User>> {
    let Some(record) = relay.store.user(user_id)? else {
        return Ok(None);
    };
    // When a device was last seen is its own user's to know: to anyone
    // else it would tell when they are online.
    let own = *user_id == caller.user_id;
    let devices = relay.store.user_devices(user_id)?;
    let stamp = directory_stamp(&record, &devices);
    let certificate = record.certificate.clone();
    let delegation = record.delegation.clone();
    let profile = record.profile.clone();
    let mut user = wire_user(record);
    user.devices = devices
        .into_iter()
        .map(|(key, device)| Device {
            device_key: key.to_vec().into(),
            created_at_ms: device.created_at_ms,
            credential: device.credential.into(),
            revoked: device.revoked_at_ms != 0,
            last_seen_ms: if own { device.last_seen_ms } else { 0 },
            sealed_label: if own {
                device.sealed_label.into()
            } else {
                Default::default()
            },
        })
        .collect();
    user.user_certificate = certificate.into();
    user.delegation = delegation.into();
    user.profile = profile.into();
    user.directory_stamp = stamp.to_vec().into();
    Ok(Some(user))
}

/// What changes whenever anything a directory shows of the user changes:
/// the first 16 bytes of SHA-256 over each part, length-prefixed.
fn directory_stamp(user: &UserRecord, devices: &[(DevicePublicKey, DeviceRecord)]) -> [u8; 16] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(b"convene/directory-stamp/v1");
    part(user.display_name.as_bytes());
    part(&user.role.to_be_bytes());
    part(&user.certificate);
    part(&user.profile);
    part(&[u8::from(user.suspended_at_ms != 0)]);
    for (key, device) in devices {
        part(key.as_bytes());
        part(&device.credential);
        part(&[u8::from(device.revoked_at_ms != 0)]);
    }
    let digest = hash.finalize();
    let mut stamp = [0; 16];
    stamp.copy_from_slice(&digest[..16]);
    stamp
}

/// The user as the directory lists them: no devices, no certificate.
pub(crate) fn wire_user(record: UserRecord) -> User {
    User {
        user_id: record.user_id,
        display_name: record.display_name,
        role: record.role,
        devices: Vec::new(),
        created_at_ms: record.created_at_ms,
        user_certificate: Default::default(),
        certificate_expires_at_ms: record.certificate_expires_at_ms,
        delegation: Default::default(),
        certified_by_delegate: record.certified_by_delegate,
        directory_stamp: Default::default(),
        profile: Default::default(),
    }
}
