//! Revocations: users staff suspended and devices staff revoked.
//!
//! The relay acts on them (it refuses the devices) and keeps the signed
//! revocations, in order, for every client to fetch and check: the relay
//! cannot sign one, so it cannot make clients remove anyone.

use super::engine::Batch;
use convene_proto::ids::UserId;

use super::keys::{self, DevicePublicKey};
use super::records::{DeviceRecord, UserRecord};
use super::{encode, Store};
use crate::error::{Refusal, RelayResult};

const SEQUENCE: &str = "revocation_sequence";

/// What a revocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationTarget {
    /// The user: every device (a suspension).
    User,
    /// One device of the user.
    Device(DevicePublicKey),
    /// The user's delegation to certify others; the user stays.
    Delegation,
}

impl Store {
    /// Suspends `user_id` (every device), revokes one device of it, or ends
    /// its delegation, and appends the signed `revocation`. Returns its
    /// sequence number and the devices cut off.
    pub fn revoke(
        &self,
        user_id: &UserId,
        target: RevocationTarget,
        revocation: &[u8],
        now: u64,
    ) -> RelayResult<(u64, Vec<DevicePublicKey>)> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut user: UserRecord = self
            .get(&keys::user(user_id))?
            .ok_or(Refusal::NotFound("user"))?;
        let device = match target {
            RevocationTarget::Device(device) => Some(device),
            RevocationTarget::User => None,
            RevocationTarget::Delegation => {
                // The user and their devices stay: only their delegation
                // ends, which clients learn from the revocation itself.
                user.delegation.clear();
                let sequence = self.last_revocation()? + 1;
                let mut batch = Batch::default();
                batch.insert(keys::user(user_id), encode(&user));
                batch.insert(keys::revocation(sequence), revocation);
                batch.insert(keys::meta(SEQUENCE), sequence.to_be_bytes());
                self.kv.apply_batch(batch)?;
                return Ok((sequence, Vec::new()));
            }
        };
        // Every write of a device's record holds its lock (a device
        // recording its last authentication or its label reads, changes and
        // writes the whole record): the records are read again under them.
        let keys: Vec<DevicePublicKey> = self
            .user_devices(user_id)?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let _devices_guard = self.device_locks.lock_many(keys.iter());
        let devices = self.user_devices(user_id)?;
        let sequence = self.last_revocation()? + 1;
        let mut batch = Batch::default();
        let mut cut = Vec::new();
        for (key, mut record) in devices {
            if device.is_some_and(|d| d != key) || record.revoked_at_ms != 0 {
                continue;
            }
            record.revoked_at_ms = now;
            record.revoked_by = sequence;
            batch.insert(keys::device(&key), encode::<DeviceRecord>(&record));
            cut.push(key);
        }
        if device.is_some() && cut.is_empty() {
            return Err(Refusal::NotFound("device").into());
        }
        if device.is_none() {
            user.suspended_at_ms = now;
            user.suspended_by = sequence;
            batch.insert(keys::user(user_id), encode(&user));
        }
        batch.insert(keys::revocation(sequence), revocation);
        batch.insert(keys::meta(SEQUENCE), sequence.to_be_bytes());
        self.kv.apply_batch(batch)?;
        Ok((sequence, cut))
    }

    /// The signed revocation stored under `sequence`, if any.
    pub fn revocation(&self, sequence: u64) -> RelayResult<Option<Vec<u8>>> {
        Ok(self
            .kv
            .get(keys::revocation(sequence))?
            .map(|raw| raw.to_vec()))
    }

    /// The sequence number of the newest revocation (0 when none).
    pub fn last_revocation(&self) -> RelayResult<u64> {
        Ok(match self.kv.get(keys::meta(SEQUENCE))? {
            Some(raw) => u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| super::corrupt("revocation sequence"))?,
            ),
            None => 0,
        })
    }

    /// Up to `limit` revocations after `after`, oldest first.
    pub fn revocations_after(&self, after: u64, limit: usize) -> RelayResult<Vec<(u64, Vec<u8>)>> {
        let start = keys::revocation(after.saturating_add(1));
        let end = [keys::REVOCATION + 1];
        let mut found = Vec::new();
        for item in self.kv.range(start.as_slice()..end.as_slice()).take(limit) {
            let (key, value) = item?;
            let sequence = key
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| super::corrupt("revocation key"))?;
            found.push((sequence, value.to_vec()));
        }
        Ok(found)
    }
}
