//! What this device tells the relay it has processed: positions gathered
//! while a batch of pushes is processed and sent once the batch is durable,
//! never before (an entry acknowledged and then lost in a crash would never
//! come again).

use std::collections::HashMap;

use bytes::Bytes;
use convene_proto::relay::{request, stream_ack, Ack, StreamAck};

use super::Engine;
use crate::types::GroupId;

/// What the relay should be told was processed.
#[derive(Default)]
pub(super) struct PendingAcks {
    groups: HashMap<GroupId, u64>,
    inbox: Option<u64>,
}

impl Engine {
    pub(super) async fn send_acks(&mut self) {
        let acks = std::mem::take(&mut self.acks);
        let mut entries: Vec<StreamAck> = acks
            .groups
            .into_iter()
            .map(|(group_id, position)| StreamAck {
                stream: Some(stream_ack::Stream::GroupId(Bytes::from(group_id))),
                position,
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
        if let Err(err) = self
            .request(request::Kind::Ack(Ack { acks: entries }))
            .await
        {
            // Unacknowledged entries come again and are recognised then.
            tracing::debug!(
                error = &err as &dyn std::error::Error,
                "acknowledgement not delivered"
            );
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
