//! The connected devices, and the mailbox through which the rest of the
//! relay reaches each one's delivery pump.
//!
//! A device has at most one live connection: a new one supersedes the old,
//! which is closed, so that two pumps never deliver to the same device.
//! Other parts of the relay never write to a connection directly for stream
//! traffic; they mark a stream as having news ([`LiveConnection::mark`]) and the
//! device's pump reads the store. That keeps delivery ordered and bounded.

use convene_proto::ids::GroupId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Notify};

use crate::connection::{Outbound, OutboundSender};
use crate::locked::lock;
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
    acks: Vec<(Stream, u64)>,
}

/// One live connection of a device, as seen by the rest of the relay.
pub struct LiveConnection {
    id: u64,
    device: DevicePublicKey,
    mailbox: Mutex<Mailbox>,
    wake: Notify,
    superseded: watch::Sender<bool>,
    revoked: watch::Sender<bool>,
    out: OutboundSender,
}

impl LiveConnection {
    pub fn device(&self) -> &DevicePublicKey {
        &self.device
    }

    /// Tells the pump that `stream` has new entries.
    pub fn mark(&self, stream: Stream) {
        lock(&self.mailbox).news.insert(stream);
        self.wake.notify_one();
    }

    /// Tells the pump that the device acknowledged `stream` up to `position`.
    pub fn acked(&self, stream: Stream, position: u64) {
        lock(&self.mailbox).acks.push((stream, position));
        self.wake.notify_one();
    }

    /// Takes what arrived since the last call: streams with news, and acks.
    pub fn take(&self) -> (HashSet<Stream>, Vec<(Stream, u64)>) {
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
        let connections = lock(&self.connections);
        for device in devices {
            if let Some(live) = connections.get(device) {
                live.mark(stream.clone());
            }
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

    #[test]
    fn rate_is_per_device() {
        let hub = hub();
        assert!(hub.check_rate(&DevicePublicKey([1; 32])).is_ok());
        assert!(hub.check_rate(&DevicePublicKey([1; 32])).is_err());
        assert!(hub.check_rate(&DevicePublicKey([2; 32])).is_ok());
    }
}
