//! Groups, their membership and their logs: the Delivery Service's core.
//!
//! Each group has one append-only log; application messages and proposals
//! are appended here, commits through the gate in `commits.rs`. A
//! resubmission is answered with its first outcome rather than appended
//! twice: a member's message is found in the log itself
//! (`submission_ids`); a commit, or a submission from outside the group,
//! by the submission record written with it.

use super::engine::Batch;
use bytes::Bytes;
use convene_proto::ids::{Epoch, GroupId, Position};
use convene_proto::relay::MessageKind;

use super::records::{GroupRecord, LogEntry, MemberRecord, SubmissionRecord};
use super::submission_ids::GroupSubmissionIds;
use super::{corrupt, encode, keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};

/// An application message or standalone proposal.
#[derive(Debug, Clone)]
pub struct MessageSubmission<'a> {
    pub group_id: &'a GroupId,
    pub kind: MessageKind,
    pub submission_id: &'a [u8],
    pub sender: DevicePublicKey,
    pub payload: Bytes,
    /// The epoch its MLS framing names, which must be the group's current
    /// one; `None` for a rejoin request, which is not an MLS message.
    pub epoch: Option<Epoch>,
    /// The sender is staff sending an external proposal to a group it
    /// manages from outside: it need not be a member.
    pub from_outside: bool,
}

/// Where an accepted submission landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub position: Position,
    /// For a commit, the epoch after it; for a message, the epoch it was
    /// accepted in.
    pub epoch: Epoch,
    /// True when this answers a resubmission of an earlier request.
    pub replayed: bool,
    /// The log's oldest entries up to here went to make room for this one.
    pub trimmed_through: Option<Position>,
    /// Inbox entries written for the joiners, as (device, inbox position).
    pub inbox: Vec<(DevicePublicKey, u64)>,
}

/// What [`Store::append_message_counted`] did.
#[derive(Debug)]
pub struct MessageAppend {
    pub result: RelayResult<AppendOutcome>,
    /// Log entries read to build the group's submission index for this
    /// request (after a restart or an eviction), accepted or refused.
    pub scanned: u64,
}

impl<E: Into<crate::error::RelayError>> From<E> for MessageAppend {
    fn from(err: E) -> MessageAppend {
        MessageAppend {
            result: Err(err.into()),
            scanned: 0,
        }
    }
}

/// Bounds on the queues that a submission extends.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Entries a group log keeps at most: past it, the oldest go, whoever
    /// has not fetched them.
    pub max_group_backlog: u64,
    /// Entries a device's inbox may hold.
    pub max_inbox: u64,
    /// Of them, entries from one sending device.
    pub max_inbox_per_sender: u64,
}

impl Store {
    /// Registers a new group at epoch 0 with `creator` as its only member.
    pub fn create_group(
        &self,
        group_id: &GroupId,
        creator: &DevicePublicKey,
        now: u64,
    ) -> RelayResult<()> {
        let _guard = self.group_locks.lock(group_id);
        if self.kv.contains_key(keys::group(group_id))? {
            return Err(Refusal::AlreadyExists("group").into());
        }
        let group = GroupRecord {
            epoch: 0,
            last_position: 0,
            trimmed_through: 0,
            created_at_ms: now,
            trimmed_epoch: 0,
        };
        let member = MemberRecord {
            from_position: 1,
            until_position: 0,
            acked: 0,
        };
        let mut batch = Batch::default();
        batch.insert(keys::group(group_id), encode(&group));
        batch.insert(keys::member(group_id, creator), encode(&member));
        batch.insert(keys::device_group(creator, group_id), []);
        self.kv.apply_batch(batch)?;
        self.forget_member_set(group_id);
        Ok(())
    }

    /// A group's record. Appending a message does not rewrite the record
    /// (one write fewer per message): its `last_position` is the newest of
    /// the stored value and the group's newest log entry, which is kept in
    /// memory and, after a restart, read from the log's last key.
    pub fn group(&self, group_id: &GroupId) -> RelayResult<Option<GroupRecord>> {
        let Some(mut record) = self.get::<GroupRecord>(&keys::group(group_id))? else {
            return Ok(None);
        };
        record.last_position = record.last_position.max(self.head(group_id)?);
        Ok(Some(record))
    }

    /// Every group with its record (for start-up).
    pub fn groups(&self) -> impl Iterator<Item = RelayResult<(GroupId, GroupRecord)>> + '_ {
        self.scan::<GroupRecord>(&[keys::GROUP]).map(|item| {
            let (key, mut record) = item?;
            let id = key
                .get(2..)
                .and_then(|id| GroupId::from_field(id).ok())
                .ok_or_else(|| corrupt("group key"))?;
            record.last_position = record.last_position.max(self.head(&id)?);
            Ok((id, record))
        })
    }

    /// The position of a group's newest log entry still stored, or the
    /// newest appended since the store opened (0 when neither).
    pub(super) fn head(&self, group_id: &GroupId) -> RelayResult<u64> {
        if let Some(head) = self.heads_lock().get(group_id) {
            return Ok(*head);
        }
        let stored = match self.kv.scan_prefix(keys::log_prefix(group_id)).next_back() {
            Some(item) => keys::trailing_u64(&item?.0).ok_or_else(|| corrupt("log key"))?,
            None => 0,
        };
        let mut heads = self.heads_lock();
        let head = heads.entry(group_id.clone()).or_insert(stored);
        Ok(*head)
    }

    pub(super) fn set_head(&self, group_id: &GroupId, position: u64) {
        let mut heads = self.heads_lock();
        let head = heads.entry(group_id.clone()).or_insert(0);
        *head = (*head).max(position);
    }

    fn heads_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<GroupId, u64>> {
        // Plain map updates cannot panic half-way.
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest GroupInfo a committer left for the group's managers.
    pub fn group_info(&self, group_id: &GroupId) -> RelayResult<Option<Bytes>> {
        Ok(self
            .kv
            .get(keys::group_info(group_id))?
            .map(|raw| Bytes::copy_from_slice(&raw)))
    }

    pub fn membership(
        &self,
        group_id: &GroupId,
        device: &DevicePublicKey,
    ) -> RelayResult<Option<MemberRecord>> {
        self.get(&keys::member(group_id, device))
    }

    /// Every device the group routes to, including removed devices that
    /// have not yet acknowledged their removal.
    pub fn members(&self, group_id: &GroupId) -> RelayResult<Vec<(DevicePublicKey, MemberRecord)>> {
        self.scan::<MemberRecord>(&keys::members_prefix(group_id))
            .map(|item| {
                let (key, record) = item?;
                let device = keys::trailing_device(&key).ok_or_else(|| corrupt("member key"))?;
                Ok((device, record))
            })
            .collect()
    }

    /// The groups whose logs a device follows.
    pub fn device_groups(&self, device: &DevicePublicKey) -> RelayResult<Vec<GroupId>> {
        self.kv
            .scan_prefix(keys::device_groups_prefix(device))
            .map(|item| {
                let (key, _) = item?;
                keys::group_of_device_group_key(&key)
                    .and_then(|id| GroupId::from_field(id).ok())
                    .ok_or_else(|| corrupt("device group key"))
            })
            .collect()
    }

    /// Appends an application message or proposal to a group log, or
    /// answers a resubmission of one with its first outcome.
    pub fn append_message(
        &self,
        message: &MessageSubmission<'_>,
        limits: QueueLimits,
        now: u64,
    ) -> RelayResult<AppendOutcome> {
        self.append_message_counted(message, limits, now).result
    }

    /// As [`Store::append_message`], with the log entries it read to build
    /// the group's submission index, whether the message was then accepted
    /// or refused: work its sender caused, to be charged to it.
    pub fn append_message_counted(
        &self,
        message: &MessageSubmission<'_>,
        limits: QueueLimits,
        now: u64,
    ) -> MessageAppend {
        let _guard = self.group_locks.lock(message.group_id);
        let group = match self.group(message.group_id) {
            Ok(Some(group)) => group,
            Ok(None) => return Refusal::NotFound("group").into(),
            Err(err) => return err.into(),
        };
        if message.from_outside {
            return MessageAppend {
                result: self.append_from_outside(message, group, limits, now),
                scanned: 0,
            };
        }
        // An index is read, or built, only for a device the group routes to
        // (a member, or one removed that has not yet fetched its removal
        // and may resubmit what it sent before).
        match self.member_set_locked(message.group_id) {
            Ok(set) if set.get(&message.sender).is_some() => {}
            Ok(_) => return Refusal::NotAMember.into(),
            Err(err) => return err.into(),
        }
        let (mut ids, scanned) = match self.take_submission_ids(message.group_id, &group) {
            Ok(taken) => taken,
            Err(err) => return err.into(),
        };
        let result = self.append_to_log(message, group, Some(&mut ids), limits, now);
        self.keep_submission_ids(message.group_id, ids);
        MessageAppend { result, scanned }
    }

    /// A staff proposal: answered from its submission record if resubmitted.
    fn append_from_outside(
        &self,
        message: &MessageSubmission<'_>,
        group: GroupRecord,
        limits: QueueLimits,
        now: u64,
    ) -> RelayResult<AppendOutcome> {
        if let Some(outcome) =
            self.replay(&message.sender, message.submission_id, message.group_id)?
        {
            return Ok(outcome);
        }
        self.append_to_log(message, group, None, limits, now)
    }

    /// [`Store::append_message`] under the group's lock, with its log's
    /// submission ids for a member's message (`None` from outside).
    fn append_to_log(
        &self,
        message: &MessageSubmission<'_>,
        mut group: GroupRecord,
        mut ids: Option<&mut GroupSubmissionIds>,
        limits: QueueLimits,
        now: u64,
    ) -> RelayResult<AppendOutcome> {
        if let Some(ids) = ids.as_deref_mut() {
            if let Some(position) = ids.position_of(&message.sender, message.submission_id) {
                if let Some(outcome) = self.replayed_message(message, position)? {
                    return Ok(outcome);
                }
            }
            self.check_active_member(message.group_id, &message.sender)?;
        }
        if let Some(epoch) = message.epoch.filter(|e| e.get() != group.epoch) {
            return Err(Refusal::StaleEpoch {
                submitted: epoch.get(),
                current: group.epoch,
            }
            .into());
        }
        let position = group.last_position + 1;
        let trimmed_before = group.trimmed_through;
        let mut batch = Batch::default();
        if group.backlog() + 1 > limits.max_group_backlog {
            // The record is written only when the oldest entries go, so
            // that a plain append stays one write.
            self.make_room(
                &mut batch,
                message.group_id,
                &mut group,
                limits.max_group_backlog,
            )?;
            batch.insert(keys::group(message.group_id), encode(&group));
        }
        let entry = LogEntry {
            kind: message.kind as i32,
            sender_device: Bytes::copy_from_slice(&message.sender.0),
            epoch: group.epoch,
            payload: message.payload.clone(),
            submission_id: Bytes::copy_from_slice(message.submission_id),
            received_at_ms: now,
            added_devices: Vec::new(),
            removed_devices: Vec::new(),
        };
        batch.insert(keys::log_entry(message.group_id, position), encode(&entry));
        let outcome = AppendOutcome {
            position: Position(position),
            epoch: Epoch(group.epoch),
            replayed: false,
            inbox: Vec::new(),
            trimmed_through: Some(group.trimmed_through)
                .filter(|t| *t > trimmed_before)
                .map(Position),
        };
        if message.from_outside {
            self.record_submission(
                &mut batch,
                &message.sender,
                message.submission_id,
                message.group_id,
                &outcome,
                message.kind,
                now,
            );
        }
        self.kv.apply_batch(batch)?;
        self.set_head(message.group_id, position);
        if let Some(ids) = ids {
            ids.trim_through(group.trimmed_through);
            ids.push(&message.sender, message.submission_id);
        }
        Ok(outcome)
    }

    /// The first outcome of a message resubmitted by a member: its entry
    /// at `position` in the log, if that entry has its sender and
    /// submission id.
    fn replayed_message(
        &self,
        message: &MessageSubmission<'_>,
        position: u64,
    ) -> RelayResult<Option<AppendOutcome>> {
        let Some(entry) = self.get::<LogEntry>(&keys::log_entry(message.group_id, position))?
        else {
            // Gone without a trim (no path deletes so): nothing to answer
            // from, and nothing to hold the sender back for.
            tracing::warn!(position, "a submission index names a missing log entry");
            return Ok(None);
        };
        if entry.submission_id != message.submission_id
            || entry.sender_device[..] != message.sender.0[..]
        {
            // Another submission with the same key (a hash collision).
            return Ok(None);
        }
        Ok(Some(AppendOutcome {
            position: Position(position),
            epoch: Epoch(entry.epoch_after()),
            replayed: true,
            inbox: Vec::new(),
            trimmed_through: None,
        }))
    }

    /// The group, if `sender` is one of its current members.
    pub(super) fn active_group(
        &self,
        group_id: &GroupId,
        sender: &DevicePublicKey,
    ) -> RelayResult<GroupRecord> {
        let group = self.group(group_id)?.ok_or(Refusal::NotFound("group"))?;
        self.check_active_member(group_id, sender)?;
        Ok(group)
    }

    /// Refuses a `sender` that is not one of the group's current members.
    fn check_active_member(&self, group_id: &GroupId, sender: &DevicePublicKey) -> RelayResult<()> {
        match self.member_set_locked(group_id)?.get(sender) {
            Some(routing) if routing.is_active() => Ok(()),
            _ => Err(Refusal::NotAMember.into()),
        }
    }

    /// The recorded outcome of an earlier identical submission.
    pub(super) fn replay(
        &self,
        sender: &DevicePublicKey,
        submission_id: &[u8],
        group_id: &GroupId,
    ) -> RelayResult<Option<AppendOutcome>> {
        let Some(record) =
            self.get::<SubmissionRecord>(&keys::submission(sender, submission_id))?
        else {
            return Ok(None);
        };
        if record.group_id != *group_id {
            return Err(Refusal::InvalidArgument(
                "this submission id was already used for another group".into(),
            )
            .into());
        }
        Ok(Some(AppendOutcome {
            position: Position(record.position),
            epoch: Epoch(record.epoch),
            replayed: true,
            inbox: Vec::new(),
            trimmed_through: None,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_submission(
        &self,
        batch: &mut Batch,
        sender: &DevicePublicKey,
        submission_id: &[u8],
        group_id: &GroupId,
        outcome: &AppendOutcome,
        kind: MessageKind,
        now: u64,
    ) {
        let record = SubmissionRecord {
            group_id: group_id.to_vec(),
            position: outcome.position.get(),
            epoch: outcome.epoch.get(),
            kind: kind as i32,
            created_at_ms: now,
        };
        batch.insert(keys::submission(sender, submission_id), encode(&record));
    }

    pub(super) fn inbox_counter(&self, key: &[u8]) -> RelayResult<u64> {
        match self.kv.get(key)? {
            Some(raw) => Ok(u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("inbox counter"))?,
            )),
            None => Ok(0),
        }
    }
}
