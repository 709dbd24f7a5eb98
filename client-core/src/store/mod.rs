//! The client's persistent local state: one sled tree in the state
//! directory, holding the MLS state (through [`mls_storage`]), the identity,
//! groups, message history and the outbox.
//!
//! # Atomic operations
//!
//! openmls writes one operation (say, merging a commit) as many separate
//! storage calls, and the client adds its own records (history, cursors,
//! outbox) to the same operation. None of it may land half-way. So every
//! write goes to an in-memory overlay first; reads see the overlay, then the
//! tree. [`LocalStore::commit`] applies the whole overlay as one atomic sled
//! batch, and [`LocalStore::rollback`] forgets it. [`LocalStore::flush`]
//! then makes committed batches durable. Only one operation is open at a
//! time: the client's engine runs them one after another.

mod mls_storage;
pub mod records;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use prost::Message;

pub use mls_storage::MlsStorageError;

/// Table tags: the first byte of every key.
pub(crate) mod tag {
    /// Single records: the identity, cursors.
    pub const META: u8 = 0x01;
    /// openmls's state.
    pub const MLS: u8 = 0x02;
    /// Our view of each group.
    pub const GROUP: u8 = 0x03;
    /// Message history, per group in log order.
    pub const HISTORY: u8 = 0x04;
    /// (group, sender, message id) of every message shown, to drop repeats.
    pub const SEEN: u8 = 0x05;
    /// Operations persisted before they are sent.
    pub const OUTBOX: u8 = 0x06;
    /// Direct channel of each peer.
    pub const DIRECT: u8 = 0x07;
    /// Identity key pinned for each peer.
    pub const PEER: u8 = 0x08;
}

/// Why the local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the local state in {path} (another process may be using it): {source}")]
    Open { path: String, source: sled::Error },
    #[error("local storage failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The state is locked by another open instance (another process, or
    /// one in this process that is still closing).
    pub fn is_locked(&self) -> bool {
        // sled reports a held lock as an `Other` I/O error whose message
        // carries the OS error, so the kind alone cannot tell it apart.
        matches!(self, StoreError::Open { source: sled::Error::Io(io), .. }
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock"))
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(err: prost::DecodeError) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// The client's state directory.
pub struct LocalStore {
    db: sled::Db,
    tree: sled::Tree,
    /// Writes of the open operation: `None` deletes.
    overlay: Mutex<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl LocalStore {
    /// Opens (or creates) the state in `dir`. Fails if another process holds
    /// it.
    pub fn open(dir: &Path) -> Result<LocalStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(open_err)?;
        let tree = db.open_tree("client").map_err(open_err)?;
        Ok(LocalStore {
            db,
            tree,
            overlay: Mutex::new(BTreeMap::new()),
        })
    }

    fn overlay(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        // The overlay is a plain map; a panic cannot leave it half-updated.
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a value as the open operation sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.overlay().get(key) {
            return Ok(pending.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes a value in the open operation.
    pub fn put(&self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay().insert(key, Some(value));
    }

    /// Deletes a value in the open operation.
    pub fn delete(&self, key: Vec<u8>) {
        self.overlay().insert(key, None);
    }

    /// Reads a protobuf record.
    pub fn get_record<R: Message + Default>(&self, key: &[u8]) -> Result<Option<R>, StoreError> {
        match self.get(key)? {
            Some(raw) => Ok(Some(R::decode(raw.as_slice())?)),
            None => Ok(None),
        }
    }

    /// Reads a committed protobuf record, ignoring the open operation: for
    /// readers outside the engine, which must not see half an operation.
    pub fn get_committed_record<R: Message + Default>(
        &self,
        key: &[u8],
    ) -> Result<Option<R>, StoreError> {
        match self.tree.get(key)? {
            Some(raw) => Ok(Some(R::decode(raw.as_ref())?)),
            None => Ok(None),
        }
    }

    /// Writes a protobuf record in the open operation.
    pub fn put_record<R: Message>(&self, key: Vec<u8>, record: &R) {
        self.put(key, record.encode_to_vec());
    }

    /// Committed records under `prefix`, in key order. The open operation's
    /// writes are not included: scan between operations.
    pub fn scan<R: Message + Default>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, R), StoreError>> + '_ {
        self.tree.scan_prefix(prefix).map(|item| {
            let (key, raw) = item?;
            Ok((key.to_vec(), R::decode(raw.as_ref())?))
        })
    }

    /// Committed records under `prefix`, newest key first.
    pub fn scan_rev<R: Message + Default>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, R), StoreError>> + '_ {
        self.tree.scan_prefix(prefix).rev().map(|item| {
            let (key, raw) = item?;
            Ok((key.to_vec(), R::decode(raw.as_ref())?))
        })
    }

    /// Applies the open operation's writes as one atomic batch.
    pub fn commit(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.overlay());
        if pending.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in pending {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Forgets the open operation's writes.
    pub fn rollback(&self) {
        self.overlay().clear();
    }

    /// Makes every committed operation durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Commits and flushes: the open operation is on disk when this returns.
    pub fn commit_durably(&self) -> Result<(), StoreError> {
        self.commit()?;
        self.flush()
    }
}

/// Builds a key from a table tag and parts, each part length-prefixed so
/// that no two different part lists give the same key.
pub(crate) fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 2).sum::<usize>());
    key.push(tag);
    for part in parts {
        key.extend_from_slice(&(part.len() as u16).to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_seen_then_committed_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.put(b"a".to_vec(), b"1".to_vec());
        assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(
            store.tree.get(b"a").unwrap().is_none(),
            "not written before commit"
        );
        store.rollback();
        assert!(store.get(b"a").unwrap().is_none());

        store.put(b"a".to_vec(), b"2".to_vec());
        store.commit_durably().unwrap();
        store.delete(b"a".to_vec());
        assert!(
            store.get(b"a").unwrap().is_none(),
            "a pending delete hides the value"
        );
        store.rollback();
        assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_state_held_open_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _held = LocalStore::open(dir.path()).unwrap();
        let Err(err) = LocalStore::open(dir.path()) else {
            panic!("a second open of a held state succeeded");
        };
        assert!(err.is_locked(), "not recognised as locked: {err}");
    }

    #[test]
    fn committed_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(dir.path()).unwrap();
            store.put(b"k".to_vec(), b"v".to_vec());
            store.commit_durably().unwrap();
            store.put(b"lost".to_vec(), b"v".to_vec());
        }
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(store.get(b"lost").unwrap().is_none());
    }

    #[test]
    fn keys_are_unambiguous() {
        assert_ne!(key(1, &[b"ab", b"c"]), key(1, &[b"a", b"bc"]));
    }
}
