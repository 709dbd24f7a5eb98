//! The first phase of every connection: challenge, then `Authenticate` or
//! `Enrol`, within the authentication deadline.

use convene_proto::auth::{transcript, AuthPurpose};
use convene_proto::ids::{fixed, CONTINUITY_LEN, NONCE_LEN, SIGNATURE_LEN};
use convene_proto::invite::lookup_hash;
use convene_proto::relay::{response, Authenticate, Authenticated, Enrol, RequestLink, Role};
use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{Refusal, RelayError, RelayResult};
use crate::handlers::Caller;
use crate::handlers::{wire_stock, MAX_CERTIFICATE_BYTES};
use crate::relay::Relay;
use crate::store::{now_ms, DevicePublicKey, Enrolment};

/// Checks an ed25519 signature over the transcript of this connection.
fn verify(
    relay: &Relay,
    purpose: AuthPurpose,
    nonce: &[u8; NONCE_LEN],
    device_key: &[u8],
    signature: &[u8],
) -> RelayResult<DevicePublicKey> {
    let device = DevicePublicKey::from_field("device_key", device_key)?;
    let signature: [u8; SIGNATURE_LEN] = fixed("signature", signature)?;
    let key =
        VerifyingKey::from_bytes(device.as_bytes()).map_err(|_| Refusal::AuthenticationFailed)?;
    let signed = transcript(purpose, &relay.store.relay_id(), nonce, &device);
    key.verify_strict(&signed, &Signature::from_bytes(&signature))
        .map_err(|_| Refusal::AuthenticationFailed)?;
    Ok(device)
}

/// Serves `Authenticate`: the device must be enrolled and sign this
/// connection's nonce.
pub fn authenticate(
    relay: &Relay,
    nonce: &[u8; NONCE_LEN],
    req: &Authenticate,
) -> RelayResult<(Caller, response::Result)> {
    let device = verify(
        relay,
        AuthPurpose::Authenticate,
        nonce,
        &req.device_key,
        &req.signature,
    )?;
    let record = relay
        .store
        .device(&device)?
        .ok_or(Refusal::AuthenticationFailed)?;
    let user = relay
        .store
        .user(&crate::store::stored_user_id(&record.user_id)?)?
        .ok_or_else(|| RelayError::Corrupt("a device's user is missing".into()))?;
    if record.revoked_at_ms != 0 || user.suspended_at_ms != 0 {
        // The signed revocation goes with the refusal: the device acts on
        // the organisation's word, never on the relay's alone.
        let by = if user.suspended_by != 0 {
            user.suspended_by
        } else {
            record.revoked_by
        };
        let revocation = match by {
            0 => Vec::new(),
            sequence => relay.store.revocation(sequence)?.unwrap_or_default(),
        };
        return Err(Refusal::RevokedBy { revocation }.into());
    }
    let tokens = [&req.continuity, &req.next_continuity];
    if tokens
        .iter()
        .any(|t| !t.is_empty() && t.len() != CONTINUITY_LEN)
    {
        return Err(Refusal::InvalidArgument(format!(
            "continuity tokens are {CONTINUITY_LEN} bytes"
        ))
        .into());
    }
    relay.store.pass_continuity(
        &device,
        &req.continuity,
        &req.next_continuity,
        req.take_over,
    )?;
    relay.store.record_seen(&device, now_ms())?;
    let caller = Caller {
        device,
        user_id: crate::store::stored_user_id(&user.user_id)?,
        role: Role::try_from(user.role).unwrap_or(Role::Leader),
    };
    let result = authenticated(relay, &caller, user.display_name)?;
    Ok((caller, result))
}

/// Serves `Enrol`: redeems the invite and registers the device, which must
/// sign this connection's nonce to prove it holds the key.
pub fn enrol(
    relay: &Relay,
    nonce: &[u8; NONCE_LEN],
    req: &Enrol,
) -> RelayResult<(Caller, response::Result)> {
    let device = verify(
        relay,
        AuthPurpose::Enrol,
        nonce,
        &req.device_key,
        &req.signature,
    )?;
    let token: [u8; 32] =
        fixed("invite_token", &req.invite_token).map_err(|_| Refusal::InviteUnknown)?;
    if req.credential.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::TooLarge("credential".into()).into());
    }
    let authority_key = match req.authority_key.len() {
        0 => None,
        _ => Some(fixed::<32>("authority_key", &req.authority_key)?),
    };
    let enrolment = Enrolment {
        invite_hash: lookup_hash(&token),
        user_id: &req.user_id,
        display_name: &req.display_name,
        device,
        credential: &req.credential,
        authority_key,
    };
    let user = relay.store.enrol(&enrolment, now_ms())?;
    tracing::info!(
        user = %user.user_id,
        role = crate::handlers::role_name(Role::try_from(user.role).unwrap_or_default()),
        "user enrolled"
    );
    let caller = Caller {
        device,
        user_id: crate::store::stored_user_id(&user.user_id)?,
        role: Role::try_from(user.role).unwrap_or(Role::Leader),
    };
    let result = authenticated(relay, &caller, user.display_name)?;
    Ok((caller, result))
}

/// Serves `RequestLink`: the new device must sign this connection's nonce
/// to prove it holds the key it asks to link.
pub fn request_link(
    relay: &Relay,
    nonce: &[u8; NONCE_LEN],
    req: &RequestLink,
) -> RelayResult<response::Result> {
    let device = verify(
        relay,
        AuthPurpose::Link,
        nonce,
        &req.device_key,
        &req.signature,
    )?;
    crate::handlers::request_link(relay, device, req)
}

fn authenticated(
    relay: &Relay,
    caller: &Caller,
    display_name: String,
) -> RelayResult<response::Result> {
    let stock = relay.store.key_package_stock(&caller.device)?;
    Ok(response::Result::Authenticated(Authenticated {
        user_id: caller.user_id.to_string(),
        display_name,
        role: caller.role as i32,
        relay_id: relay.store.relay_id().to_vec().into(),
        key_package_stock: Some(wire_stock(stock)),
        relay_time_ms: now_ms(),
    }))
}
