//! Welcomes: joining a group, joining it again after falling out of step,
//! and what happens when a Welcome cannot be used.
//!
//! A Welcome to a later epoch replaces whatever this device held for the
//! group: that is how a device removed and added again while away comes
//! back, and how a device that could not follow a group rejoins it. Before
//! it is accepted, every leaf's chain is verified and the Welcome judged by
//! `JoinRules` (the policy for a first join; the state last held for a
//! device still in the group); its MLS group id must be the one the relay
//! delivered it for, and it may not bring this device into a state holding
//! a device whose addition it refused.

use convene_proto::content::{GroupKind as WireKind, GroupMeta};
use convene_proto::relay::InboxMessage;
use prost::Message as _;

use super::held::pending_join_record;
use super::snapshot::Snapshot;
use super::sync::refusal_event;
use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::mls::{group_meta, JoinRules, MlsError, PreviousState};
use crate::store::records::{self, GroupRecord};
use crate::types::{GroupId, GroupSummary};

impl Engine {
    pub(super) fn on_welcome(&mut self, welcome: InboxMessage) -> Result<(), ClientError> {
        let processed = self.store().get(&records::inbox_cursor_key())?;
        let processed = processed
            .and_then(|raw| raw.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if welcome.position <= processed {
            self.ack_inbox(welcome.position);
            return Ok(());
        }
        let group_id = GroupId::from_field(&welcome.group_id)?;
        let before = self.group_record(&group_id)?;
        // A Welcome for a group this device follows is only taken when it
        // leads past the epoch held (the device was removed and added
        // again while away); the join rules judge it as a rejoin.
        let stale = before
            .as_ref()
            .is_some_and(|r| r.following() && welcome.epoch <= r.epoch);
        let mut joined_at = None;
        if stale {
            tracing::debug!("a Welcome into an epoch this device already holds; ignored");
        } else if let Some(mut record) = before.clone().filter(|r| must_wait(r, &welcome)) {
            // Messages sent before the device was removed are still
            // readable at the epoch it holds: the group's entries up to
            // the Welcome are read first.
            record.deferred_welcome = welcome.encode_to_vec();
            self.store()
                .put_record(records::group_key(&group_id), &record);
        } else {
            joined_at = self.use_welcome(&welcome, before)?;
        }
        self.store().put(
            records::inbox_cursor_key(),
            welcome.position.to_be_bytes().to_vec(),
        );
        self.store().commit()?;
        self.ack_inbox(welcome.position);
        if let Some(joined_at) = joined_at {
            self.release_held(&group_id, joined_at)?;
        }
        Ok(())
    }

    /// Uses a Welcome a group waited with, once the group's entries up to
    /// the commit it came with are read, or this device no longer follows
    /// the group (it saw itself removed, or fell out of step).
    pub(super) fn use_deferred_welcome(&mut self, group_id: &GroupId) -> Result<(), ClientError> {
        let Some(mut record) = self.group_record(group_id)? else {
            return Ok(());
        };
        if record.deferred_welcome.is_empty() {
            return Ok(());
        }
        let welcome = match InboxMessage::decode(record.deferred_welcome.as_slice()) {
            Ok(welcome) if !must_wait(&record, &welcome) => welcome,
            Ok(_) => return Ok(()),
            Err(_) => InboxMessage::default(),
        };
        record.deferred_welcome.clear();
        self.store()
            .put_record(records::group_key(group_id), &record);
        // Still following once the commit it came with was read: the
        // Welcome was not one this device needs (that commit left it where
        // it was), so it is dropped.
        let joined_at = if welcome.welcome.is_empty() || record.following() {
            None
        } else {
            self.use_welcome(&welcome, Some(record))?
        };
        self.store().commit()?;
        if let Some(joined_at) = joined_at {
            self.release_held(group_id, joined_at)?;
        }
        Ok(())
    }

    /// Uses every Welcome that need wait no longer (run once everything the
    /// relay held has come).
    pub(super) fn use_deferred_welcomes(&mut self) -> Result<(), ClientError> {
        let mut waiting = Vec::new();
        for item in self.store().scan::<GroupRecord>(&records::groups_prefix()) {
            let (_, record) = item?;
            if !record.deferred_welcome.is_empty() {
                waiting.push(record.group()?);
            }
        }
        for group_id in waiting {
            self.use_deferred_welcome(&group_id)?;
        }
        Ok(())
    }

    /// Joins or rejoins from a Welcome, in the open operation, telling the
    /// app; returns the group position it joined at.
    fn use_welcome(
        &mut self,
        welcome: &InboxMessage,
        before: Option<GroupRecord>,
    ) -> Result<Option<u64>, ClientError> {
        let group_id = GroupId::from_field(&welcome.group_id)?;
        match self.join(&group_id, welcome, before.as_ref()) {
            Ok(record) => {
                match &before {
                    Some(old) if old.active && !old.pending_join => {
                        // Held messages from before the Welcome were
                        // encrypted for a state this device never had.
                        let position = welcome.group_position;
                        let missed = self.held_application_entries(&group_id, position)?;
                        self.note_lost(&group_id, position, missed)?;
                        self.emit(Event::GroupRecovered {
                            group: group_id.clone(),
                            missed,
                        })
                    }
                    _ => self.emit(Event::JoinedGroup(GroupSummary::from_record(
                        &record,
                        self.mls.user_id(),
                    )?)),
                }
                self.outbox_dirty = true;
                Ok(Some(welcome.group_position))
            }
            Err(err) => {
                self.store().rollback();
                self.groups.remove(&group_id);
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "a Welcome could not be used"
                );
                self.emit(refusal_event(
                    &group_id,
                    &err,
                    "an invitation to a group could not be used",
                ));
                self.welcome_failed(&group_id, before, &err)?;
                Ok(None)
            }
        }
    }

    /// After a Welcome failed (the open operation was rolled back): a
    /// refusal (trust, policy) leaves the group alone for good, unless this
    /// device still follows it; anything else (its KeyPackage's key gone, a
    /// damaged Welcome, a certificate not valid by this device's clock)
    /// means this device is in a group it cannot read, and asks to be
    /// re-added (the relay refuses that if it is not a member after all).
    fn welcome_failed(
        &mut self,
        group_id: &GroupId,
        before: Option<GroupRecord>,
        err: &MlsError,
    ) -> Result<(), ClientError> {
        let mut record = match before {
            Some(record) if record.following() => {
                self.store()
                    .put_record(records::group_key(group_id), &record);
                return Ok(());
            }
            Some(record) => record,
            None => pending_join_record(group_id),
        };
        if !err.may_pass_later() {
            if record.pending_join || !record.active {
                // Not in it (any more): what the group sends is not for
                // this device.
                record.active = false;
                record.stalled.clear();
            }
        } else {
            record.active = true;
            self.stall(&mut record, &super::rejoin::welcome_failed(err))?;
        }
        self.store()
            .put_record(records::group_key(group_id), &record);
        Ok(())
    }

    /// Joins (or rejoins) from a Welcome, in the open operation.
    fn join(
        &mut self,
        group_id: &GroupId,
        welcome: &InboxMessage,
        before: Option<&GroupRecord>,
    ) -> Result<GroupRecord, MlsError> {
        let group = self.mls.ops().join(&welcome.welcome, &join_rules(before))?;
        // The relay delivers a Welcome for the group id it routes; it must
        // be the group's own, or a member could plant one group's state
        // under another's id.
        if group.group_id().as_slice() != welcome.group_id.as_ref() {
            return Err(MlsError::Invalid(
                "a Welcome for another group than the relay said".into(),
            ));
        }
        let meta = group_meta(&group)
            .ok_or_else(|| MlsError::Invalid("a group without Convene metadata".into()))?;
        let own_user = self.mls.user_id().to_string();
        if meta.kind == WireKind::Direct as i32 && !meta.direct_pair.contains(&own_user) {
            return Err(MlsError::Invalid(
                "a direct channel between other people".into(),
            ));
        }
        // A direct channel lives at its pair's id (reserved at the relay),
        // or a member could make another group stand in for it.
        if meta.kind == WireKind::Direct as i32
            && !convene_proto::direct::is_direct_channel_of(&welcome.group_id, &meta.direct_pair)
        {
            return Err(MlsError::PolicyViolation(
                "a direct channel whose id is not its pair's".into(),
            ));
        }
        let refused = before
            .map(|r| r.refused_devices.clone())
            .unwrap_or_default();
        if let Some(member) = crate::mls::members(&group)
            .into_iter()
            .find(|m| refused.iter().any(|d| d.as_slice() == m.device))
        {
            return Err(MlsError::PolicyViolation(format!(
                "the group holds a device of {} whose addition this device refused",
                member.user_id
            )));
        }
        let now = crate::now_ms();
        let mut record = GroupRecord {
            group_id: welcome.group_id.to_vec(),
            kind: meta.kind,
            name: meta.name.clone(),
            meta: meta.encode_to_vec(),
            direct_pair: meta.direct_pair.clone(),
            processed_through: welcome.group_position,
            active: true,
            joined_at_ms: before
                .filter(|r| !r.pending_join)
                .map_or(now, |r| r.joined_at_ms),
            refused_devices: refused,
            // Former members' names stay for the history they wrote.
            names: before.map(|r| r.names.clone()).unwrap_or_default(),
            ..Default::default()
        };
        Snapshot::of(&group, self.mls.anchor()).apply(&mut record);
        self.note_identities(group_id, &crate::mls::member_identities(&group));
        self.store()
            .put_record(records::group_key(&record.group_id), &record);
        if meta.kind == WireKind::Direct as i32 {
            if let Some(peer) = meta.direct_pair.iter().find(|u| **u != own_user) {
                self.store()
                    .put(records::direct_key(peer), record.group_id.clone());
            }
        }
        self.groups.insert(group_id.clone(), group);
        Ok(record)
    }
}

/// What a Welcome for a group is judged against, given what this device
/// held of it: any epoch it held must be left behind, and a device still in
/// the group (following it or asking to be re-added) checks the Welcome
/// against the state it last held: same metadata and managers, sent by one
/// of the members it knew.
fn join_rules(before: Option<&GroupRecord>) -> JoinRules {
    let Some(record) = before.filter(|r| !r.pending_join) else {
        return JoinRules::default();
    };
    let rejoining = record.active.then(|| PreviousState {
        meta: GroupMeta::decode(record.meta.as_slice())
            .ok()
            .filter(|_| !record.meta.is_empty()),
        members: record
            .members
            .iter()
            .filter_map(|m| m.device.as_slice().try_into().ok())
            .collect(),
        managers: record.managers.clone(),
    });
    JoinRules {
        after_epoch: Some(record.epoch),
        rejoining,
    }
}

/// Whether a Welcome into a group this device follows waits for the
/// group's entries up to the commit it came with: the device may still read
/// messages sent before it was removed, and a member could send one device
/// a Welcome into a state of its own making along with a commit that leaves
/// it in the group. Once the commit is read, the device no longer follows
/// the group (it was removed, or replaced) or the Welcome was not for it.
fn must_wait(record: &GroupRecord, welcome: &InboxMessage) -> bool {
    record.following() && record.processed_through < welcome.group_position
}
