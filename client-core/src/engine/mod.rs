//! The engine: one task per client that owns the relay connection, the MLS
//! state and every write to the local store.
//!
//! Everything that changes state runs here, one operation at a time, so the
//! store's single open operation is never shared and MLS groups are never
//! touched concurrently. The app talks to the engine through
//! [`Command`]s (see `client.rs`) and hears from it through events.
//!
//! The loop does three things:
//! - keeps a connection (reconnecting with backoff) and processes pushes
//!   ([`sync`]): each push is one atomic store operation; a batch is flushed,
//!   then its events are published and only then is it acknowledged;
//! - runs the outbox ([`intents`]) once caught up: operations persisted
//!   before anything was sent, retried until they succeed or fail for good;
//! - answers relay requests made on the app's behalf.

#[cfg(test)]
mod ack_tests;
mod acks;
mod certificates;
mod change;
mod commands;
mod commit;
mod create;
mod devices;
mod directory;
#[cfg(test)]
mod directory_tests;
mod held;
mod help;
mod help_sent;
mod incoming_commit;
mod intents;
mod leave;
mod lifecycle;
mod managed;
mod network;
mod notices;
mod peers;
mod readd;
mod received;
mod rejoin;
mod relay_state;
mod revocations;
#[cfg(test)]
mod scripted_tests;
mod send;
mod session;
mod snapshot;
mod status;
mod sweep;
mod sync;
mod uncertified;
mod welcome;

pub(crate) use commands::Command;
pub(crate) use help::count_requests;
pub(crate) use intents::{content_intent, send_intent};
pub(crate) use lifecycle::KEY_PACKAGE_FORMAT;
pub(crate) use received::Shown;
pub use status::{ConnectionProblem, ConnectionState, ConnectionStatus};
pub(crate) use sync::MAX_TEXT_BYTES;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use convene_proto::relay::{push, request};
use openmls::prelude::MlsGroup;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::ClientError;
use crate::events::Event;
use crate::mls::Mls;
use crate::store::records::{GroupRecord, IdentityRecord};
use crate::store::LocalStore;
use crate::transport::Connector;
use crate::types::GroupId;
use crate::types::Message;
use acks::PendingAcks;
use relay_state::{RelayState, KEEPALIVE};

/// Pushes processed before one flush and one acknowledgement.
const PUSH_BATCH: usize = 128;

/// What an intent produced when it completed.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    pub message: Option<Message>,
}

/// What the engine shares with the app's handles.
pub(crate) struct Shared {
    pub store: Arc<LocalStore>,
    /// Who this device is (without its secret key, which the engine holds).
    pub identity: IdentityRecord,
    /// This device's public key.
    pub device: convene_proto::ids::DevicePublicKey,
    pub events: broadcast::Sender<Event>,
    pub status: watch::Sender<ConnectionStatus>,
    /// Lets this client attempt changes its own policy check would stop
    /// (adversarial tests only: other members must refuse them).
    pub skip_local_policy: bool,
    /// How far this client's clock reads from the system's (tests only).
    pub clock_offset_ms: i64,
    /// When keys are renewed.
    pub lifecycle: crate::lifecycle::KeyLifecycle,
    /// The revocations this device holds (shared with its MLS anchor).
    pub revocations: crate::trust::Revocations,
}

pub(crate) struct Engine {
    shared: Arc<Shared>,
    mls: Mls,
    /// Groups loaded from the store, kept while they are consistent with it.
    groups: HashMap<GroupId, MlsGroup>,
    connector: Arc<dyn Connector>,
    /// The connection to the relay, or when the next attempt is.
    relay: RelayState,
    commands: mpsc::Receiver<Command>,
    waiters: HashMap<u64, oneshot::Sender<Result<Completed, ClientError>>>,
    /// Answers for intents, handed to their callers with the events.
    resolved: Vec<(u64, Result<Completed, ClientError>)>,
    /// Groups whose next commit waits until this epoch is processed (the
    /// relay refused a commit because the group had moved on).
    awaiting_epoch: HashMap<GroupId, u64>,
    /// Groups where the relay claimed a later epoch and then showed the
    /// group where this device is, since the group last really moved on:
    /// there, every refusal of a message as stale counts towards giving
    /// it up, so that a relay repeating the claim cannot keep it going
    /// round.
    disproved_epochs: HashSet<GroupId>,
    acks: PendingAcks,
    /// Events of the open batch, published once it is durable.
    events: Vec<Event>,
    /// How much is kept in the store for groups this device cannot
    /// process yet (see `held`).
    held: held::HeldEntries,
    /// Groups whose entries came with no Welcome, since when: asked to be
    /// re-added if none comes.
    unknown_groups: HashMap<GroupId, Instant>,
    /// Groups where a proposal was kept since the outbox last ran: each
    /// gets a `CommitProposals` intent.
    proposals_arrived: HashSet<GroupId>,
    /// The outbox should be run (something changed).
    outbox_dirty: bool,
    /// When the outbox runs again for intents that asked to wait.
    retry_at: Option<Instant>,
    /// When the key lifecycle checks run next.
    lifecycle_at: Instant,
    /// When the KeyPackage stock was topped up within the last minute.
    top_ups: std::collections::VecDeque<Instant>,
    /// The stock the relay last reported low, while a top-up waits.
    stock_low: Option<(u32, bool)>,
    /// The next authentication takes over from another copy of this device.
    take_over: bool,
    /// When certificates are looked at next (ms since the epoch).
    certificates_at_ms: u64,
    /// When the directory is synced next (ms since the epoch; 0 after
    /// each catch-up).
    directory_at_ms: u64,
}

impl Engine {
    pub(crate) fn new(
        shared: Arc<Shared>,
        mls: Mls,
        connector: Arc<dyn Connector>,
        commands: mpsc::Receiver<Command>,
    ) -> Result<Engine, ClientError> {
        let (held, swept) = held::HeldEntries::load(&shared.store)?;
        sweep::sweep_invalid_group_ids(&shared.store, swept)?;
        Ok(Engine {
            shared,
            mls,
            groups: HashMap::new(),
            connector,
            relay: RelayState::starting(),
            commands,
            waiters: HashMap::new(),
            resolved: Vec::new(),
            awaiting_epoch: HashMap::new(),
            disproved_epochs: HashSet::new(),
            acks: PendingAcks::default(),
            events: Vec::new(),
            held,
            unknown_groups: HashMap::new(),
            proposals_arrived: HashSet::new(),
            outbox_dirty: true,
            retry_at: None,
            lifecycle_at: Instant::now() + Duration::from_secs(3600),
            top_ups: std::collections::VecDeque::new(),
            stock_low: None,
            take_over: false,
            certificates_at_ms: 0,
            directory_at_ms: 0,
        })
    }

    fn store(&self) -> &LocalStore {
        &self.shared.store
    }

    /// Runs until the app stops the client or drops every handle.
    pub(crate) async fn run(mut self) {
        loop {
            let wake = self.next_wakeup();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        // Everything committed is on disk before the app is
                        // told the client stopped.
                        if let Err(err) = self.store().flush() {
                            tracing::error!(error = &err as &dyn std::error::Error, "flushing the local store at shutdown failed");
                        }
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                push = recv_push(&mut self.relay) => match push {
                    Some(push) => self.on_pushes(push).await,
                    None => self.disconnected(ConnectionProblem::ClosedByRelay),
                },
                _ = tokio::time::sleep_until(wake) => self.on_timer().await,
            }
        }
        self.set_state(ConnectionState::Offline);
    }

    /// Why the relay will not take anything from this device until the
    /// user acts, if it will not: it was revoked, or this state is a copy.
    fn shut_out(&self) -> Option<ClientError> {
        let status = self.shared.status.borrow();
        if status.revoked {
            Some(ClientError::Revoked)
        } else if status.copied {
            Some(ClientError::StateCopied)
        } else {
            None
        }
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared
            .status
            .send_modify(|status| status.state = state);
    }

    fn next_wakeup(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut wake = far;
        if let Some(since) = self.unknown_groups.values().min() {
            wake = wake.min(*since + sync::UNKNOWN_GROUP_GRACE);
        }
        if self.relay.caught_up() {
            wake = wake.min(self.lifecycle_at);
        }
        if let Some(due) = self.relay.due_at() {
            wake = wake.min(due);
        }
        if let Some(retry) = self.retry_at {
            wake = wake.min(retry);
        }
        if let Some(retry) = self.acks.retry_at() {
            wake = wake.min(retry);
        }
        wake
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        match &self.relay {
            RelayState::Offline(offline) if now >= offline.retry_at => self.connect().await,
            RelayState::Online(online) if now >= online.last_activity + KEEPALIVE => {
                let _ = self.request(request::Kind::Ping(Default::default())).await;
            }
            _ => {}
        }
        if self.relay.caught_up() && !self.unknown_groups.is_empty() {
            if let Err(err) = self.stall_unknown_groups(false) {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot record a group without its Welcome"
                );
                self.store().rollback();
            }
            self.publish();
        }
        if self.relay.caught_up() && now >= self.lifecycle_at {
            self.lifecycle_at = now + self.lifecycle_tick();
            self.run_lifecycle().await;
            self.run_outbox().await;
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            self.outbox_dirty = true;
            self.run_outbox().await;
        }
        if self.acks.retry_at().is_some_and(|at| now >= at) {
            self.send_acks().await;
        }
    }

    /// Processes a push and whatever else is already queued, then makes it
    /// durable, publishes its events and acknowledges it.
    async fn on_pushes(&mut self, first: push::Kind) {
        let mut batch = vec![first];
        if let Some(online) = self.relay.online_mut() {
            online.last_activity = Instant::now();
            while batch.len() < PUSH_BATCH {
                match online.pushes.try_recv() {
                    Ok(push) => batch.push(push),
                    Err(_) => break,
                }
            }
        }
        for push in batch {
            let span = push_span(&push);
            if let Err(err) = self.process_push(push).instrument(span).await {
                // Nothing of this push was kept, and nothing after it may be
                // processed before it: start again from the last
                // acknowledgement, on a new connection.
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "processing a push failed; reconnecting"
                );
                self.store().rollback();
                self.groups.clear();
                self.disconnected(match err {
                    // The relay broke the protocol (a group id no group
                    // can have, say): its fault, not this device's.
                    ClientError::Transport(err) => ConnectionProblem::Transport(err),
                    _ => ConnectionProblem::LocalFailure,
                });
                return;
            }
        }
        if let Err(err) = self
            .report_dropped()
            .and_then(|()| Ok(self.store().commit()?))
        {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "cannot record dropped entries"
            );
            self.store().rollback();
        }
        if let Err(err) = self.store().flush() {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "flushing the local store failed; reconnecting"
            );
            self.disconnected(ConnectionProblem::LocalFailure);
            return;
        }
        self.publish();
        self.send_acks().await;
        if self.relay.caught_up() && self.outbox_dirty {
            self.run_outbox().await;
        }
    }

    /// Queues an event until the current batch is durable.
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Publishes queued events and answers (call only once their changes
    /// are durable).
    fn publish(&mut self) {
        for event in self.events.drain(..) {
            // No receiver is fine: the app may not listen.
            let _ = self.shared.events.send(event);
        }
        for (id, result) in self.resolved.drain(..) {
            if let Some(waiter) = self.waiters.remove(&id) {
                // The caller may have stopped waiting; the outcome stands.
                let _ = waiter.send(result);
            }
        }
    }

    fn group_record(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, ClientError> {
        Ok(self
            .store()
            .get_record(&crate::store::records::group_key(group_id))?)
    }
}

/// A group's MLS state, from the cache or the store. A free function over
/// the two fields it needs, so that callers can borrow the group and the
/// operations at once.
fn load_group<'a>(
    groups: &'a mut HashMap<GroupId, MlsGroup>,
    mls: &Mls,
    group_id: &GroupId,
) -> Result<Option<&'a mut MlsGroup>, ClientError> {
    if !groups.contains_key(group_id) {
        match mls.ops().load(group_id)? {
            Some(group) => {
                groups.insert(group_id.clone(), group);
            }
            None => return Ok(None),
        }
    }
    Ok(groups.get_mut(group_id))
}

/// The span one push is processed in: its kind, and its group if it has
/// one.
fn push_span(push: &push::Kind) -> tracing::Span {
    let (kind, group): (&str, &[u8]) = match push {
        push::Kind::GroupMessage(m) => ("group_message", &m.group_id),
        push::Kind::Receipt(r) => ("receipt", &r.group_id),
        push::Kind::InboxMessage(w) => ("welcome", &w.group_id),
        push::Kind::StreamGap(g) => ("stream_gap", &g.group_id),
        push::Kind::CaughtUp(_) => ("caught_up", &[]),
        _ => ("other", &[]),
    };
    tracing::debug_span!("push", kind, group = %convene_proto::ids::hex_prefix(group))
}

async fn recv_push(relay: &mut RelayState) -> Option<push::Kind> {
    match relay {
        RelayState::Online(online) => online.pushes.recv().await,
        _ => std::future::pending().await,
    }
}
