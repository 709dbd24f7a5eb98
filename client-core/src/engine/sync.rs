//! Processing what the relay pushes: group messages, receipts of this
//! device's own entries, and Welcomes.
//!
//! Each push is one store operation, committed when it is processed. A
//! group's position cursor is part of that operation, so a push delivered
//! again after a reconnect is recognised and skipped; a message id seen
//! before is never shown twice.

use std::time::Duration;

use convene_proto::mls_frame::{read_message_header, ContentType};
use convene_proto::relay::{push, GroupMessage, MessageKind, Receipt, StreamGap};

use super::snapshot::Snapshot;
use super::{ConnectionState, Engine};
use crate::error::ClientError;
use crate::events::Event;
use crate::mls::{Incoming, MlsError};
use crate::store::records::{self, GroupRecord};
use crate::types::GroupId;

pub(crate) use crate::mls::content::MAX_TEXT_BYTES;

/// Groups without a Welcome watched at once, at most (the rest are found
/// at the next `CaughtUp`).
const MAX_UNKNOWN_GROUPS: usize = 1_000;

/// Devices a group's record remembers as refused, at most.
const MAX_REFUSED_DEVICES: usize = 256;

/// How long entries of a group with no Welcome wait for one, once caught
/// up, before this device asks to be added again.
pub(super) const UNKNOWN_GROUP_GRACE: Duration = Duration::from_secs(3);

impl Engine {
    pub(super) async fn process_push(&mut self, push: push::Kind) -> Result<(), ClientError> {
        match push {
            push::Kind::GroupMessage(message) => self.on_group_message(message),
            push::Kind::Receipt(receipt) => self.on_receipt(receipt),
            push::Kind::InboxMessage(welcome) => self.on_welcome(welcome),
            push::Kind::StreamGap(gap) => self.on_gap(gap),
            push::Kind::CaughtUp(_) => {
                // Only a session that got this far resets the reconnection
                // backoff: a relay that drops each connection right after
                // authenticating does not get a reconnection (and what
                // comes with one) every 200 ms.
                if let Some(online) = self.relay.online_mut() {
                    online.caught_up = true;
                    online.backoff = super::relay_state::MIN_BACKOFF;
                }
                self.lifecycle_at = tokio::time::Instant::now();
                // What changed while this device was away.
                self.directory_at_ms = 0;
                self.outbox_dirty = true;
                self.set_state(ConnectionState::CaughtUp);
                self.emit(Event::CaughtUp);
                // Every entry the relay held came before this: entries of
                // a group without a Welcome will never be readable as they
                // are.
                self.use_deferred_welcomes()?;
                self.stall_unknown_groups(true)
            }
            push::Kind::KeyPackagesLow(low) => {
                self.replenish_key_packages(low.one_time_remaining, low.last_resort)
                    .await;
                Ok(())
            }
            push::Kind::Challenge(_) => Ok(()),
            push::Kind::DirectoryNotice(_) => {
                self.directory_changed();
                Ok(())
            }
            push::Kind::RevocationNotice(_) => {
                // Not fatal to the push batch: the next connect reads them.
                if let Err(err) = self.sync_revocations().await {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "cannot read the revocations"
                    );
                }
                Ok(())
            }
        }
    }

    /// Takes one group entry: applies it, or keeps it for later, in one
    /// committed operation; either way it is then acknowledged.
    pub(super) fn on_group_message(&mut self, message: GroupMessage) -> Result<(), ClientError> {
        let group_id = GroupId::from_field(&message.group_id)?;
        let Some(record) = self.group_record(&group_id)? else {
            // Not joined yet: its Welcome may be on the way.
            self.hold(&message)?;
            if self.unknown_groups.len() < MAX_UNKNOWN_GROUPS {
                self.unknown_groups
                    .entry(group_id)
                    .or_insert_with(tokio::time::Instant::now);
            }
            return self.taken(&message);
        };
        if message.position <= record.processed_through {
            self.ack_group(&group_id, message.position);
            return Ok(());
        }
        if record.active && !record.following() {
            self.hold(&message)?;
            return self.taken(&message);
        }
        self.apply_group_message(record, &message)?;
        self.use_deferred_welcome(&group_id)
    }

    /// Commits the open operation and acknowledges `message`.
    fn taken(&mut self, message: &GroupMessage) -> Result<(), ClientError> {
        self.store().commit()?;
        self.ack_group(&GroupId::from_field(&message.group_id)?, message.position);
        Ok(())
    }

    /// Applies one entry of a group this device follows (or was removed
    /// from), moving the group's cursor past it.
    fn apply_group_message(
        &mut self,
        mut record: GroupRecord,
        message: &GroupMessage,
    ) -> Result<(), ClientError> {
        let group_id = record.group()?;
        if record.active && message.kind == MessageKind::Rejoin as i32 {
            self.on_rejoin_request(&group_id, &record, message);
        } else if record.active {
            let header = read_message_header(&message.payload).ok();
            // The relay's epoch and the message's own say the group has
            // moved past this device's state: the commits in between are
            // gone for it.
            let epoch = header.as_ref().map_or(message.epoch, |h| h.epoch);
            if epoch > record.epoch || message.epoch > record.epoch {
                self.stall(&mut record, "this device missed a change to the group")?;
                self.hold(message)?;
                self.store()
                    .put_record(records::group_key(&group_id), &record);
                return self.taken(message);
            }
            let commit = header
                .as_ref()
                .is_some_and(|h| h.content_type == ContentType::Commit && h.epoch == record.epoch);
            let application = header
                .as_ref()
                .is_some_and(|h| h.content_type == ContentType::Application);
            if let Err(err) = self.decrypt_and_apply(&group_id, &mut record, message) {
                // Nothing of it is kept.
                self.store().rollback();
                self.groups.remove(&group_id);
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    position = message.position,
                    "a group entry could not be processed"
                );
                if commit {
                    self.refused_commit(&mut record, &err)?;
                } else {
                    // An entry that can never be read must not block the
                    // conversation: it is set aside with a warning, and a
                    // text leaves a notice in the history.
                    if application {
                        self.note_lost(&group_id, message.position, 1)?;
                    }
                    self.emit(refusal_event(
                        &group_id,
                        &err,
                        "a message could not be read",
                    ));
                }
            }
        }
        record.processed_through = message.position;
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.taken(message)
    }

    /// The relay accepted a commit this device cannot apply: everyone else
    /// moved on without it. It says why, remembers what it refused to let
    /// in, and asks to be re-added (in the open operation).
    fn refused_commit(
        &mut self,
        record: &mut GroupRecord,
        err: &MlsError,
    ) -> Result<(), ClientError> {
        const WHAT: &str = "a change to the group was refused";
        self.emit(refusal_event(&record.group()?, err, WHAT));
        let detail = refusal_detail(WHAT, err);
        if let MlsError::RefusedChange { newcomers, .. } = err {
            // Its chain checks are made again on rejoining; a breach of
            // the group's policy cannot be seen in a tree later, so what it
            // brought in is remembered (as it really was, not as declared).
            let own = self.mls.key().public();
            for device in newcomers.iter().filter(|d| **d != own) {
                if !record.refused_devices.iter().any(|d| d == device)
                    && record.refused_devices.len() < MAX_REFUSED_DEVICES
                {
                    record.refused_devices.push(device.to_vec());
                }
            }
        }
        self.stall(record, &detail)
    }

    /// Entries after `gap.after` were deleted before this device fetched
    /// them: it lost them, and if the group moved on meanwhile, it lost
    /// its place too.
    fn on_gap(&mut self, gap: StreamGap) -> Result<(), ClientError> {
        let group_id = GroupId::from_field(&gap.group_id)?;
        let Some(mut record) = self.group_record(&group_id)? else {
            return Ok(());
        };
        if gap.through <= record.processed_through {
            return Ok(());
        }
        let lost = gap
            .through
            .saturating_sub(gap.after.max(record.processed_through));
        record.missed = record.missed.saturating_add(lost);
        self.entries_dropped(&group_id, gap.through, lost)?;
        // A Welcome waiting for the group's entries takes it past them.
        let welcome_waits = !record.deferred_welcome.is_empty();
        if record.following() && gap.epoch > record.epoch && !welcome_waits {
            self.stall(
                &mut record,
                "the relay deleted changes this device had not fetched",
            )?;
        }
        if record.following() || !record.active {
            record.processed_through = gap.through;
        }
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().commit()?;
        self.use_deferred_welcome(&group_id)
    }

    /// Groups whose entries arrived with no Welcome to join them: this
    /// device is in them at the relay but holds nothing to read them with,
    /// so it asks to be added again. At `CaughtUp` (`all`), every such
    /// group; later, those whose Welcome had time to arrive and did not.
    pub(super) fn stall_unknown_groups(&mut self, all: bool) -> Result<(), ClientError> {
        let due: Vec<GroupId> = if all {
            self.unknown_groups.clear();
            self.held_without_record()?
        } else {
            let cutoff = tokio::time::Instant::now() - UNKNOWN_GROUP_GRACE;
            let due: Vec<GroupId> = self
                .unknown_groups
                .iter()
                .filter(|(_, since)| **since <= cutoff)
                .map(|(group, _)| group.clone())
                .collect();
            self.unknown_groups.retain(|_, since| *since > cutoff);
            let unknown = self.held_without_record()?;
            due.into_iter().filter(|g| unknown.contains(g)).collect()
        };
        for group_id in due {
            let mut record = super::held::pending_join_record(&group_id);
            self.stall(&mut record, "its invitation to the group never arrived")?;
            self.store()
                .put_record(records::group_key(&group_id), &record);
        }
        self.store().commit()?;
        Ok(())
    }

    fn decrypt_and_apply(
        &mut self,
        group_id: &GroupId,
        record: &mut GroupRecord,
        message: &GroupMessage,
    ) -> Result<(), MlsError> {
        let Ok(Some(group)) = super::load_group(&mut self.groups, &self.mls, group_id) else {
            return Err(MlsError::Operation(crate::mls::OperationError::described(
                "the group's MLS state is missing",
            )));
        };
        let ops = self.mls.ops();
        if message.kind == MessageKind::Commit as i32 && group.pending_commit().is_some() {
            // Another member's commit won this epoch: ours is void.
            ops.clear_pending(group)?;
            self.outbox_dirty = true;
        }
        let incoming = ops.process(group, &message.payload)?;
        let snapshot = Snapshot::of(group, self.mls.anchor());
        let identities = crate::mls::member_identities(group);
        match incoming {
            Incoming::Application {
                sender,
                role,
                plaintext,
                epoch,
            } => {
                if sender.device.as_slice() != message.sender_device.as_ref() {
                    self.emit(Event::Warning {
                        group: Some(group_id.clone()),
                        detail: format!(
                            "the relay routed a message from {} as another device's",
                            sender.user_id
                        ),
                    });
                }
                let received = super::received::Received {
                    sender: &sender,
                    role,
                    epoch,
                };
                self.store_received(group_id, record, message, received, &plaintext)
            }
            Incoming::Commit {
                added,
                removed,
                self_removed,
                proposed_by,
                rejoined,
                ..
            } => {
                let applied = super::incoming_commit::AppliedCommit {
                    added,
                    removed,
                    self_removed,
                    proposed_by,
                    rejoined,
                };
                self.apply_commit(group_id, record, message, snapshot, &identities, applied)
            }
            Incoming::Proposal => {
                self.proposals_arrived.insert(group_id.clone());
                self.outbox_dirty = true;
                Ok(())
            }
        }
    }

    fn on_receipt(&mut self, receipt: Receipt) -> Result<(), ClientError> {
        let group_id = GroupId::from_field(&receipt.group_id)?;
        let Some(mut record) = self.group_record(&group_id)? else {
            self.ack_group(&group_id, receipt.position);
            return Ok(());
        };
        if receipt.position <= record.processed_through {
            self.ack_group(&group_id, receipt.position);
            return Ok(());
        }
        // The outcome may not have reached us as a response (a lost
        // connection): the receipt completes the operation instead.
        let intent = self.intent_for_submission(&receipt.submission_id)?;
        if receipt.kind == MessageKind::Commit as i32 {
            // This device's commit moved the group on; unless it is
            // applied here, the device is left behind.
            let applied = record.epoch > receipt.epoch;
            let outcome = match intent {
                Some(intent) if !applied => self.complete_commit(intent, &mut record),
                None if !applied && record.following() => Err(ClientError::LostCommit),
                _ => Ok(()),
            };
            match outcome {
                Err(ClientError::LostCommit) => {
                    self.store().rollback();
                    self.groups.remove(&group_id);
                    self.stall(&mut record, &ClientError::LostCommit.to_string())?;
                }
                other => other?,
            }
        } else if let Some(intent) = intent {
            self.complete_send(intent, receipt.position)?;
            if receipt.kind == MessageKind::Application as i32 {
                record.sent_through = record.sent_through.max(receipt.position);
            }
        } else if receipt.kind == MessageKind::Application as i32
            && receipt.position > record.sent_through
            && record.following()
        {
            // Sent by another copy of this device (one restored from the
            // same state, or the original after a take-over), with a
            // generation of the ratchet this state still holds: what this
            // state sends in this epoch could not be read (RFC 9420,
            // section 9.2), so it rejoins with a new leaf.
            record.ratchets_spent = true;
            self.stall(&mut record, "another copy of this device sent in the group")?;
        }
        record.processed_through = receipt.position;
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().commit()?;
        self.ack_group(&group_id, receipt.position);
        Ok(())
    }
}

/// The event that tells the app about an input set aside: `Untrusted` for
/// refusals of trust or policy, `Warning` for the rest. Its detail is
/// `what` happened, then why, with every cause.
pub(super) fn refusal_event(group_id: &GroupId, err: &MlsError, what: &str) -> Event {
    let group = Some(group_id.clone());
    let detail = refusal_detail(what, err);
    if err.is_refusal() {
        Event::Untrusted { group, detail }
    } else {
        Event::Warning { group, detail }
    }
}

/// What happened, then why, with every cause.
fn refusal_detail(what: &str, err: &MlsError) -> String {
    format!("{what}: {}", crate::error::with_causes(err))
}
