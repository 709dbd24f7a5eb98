//! The KeyPackage directory: uploads by owners, claims by group admins.

use std::collections::BTreeSet;

use convene_proto::ids::UserId;
use convene_proto::mls_frame::read_key_package;
use convene_proto::relay::{
    response, ClaimKeyPackages, ClaimedKeyPackage, ClaimedKeyPackages, UploadKeyPackages,
};

use super::{check_size, device_keys, Caller, Effect, Reply};
use crate::error::{Refusal, RelayResult};
use crate::relay::Relay;
use crate::store::{now_ms, DevicePublicKey, KeyPackageStock, KeyPackageUpload};

pub(super) fn upload(relay: &Relay, caller: &Caller, req: UploadKeyPackages) -> RelayResult<Reply> {
    let limits = &relay.config.limits;
    for key_package in req.one_time.iter().chain(std::iter::once(&req.last_resort)) {
        check_size(
            "a KeyPackage",
            key_package.len(),
            limits.max_key_package_bytes,
        )?;
    }
    let last_resort = (!req.last_resort.is_empty()).then_some(req.last_resort.as_ref());
    let now = now_ms();
    for key_package in req.one_time.iter().map(|kp| kp.as_ref()).chain(last_resort) {
        let leaf = read_key_package(key_package)
            .map_err(|err| Refusal::InvalidArgument(format!("a KeyPackage: {err}")))?;
        if leaf.lifetime.has_ended(now) {
            return Err(Refusal::InvalidArgument("a KeyPackage has expired".into()).into());
        }
    }
    let upload = KeyPackageUpload {
        one_time: &req.one_time,
        last_resort,
        replace_one_time: req.replace_one_time,
    };
    let stock =
        relay
            .store
            .upload_key_packages(&caller.device, &upload, limits.max_key_packages)?;
    Ok(Reply::durable(response::Result::KeyPackageStock(
        wire_stock(stock),
    )))
}

/// When a claimer past its hourly share may try again, ms.
const CLAIM_RETRY_MS: u32 = 60_000;

pub(super) fn claim(relay: &Relay, caller: &Caller, req: ClaimKeyPackages) -> RelayResult<Reply> {
    let max = relay.config.limits.max_devices_per_request;
    if req.user_ids.len() > max as usize {
        return Err(Refusal::TooLarge(format!("a claim may name at most {max} users")).into());
    }
    // Every target is resolved before anything is claimed, so a bad name
    // wastes no KeyPackage.
    let mut targets: BTreeSet<(DevicePublicKey, String)> = BTreeSet::new();
    for user_id in &req.user_ids {
        let user_id = &UserId::parse(user_id)?;
        let user = relay
            .store
            .user(user_id)?
            .ok_or(Refusal::NotFound("user"))?;
        if user.suspended_at_ms != 0 {
            return Err(Refusal::Revoked.into());
        }
        for (device, record) in relay.store.user_devices(user_id)? {
            // A revoked device is never added again.
            if device != caller.device && record.revoked_at_ms == 0 {
                targets.insert((device, user_id.to_string()));
            }
        }
    }
    for device in device_keys("device_keys", &req.device_keys, max)? {
        let record = relay
            .store
            .device(&device)?
            .ok_or(Refusal::NotFound("device"))?;
        if record.revoked_at_ms != 0 {
            return Err(Refusal::Revoked.into());
        }
        targets.insert((device, record.user_id));
    }
    if targets.len() > max as usize {
        return Err(Refusal::TooLarge(format!("a claim may cover at most {max} devices")).into());
    }

    let low_watermark = relay.config.limits.key_package_low_watermark;
    let now = now_ms();
    let at = std::time::Instant::now();
    let mut claimed = ClaimedKeyPackages::default();
    let mut effects = Vec::new();
    // A claimer's share in all, checked before anything is claimed.
    for _ in 0..targets.len() {
        if !relay.claims_per_claimer.take(caller.device, at) {
            return Err(Refusal::RateLimited {
                retry_after_ms: CLAIM_RETRY_MS,
            }
            .into());
        }
    }
    for (device, user_id) in targets {
        // Past its share of this device's stock, a claimer gets the
        // last-resort KeyPackage: nobody can drain another's one-time ones.
        let one_time = relay.claims_per_target.take((caller.device, device), at);
        match relay.store.claim_key_package_of(&device, one_time, now)? {
            Some(claim) => {
                if !claim.last_resort {
                    let stock = relay.store.key_package_stock(&device)?;
                    if stock.one_time < low_watermark {
                        effects.push(Effect::KeyPackagesLow { device, stock });
                    }
                }
                claimed.key_packages.push(ClaimedKeyPackage {
                    user_id,
                    device_key: device.to_vec().into(),
                    key_package: claim.key_package.into(),
                    last_resort: claim.last_resort,
                });
            }
            None => claimed.unavailable_devices.push(device.to_vec().into()),
        }
    }
    Ok(Reply::durable(response::Result::ClaimedKeyPackages(claimed)).with_effects(effects))
}

pub(crate) fn wire_stock(stock: KeyPackageStock) -> convene_proto::relay::KeyPackageStock {
    convene_proto::relay::KeyPackageStock {
        one_time: stock.one_time,
        last_resort: stock.last_resort,
    }
}
