//! Falling out of step with a group, and getting back in.
//!
//! A device can end up unable to follow a group it is in: its state was
//! restored from a copy taken before a commit, a commit it refused (or that
//! came when its clock was wrong) moved everyone else on, the relay deleted
//! entries it had not fetched, or its Welcome could not be opened. Nothing
//! it holds can bring it forward, so it says so ([`Event::GroupStalled`]),
//! keeps what arrives meanwhile (see `held`), and asks the group to re-add
//! it: a rejoin request carrying a fresh KeyPackage of this device, which
//! any member answers with one commit replacing the device's old leaf (see
//! `MESSAGE_KIND_REJOIN` in the protocol). The device rejoins from the
//! Welcome, at the group's current epoch.
//! How members answer is in `readd`. A device that asked and was not
//! answered (nobody online) asks again, less and less often, and at once
//! whenever it connects anew.

use std::time::Duration;

use bytes::Bytes;
use convene_proto::mls_frame::read_message_header;
use convene_proto::relay::{
    request, response, ErrorCode, GetGroup, GroupMessage, MessageKind, SendMessage,
};
use prost::Message as _;

use super::intents::{Attempt, Step};
use super::{load_group, Engine};
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{self, GroupRecord, IntentKind, IntentRecord, RejoinIntent};
use crate::transport::TransportError;
use crate::types::GroupId;

/// Waits between rejoin requests that got no answer, by attempt.
const REJOIN_BACKOFF: [Duration; 5] = [
    Duration::from_secs(20),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(6 * 3600),
];
/// Rejoin requests for a group this device never got into before it gives
/// up on it (junk invitations must not cost it forever).
const MAX_JOIN_ATTEMPTS: u32 = 5;

fn backoff(attempts: u32) -> Duration {
    let index = (attempts.saturating_sub(1) as usize).min(REJOIN_BACKOFF.len() - 1);
    REJOIN_BACKOFF[index]
}

impl Engine {
    /// Marks a group this device cannot follow, tells the app, and queues a
    /// request to be re-added (all in the open operation). The caller
    /// writes `record`.
    pub(super) fn stall(
        &mut self,
        record: &mut GroupRecord,
        reason: &str,
    ) -> Result<(), ClientError> {
        if !record.stalled.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            reason,
            "this device cannot follow a group; asking to be re-added"
        );
        record.stalled = reason.to_string();
        record.rejoin_attempts = 0;
        record.rejoin_requested_at_ms = 0;
        self.groups.remove(&record.group()?);
        self.awaiting_epoch.remove(&record.group()?);
        self.emit(Event::GroupStalled {
            group: record.group()?,
            reason: reason.to_string(),
        });
        let queued =
            self.queued_intent(&record.group()?, |k| matches!(k, IntentKind::Rejoin(_)))?;
        if queued.is_none() {
            self.stage_intent(IntentRecord {
                group_id: record.group_id.clone(),
                kind: Some(IntentKind::Rejoin(RejoinIntent {})),
                ..Default::default()
            })?;
        }
        self.outbox_dirty = true;
        Ok(())
    }

    fn give_up_joining(&mut self, intent: IntentRecord, mut record: GroupRecord) -> Attempt {
        let group_id = record.group()?;
        record.active = false;
        record.stalled.clear();
        let discarded = self.take_held(&group_id).map(|held| held.len());
        self.store()
            .put_record(records::group_key(&group_id), &record);
        let discarded = discarded?;
        tracing::warn!(
            discarded,
            "gave up joining a group whose invitation never worked"
        );
        self.emit(Event::Warning {
            group: Some(group_id),
            detail: format!(
                "gave up joining a group whose invitation could not be opened; {discarded} entries kept for it were dropped"
            ),
        });
        self.drop_intent(&intent)
    }

    /// Clears a stall the relay alone caused: entries held for the group
    /// that claim a later epoch than the group is at are dropped (with a
    /// notice), the rest are applied in order, and the request to be
    /// re-added goes.
    fn resume_following(
        &mut self,
        intent: &IntentRecord,
        mut record: GroupRecord,
    ) -> Result<(), ClientError> {
        let group_id = record.group()?;
        tracing::warn!("the relay's word that this device fell behind a group was not true");
        record.stalled.clear();
        record.rejoin_attempts = 0;
        let mut dropped = 0;
        for item in self
            .store()
            .scan::<GroupMessage>(&records::held_prefix(&group_id))
            .collect::<Result<Vec<_>, _>>()?
        {
            let (key, message) = item;
            let claimed = read_message_header(&message.payload)
                .map_or(message.epoch, |h| h.epoch.max(message.epoch));
            if claimed > record.epoch {
                self.store().delete(key);
                self.forget_held(&group_id, message.encoded_len() as u64);
                self.note_lost(&group_id, message.position, 1)?;
                dropped += 1;
            }
        }
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().delete(records::intent_key(intent.id));
        self.store().commit_durably()?;
        self.emit(Event::GroupRecovered {
            group: group_id.clone(),
            missed: dropped,
        });
        self.release_held(&group_id, record.processed_through)?;
        // The later epoch the relay claimed is as false as the rest:
        // what waited for it goes now.
        self.awaiting_epoch.remove(&group_id);
        self.disproved_epochs.insert(group_id.clone());
        self.outbox_dirty = true;
        self.resolve(intent.id, Ok(super::Completed { message: None }));
        self.publish();
        Ok(())
    }

    /// The group let this device go while it asked to be re-added: there
    /// is nothing to rejoin.
    fn let_go(&mut self, intent: IntentRecord, mut record: GroupRecord) -> Attempt {
        record.active = false;
        record.stalled.clear();
        self.store()
            .put_record(records::group_key(&record.group()?), &record);
        self.emit(Event::RemovedFromGroup {
            group: record.group()?,
        });
        self.drop_intent(&intent)
    }

    /// The relay says the group is at a later epoch than this device. If
    /// the device has processed everything the log holds, the commits in
    /// between are gone for it: it cannot follow the group any more.
    pub(super) async fn check_behind(&mut self, group_id: &GroupId) -> Result<(), Step> {
        let get = request::Kind::GetGroup(GetGroup {
            group_id: Bytes::from(group_id.to_vec()),
        });
        let state = match self.request(get).await {
            Ok(response::Result::GroupState(state)) => state,
            Ok(_) | Err(TransportError::Refused(_)) => return Ok(()),
            Err(_) => return Err(Step::Offline),
        };
        let Ok(Some(mut record)) = self.group_record(group_id) else {
            return Ok(());
        };
        if record.following()
            && state.epoch > record.epoch
            && state.last_position <= record.processed_through
        {
            let stalled = self
                .stall(&mut record, "this device missed a change to the group")
                .map(|()| {
                    self.store()
                        .put_record(records::group_key(group_id), &record)
                })
                .and_then(|()| Ok(self.store().commit_durably()?));
            if let Err(err) = stalled {
                return Err(err.into());
            }
            self.publish();
        }
        Ok(())
    }

    /// After this device took over from another copy of itself: if the
    /// relay holds the device as having acknowledged entries past what this
    /// state processed, those entries are lost to it, and the group is
    /// rejoined. Whether or not the group moved to a later epoch
    /// meanwhile: the other copy may have sent in this epoch, and this
    /// state's ratchets would use again keys the group has consumed, so
    /// what it sent could never be read (RFC 9420, section 9.2: each
    /// generation's key is used once).
    pub(super) async fn check_lost_entries(
        &mut self,
        group_id: &GroupId,
    ) -> Result<(), ClientError> {
        let get = request::Kind::GetGroup(GetGroup {
            group_id: Bytes::from(group_id.to_vec()),
        });
        let state = match self.request(get).await {
            Ok(response::Result::GroupState(state)) => state,
            // The relay answered, and holds nothing to compare with.
            Ok(_) | Err(TransportError::Refused(_)) => return Ok(()),
            // Not checked: it is, after the next authentication.
            Err(err) => return Err(ClientError::from(err)),
        };
        let Some(mut record) = self.group_record(group_id)? else {
            return Ok(());
        };
        if state.acked_position <= record.processed_through || !record.following() {
            return Ok(());
        }
        // What the original read before this copy took over: gone.
        let lost = state.acked_position - record.processed_through;
        record.missed = record.missed.saturating_add(lost);
        record.processed_through = state.acked_position;
        self.entries_dropped(group_id, state.acked_position, lost)?;
        record.ratchets_spent = true;
        self.stall(&mut record, "this device's state is older than the group's")?;
        self.store()
            .put_record(records::group_key(group_id), &record);
        self.store().commit_durably()?;
        self.publish();
        Ok(())
    }

    /// One attempt at asking a group to re-add this device.
    pub(super) async fn step_rejoin(&mut self, intent: IntentRecord) -> Attempt {
        let group_id = intent.group()?;
        let mut record = match self.group_record(&group_id) {
            Ok(Some(record)) => record,
            Ok(None) => return self.drop_intent(&intent),
            Err(err) => return Err(err.into()),
        };
        if record.stalled.is_empty() || !record.active {
            return self.drop_intent(&intent);
        }
        if record.pending_join && record.rejoin_attempts >= MAX_JOIN_ATTEMPTS {
            // A group this device never got into, whose members do not
            // answer (or answer with nothing usable): given up, and what
            // was kept for it goes.
            return self.give_up_joining(intent, record);
        }
        if let Some(wait) = self.until_next_rejoin_request(&record) {
            return Ok(Step::RetryAfter(wait));
        }
        // The KeyPackage names the group's epoch now: members take it only
        // in a commit on that epoch or the next.
        let get = request::Kind::GetGroup(GetGroup {
            group_id: Bytes::from(group_id.clone()),
        });
        // Whether this device still holds a working state of the group (not
        // one it was removed from or replaced in).
        let holds_state = !record.pending_join
            && matches!(
                load_group(&mut self.groups, &self.mls, &group_id),
                Ok(Some(group)) if group.is_active()
            );
        let epoch = match self.request(get).await {
            // The group is where this device's working state is: what made
            // it stall was the relay's word alone (an entry or answer
            // claiming a later epoch), false then or false now; it follows
            // the group again.
            Ok(response::Result::GroupState(state))
                if holds_state && state.epoch == record.epoch && !record.ratchets_spent =>
            {
                self.resume_following(&intent, record)?;
                return Ok(Step::Done);
            }
            Ok(response::Result::GroupState(state)) => state.epoch,
            Ok(_) => return Err(Step::Failed(ClientError::unexpected_response())),
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotAMember => {
                return self.let_go(intent, record);
            }
            Err(TransportError::Refused(r)) => return Err(Step::Failed(ClientError::Refused(r))),
            Err(_) => return Ok(Step::Offline),
        };
        let key_package = self.make_rejoin_key_package(&group_id, epoch)?;
        let ask = request::Kind::SendMessage(SendMessage {
            group_id: Bytes::from(group_id.clone()),
            kind: MessageKind::Rejoin as i32,
            submission_id: Bytes::copy_from_slice(&crate::random_bytes::<16>()),
            payload: Bytes::from(key_package),
        });
        match self.request(ask).await {
            Ok(_) => {}
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotAMember => {
                return self.let_go(intent, record);
            }
            // Asked a moment ago (before a reconnection): the members are
            // already on it.
            Err(TransportError::Refused(r)) if r.code == ErrorCode::RateLimited => {
                return Ok(Step::RetryAfter(Duration::from_millis(
                    r.retry_after_ms.into(),
                )));
            }
            Err(TransportError::Refused(r)) => {
                tracing::warn!(refusal = %r, "a rejoin request was refused");
            }
            Err(_) => return Ok(Step::Offline),
        }
        record.rejoin_attempts += 1;
        record.rejoin_requested_at_ms = crate::now_ms();
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().commit_durably()?;
        Ok(Step::RetryAfter(backoff(record.rejoin_attempts)))
    }

    /// How long to wait before asking again to be re-added, if at all: a
    /// new connection is a new chance (members may be online now, a clock
    /// may have been set right), so asking waits only within one.
    fn until_next_rejoin_request(&self, record: &GroupRecord) -> Option<Duration> {
        let connected_at_ms = self.relay.online().map_or(0, |online| online.since_ms);
        if record.rejoin_attempts == 0 || record.rejoin_requested_at_ms < connected_at_ms {
            return None;
        }
        let due =
            record.rejoin_requested_at_ms + backoff(record.rejoin_attempts).as_millis() as u64;
        let now = crate::now_ms();
        (now < due).then(|| Duration::from_millis(due - now))
    }

    /// A KeyPackage made to rejoin the group at `epoch`, its private key on
    /// disk (and forgotten once it expires) before anyone can answer with
    /// it.
    fn make_rejoin_key_package(&mut self, group_id: &GroupId, epoch: u64) -> Result<Vec<u8>, Step> {
        let key_package = match self.mls.ops().rejoin_key_package(group_id, epoch) {
            Ok(made) => match made.one_time.into_iter().next() {
                Some(key_package) => {
                    // Forgotten with the others once it expires.
                    self.remember_key_packages(made.keys)?;
                    key_package
                }
                None => return Err(Step::Failed(ClientError::Crypto("no KeyPackage was made"))),
            },
            Err(err) => {
                self.store().rollback();
                return Err(err.into());
            }
        };
        // Its private key is on disk before anyone can answer with it.
        self.store().commit_durably()?;
        Ok(key_package)
    }
}

/// The reason told when a device's Welcome could not be used.
pub(super) fn welcome_failed(err: &(dyn std::error::Error + 'static)) -> String {
    format!(
        "its invitation to the group could not be opened ({})",
        crate::error::with_causes(err)
    )
}
