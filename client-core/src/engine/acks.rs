//! What this device tells the relay it has processed: positions gathered
//! while a batch of pushes is processed and sent once the batch is durable,
//! never before (an entry acknowledged and then lost in a crash would never
//! come again).

use std::collections::HashMap;

use bytes::Bytes;
use convene_proto::relay::{request, stream_ack, Ack, StreamAck};

use tokio::time::Instant;

use super::intents::retry_delay;
use super::Engine;
use crate::transport::TransportError;
use crate::types::GroupId;

/// What the relay should be told was processed.
#[derive(Default)]
pub(super) struct PendingAcks {
    groups: HashMap<GroupId, u64>,
    inbox: Option<u64>,
    /// When to send again what the relay refused (it asked to wait).
    retry_at: Option<Instant>,
}

impl PendingAcks {
    /// Takes back what could not be sent; what was gathered since, being
    /// newer, wins.
    fn restore(&mut self, unsent: PendingAcks) {
        for (group_id, position) in unsent.groups {
            let kept = self.groups.entry(group_id).or_default();
            *kept = (*kept).max(position);
        }
        if let Some(position) = unsent.inbox {
            self.inbox = Some(self.inbox.unwrap_or(0).max(position));
        }
    }

    /// When the engine should wake to send them again, if it should.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

impl Engine {
    /// Sends what was processed. What the relay refuses is kept and sent
    /// again after the wait it asks for: it pushes only a window of
    /// entries beyond the last acknowledgement it heard of, so an
    /// acknowledgement lost here could hold back everything after it. A
    /// lost connection needs no retry: the next one starts from what the
    /// relay has, and these go with the next acknowledgement.
    pub(super) async fn send_acks(&mut self) {
        self.acks.retry_at = None;
        let acks = std::mem::take(&mut self.acks);
        let mut entries: Vec<StreamAck> = acks
            .groups
            .iter()
            .map(|(group_id, position)| StreamAck {
                stream: Some(stream_ack::Stream::GroupId(Bytes::from(group_id.clone()))),
                position: *position,
            })
            .collect();
        if let Some(position) = acks.inbox {
            entries.push(StreamAck {
                stream: Some(stream_ack::Stream::Inbox(true)),
                position,
            });
        }
        if entries.is_empty() {
            return;
        }
        match self
            .request(request::Kind::Ack(Ack { acks: entries }))
            .await
        {
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(
                    error = &err as &dyn std::error::Error,
                    "acknowledgement not delivered"
                );
                self.acks.restore(acks);
                if let TransportError::Refused(refusal) = &err {
                    self.acks.retry_at = Some(Instant::now() + retry_delay(refusal));
                }
            }
        }
    }

    pub(super) fn ack_group(&mut self, group_id: &GroupId, position: u64) {
        let entry = self.acks.groups.entry(group_id.clone()).or_default();
        *entry = (*entry).max(position);
    }

    pub(super) fn ack_inbox(&mut self, position: u64) {
        self.acks.inbox = Some(self.acks.inbox.unwrap_or(0).max(position));
    }
}
