//! The KeyPackage directory.
//!
//! A one-time KeyPackage is handed out at most once: a claim removes it with
//! a single atomic `remove`, and only the caller that removed it gets it.
//! When a device has none left, its last-resort KeyPackage is handed out and
//! kept (RFC 9420, section 16.8).

use bytes::Bytes;
use sled::Batch;

use super::{keys, DeviceKey, Store};
use crate::error::{Refusal, RelayResult};

/// A device's stock of KeyPackages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPackageStock {
    pub one_time: u32,
    pub last_resort: bool,
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
        device: &DeviceKey,
        one_time: &[Bytes],
        last_resort: Option<&[u8]>,
        max_stock: u32,
    ) -> RelayResult<KeyPackageStock> {
        let _guard = self.device_locks.lock(device);
        let stock = self.key_package_stock(device)?;
        let total = u64::from(stock.one_time) + one_time.len() as u64;
        if total > u64::from(max_stock) {
            return Err(Refusal::TooLarge(format!(
                "a device may keep at most {max_stock} one-time KeyPackages on the relay ({} stored)",
                stock.one_time
            ))
            .into());
        }
        let mut batch = Batch::default();
        for key_package in one_time {
            // Ids increase, so claims hand out the oldest KeyPackage first.
            let id = self.db.generate_id()?;
            batch.insert(keys::key_package(device, id), key_package.as_ref());
        }
        if let Some(last_resort) = last_resort {
            batch.insert(keys::last_resort(device), last_resort);
        }
        self.tree.apply_batch(batch)?;
        Ok(KeyPackageStock {
            one_time: total as u32,
            last_resort: stock.last_resort || last_resort.is_some(),
        })
    }

    pub fn key_package_stock(&self, device: &DeviceKey) -> RelayResult<KeyPackageStock> {
        let mut one_time = 0u32;
        for item in self.tree.scan_prefix(keys::key_packages_prefix(device)) {
            item?;
            one_time += 1;
        }
        let last_resort = self.tree.contains_key(keys::last_resort(device))?;
        Ok(KeyPackageStock {
            one_time,
            last_resort,
        })
    }

    /// Hands out one KeyPackage of `device`: the oldest one-time KeyPackage,
    /// removed as it is handed out, or else the last-resort one. `None` when
    /// the device has neither.
    pub fn claim_key_package(&self, device: &DeviceKey) -> RelayResult<Option<Claim>> {
        for item in self.tree.scan_prefix(keys::key_packages_prefix(device)) {
            let (key, _) = item?;
            // Another claim may have removed this one since the scan saw it;
            // only the caller whose `remove` returns the value owns it.
            if let Some(key_package) = self.tree.remove(&key)? {
                return Ok(Some(Claim {
                    key_package: key_package.to_vec(),
                    last_resort: false,
                }));
            }
        }
        Ok(self.tree.get(keys::last_resort(device))?.map(|kp| Claim {
            key_package: kp.to_vec(),
            last_resort: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::StoreOptions;
    use super::*;

    #[test]
    fn one_time_then_last_resort() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let device = [1; 32];
        let stock = store
            .upload_key_packages(&device, &[Bytes::from_static(b"kp1")], Some(b"lr"), 10)
            .unwrap();
        assert_eq!(
            stock,
            KeyPackageStock {
                one_time: 1,
                last_resort: true
            }
        );
        let first = store.claim_key_package(&device).unwrap().unwrap();
        assert_eq!(
            (first.key_package.as_slice(), first.last_resort),
            (&b"kp1"[..], false)
        );
        for _ in 0..3 {
            let next = store.claim_key_package(&device).unwrap().unwrap();
            assert_eq!(
                (next.key_package.as_slice(), next.last_resort),
                (&b"lr"[..], true)
            );
        }
        assert_eq!(store.claim_key_package(&[2; 32]).unwrap(), None);
    }

    #[test]
    fn stock_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let many: Vec<Bytes> = (0..3).map(|_| Bytes::from_static(b"kp")).collect();
        store.upload_key_packages(&[1; 32], &many, None, 4).unwrap();
        assert!(store.upload_key_packages(&[1; 32], &many, None, 4).is_err());
        assert_eq!(store.key_package_stock(&[1; 32]).unwrap().one_time, 3);
    }

    #[test]
    fn concurrent_claims_never_share_a_key_package() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
        let device = [3; 32];
        let kps: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
            .collect();
        store
            .upload_key_packages(&device, &kps, None, 1000)
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(claim) = store.claim_key_package(&device).unwrap() {
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
