//! Sends a connection's responses in request order, each only after the
//! flush that makes its request durable, and then applies its effects.
//!
//! Requests reach the store in the order the device sent them (the session
//! handles them one by one); only the wait for the disk is moved here, so a
//! device may pipeline requests and many of them share one flush.

use std::sync::Arc;

use convene_proto::encode_envelope;
use convene_proto::relay::{response, Envelope, Error as WireError, ErrorCode};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

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

/// Runs until the session drops its sender; then every queued response has
/// been sent (or the connection is gone).
pub async fn run(
    relay: Arc<Relay>,
    mut queue: mpsc::Receiver<(Pending, OwnedSemaphorePermit)>,
    out: OutboundSender,
) {
    // Each response's share of the session's budget returns once it is
    // queued for the writer (whose queue has a budget of its own).
    while let Some((pending, _budget)) = queue.recv().await {
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
                match relay.store.member_devices(&group_id) {
                    Ok(members) => {
                        let stream = Stream::Group(group_id);
                        relay.hub.notify(&stream, members.iter());
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
