//! Group commit: many writers, one flush.
//!
//! A request that changed state is acknowledged only once its effects are on
//! disk. Flushing once per request would cap the relay at the disk's fsync
//! rate; instead each writer takes a ticket after it has applied its batch,
//! and a single background task flushes whenever tickets are outstanding.
//! One flush completes every ticket taken before it started: a ticket is
//! taken after the write, and the flusher reads the newest ticket before it
//! flushes, so everything covered was applied before the flush began.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use crate::store::Store;

/// How long the flusher waits, once woken, for more writers to join.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// A flush failed: the writes it covered may not be on disk.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store could not be flushed to disk")]
pub struct FlushFailed;

#[derive(Debug, Clone, Copy, Default)]
/// How far the flushes have come, by ticket.
struct FlushedThrough {
    /// Every ticket up to here is on disk.
    durable: u64,
    /// Every ticket up to here was covered by a flush that failed.
    failed: u64,
}

/// Shares flushes among concurrent writers.
pub struct Flusher {
    next_ticket: AtomicU64,
    wake: Notify,
    progress: watch::Sender<FlushedThrough>,
}

/// A writer's place in the flush order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Flusher {
    /// Creates the flusher and spawns its background task on `store`.
    pub fn start(store: Arc<Store>) -> Arc<Flusher> {
        let flusher = Arc::new(Flusher {
            next_ticket: AtomicU64::new(0),
            wake: Notify::new(),
            progress: watch::Sender::new(FlushedThrough::default()),
        });
        tokio::spawn(flush_loop(flusher.clone(), store));
        flusher
    }

    /// Takes a ticket for the writes this caller has already applied.
    pub fn ticket(&self) -> Ticket {
        let ticket = Ticket(self.next_ticket.fetch_add(1, Ordering::SeqCst) + 1);
        self.wake.notify_one();
        ticket
    }

    /// Waits until the writes before `ticket` are on disk.
    pub async fn wait(&self, ticket: Ticket) -> Result<(), FlushFailed> {
        let mut progress = self.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.durable >= ticket.0 || p.failed >= ticket.0)
            .await
            .map_err(|_| FlushFailed)?;
        if reached.durable >= ticket.0 {
            Ok(())
        } else {
            Err(FlushFailed)
        }
    }

    /// Takes a ticket and waits for it: makes everything this caller wrote
    /// durable.
    pub async fn durable(&self) -> Result<(), FlushFailed> {
        self.wait(self.ticket()).await
    }
}

async fn flush_loop(flusher: Arc<Flusher>, store: Arc<Store>) {
    let mut done = 0u64;
    let mut busy = false;
    loop {
        let target = flusher.next_ticket.load(Ordering::SeqCst);
        if target <= done {
            flusher.wake.notified().await;
            // Under load, let concurrent writers join the next flush; a
            // lone writer is not kept waiting.
            if busy {
                tokio::time::sleep(GATHER).await;
            }
            continue;
        }
        busy = target - done > 1;
        let store = store.clone();
        let outcome = tokio::task::spawn_blocking(move || store.flush()).await;
        match outcome {
            Ok(Ok(_)) => flusher.progress.send_modify(|p| p.durable = target),
            Ok(Err(err)) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "flushing the store failed; requests are answered with an internal error"
                );
                flusher.progress.send_modify(|p| p.failed = target);
            }
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "the flush task failed"
                );
                flusher.progress.send_modify(|p| p.failed = target);
            }
        }
        done = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn concurrent_writers_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
        let flusher = Flusher::start(store.clone());
        let waits: Vec<_> = (0..200)
            .map(|_| {
                let flusher = flusher.clone();
                tokio::spawn(async move { flusher.durable().await })
            })
            .collect();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        // A later ticket is satisfied only by a later flush.
        let ticket = flusher.ticket();
        flusher.wait(ticket).await.unwrap();
        assert!(flusher.progress.borrow().durable >= ticket.0);
    }
}
