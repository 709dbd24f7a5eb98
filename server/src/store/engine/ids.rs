//! Ids that only grow, across restarts, without a write per id.
//!
//! A block of ids is reserved by storing its end under the counter key
//! before any id of it is handed out. The reservation is applied (not yet
//! persisted) before the id is used, and engines never reorder batches, so a
//! record carrying an id can never reach the disk without the reservation
//! that covers it: after a crash the next block starts beyond every id that
//! was stored. Ids skipped by a crash are never reused, only lost.

use std::sync::Mutex;

use super::{Batch, Engine, EngineError};

/// Ids reserved per write of the counter.
const BLOCK: u64 = 1 << 16;

/// The reserved ids not yet handed out: `next..end`.
pub(super) struct IdBlocks {
    counter_key: Vec<u8>,
    reserved: Mutex<Option<(u64, u64)>>,
}

impl IdBlocks {
    pub(super) fn new(counter_key: Vec<u8>) -> IdBlocks {
        IdBlocks {
            counter_key,
            reserved: Mutex::new(None),
        }
    }

    pub(super) fn next(&self, engine: &dyn Engine) -> Result<u64, EngineError> {
        let mut reserved = self
            .reserved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (next, end) = match *reserved {
            Some((next, end)) if next < end => (next, end),
            _ => {
                let start = match engine.get(&self.counter_key)? {
                    Some(raw) => u64::from_be_bytes(
                        raw.as_slice()
                            .try_into()
                            .map_err(|_| EngineError::IdCounter)?,
                    ),
                    None => 0,
                };
                let end = start.checked_add(BLOCK).ok_or(EngineError::IdCounter)?;
                let mut batch = Batch::default();
                batch.insert(&self.counter_key, end.to_be_bytes());
                engine.apply(batch)?;
                (start, end)
            }
        };
        *reserved = Some((next + 1, end));
        Ok(next)
    }
}
