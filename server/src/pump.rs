//! A connected device's delivery pump.
//!
//! One pump per authenticated connection pushes the device's streams (its
//! inbox, then every group log it follows) from its acknowledged position
//! on, in order, then `CaughtUp`, then whatever arrives. It runs as a task
//! only while there is something to do: with nothing to deliver it parks its
//! state in the device's mailbox ([`crate::hub`]) and its task ends. It reads only what
//! is durable ([`crate::visibility`]) and keeps at most a window of pushes
//! unacknowledged per stream, in count and in bytes, so a device that does
//! not acknowledge costs the relay a bounded amount of memory and work, and
//! one stream the device has not acknowledged never holds back another.
//!
//! Its own entries reach a device as a `Receipt` rather than a copy of what
//! it sent, so that a device whose response was lost still learns that its
//! commit or message was accepted. Entries deleted before the device
//! fetched them (a log past its bound) are announced with a `StreamGap`.

use convene_proto::ids::{GroupId, Position};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Weak};

use convene_proto::encode_envelope;
use convene_proto::relay::{
    push, CaughtUp, Envelope, GroupMessage, InboxMessage, Receipt, StreamGap,
};

use crate::connection::Outbound;
use crate::error::RelayResult;
use crate::hub::{LiveConnection, Stream};
use crate::relay::Relay;
use crate::store::{InboxItem, LogItem, ReadBudget, Routing};

/// The device's connection is gone; the pump has nothing left to do.
struct Disconnected;

/// Pushes of one stream sent and not yet acknowledged, oldest first.
#[derive(Default)]
struct InFlight {
    pushes: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl InFlight {
    fn sent(&mut self, position: u64, bytes: usize) {
        self.pushes.push_back((position, bytes));
        self.bytes += bytes;
    }

    fn acked(&mut self, position: u64) {
        while self.pushes.front().is_some_and(|(p, _)| *p <= position) {
            if let Some((_, bytes)) = self.pushes.pop_front() {
                self.bytes -= bytes;
            }
        }
    }
}

/// What a pump knows between its runs (kept in the mailbox while parked).
#[derive(Default)]
pub struct PumpState {
    /// Whether the device's streams were listed (done once per connection).
    started: bool,
    /// Whether `CaughtUp` was pushed.
    caught_up: bool,
    /// The newest position pushed per stream.
    sent: HashMap<Stream, u64>,
    in_flight: HashMap<Stream, InFlight>,
}

struct Pump {
    relay: Arc<Relay>,
    live: Arc<LiveConnection>,
    state: Box<PumpState>,
    /// Per stream.
    window: usize,
    /// Per stream.
    window_bytes: usize,
}

/// Where delivering one stream stopped.
enum Delivery {
    /// Everything visible in the stream was pushed.
    Drained,
    /// The window is full; wait for acknowledgements.
    WindowFull,
}

/// Runs the pump from `state` until it parks or the connection goes away.
/// Does nothing if the relay or the connection is already gone.
pub async fn run(relay: Weak<Relay>, live: Weak<LiveConnection>, state: Box<PumpState>) {
    let (Some(relay), Some(live)) = (relay.upgrade(), live.upgrade()) else {
        return;
    };
    let window = relay.config.limits.push_window as usize;
    let window_bytes = relay.config.limits.push_window_bytes as usize;
    let mut pump = Pump {
        relay,
        live,
        state,
        window,
        window_bytes,
    };
    if let Err(err) = pump.run().await {
        tracing::error!(
            error = &err as &dyn std::error::Error,
            "delivery paused: the store failed; it starts again with the next news"
        );
        let mut state = std::mem::take(&mut pump.state);
        state.started = false;
        pump.live.park_after_failure(state);
    }
}

impl PumpState {
    /// Takes the device's acknowledgement of `stream` up to `position`.
    pub fn acked(&mut self, stream: &Stream, position: u64) {
        if let Some(in_flight) = self.in_flight.get_mut(stream) {
            in_flight.acked(position);
        }
    }
}

impl Pump {
    async fn run(&mut self) -> RelayResult<()> {
        let mut pending: BTreeSet<Stream> = BTreeSet::new();
        if !self.state.started {
            pending.insert(Stream::Inbox);
            for group_id in self.relay.store.device_groups(self.live.device())? {
                pending.insert(Stream::Group(group_id));
            }
            self.state.started = true;
        }
        loop {
            let (news, acks) = self.live.take();
            for (stream, position) in acks {
                self.state.acked(&stream, position);
            }
            pending.extend(news);
            // Every stream gets its turn: one whose window is full waits for
            // its acknowledgements without holding the others back.
            let streams: Vec<Stream> = pending.iter().cloned().collect();
            for stream in streams {
                match self.deliver(&stream).await {
                    Ok(Delivery::Drained) => {
                        pending.remove(&stream);
                    }
                    Ok(Delivery::WindowFull) => {}
                    Err(Disconnected) => return Ok(()),
                }
            }
            if !self.state.caught_up && pending.is_empty() {
                self.state.caught_up = true;
                if self.push(push::Kind::CaughtUp(CaughtUp {})).await.is_err() {
                    return Ok(());
                }
            }
            if pending.is_empty() {
                // Nothing left to push: the next news starts a new task.
                match self.live.park(std::mem::take(&mut self.state)) {
                    Ok(()) => return Ok(()),
                    Err(state) => {
                        self.state = state;
                        continue;
                    }
                }
            }
            self.live.wait().await;
        }
    }

    /// What the stream's window has room for, if anything.
    fn room(&self, stream: &Stream) -> Option<ReadBudget> {
        let (count, bytes) = self
            .state
            .in_flight
            .get(stream)
            .map_or((0, 0), |f| (f.pushes.len(), f.bytes));
        window_room(count, bytes, self.window, self.window_bytes)
    }

    fn record_sent(&mut self, stream: &Stream, position: u64, bytes: usize) {
        self.state
            .in_flight
            .entry(stream.clone())
            .or_default()
            .sent(position, bytes);
    }

    async fn deliver(&mut self, stream: &Stream) -> Result<Delivery, Disconnected> {
        match stream {
            Stream::Inbox => self.deliver_inbox().await,
            Stream::Group(group_id) => self.deliver_group(group_id).await,
        }
    }

    async fn deliver_inbox(&mut self) -> Result<Delivery, Disconnected> {
        let device = *self.live.device();
        let stream = Stream::Inbox;
        let mut sent = match self.state.sent.get(&stream) {
            Some(sent) => *sent,
            None => self
                .logged(self.relay.store.inbox_acked(&device))
                .unwrap_or(0),
        };
        let through = self.relay.visibility.inbox(&device);
        while sent < through {
            let Some(budget) = self.room(&stream) else {
                self.state.sent.insert(stream, sent);
                return Ok(Delivery::WindowFull);
            };
            let Some(items) =
                self.logged(self.relay.store.read_inbox(&device, sent, through, budget))
            else {
                break;
            };
            if items.is_empty() {
                break;
            }
            for item in items {
                let bytes = item.welcome.welcome.len() + item.welcome.ratchet_tree.len();
                let position = item.position;
                self.push(push::Kind::InboxMessage(inbox_message(item)))
                    .await?;
                self.record_sent(&stream, position, bytes);
                sent = position;
            }
        }
        self.state.sent.insert(stream, sent);
        Ok(Delivery::Drained)
    }

    async fn deliver_group(&mut self, group_id: &GroupId) -> Result<Delivery, Disconnected> {
        let device = *self.live.device();
        let stream = Stream::Group(group_id.clone());
        // Read before the routing: an entry past a removal becomes visible
        // only after the removal is applied and forgotten in memory
        // (`store::member_sets`), so the routing read next already shows
        // the removal of any device that must not get that entry.
        let visible = self.relay.visibility.group(group_id);
        let fresh = !self.state.sent.contains_key(&stream);
        let known = match self.state.sent.get(&stream) {
            // A device that left and was added back since starts after
            // its return, not where it stopped.
            Some(sent) => self
                .logged(self.relay.store.member_set(group_id))
                .and_then(|members| members.get(&device))
                .map(|routing| {
                    (
                        routing,
                        (*sent).max(routing.from_position.saturating_sub(1)),
                    )
                }),
            // Where to start is in the record: what the device acknowledged.
            None => self
                .logged(self.relay.store.membership(group_id, &device))
                .flatten()
                .map(|member| {
                    let acked = self
                        .relay
                        .acks
                        .get(group_id, &device)
                        .map_or(0, Position::get);
                    let start = member
                        .acked
                        .max(acked)
                        .max(member.from_position.saturating_sub(1));
                    (Routing::from(&member), start)
                }),
        };
        let Some((routing, mut sent)) = known else {
            // No longer follows the group (removed, and acknowledged it).
            self.state.sent.remove(&stream);
            return Ok(Delivery::Drained);
        };
        let through = routing.last_deliverable(visible);
        while sent < through {
            let Some(budget) = self.room(&stream) else {
                self.state.sent.insert(stream, sent);
                return Ok(Delivery::WindowFull);
            };
            // Most deliveries are of what was just sent: share its frame.
            if let Some(cached) = self.relay.frames.get(group_id, Position(sent + 1)) {
                let frame = if cached.sender == device {
                    cached.receipt
                } else {
                    cached.frame
                };
                self.send_frame(frame).await?;
                sent += 1;
                self.record_sent(&stream, sent, cached.payload_len);
                continue;
            }
            let Some(items) =
                self.logged(self.relay.store.read_log(group_id, sent, through, budget))
            else {
                break;
            };
            let skipped = items.first().map_or(fresh, |item| item.position > sent + 1);
            if skipped {
                // The entries after `sent` may have gone before this device
                // fetched them: say so before what follows.
                sent = self.announce_gap(group_id, sent).await?;
            }
            if items.is_empty() {
                break;
            }
            // One copy of the group's id for the whole read, shared by its
            // pushes.
            let group = bytes::Bytes::copy_from_slice(group_id);
            for item in items {
                let bytes = item.entry.payload.len();
                let position = item.position;
                let kind = if item.entry.sender_device[..] == device.0[..] {
                    push::Kind::Receipt(receipt(&group, item))
                } else {
                    push::Kind::GroupMessage(group_message(&group, item))
                };
                self.push(kind).await?;
                self.record_sent(&stream, position, bytes);
                sent = position;
            }
        }
        self.state.sent.insert(stream, sent);
        Ok(Delivery::Drained)
    }

    /// Pushes a `StreamGap` if the group's log was trimmed past `sent`,
    /// and returns the position delivery continues after.
    async fn announce_gap(&self, group_id: &GroupId, sent: u64) -> Result<u64, Disconnected> {
        let Some(group) = self.logged(self.relay.store.group(group_id)).flatten() else {
            return Ok(sent);
        };
        if group.trimmed_through <= sent {
            return Ok(sent);
        }
        self.push(push::Kind::StreamGap(StreamGap {
            group_id: group_id.to_vec().into(),
            after: sent,
            through: group.trimmed_through,
            epoch: group.trimmed_epoch,
        }))
        .await?;
        Ok(group.trimmed_through)
    }

    async fn push(&self, kind: push::Kind) -> Result<(), Disconnected> {
        self.send_frame(encode_envelope(&Envelope::push(kind)))
            .await
    }

    async fn send_frame(&self, frame: bytes::Bytes) -> Result<(), Disconnected> {
        self.live
            .out()
            .send(Outbound::Frame(frame))
            .await
            .map_err(|_| Disconnected)
    }

    /// A store failure stops this stream for now, not the connection: it is
    /// logged, and the stream is retried at its next news.
    fn logged<T>(&self, result: RelayResult<T>) -> Option<T> {
        result
            .map_err(|err| {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "reading a stream for delivery failed"
                )
            })
            .ok()
    }
}

fn group_message(group_id: &bytes::Bytes, item: LogItem) -> GroupMessage {
    GroupMessage {
        group_id: group_id.clone(),
        position: item.position,
        epoch: item.entry.epoch,
        kind: item.entry.kind,
        sender_device: item.entry.sender_device,
        payload: item.entry.payload,
        received_at_ms: item.entry.received_at_ms,
        added_devices: item
            .entry
            .added_devices
            .into_iter()
            .map(Into::into)
            .collect(),
        removed_devices: item
            .entry
            .removed_devices
            .into_iter()
            .map(Into::into)
            .collect(),
    }
}

fn receipt(group_id: &bytes::Bytes, item: LogItem) -> Receipt {
    Receipt {
        group_id: group_id.clone(),
        position: item.position,
        epoch: item.entry.epoch,
        kind: item.entry.kind,
        submission_id: item.entry.submission_id,
    }
}

fn inbox_message(item: InboxItem) -> InboxMessage {
    InboxMessage {
        position: item.position,
        group_id: item.record.group_id.into(),
        epoch: item.record.epoch,
        group_position: item.record.group_position,
        welcome: item.welcome.welcome,
        ratchet_tree: item.welcome.ratchet_tree,
        group_info: item.welcome.group_info,
        sender_device: item.record.sender_device.into(),
        received_at_ms: item.record.received_at_ms,
    }
}

/// What a window holding `count` pushes of `bytes` has room for: nothing
/// until at least a quarter of it is free (in pushes and in bytes), once
/// anything is in flight. A device catching up acknowledges in small
/// batches; refilling at each would pay a log read and a pass of the pump
/// for a handful of entries, where waiting for a quarter of the window
/// reads them in one go. Live traffic rarely has three quarters of a
/// window in flight (256 pushes or 3 MiB by default); when it has, it
/// waits for one more acknowledgement, which every client sends for what
/// it processed (and sends again if the relay refused it).
fn window_room(
    count: usize,
    bytes: usize,
    window: usize,
    window_bytes: usize,
) -> Option<ReadBudget> {
    let free = window.saturating_sub(count);
    let free_bytes = window_bytes.saturating_sub(bytes);
    if free == 0 || free_bytes == 0 {
        return None;
    }
    let quarter_free = free >= (window / 4).max(1) && free_bytes >= (window_bytes / 4).max(1);
    if count > 0 && !quarter_free {
        return None;
    }
    Some(ReadBudget {
        max_items: window - count,
        max_bytes: window_bytes - bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_frees_the_window_up_to_its_position() {
        let mut state = PumpState::default();
        let stream = Stream::Inbox;
        for position in 1..=3 {
            state
                .in_flight
                .entry(stream.clone())
                .or_default()
                .sent(position, 100);
        }
        state.acked(&stream, 2);
        let in_flight = &state.in_flight[&stream];
        assert_eq!((in_flight.pushes.len(), in_flight.bytes), (1, 100));
        state.acked(&Stream::Group(crate::test_group_id(b"other")), 9);
        assert_eq!(state.in_flight[&stream].pushes.len(), 1);
    }

    #[test]
    fn a_window_is_refilled_once_a_quarter_of_it_is_free_not_at_every_acknowledgement() {
        let room = |count, bytes| window_room(count, bytes, 256, 4096).map(|b| b.max_items);
        assert_eq!(room(0, 0), Some(256));
        // Live traffic: a few in flight do not wait.
        assert_eq!(room(2, 200), Some(254));
        // Catch-up: the device acknowledged a few of a full window.
        assert_eq!(room(255, 255), None);
        assert_eq!(room(193, 193), None);
        assert_eq!(room(192, 192), Some(64));
        // Bytes count the same way.
        assert_eq!(room(10, 3073), None);
        assert_eq!(
            window_room(10, 3072, 256, 4096).map(|b| b.max_bytes),
            Some(1024)
        );
        // However small the window, an empty one has room.
        assert_eq!(window_room(0, 0, 1, 1).map(|b| b.max_items), Some(1));
        assert_eq!(window_room(1, 1, 1, 1).map(|b| b.max_items), None);
    }
}
