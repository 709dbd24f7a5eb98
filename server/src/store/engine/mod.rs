//! The seam between the relay's records and the embedded engine that keeps
//! them on disk.
//!
//! The relay needs little of an engine: one ordered key space of byte
//! strings, atomic batches, ordered range scans and an explicit "everything
//! applied so far is on disk" ([`Engine::persist`]). Everything above this
//! module (table-tagged keys, lock stripes, quotas, the commit gate) is the
//! relay's own and is the same whichever engine is underneath, so an engine
//! is chosen by measurement alone (docs/BENCHMARKS.md) and every engine runs
//! the one shared suite in [`suite`].
//!
//! [`Kv`] is what the store's modules use: the engine plus the conveniences
//! (prefix scans, single writes, a monotonic id generator) that every engine
//! would otherwise repeat.

mod fjall_engine;
mod ids;
mod sled_engine;
#[cfg(test)]
pub(crate) mod suite;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

pub use fjall_engine::FjallEngine;
pub use sled_engine::SledEngine;

use ids::IdBlocks;

/// A failure inside the embedded engine (I/O, a damaged file, a full disk).
///
/// Never carries stored values, so it is safe to log.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("sled failed")]
    Sled(#[from] sled::Error),
    #[error("fjall failed")]
    Fjall(#[from] fjall::Error),
    #[error("the engine's files could not be read or written")]
    Io(#[from] std::io::Error),
    #[error("the engine's id counter is damaged")]
    IdCounter,
}

/// One key and its value, as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries in ascending key order (or descending, from the back).
pub type Entries<'a> = Box<dyn DoubleEndedIterator<Item = Result<Entry, EngineError>> + 'a>;

/// Writes applied together or not at all.
///
/// A key written twice keeps its last write: engines differ on what a batch
/// holding the same key twice means, so the batch settles it before they see
/// it.
#[derive(Debug, Default)]
pub struct Batch {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Batch {
    /// Stores `value` under `key`, replacing what was there.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes
            .insert(key.as_ref().to_vec(), Some(value.as_ref().to_vec()));
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.writes.insert(key.as_ref().to_vec(), None);
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The writes in key order: `None` deletes.
    pub fn into_writes(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.writes.into_iter()
    }
}

/// An ordered key-value engine with atomic batches.
///
/// Contract (checked for every implementation by [`suite`]):
/// - keys are ordered bytewise, shortest first among equal prefixes;
/// - [`Engine::apply`] is atomic: after a crash either every write of a
///   batch is there or none is, and batches are never reordered;
/// - a batch is visible to reads as soon as `apply` returns;
/// - once [`Engine::persist`] returns, every batch applied before it was
///   called survives a crash of the process or the machine.
pub trait Engine: Send + Sync {
    /// The engine's name, for logs and benchmarks.
    fn name(&self) -> &'static str;
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
    /// Applies every write of `batch` atomically.
    fn apply(&self, batch: Batch) -> Result<(), EngineError>;
    /// The entries between `lower` and `upper`, ascending. The iterator
    /// lives as long as the engine, not the bounds: implementations copy
    /// the bounds they keep.
    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Entries<'_>;
    /// Waits until every batch applied so far is on disk (fsync).
    fn persist(&self) -> Result<(), EngineError>;
    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> Result<u64, EngineError>;
}

/// The engine with the conveniences the store's modules share.
pub struct Kv {
    engine: Box<dyn Engine>,
    ids: IdBlocks,
}

impl Kv {
    /// Wraps `engine`; ids are reserved under `id_counter_key`.
    pub fn new(engine: Box<dyn Engine>, id_counter_key: Vec<u8>) -> Kv {
        Kv {
            engine,
            ids: IdBlocks::new(id_counter_key),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, EngineError> {
        self.engine.get(key.as_ref())
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, EngineError> {
        Ok(self.engine.get(key.as_ref())?.is_some())
    }

    /// Writes one value (atomically, as a batch of one).
    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), EngineError> {
        let mut batch = Batch::default();
        batch.insert(key, value);
        self.engine.apply(batch)
    }

    /// Deletes one key.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), EngineError> {
        let mut batch = Batch::default();
        batch.remove(key);
        self.engine.apply(batch)
    }

    pub fn apply_batch(&self, batch: Batch) -> Result<(), EngineError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.engine.apply(batch)
    }

    /// The entries whose keys fall in `range`, ascending.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Entries<'_> {
        let lower = as_slice_bound(range.start_bound());
        let upper = as_slice_bound(range.end_bound());
        self.engine.range(lower, upper)
    }

    /// The entries whose keys start with `prefix`, ascending.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Entries<'_> {
        let prefix = prefix.as_ref();
        match prefix_end(prefix) {
            // Engines copy the bounds they keep, so `end` may go.
            Some(end) => self
                .engine
                .range(Bound::Included(prefix), Bound::Excluded(end.as_slice())),
            None => self.engine.range(Bound::Included(prefix), Bound::Unbounded),
        }
    }

    /// A new id, larger than every id this store has handed out before,
    /// across restarts.
    pub fn generate_id(&self) -> Result<u64, EngineError> {
        self.ids.next(self.engine.as_ref())
    }

    /// Waits until everything applied so far is on disk.
    pub fn persist(&self) -> Result<(), EngineError> {
        self.engine.persist()
    }

    pub fn size_on_disk(&self) -> Result<u64, EngineError> {
        self.engine.size_on_disk()
    }
}

fn as_slice_bound<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_ref()),
        Bound::Excluded(key) => Bound::Excluded(key.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (the prefix is all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_prefix_is_its_successor() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn a_key_written_twice_in_a_batch_keeps_its_last_write() {
        let mut batch = Batch::default();
        batch.insert(b"k", b"1");
        batch.remove(b"k");
        batch.insert(b"k", b"2");
        let writes: Vec<_> = batch.into_writes().collect();
        assert_eq!(writes, vec![(b"k".to_vec(), Some(b"2".to_vec()))]);
    }
}
