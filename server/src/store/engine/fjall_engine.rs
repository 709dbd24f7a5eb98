//! fjall 3: a log-structured merge tree with a write-ahead journal.
//!
//! The relay's writes are appends (log entries, inbox entries) and small
//! record updates, acknowledged only after an fsync shared by every writer
//! (`durability::Flusher`); an LSM engine turns each batch into one journal
//! append and moves the tree work to background compaction, which is why it
//! was chosen (docs/BENCHMARKS.md, issue 19).
//!
//! Journal writes are left in fjall's buffer until [`Engine::persist`]
//! (`manual_journal_persist`): nothing is acknowledged before that call, and
//! one write system call per batch would be paid for nothing.

use std::ops::Bound;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Batch, Engine, EngineError, Entries};

/// One fjall database with one keyspace.
pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
}

/// The keyspace the relay keeps everything in: one, so that every batch is
/// a single journal entry.
const KEYSPACE: &str = "relay";

impl FjallEngine {
    /// Opens (or creates) a fjall database in `path`. Fails if another
    /// process has it open (fjall locks the directory).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<FjallEngine, EngineError> {
        let db = Database::builder(path)
            .cache_size(cache_bytes)
            .manual_journal_persist(true)
            .open()?;
        let keyspace = db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)?;
        Ok(FjallEngine { db, keyspace })
    }
}

impl Engine for FjallEngine {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.keyspace.get(key)?.map(|value| value.to_vec()))
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        let mut writes = self.db.batch();
        for (key, value) in batch.into_writes() {
            match value {
                Some(value) => writes.insert(&self.keyspace, key, value),
                None => writes.remove(&self.keyspace, key),
            }
        }
        Ok(writes.commit()?)
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Entries<'_> {
        let owned = (lower.map(<[u8]>::to_vec), upper.map(<[u8]>::to_vec));
        Box::new(self.keyspace.range(owned).map(|guard| {
            let (key, value) = guard.into_inner()?;
            Ok((key.to_vec(), value.to_vec()))
        }))
    }

    fn persist(&self) -> Result<(), EngineError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    fn size_on_disk(&self) -> Result<u64, EngineError> {
        Ok(self.db.disk_space()?)
    }
}
