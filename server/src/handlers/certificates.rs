//! Renewing certificates: staff replace a user's certificate before it
//! expires, and each of the user's devices publishes its new chain.
//!
//! The relay holds the authority's public key, so it checks a renewed
//! certificate's signature before it keeps it: a staff device cannot
//! replace someone's certificate with junk that would lock them out. It
//! still cannot make one itself; clients verify everything again.

use convene_proto::ids::check_user_id;
use convene_proto::relay::{
    response, CertificateRenewed, CredentialUpdated, RenewCertificate, Role, UpdateCredential,
};
use convene_proto::trust::{
    chain_device, read_user_certificate, signed_bytes, SignaturePurpose, Signed,
};
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use super::{Caller, Reply, MAX_CERTIFICATE_BYTES};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;

pub(super) fn renew(relay: &Relay, caller: &Caller, req: RenewCertificate) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may renew certificates").into());
    }
    check_user_id(&req.user_id)?;
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
    let signature: [u8; 64] = signed
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| invalid("is not signed"))?;
    VerifyingKey::from_bytes(&authority)
        .and_then(|key| {
            key.verify_strict(
                &signed_bytes(SignaturePurpose::UserCertificate, &signed.body),
                &Signature::from_bytes(&signature),
            )
        })
        .map_err(|_| invalid("is not signed by the authority"))?;
    relay.store.renew_certificate(
        &req.user_id,
        &req.user_certificate,
        certificate.not_after_ms,
    )?;
    tracing::info!(by = %caller.user_id, user = %req.user_id, "certificate renewed");
    Ok(Reply::durable(response::Result::CertificateRenewed(
        CertificateRenewed {
            expires_at_ms: certificate.not_after_ms,
        },
    )))
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
