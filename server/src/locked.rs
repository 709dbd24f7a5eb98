//! Taking a std mutex whatever an earlier holder did.
//!
//! Every critical section in the relay is a plain collection update that
//! cannot panic half-way, so a lock poisoned by a panic elsewhere still
//! holds consistent data: taking it anyway keeps one failed task from
//! wedging every connection that shares the lock.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
