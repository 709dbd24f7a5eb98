//! Staff revoking devices and suspending users; clients fetching the
//! signed revocations.

use convene_proto::ids::{check_user_id, fixed};
use convene_proto::relay::{
    response, ListRevocations, RevocationEntry, RevocationStored, Revocations, Revoke, Role,
};

use super::{Caller, Effect, Reply, MAX_CERTIFICATE_BYTES};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, RevocationTarget};

/// Revocations returned by one `ListRevocations`.
const PAGE: usize = 500;

pub(super) fn revoke(relay: &Relay, caller: &Caller, req: Revoke) -> RelayResult<Reply> {
    if caller.role != Role::Staff {
        return Err(Refusal::Forbidden("only staff may revoke").into());
    }
    check_user_id(&req.user_id)?;
    if req.revocation.is_empty() || req.revocation.len() > MAX_CERTIFICATE_BYTES {
        return Err(Refusal::InvalidArgument("a signed revocation is required".into()).into());
    }
    let target = match (req.delegation_only, req.device_key.len()) {
        (true, _) => RevocationTarget::Delegation,
        (false, 0) => RevocationTarget::User,
        (false, _) => RevocationTarget::Device(fixed::<32>("device_key", &req.device_key)?),
    };
    let (sequence, devices) =
        relay
            .store
            .revoke(&req.user_id, target, &req.revocation, now_ms())?;
    tracing::info!(by = %caller.user_id, user = %req.user_id, devices = devices.len(), "revoked");
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
