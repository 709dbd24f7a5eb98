//! Linking a user's new device, and removing a lost one.
//!
//! The new device asks before it is authenticated ([`request_link`],
//! [`link_status`]); the user's existing device lists and approves the
//! request. The relay only carries the two sides' SPAKE2 messages and what
//! the approving device seals: the new device's credential is made, sealed
//! and checked by clients, and set by the new device itself once it holds
//! it (`UpdateCredential`).

use convene_proto::ids::UserId;
use convene_proto::relay::{
    response, ApproveLink, DeviceLabelSet, DeviceRemoved, GetLink, LinkApproved, LinkRequested,
    LinkStatus, Links, PendingLink, RemoveDevice, RequestLink, SetDeviceLabel,
};

use super::{Caller, Effect, Reply};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, DevicePublicKey, LinkAnswer, NewLink};

/// How long a link request waits for approval.
pub const LINK_TTL_MS: u64 = 10 * 60 * 1000;
/// Largest sealed bundle the relay keeps for a new device.
pub const MAX_SEALED_BYTES: usize = 8192;
/// The largest sealed device label the relay stores.
pub const MAX_DEVICE_LABEL_BYTES: usize = 512;
/// Largest SPAKE2 message the relay keeps (one is 33 bytes today).
const MAX_PAKE_MESSAGE_BYTES: usize = 64;

fn check_pake_message(message: &[u8]) -> RelayResult<()> {
    if message.is_empty() || message.len() > MAX_PAKE_MESSAGE_BYTES {
        return Err(Refusal::InvalidArgument(format!(
            "pake_message must have 1 to {MAX_PAKE_MESSAGE_BYTES} bytes"
        ))
        .into());
    }
    Ok(())
}

/// Serves `RequestLink` (before authentication) for `device`, whose
/// signature over this connection's nonce the session has checked.
pub(crate) fn request_link(
    relay: &Relay,
    device: DevicePublicKey,
    req: &RequestLink,
) -> RelayResult<response::Result> {
    let user_id = UserId::parse(&req.user_id)?;
    check_pake_message(&req.pake_message)?;
    let link = NewLink {
        user_id: &user_id,
        device,
        pake_message: &req.pake_message,
        ttl_ms: LINK_TTL_MS,
    };
    let expires_at_ms = relay.store.request_link(&link, now_ms())?;
    tracing::info!(user = %user_id, "device link requested");
    Ok(response::Result::LinkRequested(LinkRequested {
        expires_at_ms,
    }))
}

/// Serves `GetLink` (before authentication). The sealed bundle is readable
/// only by the device that shows the request's code.
pub(crate) fn link_status(relay: &Relay, req: &GetLink) -> RelayResult<response::Result> {
    let device = DevicePublicKey::from_field("device_key", &req.device_key)?;
    let link = relay
        .store
        .link(&device)?
        .filter(|link| now_ms() < link.expires_at_ms)
        .ok_or(Refusal::NotFound("link request"))?;
    Ok(response::Result::LinkStatus(LinkStatus {
        approved: link.approved_at_ms != 0,
        sealed: link.sealed.into(),
        expires_at_ms: link.expires_at_ms,
        pake_message: link.pake_answer.into(),
    }))
}

pub(super) fn list(relay: &Relay, caller: &Caller) -> RelayResult<Reply> {
    let now = now_ms();
    let links = relay
        .store
        .user_links(&caller.user_id)?
        .into_iter()
        .filter(|(_, link)| link.approved_at_ms == 0 && now < link.expires_at_ms)
        .map(|(device, link)| PendingLink {
            device_key: device.to_vec().into(),
            pake_message: link.pake_request.into(),
            requested_at_ms: link.requested_at_ms,
            expires_at_ms: link.expires_at_ms,
        })
        .collect();
    Ok(Reply::durable(response::Result::Links(Links { links })))
}

pub(super) fn approve(relay: &Relay, caller: &Caller, req: ApproveLink) -> RelayResult<Reply> {
    let device = DevicePublicKey::from_field("device_key", &req.device_key)?;
    check_pake_message(&req.pake_message)?;
    if req.sealed.is_empty() || req.sealed.len() > MAX_SEALED_BYTES {
        return Err(Refusal::InvalidArgument("a sealed bundle is required".into()).into());
    }
    let answer = LinkAnswer {
        pake_message: &req.pake_message,
        sealed: &req.sealed,
    };
    relay
        .store
        .approve_link(&caller.user_id, &device, &answer, now_ms())?;
    // The new device checks the answer itself: whether it links is its
    // own word, not the relay's.
    tracing::info!(user = %caller.user_id, "link answer stored for the new device");
    Ok(Reply::durable(response::Result::LinkApproved(
        LinkApproved {},
    )))
}

/// Stores the caller's own device label, sealed (opaque to the relay).
pub(super) fn set_label(relay: &Relay, caller: &Caller, req: SetDeviceLabel) -> RelayResult<Reply> {
    if req.sealed_label.len() > MAX_DEVICE_LABEL_BYTES {
        return Err(Refusal::TooLarge(format!(
            "a device label is at most {MAX_DEVICE_LABEL_BYTES} bytes"
        ))
        .into());
    }
    relay
        .store
        .set_device_label(&caller.device, &req.sealed_label)?;
    Ok(Reply::durable(response::Result::DeviceLabelSet(
        DeviceLabelSet {},
    )))
}

pub(super) fn remove_device(
    relay: &Relay,
    caller: &Caller,
    req: RemoveDevice,
) -> RelayResult<Reply> {
    let device = DevicePublicKey::from_field("device_key", &req.device_key)?;
    if device == caller.device {
        return Err(Refusal::InvalidArgument(
            "a device cannot remove itself; use another of the user's devices".into(),
        )
        .into());
    }
    relay
        .store
        .remove_own_device(&caller.user_id, &device, now_ms())?;
    tracing::info!(user = %caller.user_id, "device removed by its user");
    let mut reply = Reply::durable(response::Result::DeviceRemoved(DeviceRemoved {}));
    reply.effects.push(Effect::DevicesRemoved {
        devices: vec![device],
    });
    Ok(reply)
}
