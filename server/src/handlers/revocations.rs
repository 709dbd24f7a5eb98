//! Staff revoking devices and suspending users; clients fetching the
//! signed revocations.

use convene_proto::ids::{DevicePublicKey, UserId};
use convene_proto::relay::{
    response, ListRevocations, RevocationEntry, RevocationStored, Revocations, Revoke, Role,
};

use convene_proto::trust::{Revocation, SignaturePurpose, Signed};
use prost::Message;

use super::{Caller, Effect, Reply, MAX_CERTIFICATE_BYTES};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, RevocationTarget};

/// Revocations returned by one `ListRevocations`.
const PAGE: usize = 500;

/// The relay acts on a revocation only when the authority signed it and it
/// says what the request says: no staff device (nor anyone) can suspend a
/// user or cut off a device on its own word.
fn check_signed_target(relay: &Relay, req: &Revoke, target: RevocationTarget) -> RelayResult<()> {
    let invalid = |why: &str| Refusal::InvalidArgument(format!("the revocation {why}"));
    let signed = Signed::decode(req.revocation.as_ref()).map_err(|_| invalid("is unreadable"))?;
    let revocation =
        Revocation::decode(signed.body.as_slice()).map_err(|_| invalid("is unreadable"))?;
    let authority = relay
        .store
        .authority_key()?
        .ok_or_else(|| invalid("has no authority to check it against"))?;
    if revocation.authority_key.as_slice() != authority
        || !super::certificates::signed_by(&authority, SignaturePurpose::Revocation, &signed)
    {
        return Err(invalid("is not signed by the authority").into());
    }
    let says = match (
        revocation.delegate_key.is_empty(),
        revocation.device_key.as_slice(),
    ) {
        (false, []) => Some(RevocationTarget::Delegation),
        (true, []) => Some(RevocationTarget::User),
        (true, key) => DevicePublicKey::from_field("device_key", key)
            .ok()
            .map(RevocationTarget::Device),
        (false, _) => None,
    };
    if revocation.user_id != req.user_id || says != Some(target) {
        return Err(invalid("does not say what the request says").into());
    }
    Ok(())
}

pub(super) fn revoke(relay: &Relay, caller: &Caller, req: Revoke) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may revoke").into());
    }
    let user_id = UserId::parse(&req.user_id)?;
    if req.revocation.is_empty() || req.revocation.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::InvalidArgument("a signed revocation is required".into()).into());
    }
    let target = match (req.delegation_only, req.device_key.len()) {
        (true, _) => RevocationTarget::Delegation,
        (false, 0) => RevocationTarget::User,
        (false, _) => {
            RevocationTarget::Device(DevicePublicKey::from_field("device_key", &req.device_key)?)
        }
    };
    check_signed_target(relay, &req, target)?;
    let (sequence, devices) = relay
        .store
        .revoke(&user_id, target, &req.revocation, now_ms())?;
    tracing::info!(by = %caller.user_id, user = %user_id, devices = devices.len(), "revoked");
    let mut reply = Reply::durable(response::Result::RevocationStored(RevocationStored {
        sequence,
        devices: devices.iter().map(|d| d.to_vec().into()).collect(),
    }));
    reply.effects.push(Effect::Revoked { devices, sequence });
    Ok(reply)
}

pub(super) fn list(relay: &Relay, req: ListRevocations) -> RelayResult<Reply> {
    let entries = relay
        .store
        .revocations_after(req.after, PAGE)?
        .into_iter()
        .map(|(sequence, revocation)| RevocationEntry {
            sequence,
            revocation: revocation.into(),
        })
        .collect();
    // A revocation just stored may not be on disk yet: a device must not
    // act on one a crash could take back.
    Ok(Reply::durable(response::Result::Revocations(Revocations {
        entries,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A device acts on the revocations it reads (it removes the revoked
    /// from its groups); one a crash could take back must not be shown.
    #[tokio::test]
    async fn revocations_are_answered_only_once_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let relay = Relay::open(Config {
            data_dir: dir.path().join("relay"),
            ..Config::default()
        })
        .unwrap();
        let reply = list(&relay, ListRevocations { after: 0 }).unwrap();
        assert!(reply.durable);
    }
}
