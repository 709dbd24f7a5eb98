//! Processing what the relay pushes: group messages, receipts of this
//! device's own entries, and Welcomes.
//!
//! Each push is one store operation, committed when it is processed. A
//! group's position cursor is part of that operation, so a push delivered
//! again after a reconnect is recognised and skipped; a message id seen
//! before is never shown twice.

use std::collections::BTreeSet;

use convene_proto::content::GroupKind as WireKind;
use convene_proto::relay::{push, GroupMessage, InboxMessage, MessageKind, Receipt};

use super::{ConnectionState, Engine};
use crate::error::ClientError;
use crate::events::Event;
use crate::mls::content::read_content;
use crate::mls::{group_meta, members, Incoming, MemberDevice, MlsError};
use crate::store::records::{self, GroupRecord, MemberEntry, MessageRecord};
use crate::types::{GroupId, GroupSummary, Message};

pub(crate) use crate::mls::content::MAX_TEXT_BYTES;

impl Engine {
    pub(super) async fn process_push(&mut self, push: push::Kind) -> Result<(), ClientError> {
        match push {
            push::Kind::GroupMessage(message) => self.on_group_message(message),
            push::Kind::Receipt(receipt) => self.on_receipt(receipt),
            push::Kind::InboxMessage(welcome) => self.on_welcome(welcome),
            push::Kind::CaughtUp(_) => {
                self.caught_up = true;
                self.outbox_dirty = true;
                self.set_state(ConnectionState::CaughtUp);
                self.emit(Event::CaughtUp);
                Ok(())
            }
            push::Kind::KeyPackagesLow(low) => {
                self.replenish_key_packages(low.one_time_remaining, low.last_resort)
                    .await;
                Ok(())
            }
            push::Kind::Challenge(_) => Ok(()),
            // Handled with the liveness work below.
            push::Kind::StreamGap(_) => Ok(()),
            push::Kind::RevocationNotice(_) => {
                // Not fatal to the push batch: the next connect reads them.
                if let Err(err) = self.sync_revocations().await {
                    tracing::warn!(error = %err, "cannot read the revocations");
                }
                Ok(())
            }
        }
    }

    fn on_group_message(&mut self, message: GroupMessage) -> Result<(), ClientError> {
        let group_id = message.group_id.to_vec();
        // Keep log order: behind a held message, everything waits.
        if let Some(held) = self.held.get_mut(&group_id) {
            held.push_back(message);
            return Ok(());
        }
        let Some(record) = self.group_record(&group_id)? else {
            // Not joined yet: its Welcome is on the way.
            self.held.entry(group_id).or_default().push_back(message);
            return Ok(());
        };
        if self.apply_group_message(record, &message)? {
            self.held
                .entry(group_id.clone())
                .or_default()
                .push_back(message);
        } else {
            self.release_held(&group_id)?;
        }
        Ok(())
    }

    /// Applies one group message. Returns true when it must wait for a later
    /// epoch (nothing was changed).
    fn apply_group_message(
        &mut self,
        mut record: GroupRecord,
        message: &GroupMessage,
    ) -> Result<bool, ClientError> {
        let group_id = record.group_id.clone();
        if message.position <= record.processed_through {
            self.ack_group(&group_id, message.position);
            return Ok(false);
        }
        if record.active {
            match self.decrypt_and_apply(&mut record, message) {
                Err(MlsError::FutureEpoch) => {
                    self.store().rollback();
                    self.groups.remove(&group_id);
                    return Ok(true);
                }
                Err(err) => {
                    // An entry that can never be read must not block the
                    // conversation: it is set aside with a warning.
                    self.store().rollback();
                    self.groups.remove(&group_id);
                    tracing::warn!(error = %err, position = message.position, "a group message could not be processed");
                    self.emit(refusal_event(
                        &group_id,
                        &err,
                        format!("a message could not be read: {err}"),
                    ));
                }
                Ok(()) => {}
            }
        }
        record.processed_through = message.position;
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().commit()?;
        self.ack_group(&group_id, message.position);
        Ok(false)
    }

    fn decrypt_and_apply(
        &mut self,
        record: &mut GroupRecord,
        message: &GroupMessage,
    ) -> Result<(), MlsError> {
        let group_id = record.group_id.clone();
        let own_user = self.mls.user_id().to_string();
        let Ok(Some(group)) = super::load_group(&mut self.groups, &self.mls, &group_id) else {
            return Err(MlsError::Operation(
                "the group's MLS state is missing".into(),
            ));
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
            Incoming::Application { sender, plaintext } => {
                if sender.device.as_slice() != message.sender_device.as_ref() {
                    self.emit(Event::Warning {
                        group: Some(GroupId(group_id.clone())),
                        detail: format!(
                            "the relay routed a message from {} as another device's",
                            sender.user_id
                        ),
                    });
                }
                self.store_received(record, message, &sender, &plaintext)
            }
            Incoming::Commit {
                added,
                removed,
                self_removed,
                ..
            } => {
                check_routing(message, &added, &removed).unwrap_or_else(|detail| {
                    self.emit(Event::Warning {
                        group: Some(GroupId(group_id.clone())),
                        detail,
                    })
                });
                snapshot.apply(record);
                self.note_identities(&group_id, &identities);
                let mut added_users = user_ids(&added);
                let removed_users = user_ids(&removed);
                added_users.retain(|u| !removed_users.contains(u));
                if self_removed {
                    record.active = false;
                    self.groups.remove(&group_id);
                    self.emit(Event::RemovedFromGroup {
                        group: GroupId(group_id),
                    });
                } else {
                    self.emit(Event::MembersChanged {
                        group: GroupId(group_id),
                        added: added_users,
                        removed: removed_users
                            .into_iter()
                            .filter(|u| *u != own_user)
                            .collect(),
                    });
                }
                self.outbox_dirty = true;
                Ok(())
            }
            Incoming::Proposal => {
                self.proposals_arrived.insert(group_id);
                self.outbox_dirty = true;
                Ok(())
            }
        }
    }

    fn store_received(
        &mut self,
        record: &GroupRecord,
        message: &GroupMessage,
        sender: &MemberDevice,
        plaintext: &[u8],
    ) -> Result<(), MlsError> {
        let content = read_content(plaintext)?;
        let seen = records::seen_key(&record.group_id, &sender.device, &content.message_id);
        if self
            .store()
            .get(&seen)
            .map_err(|e| MlsError::Operation(e.to_string()))?
            .is_some()
        {
            return Ok(());
        }
        let stored = MessageRecord {
            group_id: record.group_id.clone(),
            position: message.position,
            message_id: content.message_id.to_vec(),
            sender_user: sender.user_id.clone(),
            sender_device: sender.device.to_vec(),
            sent_at_ms: content.sent_at_ms,
            received_at_ms: crate::now_ms(),
            text: content.text,
            own: false,
        };
        self.store().put(seen, Vec::new());
        self.store().put_record(
            records::history_key(&record.group_id, message.position),
            &stored,
        );
        self.emit(Event::MessageReceived(Message::from_record(stored)));
        Ok(())
    }

    /// Processes messages held for a group, in order, until one must wait.
    pub(super) fn release_held(&mut self, group_id: &[u8]) -> Result<(), ClientError> {
        while let Some(message) = self.held.get_mut(group_id).and_then(|q| q.pop_front()) {
            let Some(record) = self.group_record(group_id)? else {
                self.held
                    .entry(group_id.to_vec())
                    .or_default()
                    .push_front(message);
                return Ok(());
            };
            if self.apply_group_message(record, &message)? {
                self.held
                    .entry(group_id.to_vec())
                    .or_default()
                    .push_front(message);
                return Ok(());
            }
        }
        self.held.remove(group_id);
        Ok(())
    }

    fn on_receipt(&mut self, receipt: Receipt) -> Result<(), ClientError> {
        let group_id = receipt.group_id.to_vec();
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
        if let Some(intent) = self.intent_for_submission(&receipt.submission_id)? {
            if receipt.kind == MessageKind::Commit as i32 {
                self.complete_commit(intent, &mut record)?;
            } else {
                self.complete_send(intent, receipt.position)?;
            }
        }
        record.processed_through = receipt.position;
        self.store()
            .put_record(records::group_key(&group_id), &record);
        self.store().commit()?;
        self.ack_group(&group_id, receipt.position);
        self.release_held(&group_id)
    }

    fn on_welcome(&mut self, welcome: InboxMessage) -> Result<(), ClientError> {
        let processed = self.store().get(&records::inbox_cursor_key())?;
        let processed = processed
            .and_then(|raw| raw.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if welcome.position <= processed {
            self.ack_inbox(welcome.position);
            return Ok(());
        }
        let group_id = welcome.group_id.to_vec();
        let already = self.group_record(&group_id)?.is_some_and(|r| r.active);
        if !already {
            match self.join(&welcome) {
                Ok(record) => {
                    let summary = GroupSummary::from_record(&record, self.mls.user_id());
                    self.emit(Event::JoinedGroup(summary));
                    self.outbox_dirty = true;
                }
                Err(err) => {
                    self.store().rollback();
                    self.groups.remove(&group_id);
                    tracing::warn!(error = %err, "a Welcome could not be used");
                    self.emit(refusal_event(
                        &group_id,
                        &err,
                        format!("an invitation to a group could not be used: {err}"),
                    ));
                }
            }
        }
        self.store().put(
            records::inbox_cursor_key(),
            welcome.position.to_be_bytes().to_vec(),
        );
        self.store().commit()?;
        self.ack_inbox(welcome.position);
        self.release_held(&group_id)
    }

    fn join(&mut self, welcome: &InboxMessage) -> Result<GroupRecord, MlsError> {
        let group = self.mls.ops().join(&welcome.welcome)?;
        let meta = group_meta(&group)
            .ok_or_else(|| MlsError::Invalid("a group without Convene metadata".into()))?;
        let own_user = self.mls.user_id().to_string();
        if meta.kind == WireKind::Direct as i32 && !meta.direct_pair.contains(&own_user) {
            return Err(MlsError::Invalid(
                "a direct channel between other people".into(),
            ));
        }
        let mut record = GroupRecord {
            group_id: welcome.group_id.to_vec(),
            kind: meta.kind,
            name: meta.name.clone(),
            direct_pair: meta.direct_pair.clone(),
            processed_through: welcome.group_position,
            active: true,
            joined_at_ms: crate::now_ms(),
            ..Default::default()
        };
        Snapshot::of(&group, self.mls.anchor()).apply(&mut record);
        self.note_identities(&record.group_id, &crate::mls::member_identities(&group));
        self.store()
            .put_record(records::group_key(&record.group_id), &record);
        if meta.kind == WireKind::Direct as i32 {
            if let Some(peer) = meta.direct_pair.iter().find(|u| **u != own_user) {
                self.store()
                    .put(records::direct_key(peer), record.group_id.clone());
            }
        }
        self.groups.insert(record.group_id.clone(), group);
        Ok(record)
    }
}

/// The parts of a group's MLS state mirrored in its record.
pub(super) struct Snapshot {
    epoch: u64,
    epoch_authenticator: Vec<u8>,
    members: Vec<MemberDevice>,
    managers: Vec<String>,
}

impl Snapshot {
    pub(super) fn of(
        group: &openmls::prelude::MlsGroup,
        anchor: &crate::trust::TrustAnchor,
    ) -> Snapshot {
        let mut managers: Vec<String> = crate::mls::managed::managers(anchor, group.extensions())
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        managers.sort();
        managers.dedup();
        Snapshot {
            epoch: group.epoch().as_u64(),
            epoch_authenticator: group.epoch_authenticator().as_slice().to_vec(),
            members: members(group),
            managers,
        }
    }

    pub(super) fn apply(self, record: &mut GroupRecord) {
        record.managers = self.managers;
        record.epoch = self.epoch;
        record.epoch_authenticator = self.epoch_authenticator;
        record.members = self
            .members
            .into_iter()
            .map(|m| MemberEntry {
                user_id: m.user_id,
                device: m.device.to_vec(),
            })
            .collect();
    }
}

/// Checks a commit's routing change as declared to the relay against what
/// the commit does.
fn check_routing(
    message: &GroupMessage,
    added: &[MemberDevice],
    removed: &[MemberDevice],
) -> Result<(), String> {
    let declared = |list: &[bytes::Bytes]| list.iter().map(|d| d.to_vec()).collect::<BTreeSet<_>>();
    let actual = |list: &[MemberDevice]| {
        list.iter()
            .map(|m| m.device.to_vec())
            .collect::<BTreeSet<_>>()
    };
    if declared(&message.added_devices) != actual(added)
        || declared(&message.removed_devices) != actual(removed)
    {
        return Err("a commit's declared routing change does not match its content".into());
    }
    Ok(())
}

fn user_ids(devices: &[MemberDevice]) -> Vec<String> {
    let mut users: Vec<String> = devices.iter().map(|d| d.user_id.clone()).collect();
    users.sort();
    users.dedup();
    users
}

/// The event that tells the app about an input set aside: `Untrusted` for
/// refusals of trust or policy, `Warning` for the rest.
pub(super) fn refusal_event(group_id: &[u8], err: &MlsError, detail: String) -> Event {
    let group = Some(GroupId(group_id.to_vec()));
    if err.is_refusal() {
        Event::Untrusted { group, detail }
    } else {
        Event::Warning { group, detail }
    }
}
