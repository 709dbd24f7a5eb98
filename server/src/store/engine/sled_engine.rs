//! sled 0.34: the engine the relay shipped with, kept to read data
//! directories written before the move to fjall (see `store::migrate`).

use std::ops::Bound;
use std::path::Path;

use super::{Batch, Engine, EngineError, Entries};

/// One sled tree.
pub struct SledEngine {
    db: sled::Db,
    tree: sled::Tree,
}

/// The tree the relay kept everything in.
const TREE: &str = "relay";

impl SledEngine {
    /// Opens (or creates) a sled database in `path`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SledEngine, EngineError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()?;
        let tree = db.open_tree(TREE)?;
        Ok(SledEngine { db, tree })
    }

    /// sled's own id generator, which the relay used before it kept its
    /// own counter: every id it handed out is below the value returned.
    pub fn next_id(&self) -> Result<u64, EngineError> {
        Ok(self.db.generate_id()?)
    }
}

impl Engine for SledEngine {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.tree.get(key)?.map(|value| value.to_vec()))
    }

    fn apply(&self, batch: Batch) -> Result<(), EngineError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.into_writes() {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        Ok(self.tree.apply_batch(sled_batch)?)
    }

    fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Entries<'_> {
        let owned = (lower.map(<[u8]>::to_vec), upper.map(<[u8]>::to_vec));
        Box::new(self.tree.range(owned).map(|item| {
            let (key, value) = item?;
            Ok((key.to_vec(), value.to_vec()))
        }))
    }

    fn persist(&self) -> Result<(), EngineError> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, EngineError> {
        Ok(self.db.size_on_disk()?)
    }
}
