//! Encrypted attachments: opaque blobs uploaded in fixed-size chunks.
//!
//! The relay never sees an attachment's key (it travels inside an MLS
//! message), so a blob is ciphertext addressed by a random 16-byte id. It is
//! uploaded in order, one chunk per request, so that no single frame has to
//! carry a whole attachment, and can be read once complete.

use super::engine::Batch;
use convene_proto::ids::{UserId, BLOB_ID_LEN};
use rand::RngCore;

use super::records::BlobRecord;
use super::{encode, keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};

/// What one user may hold in attachments.
#[derive(Debug, Clone, Copy)]
pub struct BlobQuota {
    /// Bytes, uploaded or promised by an upload begun.
    pub bytes: u64,
    /// Attachments, complete or not.
    pub count: u32,
}

/// When a user over their attachment quota may try again: blobs expire,
/// incomplete ones within a day.
const BLOB_QUOTA_RETRY_MS: u32 = 3_600_000;

/// Who is uploading a blob.
#[derive(Debug, Clone, Copy)]
pub struct BlobOwner<'a> {
    pub device: &'a DevicePublicKey,
    pub user_id: &'a UserId,
}

impl Store {
    /// Reserves a blob of `size` bytes, to be uploaded in pieces of
    /// `chunk_bytes`, and returns its id. The size counts against the
    /// owner's quota from now until the blob is deleted.
    pub fn begin_blob(
        &self,
        owner: BlobOwner<'_>,
        size: u64,
        chunk_bytes: u32,
        quota: BlobQuota,
        now: u64,
    ) -> RelayResult<[u8; BLOB_ID_LEN]> {
        let _guard = self.device_locks.lock(owner.user_id.as_bytes());
        let (mut held_bytes, mut held) = (0u64, 0u32);
        for item in self.kv.scan_prefix(keys::user_blobs_prefix(owner.user_id)) {
            let (_, raw) = item?;
            let promised: [u8; 8] = raw
                .as_slice()
                .try_into()
                .map_err(|_| super::corrupt("user blob size"))?;
            held_bytes = held_bytes.saturating_add(u64::from_be_bytes(promised));
            held = held.saturating_add(1);
        }
        if held >= quota.count || held_bytes.saturating_add(size) > quota.bytes {
            return Err(Refusal::RateLimited {
                retry_after_ms: BLOB_QUOTA_RETRY_MS,
            }
            .into());
        }
        let mut id = [0u8; BLOB_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let record = BlobRecord {
            size,
            received: 0,
            owner_device: owner.device.to_vec(),
            created_at_ms: now,
            chunk_bytes,
            owner_user: owner.user_id.to_string(),
        };
        let mut batch = Batch::default();
        batch.insert(keys::blob(&id), encode(&record));
        batch.insert(keys::user_blob(owner.user_id, &id), size.to_be_bytes());
        self.kv.apply_batch(batch)?;
        Ok(id)
    }

    /// Stores the next piece of a blob that `owner` is uploading.
    pub fn put_blob_chunk(
        &self,
        owner: &DevicePublicKey,
        blob_id: &[u8],
        offset: u64,
        data: &[u8],
    ) -> RelayResult<BlobRecord> {
        let _guard = self.device_locks.lock(blob_id);
        let mut record: BlobRecord = self
            .get(&keys::blob(blob_id))?
            .filter(|r: &BlobRecord| r.owner_device == owner.as_slice())
            .ok_or(Refusal::NotFound("blob upload"))?;
        if record.is_complete() {
            return Err(Refusal::InvalidArgument("the blob is already complete".into()).into());
        }
        if offset != record.received {
            return Err(Refusal::InvalidArgument(format!(
                "pieces must be sent in order: expected offset {}",
                record.received
            ))
            .into());
        }
        let end = record.received + data.len() as u64;
        let full_chunk = data.len() == record.chunk_bytes as usize;
        let last_chunk =
            end == record.size && !data.is_empty() && data.len() <= record.chunk_bytes as usize;
        let acceptable = (full_chunk && end <= record.size) || last_chunk;
        if !acceptable {
            return Err(Refusal::InvalidArgument(format!(
                "each piece must be {} bytes, except the last, and the blob is {} bytes",
                record.chunk_bytes, record.size
            ))
            .into());
        }
        let index = (offset / u64::from(record.chunk_bytes)) as u32;
        record.received = end;
        let mut batch = Batch::default();
        batch.insert(keys::blob_chunk(blob_id, index), data);
        batch.insert(keys::blob(blob_id), encode(&record));
        self.kv.apply_batch(batch)?;
        Ok(record)
    }

    /// Reads up to `max_bytes` of a complete blob from `offset`, never past
    /// the end of one chunk. Returns the bytes and the blob's size.
    pub fn read_blob(
        &self,
        blob_id: &[u8],
        offset: u64,
        max_bytes: u32,
    ) -> RelayResult<(Vec<u8>, u64)> {
        let record: BlobRecord = self
            .get(&keys::blob(blob_id))?
            .filter(BlobRecord::is_complete)
            .ok_or(Refusal::NotFound("blob"))?;
        if offset >= record.size {
            return Ok((Vec::new(), record.size));
        }
        let chunk_bytes = u64::from(record.chunk_bytes);
        let index = (offset / chunk_bytes) as u32;
        let within = (offset % chunk_bytes) as usize;
        let chunk = self
            .kv
            .get(keys::blob_chunk(blob_id, index))?
            .ok_or_else(|| super::corrupt("blob chunk missing"))?;
        let end = chunk.len().min(within + max_bytes as usize);
        let data = chunk.get(within..end).unwrap_or_default().to_vec();
        Ok((data, record.size))
    }

    /// Deletes a blob and its chunks.
    pub(super) fn delete_blob(&self, blob_id: &[u8]) -> RelayResult<()> {
        let mut batch = Batch::default();
        for item in self.kv.scan_prefix(keys::blob_chunks_prefix(blob_id)) {
            let (key, _) = item?;
            batch.remove(key);
        }
        if let Some(record) = self.get::<BlobRecord>(&keys::blob(blob_id))? {
            batch.remove(keys::user_blob(&record.owner_user, blob_id));
        }
        batch.remove(keys::blob(blob_id));
        self.kv.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreOptions;
    use super::*;

    static ANN: std::sync::LazyLock<convene_proto::ids::UserId> =
        std::sync::LazyLock::new(|| crate::test_user_id("ann"));

    const ROOMY: BlobQuota = BlobQuota {
        bytes: 1_000,
        count: 10,
    };

    fn ann(device: &DevicePublicKey) -> BlobOwner<'_> {
        BlobOwner {
            device,
            user_id: &ANN,
        }
    }

    #[test]
    fn upload_in_order_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let owner = DevicePublicKey([1; 32]);
        let content: Vec<u8> = (0..10u8).collect();
        let id = store.begin_blob(ann(&owner), 10, 4, ROOMY, 0).unwrap();
        assert!(
            store.read_blob(&id, 0, 100).is_err(),
            "incomplete blobs are not readable"
        );
        assert!(
            store
                .put_blob_chunk(&owner, &id, 4, &content[4..8])
                .is_err(),
            "out of order"
        );
        assert!(
            store
                .put_blob_chunk(&DevicePublicKey([2; 32]), &id, 0, &content[..4])
                .is_err(),
            "not the owner"
        );
        store.put_blob_chunk(&owner, &id, 0, &content[..4]).unwrap();
        store
            .put_blob_chunk(&owner, &id, 4, &content[4..8])
            .unwrap();
        let done = store.put_blob_chunk(&owner, &id, 8, &content[8..]).unwrap();
        assert!(done.is_complete());
        let mut read = Vec::new();
        while read.len() < 10 {
            let (data, size) = store.read_blob(&id, read.len() as u64, 3).unwrap();
            assert_eq!(size, 10);
            read.extend(data);
        }
        assert_eq!(read, content);
    }

    #[test]
    fn short_pieces_are_refused_except_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let id = store
            .begin_blob(ann(&DevicePublicKey([1; 32])), 10, 4, ROOMY, 0)
            .unwrap();
        assert!(store
            .put_blob_chunk(&DevicePublicKey([1; 32]), &id, 0, &[0; 3])
            .is_err());
        assert!(store
            .put_blob_chunk(&DevicePublicKey([1; 32]), &id, 0, &[0; 5])
            .is_err());
    }

    /// Bytes promised by uploads begun count as much as bytes stored, and
    /// deleting a blob gives its share back; other users are not affected.
    #[test]
    fn a_user_holds_at_most_the_quota_in_stored_and_promised_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let quota = BlobQuota {
            bytes: 100,
            count: 3,
        };
        let first = store
            .begin_blob(ann(&DevicePublicKey([1; 32])), 60, 64, quota, 0)
            .unwrap();
        let over = store
            .begin_blob(ann(&DevicePublicKey([2; 32])), 41, 64, quota, 0)
            .unwrap_err();
        assert!(matches!(
            over,
            crate::error::RelayError::Refused(Refusal::RateLimited { .. })
        ));
        let bob = BlobOwner {
            device: &DevicePublicKey([3; 32]),
            user_id: &crate::test_user_id("bob"),
        };
        store.begin_blob(bob, 100, 64, quota, 0).unwrap();
        store
            .begin_blob(ann(&DevicePublicKey([2; 32])), 40, 64, quota, 0)
            .unwrap();
        store.delete_blob(&first).unwrap();
        store
            .begin_blob(ann(&DevicePublicKey([1; 32])), 30, 64, quota, 0)
            .unwrap();
        store
            .begin_blob(ann(&DevicePublicKey([1; 32])), 1, 64, quota, 0)
            .unwrap();
        let too_many = store.begin_blob(ann(&DevicePublicKey([1; 32])), 1, 64, quota, 0);
        assert!(too_many.is_err(), "a fourth attachment was begun");
    }
}
