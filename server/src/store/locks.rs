//! Striped in-process locks that serialise read-modify-write operations on
//! one group, or on one device (its inbox and acknowledgement mark, its
//! KeyPackages: upload, claim and sweep).
//!
//! The engine applies a batch atomically but has no conditional write over
//! several keys. The relay is the only writer of its data directory (the
//! engine holds a file lock), so holding the entity's stripe while reading, deciding
//! and applying one batch makes each operation atomic and totally ordered:
//! this is what makes "exactly one commit per epoch" true.
//!
//! Locks are held only around synchronous store calls, never across `.await`.

use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};

const STRIPES: usize = 1024;

pub(crate) struct LockTable {
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl LockTable {
    pub(crate) fn new() -> Self {
        LockTable {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn stripe_of(&self, key: impl Hash) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    /// Locks the stripe of one entity.
    pub(crate) fn lock(&self, key: impl Hash) -> MutexGuard<'_, ()> {
        lock_ignoring_poison(&self.stripes[self.stripe_of(key)])
    }

    /// Locks the stripes of several entities in a fixed order (so that two
    /// callers can never deadlock), each stripe once.
    pub(crate) fn lock_many<K: Hash>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.into_iter().map(|k| self.stripe_of(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|s| lock_ignoring_poison(&self.stripes[s]))
            .collect()
    }
}

/// The guarded data is `()`: a panic elsewhere cannot leave it inconsistent,
/// and every store operation is one atomic batch, so poisoning carries no
/// information here.
fn lock_ignoring_poison(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_many_dedups_stripes() {
        let table = LockTable::new();
        // The same key twice must not deadlock.
        let guards = table.lock_many([b"a".as_slice(), b"a".as_slice()]);
        assert_eq!(guards.len(), 1);
    }
}
