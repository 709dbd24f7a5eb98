//! The KeyPackage directory.
//!
//! A one-time KeyPackage is handed out at most once: a claim finds and
//! removes it holding the device's lock stripe, which uploads and the sweep
//! of that device also take, so only one claimer ever gets it.
//! When a device has none left, its last-resort KeyPackage is handed out and
//! kept (RFC 9420, section 16.8). A KeyPackage whose lifetime has ended is
//! never handed out: claims skip and delete it, and the sweep deletes the
//! rest (the lifetime is read from its clear fields, see
//! `convene_proto::mls_frame`).

use super::engine::Batch;
use bytes::Bytes;
use convene_proto::ids::DEVICE_KEY_LEN;
use convene_proto::mls_frame::read_key_package;

use super::{keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};

/// Whether a stored KeyPackage has expired at `now` (one that cannot be
/// read is treated as expired: it was checked when it was uploaded).
fn expired(key_package: &[u8], now: u64) -> bool {
    read_key_package(key_package).map_or(true, |leaf| leaf.lifetime.has_ended(now))
}

/// A device's stock of KeyPackages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPackageStock {
    pub one_time: u32,
    pub last_resort: bool,
}

/// KeyPackages a device uploads, checked by the handler.
#[derive(Debug, Clone, Copy)]
pub struct KeyPackageUpload<'a> {
    pub one_time: &'a [Bytes],
    /// Replaces the device's last-resort KeyPackage.
    pub last_resort: Option<&'a [u8]>,
    /// Replaces the one-time stock instead of adding to it.
    pub replace_one_time: bool,
}

/// A KeyPackage handed out by [`Store::claim_key_package`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key_package: Vec<u8>,
    pub last_resort: bool,
}

impl Store {
    /// Adds one-time KeyPackages (and optionally replaces the last-resort
    /// one) to a device's stock, which may not grow beyond `max_stock`.
    pub fn upload_key_packages(
        &self,
        device: &DevicePublicKey,
        upload: &KeyPackageUpload<'_>,
        max_stock: u32,
    ) -> RelayResult<KeyPackageStock> {
        let KeyPackageUpload {
            one_time,
            last_resort,
            replace_one_time,
        } = *upload;
        let _guard = self.device_locks.lock(device);
        let stock = self.key_package_stock(device)?;
        let kept = if replace_one_time { 0 } else { stock.one_time };
        let total = u64::from(kept) + one_time.len() as u64;
        if total > u64::from(max_stock) {
            return Err(Refusal::TooLarge(format!(
                "a device may keep at most {max_stock} one-time KeyPackages on the relay ({kept} stored)"
            ))
            .into());
        }
        let mut batch = Batch::default();
        if replace_one_time {
            // Deleted in the batch that stores the new ones: there is never
            // a moment with none.
            for item in self.kv.scan_prefix(keys::key_packages_prefix(device)) {
                batch.remove(item?.0);
            }
        }
        for key_package in one_time {
            // Ids increase, so claims hand out the oldest KeyPackage first.
            let id = self.kv.generate_id()?;
            batch.insert(keys::key_package(device, id), key_package.as_ref());
        }
        if let Some(last_resort) = last_resort {
            batch.insert(keys::last_resort(device), last_resort);
        }
        self.kv.apply_batch(batch)?;
        Ok(KeyPackageStock {
            one_time: total as u32,
            last_resort: stock.last_resort || last_resort.is_some(),
        })
    }

    pub fn key_package_stock(&self, device: &DevicePublicKey) -> RelayResult<KeyPackageStock> {
        let mut one_time = 0u32;
        for item in self.kv.scan_prefix(keys::key_packages_prefix(device)) {
            item?;
            one_time += 1;
        }
        let last_resort = self.kv.contains_key(keys::last_resort(device))?;
        Ok(KeyPackageStock {
            one_time,
            last_resort,
        })
    }

    /// Hands out one KeyPackage of `device` at time `now`: the oldest
    /// one-time KeyPackage that has not expired, removed as it is handed
    /// out (expired ones on the way are deleted), or else the last-resort
    /// one if it has not expired. `None` when the device has neither.
    pub fn claim_key_package(
        &self,
        device: &DevicePublicKey,
        now: u64,
    ) -> RelayResult<Option<Claim>> {
        self.claim_key_package_of(device, true, now)
    }

    /// As [`Store::claim_key_package`]; with `one_time` false, only the
    /// last-resort KeyPackage is handed out (a claimer past its quota).
    pub fn claim_key_package_of(
        &self,
        device: &DevicePublicKey,
        one_time: bool,
        now: u64,
    ) -> RelayResult<Option<Claim>> {
        // Claims, uploads and the sweep of one device are serialised, so the
        // KeyPackage this scan finds is handed to this caller alone.
        let _guard = self.device_locks.lock(device);
        if one_time {
            let mut batch = Batch::default();
            let mut claimed = None;
            for item in self.kv.scan_prefix(keys::key_packages_prefix(device)) {
                let (key, key_package) = item?;
                batch.remove(key);
                if !expired(&key_package, now) {
                    claimed = Some(key_package);
                    break;
                }
            }
            self.kv.apply_batch(batch)?;
            if let Some(key_package) = claimed {
                return Ok(Some(Claim {
                    key_package,
                    last_resort: false,
                }));
            }
        }
        Ok(self
            .kv
            .get(keys::last_resort(device))?
            .filter(|kp| !expired(kp, now))
            .map(|kp| Claim {
                key_package: kp.to_vec(),
                last_resort: true,
            }))
    }

    /// Deletes every stored KeyPackage that has expired at `now`; returns
    /// how many.
    pub fn sweep_key_packages(&self, now: u64) -> RelayResult<u64> {
        let mut deleted = 0;
        for table in [keys::KEY_PACKAGE, keys::LAST_RESORT] {
            for item in self.kv.scan_prefix([table]) {
                let (key, key_package) = item?;
                if !expired(&key_package, now) {
                    continue;
                }
                let Some(device) = key
                    .get(1..1 + DEVICE_KEY_LEN)
                    .and_then(|bytes| DevicePublicKey::from_field("device", bytes).ok())
                else {
                    // One damaged key must not stop every later sweep.
                    tracing::error!("a stored KeyPackage key is damaged; skipped");
                    continue;
                };
                // Only if unchanged: a device may have replaced it.
                let _guard = self.device_locks.lock(device);
                if self.kv.get(&key)?.as_deref() == Some(key_package.as_slice()) {
                    self.kv.remove(&key)?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use convene_proto::mls_frame::{frame_key_package, Lifetime};

    use super::super::StoreOptions;
    use super::*;

    const NOW: u64 = 1_000_000_000;

    /// A KeyPackage of `device` labelled `label`, valid for an hour from NOW.
    fn kp(device: &DevicePublicKey, label: &str) -> Bytes {
        Bytes::from(frame_key_package(
            device.as_slice(),
            label.as_bytes(),
            Lifetime::starting_at(NOW, 3600),
        ))
    }

    fn upload<'a>(one_time: &'a [Bytes], last_resort: Option<&'a [u8]>) -> KeyPackageUpload<'a> {
        KeyPackageUpload {
            one_time,
            last_resort,
            replace_one_time: false,
        }
    }

    #[test]
    fn one_time_then_last_resort() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let device = DevicePublicKey([1; 32]);
        let (one, last) = (kp(&device, "kp1"), kp(&device, "lr"));
        let stock = store
            .upload_key_packages(
                &device,
                &upload(std::slice::from_ref(&one), Some(&last)),
                10,
            )
            .unwrap();
        assert_eq!(
            stock,
            KeyPackageStock {
                one_time: 1,
                last_resort: true
            }
        );
        let first = store.claim_key_package(&device, NOW).unwrap().unwrap();
        assert_eq!(
            (first.key_package, first.last_resort),
            (one.to_vec(), false)
        );
        for _ in 0..3 {
            let next = store.claim_key_package(&device, NOW).unwrap().unwrap();
            assert_eq!((next.key_package, next.last_resort), (last.to_vec(), true));
        }
        assert_eq!(
            store
                .claim_key_package(&DevicePublicKey([2; 32]), NOW)
                .unwrap(),
            None
        );
    }

    #[test]
    fn an_expired_key_package_is_never_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let device = DevicePublicKey([1; 32]);
        let old = Bytes::from(frame_key_package(
            device.as_slice(),
            b"old",
            Lifetime::starting_at(NOW, 10),
        ));
        let fresh = kp(&device, "fresh");
        let last = frame_key_package(device.as_slice(), b"lr", Lifetime::starting_at(NOW, 10));
        store
            .upload_key_packages(&device, &upload(&[old, fresh.clone()], Some(&last)), 10)
            .unwrap();
        let later = NOW + 60_000;
        let claim = store.claim_key_package(&device, later).unwrap().unwrap();
        assert_eq!(
            claim.key_package,
            fresh.to_vec(),
            "the expired one was skipped"
        );
        assert_eq!(
            store.claim_key_package(&device, later).unwrap(),
            None,
            "the last-resort KeyPackage has expired too"
        );
        assert_eq!(store.sweep_key_packages(later).unwrap(), 1);
        assert_eq!(
            store.key_package_stock(&device).unwrap(),
            KeyPackageStock::default()
        );
    }

    #[test]
    fn one_damaged_key_package_key_does_not_stop_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let device = DevicePublicKey([1; 32]);
        let expiring = frame_key_package(device.as_slice(), b"old", Lifetime::starting_at(NOW, 10));
        store
            .upload_key_packages(&device, &upload(&[Bytes::from(expiring.clone())], None), 4)
            .unwrap();
        // Sorts before every device's keys, too short to name a device.
        store.kv.insert([keys::KEY_PACKAGE, 0], &expiring).unwrap();
        assert_eq!(store.sweep_key_packages(NOW + 60_000).unwrap(), 1);
        assert_eq!(store.key_package_stock(&device).unwrap().one_time, 0);
    }

    #[test]
    fn a_rotation_replaces_the_stock_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let device = DevicePublicKey([1; 32]);
        let old: Vec<Bytes> = (0..3).map(|i| kp(&device, &format!("old{i}"))).collect();
        store
            .upload_key_packages(&device, &upload(&old, None), 4)
            .unwrap();
        let new = [kp(&device, "new0"), kp(&device, "new1")];
        let rotation = KeyPackageUpload {
            one_time: &new,
            last_resort: None,
            replace_one_time: true,
        };
        assert_eq!(
            store
                .upload_key_packages(&device, &rotation, 4)
                .unwrap()
                .one_time,
            2
        );
        let claim = store.claim_key_package(&device, NOW).unwrap().unwrap();
        assert_eq!(claim.key_package, new[0].to_vec());
    }

    #[test]
    fn stock_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let many: Vec<Bytes> = (0..3)
            .map(|i| kp(&DevicePublicKey([1; 32]), &i.to_string()))
            .collect();
        store
            .upload_key_packages(&DevicePublicKey([1; 32]), &upload(&many, None), 4)
            .unwrap();
        assert!(store
            .upload_key_packages(&DevicePublicKey([1; 32]), &upload(&many, None), 4)
            .is_err());
        assert_eq!(
            store
                .key_package_stock(&DevicePublicKey([1; 32]))
                .unwrap()
                .one_time,
            3
        );
    }

    #[test]
    fn concurrent_claims_never_share_a_key_package() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
        let device = DevicePublicKey([3; 32]);
        let kps: Vec<Bytes> = (0..200u32).map(|i| kp(&device, &i.to_string())).collect();
        store
            .upload_key_packages(&device, &upload(&kps, None), 1000)
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(claim) = store.claim_key_package(&device, NOW).unwrap() {
                        got.push(claim.key_package);
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<Vec<u8>> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(all.len(), 200);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200, "a KeyPackage was handed out twice");
    }
}
