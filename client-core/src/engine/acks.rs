//! What this device tells the relay it has processed: positions gathered
//! while a batch of pushes is processed and sent once the batch is durable,
//! never before (an entry acknowledged and then lost in a crash would never
//! come again).

use std::collections::HashMap;

use bytes::Bytes;
use convene_proto::relay::{request, stream_ack, Ack, ErrorCode, StreamAck};

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

/// Entries one `Ack` may carry (docs/PROTOCOL.md, `ack_cap`): the relay
/// refuses more.
const MAX_ACKS_PER_REQUEST: usize = 1_024;

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

    /// Splits these into parts small enough for one request each.
    fn into_requests(self) -> Vec<PendingAcks> {
        let mut parts = Vec::new();
        let mut part = PendingAcks {
            inbox: self.inbox,
            ..PendingAcks::default()
        };
        let mut len = usize::from(part.inbox.is_some());
        for (group_id, position) in self.groups {
            if len == MAX_ACKS_PER_REQUEST {
                parts.push(std::mem::take(&mut part));
                len = 0;
            }
            part.groups.insert(group_id, position);
            len += 1;
        }
        if len > 0 {
            parts.push(part);
        }
        parts
    }

    /// The request's entries.
    fn entries(&self) -> Vec<StreamAck> {
        let mut entries: Vec<StreamAck> = self
            .groups
            .iter()
            .map(|(group_id, position)| StreamAck {
                stream: Some(stream_ack::Stream::GroupId(Bytes::from(group_id.clone()))),
                position: *position,
            })
            .collect();
        if let Some(position) = self.inbox {
            entries.push(StreamAck {
                stream: Some(stream_ack::Stream::Inbox(true)),
                position,
            });
        }
        entries
    }

    /// When the engine should wake to send them again, if it should.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

/// A refusal that a later try may not meet: the relay was busy or failed.
/// Any other refusal would meet the same acknowledgements again, so they
/// are dropped (their entries come again and are recognised then) rather
/// than held, which would stop every later acknowledgement with them.
fn worth_retrying(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::ShuttingDown
    )
}

impl Engine {
    /// Sends what was processed, in requests of at most
    /// [`MAX_ACKS_PER_REQUEST`]. What the relay refuses for now is kept and
    /// sent again after the wait it asks for: it pushes only a window of
    /// entries beyond the last acknowledgement it heard of, so an
    /// acknowledgement lost here could hold back everything after it. A
    /// lost connection needs no retry: the next one starts from what the
    /// relay has, and these go with the next acknowledgement.
    pub(super) async fn send_acks(&mut self) {
        self.acks.retry_at = None;
        let mut parts = std::mem::take(&mut self.acks).into_requests().into_iter();
        while let Some(part) = parts.next() {
            let request = request::Kind::Ack(Ack {
                acks: part.entries(),
            });
            let Err(err) = self.request(request).await else {
                continue;
            };
            match &err {
                TransportError::Refused(refusal) if !worth_retrying(refusal.code) => {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "acknowledgement refused; its entries will come again"
                    );
                    continue;
                }
                TransportError::Refused(refusal) => {
                    self.acks.retry_at = Some(Instant::now() + retry_delay(refusal));
                }
                _ => {}
            }
            tracing::debug!(
                error = &err as &dyn std::error::Error,
                "acknowledgement not delivered"
            );
            self.acks.restore(part);
            for unsent in parts {
                self.acks.restore(unsent);
            }
            return;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_acknowledgements_are_split_into_requests_the_relay_accepts() {
        let mut acks = PendingAcks {
            inbox: Some(7),
            ..PendingAcks::default()
        };
        for i in 0..2_500u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            acks.groups.insert(GroupId::from(id), u64::from(i) + 1);
        }
        let parts = acks.into_requests();
        let sizes: Vec<usize> = parts.iter().map(|part| part.entries().len()).collect();
        assert_eq!(sizes, [1_024, 1_024, 453]);
        let inboxes = parts.iter().filter(|part| part.inbox.is_some()).count();
        assert_eq!(inboxes, 1);
        let mut restored = PendingAcks::default();
        for part in parts {
            restored.restore(part);
        }
        assert_eq!((restored.groups.len(), restored.inbox), (2_500, Some(7)));
    }

    #[test]
    fn nothing_to_acknowledge_is_no_request() {
        assert!(PendingAcks::default().into_requests().is_empty());
    }
}
