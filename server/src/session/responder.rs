//! Sends a connection's responses in request order, each only after the
//! flush that makes its request durable, and then applies its effects.
//!
//! Requests reach the store in the order the device sent them (the session
//! handles them one by one); only the wait for the disk is moved here, so a
//! device may pipeline requests and many of them share one flush.

use std::sync::Arc;
use std::time::Duration;

use convene_proto::encode_envelope;
use convene_proto::relay::{response, Envelope, Error as WireError, ErrorCode};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::connection::{Outbound, OutboundSender};
use crate::durability::Ticket;
use crate::handlers::Effect;
use crate::hub::Stream;
use crate::relay::Relay;

/// A response waiting for its flush.
pub struct Pending {
    pub request_id: u64,
    pub result: response::Result,
    /// `None` when the response does not depend on a write.
    pub ticket: Option<Ticket>,
    pub effects: Vec<Effect>,
}

/// Responses that may wait for their flush at once on one connection.
const RESPONSE_QUEUE: usize = 256;

/// A response queued with its share of the session's byte budget; boxed,
/// because a channel holds its first block of 32 slots from the start and
/// a response is about 300 bytes.
type Queued = Box<(Pending, OwnedSemaphorePermit)>;

/// The session's end of its responder. The task and its queue start with
/// the first response: most connections sit idle, and each would
/// otherwise hold them for nothing.
pub struct Responder {
    relay: Arc<Relay>,
    out: OutboundSender,
    running: Option<(mpsc::Sender<Queued>, JoinHandle<()>)>,
}

/// The responder's task is gone (the connection with it).
#[derive(Debug)]
pub struct ResponderGone;

impl Responder {
    /// A responder for the connection that `out` writes to; nothing runs
    /// yet.
    pub fn new(relay: Arc<Relay>, out: OutboundSender) -> Responder {
        Responder {
            relay,
            out,
            running: None,
        }
    }

    /// Queues `pending` (holding `budget`) to be sent after the responses
    /// before it, once durable.
    pub async fn send(
        &mut self,
        pending: Pending,
        budget: OwnedSemaphorePermit,
    ) -> Result<(), ResponderGone> {
        let (queue, _) = self.running.get_or_insert_with(|| {
            let (queue, received) = mpsc::channel(RESPONSE_QUEUE);
            let task =
                tokio::spawn(run(self.relay.clone(), received, self.out.clone()).in_current_span());
            (queue, task)
        });
        queue
            .send(Box::new((pending, budget)))
            .await
            .map_err(|_| ResponderGone)
    }

    /// Lets the responses queued so far go out, waiting at most `within`.
    pub async fn finish(self, within: Duration) {
        if let Some((queue, task)) = self.running {
            drop(queue);
            let _ = tokio::time::timeout(within, task).await;
        }
    }
}

/// Runs until the session drops its sender; then every queued response has
/// been sent (or the connection is gone).
async fn run(relay: Arc<Relay>, mut queue: mpsc::Receiver<Queued>, out: OutboundSender) {
    // Each response's share of the session's budget returns once it is
    // queued for the writer (whose queue has a budget of its own).
    while let Some(queued) = queue.recv().await {
        let (pending, _budget) = *queued;
        let mut result = pending.result;
        if let Some(ticket) = pending.ticket {
            match relay.flusher.wait(ticket).await {
                Ok(()) => apply(&relay, pending.effects),
                Err(_) => {
                    result = response::Result::Error(WireError::new(
                        ErrorCode::Internal,
                        "the relay could not store this durably; retry",
                    ))
                }
            }
        }
        let frame = encode_envelope(&Envelope::response(pending.request_id, result));
        if out.send(Outbound::Frame(frame)).await.is_err() {
            return;
        }
    }
}

/// Makes durable entries visible and wakes the devices they are for.
pub fn apply(relay: &Relay, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::GroupAppended { group_id, position } => {
                relay.visibility.publish_group(&group_id, position);
                match relay.store.member_set(&group_id) {
                    Ok(members) => {
                        let stream = Stream::Group(group_id);
                        relay.hub.notify(&stream, members.devices());
                    }
                    Err(err) => {
                        tracing::error!(
                            error = &err as &dyn std::error::Error,
                            "cannot read a group's members to notify them"
                        )
                    }
                }
            }
            Effect::InboxAppended { device, position } => {
                relay.visibility.publish_inbox(&device, position);
                relay.hub.notify(&Stream::Inbox, [&device]);
            }
            Effect::KeyPackagesLow { device, stock } => {
                if let Some(live) = relay.hub.connection(&device) {
                    let push = convene_proto::relay::push::Kind::KeyPackagesLow(
                        convene_proto::relay::KeyPackagesLow {
                            one_time_remaining: stock.one_time,
                            last_resort: stock.last_resort,
                        },
                    );
                    live.try_send(Outbound::Frame(encode_envelope(&Envelope::push(push))));
                }
            }
            Effect::Revoked { devices, sequence } => {
                relay.hub.revoke(&devices);
                let push = convene_proto::relay::push::Kind::RevocationNotice(
                    convene_proto::relay::RevocationNotice { sequence },
                );
                let frame = encode_envelope(&Envelope::push(push));
                relay.hub.broadcast(|| Outbound::Frame(frame.clone()));
            }
            Effect::DevicesRemoved { devices } => relay.hub.revoke(&devices),
            Effect::DirectoryChanged => directory_changed(relay),
        }
    }
}

/// Tells every connected device that the directory changed.
pub(crate) fn directory_changed(relay: &Relay) {
    let push =
        convene_proto::relay::push::Kind::DirectoryNotice(convene_proto::relay::DirectoryNotice {});
    let frame = encode_envelope(&Envelope::push(push));
    relay.hub.broadcast(|| Outbound::Frame(frame.clone()));
}
