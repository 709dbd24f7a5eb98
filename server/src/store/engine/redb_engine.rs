//! redb 4: a copy-on-write B-tree in one file, measured against fjall and
//! sled for issue 19 (docs/BENCHMARKS.md).
//!
//! Each batch is one write transaction committed without durability
//! (`Durability::None`); [`Engine::persist`] commits an empty transaction
//! with `Durability::Immediate`, which makes every earlier one durable.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase as _, TableDefinition};

use super::{Batch, Engine, EngineError, Entries};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("relay");

/// The file inside the engine's directory.
const FILE: &str = "relay.redb";

/// One redb database with one table.
pub struct RedbEngine {
    db: Database,
    file: std::path::PathBuf,
}

fn failed(err: impl Into<redb::Error>) -> EngineError {
    EngineError::Redb(err.into())
}

impl RedbEngine {
    /// Opens (or creates) a redb database in the directory `path`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<RedbEngine, EngineError> {
        std::fs::create_dir_all(path)?;
        let file = path.join(FILE);
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(&file)
            .map_err(failed)?;
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(TABLE).map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(RedbEngine { db, file })
    }
}

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(TABLE).map_err(failed)?;
        let value = table.get(key).map_err(failed)?;
        Ok(value.map(|value| value.value().to_vec()))
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        let mut txn = self.db.begin_write().map_err(failed)?;
        txn.set_durability(Durability::None).map_err(failed)?;
        {
            let mut table = txn.open_table(TABLE).map_err(failed)?;
            for (key, value) in batch.into_writes() {
                match value {
                    Some(value) => table.insert(key.as_slice(), value.as_slice()),
                    None => table.remove(key.as_slice()).map(|_| None),
                }
                .map_err(failed)?;
            }
        }
        txn.commit().map_err(failed)
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Entries<'_> {
        let range = (|| {
            let txn = self.db.begin_read().map_err(failed)?;
            let table = txn.open_table(TABLE).map_err(failed)?;
            table.range::<&[u8]>((lower, upper)).map_err(failed)
        })();
        match range {
            Ok(range) => Box::new(range.map(|item| {
                let (key, value) = item.map_err(failed)?;
                Ok((key.value().to_vec(), value.value().to_vec()))
            })),
            Err(err) => Box::new(std::iter::once(Err(err))),
        }
    }

    fn persist(&self) -> Result<(), EngineError> {
        let mut txn = self.db.begin_write().map_err(failed)?;
        txn.set_durability(Durability::Immediate).map_err(failed)?;
        txn.commit().map_err(failed)
    }

    fn size_on_disk(&self) -> Result<u64, EngineError> {
        Ok(std::fs::metadata(&self.file)?.len())
    }
}
