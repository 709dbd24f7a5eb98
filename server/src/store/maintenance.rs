//! Periodic clean-up of records that only time makes obsolete: used or
//! expired invites, old submission outcomes, expired blobs and KeyPackages.

use super::records::{BlobRecord, InviteRecord, SubmissionRecord};
use super::{keys, Store};
use crate::error::RelayResult;

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// A submission's outcome stays replayable this long after acceptance.
    pub submission_ms: u64,
    /// A complete blob stays downloadable this long after its upload began.
    pub blob_ms: u64,
    /// An incomplete upload is abandoned after this long.
    pub incomplete_blob_ms: u64,
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub invites: u64,
    pub submissions: u64,
    pub blobs: u64,
    pub key_packages: u64,
}

impl Store {
    /// Deletes everything past its retention at time `now`.
    pub fn sweep(&self, retention: Retention, now: u64) -> RelayResult<SweepReport> {
        let mut report = SweepReport::default();
        for item in self.scan::<InviteRecord>(&[keys::INVITE]) {
            let (key, invite) = item?;
            // Kept until expiry even when used, so reuse is reported as such.
            if now >= invite.expires_at_ms {
                self.kv.remove(key)?;
                report.invites += 1;
            }
        }
        for item in self.scan::<SubmissionRecord>(&[keys::SUBMISSION]) {
            let (key, record) = item?;
            if now.saturating_sub(record.created_at_ms) >= retention.submission_ms {
                self.kv.remove(key)?;
                report.submissions += 1;
            }
        }
        let mut expired_blobs = Vec::new();
        for item in self.scan::<BlobRecord>(&[keys::BLOB]) {
            let (key, blob) = item?;
            let age = now.saturating_sub(blob.created_at_ms);
            let limit = if blob.is_complete() {
                retention.blob_ms
            } else {
                retention.incomplete_blob_ms
            };
            if age >= limit {
                expired_blobs.push(key.get(1..).unwrap_or_default().to_vec());
            }
        }
        for blob_id in expired_blobs {
            self.delete_blob(&blob_id)?;
            report.blobs += 1;
        }
        report.key_packages = self.sweep_key_packages(now)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DevicePublicKey, NewInvite, StoreOptions};
    use super::*;
    use convene_proto::relay::Role;

    #[test]
    fn sweeps_only_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let invite = |ttl_ms| NewInvite {
            user_certificate: Vec::new(),
            role: Role::Leader,
            user_id: String::new(),
            display_name: String::new(),
            ttl_ms,
            created_by: None,
            delegation: Vec::new(),
        };
        store.create_invite(&[1; 32], &invite(100), 0).unwrap();
        store.create_invite(&[2; 32], &invite(10_000), 0).unwrap();
        let owner = crate::store::BlobOwner {
            device: &DevicePublicKey([1; 32]),
            user_id: &crate::test_user_id("ann"),
        };
        let quota = crate::store::BlobQuota {
            bytes: 100,
            count: 10,
        };
        let old_blob = store.begin_blob(owner, 10, 4, quota, 0).unwrap();
        let retention = Retention {
            submission_ms: 1_000,
            blob_ms: 1_000,
            incomplete_blob_ms: 500,
        };
        let report = store.sweep(retention, 600).unwrap();
        assert_eq!(
            report,
            SweepReport {
                invites: 1,
                submissions: 0,
                blobs: 1,
                key_packages: 0,
            }
        );
        assert!(store.kv.get(keys::invite(&[2; 32])).unwrap().is_some());
        assert!(store.kv.get(keys::blob(&old_blob)).unwrap().is_none());
    }
}
