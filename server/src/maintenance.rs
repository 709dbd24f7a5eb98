//! Background upkeep: writing the acknowledgements gathered in memory
//! ([`crate::acks`]), trimming group logs that every follower has
//! acknowledged or that outgrew their bound, and sweeping records past
//! their retention.
//!
//! Trimming is deferred from the acknowledgement itself, which stays cheap,
//! and batched: many acknowledgements of one group cost one trim.

use convene_proto::ids::{GroupId, Position};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::relay::Relay;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, Retention};

/// Often enough that logs stay short and each round's writes are small (a
/// round's writes share the next flush with every request's, so a long
/// interval shows as a latency spike once per round); rarely enough that
/// many acknowledgements and deletions of a group share one write.
const TRIM_INTERVAL: Duration = Duration::from_millis(250);

/// Runs until shutdown, then trims once more so that a relay stopped
/// cleanly leaves no acknowledged entry behind.
pub async fn run(relay: Arc<Relay>, mut shutdown: Shutdown, _done: mpsc::Sender<()>) {
    let sweep_every = Duration::from_secs(relay.config.retention.sweep_interval_secs.max(1));
    let mut trim_tick = tokio::time::interval(TRIM_INTERVAL);
    let mut sweep_tick = tokio::time::interval(sweep_every);
    loop {
        tokio::select! {
            _ = trim_tick.tick() => trim(&relay).await,
            _ = sweep_tick.tick() => sweep(&relay).await,
            _ = shutdown.recv() => break,
        }
    }
    trim(&relay).await;
}

async fn trim(relay: &Arc<Relay>) {
    let writer = relay.clone();
    match tokio::task::spawn_blocking(move || writer.write_acks()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "writing acknowledgements failed"
        ),
        Err(err) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "the acknowledgement task failed"
        ),
    }
    let groups = relay.take_trims();
    if groups.is_empty() {
        return;
    }
    let relay = relay.clone();
    let outcome = tokio::task::spawn_blocking(move || trim_groups(&relay, groups)).await;
    match outcome {
        Ok(Ok(deleted)) if deleted > 0 => tracing::trace!(deleted, "trimmed group logs"),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "trimming group logs failed"
        ),
        Err(err) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "the trim task failed"
        ),
    }
}

/// Trims each of `groups` by acknowledgement and by the group bound.
fn trim_groups(
    relay: &Relay,
    groups: impl IntoIterator<Item = GroupId>,
) -> Result<u64, crate::error::RelayError> {
    let policy = relay.trim_policy(now_ms());
    let mut deleted = 0;
    for group_id in groups {
        deleted += relay.store.trim_group(&group_id, policy)?;
        if let Some(group) = relay.store.group(&group_id)? {
            relay
                .frames
                .trim(&group_id, Position(group.trimmed_through));
        }
    }
    Ok(deleted)
}

async fn sweep(relay: &Arc<Relay>) {
    // Entries nobody fetched age out of every group, acknowledged or not.
    let aging = relay.clone();
    let aged = tokio::task::spawn_blocking(move || {
        let groups = aging
            .store
            .groups()
            .map(|item| item.map(|(id, _)| id))
            .collect::<Result<Vec<_>, _>>()?;
        trim_groups(&aging, groups)
    })
    .await;
    match aged {
        Ok(Ok(deleted)) if deleted > 0 => tracing::debug!(deleted, "aged out group log entries"),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "aging out group logs failed"
        ),
        Err(err) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "the aging task failed"
        ),
    }
    let retention = &relay.config.retention;
    let retention = Retention {
        submission_ms: retention.submission_secs.saturating_mul(1000),
        blob_ms: retention.blob_secs.saturating_mul(1000),
        incomplete_blob_ms: retention.incomplete_blob_secs.saturating_mul(1000),
    };
    let relay = relay.clone();
    match tokio::task::spawn_blocking(move || relay.store.sweep(retention, now_ms())).await {
        Ok(Ok(report)) => tracing::debug!(?report, "swept expired records"),
        Ok(Err(err)) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "sweeping expired records failed"
        ),
        Err(err) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "the sweep task failed"
        ),
    }
}
