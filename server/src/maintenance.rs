//! Background upkeep: writing the acknowledgements gathered in memory
//! ([`crate::acks`]), trimming group logs that every follower has
//! acknowledged or that outgrew their bound, and sweeping records past
//! their retention.
//!
//! Trimming is deferred from the acknowledgement itself, which stays cheap,
//! and batched: each group has its turn once every [`TURN_ROUNDS`] rounds,
//! and all the acknowledgements of a group since its last turn cost one
//! write per device and one trim. A busy group would otherwise pay a trim
//! (its record, members and devices read again) for nearly every message.

use convene_proto::ids::{GroupId, Position};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::relay::Relay;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, Retention};

/// Often enough that each round's writes are small (a round's writes share
/// the next flush with every request's, so a heavy round shows as a
/// latency spike); the groups are spread over the rounds (see [`Turns`]).
const TRIM_INTERVAL: Duration = Duration::from_millis(250);

/// Rounds in a cycle: each group has its turn once a cycle, so its
/// acknowledgements reach the store and its log is trimmed within 2 s
/// (8 x 250 ms). An acknowledgement lost in a crash costs only a
/// redelivery that the client drops (see [`crate::acks`]).
const TURN_ROUNDS: u64 = 8;

/// Which groups have their turn this round: a group's round is its hash,
/// keyed at random for each process, so groups spread evenly over the
/// rounds and nobody can pick group ids that all fall in one round.
#[derive(Clone)]
struct Turns {
    hasher: RandomState,
    round: u64,
}

impl Turns {
    fn new() -> Turns {
        Turns {
            hasher: RandomState::new(),
            round: 0,
        }
    }

    fn is_due(&self, group_id: &GroupId) -> bool {
        self.hasher.hash_one(group_id) % TURN_ROUNDS == self.round % TURN_ROUNDS
    }

    fn advance(&mut self) {
        self.round = self.round.wrapping_add(1);
    }
}

/// Runs until shutdown, then writes every acknowledgement and trims every
/// group once more, so that a relay stopped cleanly leaves no acknowledged
/// entry behind.
pub async fn run(relay: Arc<Relay>, mut shutdown: Shutdown, _done: mpsc::Sender<()>) {
    let sweep_every = Duration::from_secs(relay.config.retention.sweep_interval_secs.max(1));
    let mut trim_tick = tokio::time::interval(TRIM_INTERVAL);
    let mut sweep_tick = tokio::time::interval(sweep_every);
    let mut turns = Turns::new();
    loop {
        tokio::select! {
            _ = trim_tick.tick() => {
                let due = turns.clone();
                trim(&relay, move |group_id| due.is_due(group_id)).await;
                turns.advance();
            }
            _ = sweep_tick.tick() => sweep(&relay).await,
            _ = shutdown.recv() => break,
        }
    }
    trim(&relay, |_| true).await;
}

/// Writes the acknowledgements of the groups `due` accepts, then trims
/// those of them that any acknowledgement advanced.
async fn trim<F>(relay: &Arc<Relay>, due: F)
where
    F: Fn(&GroupId) -> bool + Clone + Send + 'static,
{
    let writer = relay.clone();
    let due_acks = due.clone();
    match tokio::task::spawn_blocking(move || writer.write_acks(due_acks)).await {
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
    let groups = relay.take_trims(due);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_has_exactly_one_turn_in_each_cycle_of_rounds() {
        let mut turns = Turns::new();
        let groups: Vec<GroupId> = (0..800u32)
            .map(|i| crate::test_group_id(&i.to_be_bytes()))
            .collect();
        let mut turns_had = vec![0; groups.len()];
        for _ in 0..TURN_ROUNDS {
            let due: Vec<usize> = (0..groups.len())
                .filter(|&i| turns.is_due(&groups[i]))
                .collect();
            // Spread over the rounds, not all in one (800 groups over 8
            // rounds: an empty round is as likely as 8 * (7/8)^800).
            assert!(!due.is_empty() && due.len() < groups.len());
            for i in due {
                turns_had[i] += 1;
            }
            turns.advance();
        }
        assert!(turns_had.iter().all(|&n| n == 1), "{turns_had:?}");
    }

    #[test]
    fn a_group_is_due_again_only_after_a_whole_cycle() {
        let mut turns = Turns::new();
        let group = crate::test_group_id(b"busy");
        let mut due_rounds = Vec::new();
        for round in 0..3 * TURN_ROUNDS {
            if turns.is_due(&group) {
                due_rounds.push(round);
            }
            turns.advance();
        }
        assert_eq!(due_rounds.len(), 3);
        assert!(due_rounds.windows(2).all(|w| w[1] - w[0] == TURN_ROUNDS));
    }
}
