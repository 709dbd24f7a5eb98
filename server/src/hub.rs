//! The connected devices, and the mailbox through which the rest of the
//! relay reaches each one's delivery pump.
//!
//! A device has at most one live connection: a new one supersedes the old,
//! which is closed, so that two pumps never deliver to the same device.
//! Other parts of the relay never write to a connection directly for stream
//! traffic; they mark a stream as having news ([`LiveConnection::mark`]) and the
//! device's pump reads the store. That keeps delivery ordered and bounded.
//!
//! A pump with nothing to deliver does not keep a task: it parks its state in
//! the mailbox ([`LiveConnection::park`]) and the next news or acknowledgement
//! starts it again, so that an idle connection costs no pump task. Parking and
//! news meet under the mailbox's lock, so no news is ever left unseen.

use convene_proto::ids::GroupId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::connection::{Outbound, OutboundSender};
use crate::locked::lock;
use crate::pump::PumpState;
use crate::rate_limit::{Rate, TokenBucket};
use crate::store::DevicePublicKey;

/// A stream of entries the relay delivers to a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// The device's own inbox (Welcomes).
    Inbox,
    /// A group log the device follows.
    Group(GroupId),
}

#[derive(Default)]
struct Mailbox {
    news: HashSet<Stream>,
    /// The newest acknowledged position per stream: a device repeating
    /// one stream in every entry of every Ack fills nothing.
    acks: HashMap<Stream, u64>,
    pump: PumpSlot,
}

/// Where a connection's delivery pump is.
#[derive(Default)]
enum PumpSlot {
    /// No pump is managed here (not started yet): news only wakes a waiter.
    #[default]
    Unmanaged,
    /// A task runs it.
    Running(JoinHandle<()>),
    /// Nothing to deliver: its state waits for news.
    Parked(Box<PumpState>),
    /// The connection has ended: it never starts again.
    Stopped,
}

/// Starts a task that runs a pump from the given state.
pub type StartPump = Box<dyn Fn(Box<PumpState>) -> JoinHandle<()> + Send + Sync>;

/// One live connection of a device, as seen by the rest of the relay.
pub struct LiveConnection {
    id: u64,
    device: DevicePublicKey,
    mailbox: Mutex<Mailbox>,
    wake: Notify,
    superseded: watch::Sender<bool>,
    revoked: watch::Sender<bool>,
    out: OutboundSender,
    start_pump: std::sync::OnceLock<StartPump>,
}

impl LiveConnection {
    pub fn device(&self) -> &DevicePublicKey {
        &self.device
    }

    /// The connection's outbound queue.
    pub fn out(&self) -> &OutboundSender {
        &self.out
    }

    /// Tells the pump that `stream` has new entries.
    pub fn mark(&self, stream: Stream) {
        let mut mailbox = lock(&self.mailbox);
        mailbox.news.insert(stream);
        self.wake_locked(&mut mailbox);
    }

    /// Tells the pump that the device acknowledged `stream` up to `position`.
    /// A parked pump has nothing waiting on an acknowledgement (it parks
    /// only with every window open), so its state takes it without a task.
    pub fn acked(&self, stream: Stream, position: u64) {
        let mut mailbox = lock(&self.mailbox);
        if let PumpSlot::Parked(state) = &mut mailbox.pump {
            state.acked(&stream, position);
            return;
        }
        let kept = mailbox.acks.entry(stream).or_default();
        *kept = (*kept).max(position);
        self.wake_locked(&mut mailbox);
    }

    /// Wakes a running pump, or starts a parked one again.
    fn wake_locked(&self, mailbox: &mut Mailbox) {
        if let PumpSlot::Parked(_) = mailbox.pump {
            if let Some(start) = self.start_pump.get() {
                if let PumpSlot::Parked(state) = std::mem::take(&mut mailbox.pump) {
                    mailbox.pump = PumpSlot::Running(start(state));
                }
                return;
            }
        }
        self.wake.notify_one();
    }

    /// Starts this connection's pump with `start`, which is kept to start
    /// it again after it parks. Only the first call has an effect.
    pub fn start_pump(&self, start: StartPump) {
        let mut mailbox = lock(&self.mailbox);
        if !matches!(mailbox.pump, PumpSlot::Unmanaged) {
            return;
        }
        let start = self.start_pump.get_or_init(|| start);
        mailbox.pump = PumpSlot::Running(start(Box::default()));
    }

    /// Parks the pump's state until the next news or acknowledgement, unless
    /// some arrived since the pump last took its mailbox: then the state is
    /// handed back and the pump carries on.
    pub fn park(&self, state: Box<PumpState>) -> Result<(), Box<PumpState>> {
        let mut mailbox = lock(&self.mailbox);
        debug_assert!(
            matches!(mailbox.pump, PumpSlot::Running(_) | PumpSlot::Stopped),
            "only a started pump parks"
        );
        if !mailbox.news.is_empty() || !mailbox.acks.is_empty() {
            return Err(state);
        }
        match mailbox.pump {
            PumpSlot::Stopped => {}
            _ => mailbox.pump = PumpSlot::Parked(state),
        }
        Ok(())
    }

    /// Parks the state of a pump that stopped on a failure (the store could
    /// not be read): the next news starts it again, instead of the
    /// connection going without delivery until the device reconnects.
    pub fn park_after_failure(&self, state: Box<PumpState>) {
        let mut mailbox = lock(&self.mailbox);
        if !matches!(mailbox.pump, PumpSlot::Stopped) {
            mailbox.pump = PumpSlot::Parked(state);
        }
    }

    /// Stops the pump for good (the connection has ended).
    pub fn stop_pump(&self) {
        let slot = std::mem::replace(&mut lock(&self.mailbox).pump, PumpSlot::Stopped);
        if let PumpSlot::Running(task) = slot {
            task.abort();
        }
    }

    /// Takes what arrived since the last call: streams with news, and acks.
    pub fn take(&self) -> (HashSet<Stream>, HashMap<Stream, u64>) {
        let mut mailbox = lock(&self.mailbox);
        (
            std::mem::take(&mut mailbox.news),
            std::mem::take(&mut mailbox.acks),
        )
    }

    /// Waits until something arrives in the mailbox. A notification sent
    /// while nobody waited is kept, so none is lost.
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Resolves once a newer connection of the same device took over.
    pub async fn superseded(&self) {
        let mut rx = self.superseded.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` is alive; treat it as superseded all the same.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Resolves once staff revoked this device (or suspended its user).
    pub async fn revoked(&self) {
        let mut rx = self.revoked.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Sends a frame outside the streams (e.g. a KeyPackage warning); dropped
    /// if the connection's queue is full, since it is advisory.
    pub fn try_send(&self, outbound: Outbound) {
        let _ = self.out.try_send(outbound);
    }
}

/// All live device connections, and per-device request budgets.
pub struct Hub {
    connections: Mutex<HashMap<DevicePublicKey, Arc<LiveConnection>>>,
    buckets: Mutex<HashMap<DevicePublicKey, TokenBucket>>,
    rate: Rate,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new(rate: Rate) -> Self {
        Hub {
            connections: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            rate,
            next_id: AtomicU64::new(1),
        }
    }

    /// Registers a device's new connection, superseding any older one.
    pub fn register(&self, device: DevicePublicKey, out: OutboundSender) -> Arc<LiveConnection> {
        let live = Arc::new(LiveConnection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            device,
            mailbox: Mutex::new(Mailbox::default()),
            wake: Notify::new(),
            superseded: watch::Sender::new(false),
            revoked: watch::Sender::new(false),
            out,
            start_pump: std::sync::OnceLock::new(),
        });
        if let Some(old) = lock(&self.connections).insert(device, live.clone()) {
            old.superseded.send_replace(true);
        }
        live
    }

    /// Removes a connection, unless a newer one already replaced it.
    pub fn unregister(&self, live: &LiveConnection) {
        let mut connections = lock(&self.connections);
        if connections
            .get(&live.device)
            .is_some_and(|l| l.id == live.id)
        {
            connections.remove(&live.device);
        }
    }

    /// Closes the live connections of revoked devices.
    pub fn revoke(&self, devices: &[DevicePublicKey]) {
        let connections = lock(&self.connections);
        for device in devices {
            if let Some(live) = connections.get(device) {
                live.revoked.send_replace(true);
            }
        }
    }

    /// Sends an advisory frame to every connected device.
    pub fn broadcast(&self, make: impl Fn() -> Outbound) {
        let connections: Vec<Arc<LiveConnection>> =
            lock(&self.connections).values().cloned().collect();
        for live in connections {
            live.try_send(make());
        }
    }

    /// The live connection of a device, if any.
    pub fn connection(&self, device: &DevicePublicKey) -> Option<Arc<LiveConnection>> {
        lock(&self.connections).get(device).cloned()
    }

    /// Marks `stream` as having news for each of `devices` that is connected.
    pub fn notify<'a>(
        &self,
        stream: &Stream,
        devices: impl IntoIterator<Item = &'a DevicePublicKey>,
    ) {
        // Marking may start a pump's task: not under the map's lock.
        let live: Vec<Arc<LiveConnection>> = {
            let connections = lock(&self.connections);
            devices
                .into_iter()
                .filter_map(|device| connections.get(device).cloned())
                .collect()
        };
        for live in live {
            live.mark(stream.clone());
        }
    }

    /// Spends one request of a device's budget, or says how long to wait.
    pub fn check_rate(&self, device: &DevicePublicKey) -> Result<(), u32> {
        let now = Instant::now();
        lock(&self.buckets)
            .entry(*device)
            .or_insert_with(|| TokenBucket::new(self.rate, now))
            .take(self.rate, now)
    }

    /// Spends `requests` more of a device's budget for work a request of
    /// it caused beyond its own (the device then waits for it to refill;
    /// one charge is at most a burst: [`TokenBucket::charge`]).
    pub fn charge(&self, device: &DevicePublicKey, requests: f64) {
        let now = Instant::now();
        lock(&self.buckets)
            .entry(*device)
            .or_insert_with(|| TokenBucket::new(self.rate, now))
            .charge(requests, self.rate, now)
    }

    /// Connected devices.
    pub fn connected(&self) -> usize {
        lock(&self.connections).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Rate {
            per_second: 1.0,
            burst: 1.0,
        })
    }

    #[tokio::test]
    async fn a_new_connection_supersedes_the_old() {
        let hub = hub();
        let (tx, _rx) = crate::connection::outbound_queue();
        let old = hub.register(DevicePublicKey([1; 32]), tx.clone());
        let new = hub.register(DevicePublicKey([1; 32]), tx);
        tokio::time::timeout(std::time::Duration::from_secs(1), old.superseded())
            .await
            .unwrap();
        hub.unregister(&old);
        assert!(hub
            .connection(&DevicePublicKey([1; 32]))
            .is_some_and(|l| l.id == new.id));
        hub.unregister(&new);
        assert_eq!(hub.connected(), 0);
    }

    #[tokio::test]
    async fn marks_reach_the_mailbox_once() {
        let hub = hub();
        let (tx, _rx) = crate::connection::outbound_queue();
        let live = hub.register(DevicePublicKey([1; 32]), tx);
        hub.notify(
            &Stream::Group(crate::test_group_id(b"g")),
            [&DevicePublicKey([1; 32]), &DevicePublicKey([2; 32])],
        );
        hub.notify(
            &Stream::Group(crate::test_group_id(b"g")),
            [&DevicePublicKey([1; 32])],
        );
        live.wait().await;
        let (news, acks) = live.take();
        assert_eq!(news.len(), 1);
        assert!(acks.is_empty());
    }

    #[tokio::test]
    async fn a_running_pump_is_handed_one_acknowledgement_per_stream_however_many_arrive() {
        let hub = hub();
        let (tx, _rx) = crate::connection::outbound_queue();
        let live = hub.register(DevicePublicKey([1; 32]), tx);
        let group = Stream::Group(crate::test_group_id(b"g"));
        // A device may repeat one stream in every entry of every Ack.
        for position in [5, 9, 7] {
            for _ in 0..1_000 {
                live.acked(group.clone(), position);
            }
        }
        live.acked(Stream::Inbox, 2);
        let (_, acks) = live.take();
        let mut acks: Vec<_> = acks.into_iter().collect();
        acks.sort();
        assert_eq!(acks, vec![(Stream::Inbox, 2), (group, 9)]);
    }

    /// A connection whose pump is started by a starter that counts its
    /// starts and whose tasks do nothing.
    fn started_pump() -> (Hub, Arc<LiveConnection>, Arc<AtomicU64>) {
        let hub = hub();
        let (tx, _rx) = crate::connection::outbound_queue();
        let live = hub.register(DevicePublicKey([1; 32]), tx);
        let starts = Arc::new(AtomicU64::new(0));
        let counter = starts.clone();
        live.start_pump(Box::new(move |_state| {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async {})
        }));
        (hub, live, starts)
    }

    #[tokio::test]
    async fn a_parked_pump_is_started_again_by_news_and_takes_acknowledgements_without_a_task() {
        let (_hub, live, starts) = started_pump();
        assert_eq!(starts.load(Ordering::SeqCst), 1);

        assert!(live.park(Box::default()).is_ok());
        live.mark(Stream::Inbox);
        assert_eq!(starts.load(Ordering::SeqCst), 2, "news starts it");
        live.mark(Stream::Inbox);
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "a running pump is only woken"
        );

        let _ = live.take();
        assert!(live.park(Box::default()).is_ok());
        live.acked(Stream::Inbox, 1);
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "an acknowledgement needs no task"
        );
        assert!(live.take().1.is_empty(), "the parked state took it");
        live.mark(Stream::Inbox);
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_pump_parked_after_a_failure_starts_again_with_the_next_news() {
        let (_hub, live, starts) = started_pump();
        live.mark(Stream::Inbox);
        // The news is left in the mailbox, as when the store failed mid-run.
        live.park_after_failure(Box::default());
        live.mark(Stream::Inbox);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn news_that_arrives_before_the_pump_parks_keeps_it_running() {
        let (_hub, live, starts) = started_pump();
        live.mark(Stream::Inbox);
        assert!(live.park(Box::default()).is_err(), "the state comes back");
        let (news, _) = live.take();
        assert_eq!(news.len(), 1);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stopped_pump_never_starts_again() {
        let (_hub, live, starts) = started_pump();
        live.stop_pump();
        assert!(live.park(Box::default()).is_ok());
        live.mark(Stream::Inbox);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn rate_is_per_device() {
        let hub = hub();
        assert!(hub.check_rate(&DevicePublicKey([1; 32])).is_ok());
        assert!(hub.check_rate(&DevicePublicKey([1; 32])).is_err());
        assert!(hub.check_rate(&DevicePublicKey([2; 32])).is_ok());
    }

    #[test]
    fn work_charged_to_a_device_holds_its_next_requests_back() {
        let hub = hub();
        let device = DevicePublicKey([1; 32]);
        hub.charge(&device, 1.0);
        assert!(hub.check_rate(&device).is_err());
        assert!(hub.check_rate(&DevicePublicKey([2; 32])).is_ok());
    }
}
