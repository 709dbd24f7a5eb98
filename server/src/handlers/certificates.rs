//! Renewing certificates: staff replace a user's certificate before it
//! expires, and each of the user's devices publishes its new chain.
//!
//! The relay holds the authority's public key, so it checks a renewed
//! certificate's signature before it keeps it: a staff device cannot
//! replace someone's certificate with junk that would lock them out. It
//! still cannot make one itself; clients verify everything again.

use convene_proto::ids::UserId;
use convene_proto::relay::{
    response, CertificateRenewed, CredentialUpdated, Delegate, Delegated, RenewCertificate, Role,
    UpdateCredential,
};
use convene_proto::trust::{
    chain_device, read_user_certificate, signed_bytes, SignaturePurpose, Signed, StaffDelegation,
};
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use super::{Caller, Reply, MAX_CERTIFICATE_BYTES};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::now_ms;

pub(super) fn renew(relay: &Relay, caller: &Caller, req: RenewCertificate) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may renew certificates").into());
    }
    let user_id = UserId::parse(&req.user_id)?;
    if req.user_certificate.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::TooLarge("user certificate".into()).into());
    }
    let invalid = |why: &str| Refusal::InvalidArgument(format!("the renewed certificate {why}"));
    let certificate =
        read_user_certificate(&req.user_certificate).ok_or_else(|| invalid("is unreadable"))?;
    if certificate.user_id != req.user_id {
        return Err(invalid("names another user").into());
    }
    let authority = relay
        .store
        .authority_key()?
        .ok_or_else(|| invalid("has no authority to check it against"))?;
    if certificate.authority_key.as_slice() != authority {
        return Err(invalid("is from another authority").into());
    }
    let signed =
        Signed::decode(req.user_certificate.as_ref()).map_err(|_| invalid("is unreadable"))?;
    if !signed_by(&authority, SignaturePurpose::UserCertificate, &signed) {
        return Err(invalid("is not signed by the authority").into());
    }
    // A renewal extends a certificate; it does not change who the user is,
    // and it cannot start in the future or last for ever (either would lock
    // the user out, or outlive every later renewal).
    let now = now_ms();
    if certificate.not_before_ms > now.saturating_add(MAX_CLOCK_AHEAD_MS)
        || certificate
            .not_after_ms
            .saturating_sub(certificate.not_before_ms)
            > MAX_VALIDITY_MS
    {
        return Err(invalid("has an unacceptable validity").into());
    }
    let user = relay
        .store
        .user(&user_id)?
        .ok_or(Refusal::NotFound("user"))?;
    if let Some(current) = read_user_certificate(&user.certificate) {
        let identity_changed = current_identity(&current)
            .is_some_and(|identity| identity != certificate.subject_key.as_slice());
        if current.role != certificate.role || identity_changed {
            return Err(invalid("changes the user's role or identity key").into());
        }
        // A re-certification changes what is certified: a certificate
        // older than the one held (replayed by anyone with a staff
        // account) would undo it.
        if certificate.not_before_ms < current.not_before_ms {
            return Err(invalid("is older than the one held").into());
        }
    }
    let replaces = match req.replaces.len() {
        0 => None,
        _ => Some(
            <[u8; 32]>::try_from(req.replaces.as_ref())
                .map_err(|_| invalid("names what it replaces in other than 32 bytes"))?,
        ),
    };
    relay.store.renew_certificate(
        &user_id,
        &req.user_certificate,
        certificate.not_after_ms,
        replaces,
    )?;
    tracing::info!(by = %caller.user_id, user = %user_id, "certificate renewed");
    let mut reply = Reply::durable(response::Result::CertificateRenewed(CertificateRenewed {
        expires_at_ms: certificate.not_after_ms,
    }));
    // A certificate carries the certified profile.
    reply.effects.push(super::Effect::DirectoryChanged);
    Ok(reply)
}

/// Whether `signed` carries `key`'s ed25519 signature for `purpose`.
pub(super) fn signed_by(key: &[u8; 32], purpose: SignaturePurpose, signed: &Signed) -> bool {
    let Ok(signature) = <[u8; 64]>::try_from(signed.signature.as_slice()) else {
        return false;
    };
    VerifyingKey::from_bytes(key)
        .and_then(|key| {
            key.verify_strict(
                &signed_bytes(purpose, &signed.body),
                &Signature::from_bytes(&signature),
            )
        })
        .is_ok()
}

/// Serves `Delegate`: keeps the delegation the authority signed for a staff
/// member, after checking the signature (so that no staff device can store
/// junk that would keep a colleague from inviting) and that it names that
/// staff member.
pub(super) fn delegate(relay: &Relay, caller: &Caller, req: Delegate) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may delegate").into());
    }
    let user_id = UserId::parse(&req.user_id)?;
    if req.delegation.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::TooLarge("delegation".into()).into());
    }
    let invalid = |why: &str| Refusal::InvalidArgument(format!("the delegation {why}"));
    let signed = Signed::decode(req.delegation.as_ref()).map_err(|_| invalid("is unreadable"))?;
    let delegation =
        StaffDelegation::decode(signed.body.as_slice()).map_err(|_| invalid("is unreadable"))?;
    let authority = relay
        .store
        .authority_key()?
        .ok_or_else(|| invalid("has no authority to check it against"))?;
    if delegation.authority_key.as_slice() != authority
        || !signed_by(&authority, SignaturePurpose::StaffDelegation, &signed)
    {
        return Err(invalid("is not signed by the authority").into());
    }
    if delegation.staff_user_id != req.user_id {
        return Err(invalid("names another user").into());
    }
    let user = relay
        .store
        .user(&user_id)?
        .ok_or(Refusal::NotFound("user"))?;
    if user.role != Role::Staff as i32 {
        return Err(invalid("is for someone who is not staff").into());
    }
    // Only a newer one replaces the one kept: another staff device cannot
    // put back an older, broader delegation.
    let kept = Signed::decode(user.delegation.as_slice())
        .ok()
        .and_then(|kept| StaffDelegation::decode(kept.body.as_slice()).ok());
    if kept.is_some_and(|kept| kept.not_before_ms >= delegation.not_before_ms) {
        return Err(invalid("is not newer than the one kept").into());
    }
    relay.store.set_delegation(&user_id, &req.delegation)?;
    tracing::info!(by = %caller.user_id, user = %user_id, "delegation stored");
    Ok(Reply::durable(response::Result::Delegated(Delegated {})))
}

/// How far ahead of the relay's clock a renewed certificate may start.
const MAX_CLOCK_AHEAD_MS: u64 = 15 * 60 * 1000;
/// The longest validity a renewed certificate may have (five years).
const MAX_VALIDITY_MS: u64 = 5 * 366 * 24 * 3600 * 1000;

/// The identity key a certificate vouches for directly, if it does. One
/// bound by an invite names the invite key instead, and the relay cannot
/// tell which identity key the enrolment bound; the user's devices check
/// that a renewal names their own.
fn current_identity(certificate: &convene_proto::trust::UserCertificate) -> Option<&[u8]> {
    (!certificate.bound_by_invite).then_some(certificate.subject_key.as_slice())
}

pub(super) fn update_credential(
    relay: &Relay,
    caller: &Caller,
    req: UpdateCredential,
) -> RelayResult<Reply> {
    if req.credential.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::TooLarge("credential".into()).into());
    }
    match chain_device(&req.credential) {
        Some((device, user_id)) if device == caller.device && user_id == caller.user_id => {}
        _ => {
            return Err(Refusal::InvalidArgument(
                "the credential must certify this device of this user".into(),
            )
            .into())
        }
    }
    relay
        .store
        .update_credential(&caller.device, &req.credential)?;
    Ok(Reply::durable(response::Result::CredentialUpdated(
        CredentialUpdated {},
    )))
}
