//! The commit gate: exactly one commit per (group, epoch).
//!
//! A commit is accepted only if it was built on the group's current epoch
//! (RFC 9420, section 14: the Delivery Service orders commits). The check,
//! the append, the epoch change, the routing change and the Welcome's
//! delivery are one batch under the group's lock, so a Welcome exists only
//! for a commit that was accepted.

use std::collections::HashSet;

use super::engine::Batch;
use bytes::Bytes;
use convene_proto::ids::{Epoch, GroupId, Position, UserId};
use convene_proto::relay::MessageKind;

use super::groups::{AppendOutcome, QueueLimits};
use super::records::{InboxRecord, LogEntry, MemberRecord, WelcomeRecord};
use super::{corrupt, encode, keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};

/// When a sender whose Welcomes fill its share of a device's inbox may try
/// again (the device empties it when it next connects).
const INBOX_SENDER_RETRY_MS: u32 = 60_000;

/// A commit and everything that travels with it.
#[derive(Debug, Clone)]
pub struct CommitSubmission<'a> {
    pub group_id: &'a GroupId,
    /// The epoch the commit was built on.
    pub epoch: Epoch,
    pub submission_id: &'a [u8],
    pub sender: DevicePublicKey,
    /// The sending device's user (joiners' inbox shares are per user).
    pub sender_user: &'a UserId,
    pub commit: Bytes,
    pub welcome: Bytes,
    pub ratchet_tree: Bytes,
    pub group_info: Bytes,
    pub added: &'a [DevicePublicKey],
    pub removed: &'a [DevicePublicKey],
}

impl Store {
    /// Accepts a commit if it was built on the group's current epoch.
    pub fn submit_commit(
        &self,
        commit: &CommitSubmission<'_>,
        limits: QueueLimits,
        now: u64,
    ) -> RelayResult<AppendOutcome> {
        let _group_guard = self.group_locks.lock(commit.group_id);
        if let Some(outcome) = self.replay(&commit.sender, commit.submission_id, commit.group_id)? {
            return Ok(outcome);
        }
        let mut group = self.active_group(commit.group_id, &commit.sender)?;
        if commit.epoch.get() != group.epoch {
            return Err(Refusal::StaleEpoch {
                submitted: commit.epoch.get(),
                current: group.epoch,
            }
            .into());
        }
        self.check_routing_change(commit)?;

        // Joiners' inbox positions are per device and dense, so the inboxes
        // are locked too (group first, then devices: the only order used).
        let _inbox_guards = self.device_locks.lock_many(commit.added.iter());
        let inbox_positions = self.joiners_inbox_positions(commit, limits)?;

        let position = group.last_position + 1;
        let trimmed_before = group.trimmed_through;
        let mut batch = Batch::default();
        self.make_room(
            &mut batch,
            commit.group_id,
            &mut group,
            limits.max_group_backlog,
        )?;
        let entry = LogEntry {
            kind: MessageKind::Commit as i32,
            sender_device: Bytes::copy_from_slice(&commit.sender.0),
            epoch: group.epoch,
            payload: commit.commit.clone(),
            submission_id: Bytes::copy_from_slice(commit.submission_id),
            received_at_ms: now,
            added_devices: commit.added.iter().map(|d| d.to_vec()).collect(),
            removed_devices: commit.removed.iter().map(|d| d.to_vec()).collect(),
        };
        batch.insert(keys::log_entry(commit.group_id, position), encode(&entry));
        self.route_membership(&mut batch, commit, position)?;
        if !commit.added.is_empty() {
            let joined_epoch = group.epoch + 1;
            Self::deliver_welcome(
                &mut batch,
                commit,
                position,
                joined_epoch,
                &inbox_positions,
                now,
            );
        }
        if !commit.group_info.is_empty() {
            batch.insert(
                keys::group_info(commit.group_id),
                commit.group_info.as_ref(),
            );
        }
        group.epoch += 1;
        group.last_position = position;
        batch.insert(keys::group(commit.group_id), encode(&group));
        let outcome = AppendOutcome {
            position: Position(position),
            epoch: Epoch(group.epoch),
            replayed: false,
            inbox: inbox_positions,
            trimmed_through: Some(group.trimmed_through)
                .filter(|t| *t > trimmed_before)
                .map(Position),
        };
        self.record_submission(
            &mut batch,
            &commit.sender,
            commit.submission_id,
            commit.group_id,
            &outcome,
            MessageKind::Commit,
            now,
        );
        self.kv.apply_batch(batch)?;
        if !commit.added.is_empty() || !commit.removed.is_empty() {
            self.forget_member_set(commit.group_id);
        }
        Ok(outcome)
    }

    /// Where each joining device's Welcome goes in its inbox, refused when
    /// an inbox is full or the committer's user already fills its share of
    /// it. Call with the joiners' inboxes locked.
    fn joiners_inbox_positions(
        &self,
        commit: &CommitSubmission<'_>,
        limits: QueueLimits,
    ) -> RelayResult<Vec<(DevicePublicKey, u64)>> {
        let mut positions = Vec::with_capacity(commit.added.len());
        for device in commit.added {
            let head = self.inbox_counter(&keys::inbox_head(device))?;
            let acked = self.inbox_counter(&keys::inbox_acked(device))?;
            if head.saturating_sub(acked) >= limits.max_inbox {
                return Err(Refusal::QueueFull("a joining device's inbox is full").into());
            }
            if self.inbox_entries_from(device, commit.sender_user, acked, head)?
                >= limits.max_inbox_per_sender
            {
                return Err(Refusal::RateLimited {
                    retry_after_ms: INBOX_SENDER_RETRY_MS,
                }
                .into());
            }
            positions.push((*device, head + 1));
        }
        Ok(positions)
    }

    /// Changes who follows the group's log from the commit at `position`:
    /// a removed device still receives the commit that removes it; a device
    /// both removed and added (re-added) keeps its subscription and cursor.
    fn route_membership(
        &self,
        batch: &mut Batch,
        commit: &CommitSubmission<'_>,
        position: u64,
    ) -> RelayResult<()> {
        let readded: HashSet<&DevicePublicKey> = commit
            .added
            .iter()
            .filter(|d| commit.removed.contains(d))
            .collect();
        for device in commit.removed.iter().filter(|d| !readded.contains(d)) {
            let mut member = self
                .membership(commit.group_id, device)?
                .ok_or_else(|| corrupt("checked member vanished"))?;
            member.until_position = position;
            batch.insert(keys::member(commit.group_id, device), encode(&member));
        }
        for device in commit.added.iter().filter(|d| !readded.contains(d)) {
            // A device removed earlier that has not fetched its removal yet
            // keeps its cursor: what was said before its removal is still
            // its to read, and it joins again from the Welcome.
            let member = match self.membership(commit.group_id, device)? {
                Some(pending) => MemberRecord {
                    until_position: 0,
                    ..pending
                },
                None => MemberRecord {
                    from_position: position + 1,
                    until_position: 0,
                    acked: position,
                },
            };
            batch.insert(keys::member(commit.group_id, device), encode(&member));
            batch.insert(keys::device_group(device, commit.group_id), []);
        }
        Ok(())
    }

    /// Stores the commit's Welcome once, and an entry naming it in each
    /// joiner's inbox at the position reserved for it.
    fn deliver_welcome(
        batch: &mut Batch,
        commit: &CommitSubmission<'_>,
        position: u64,
        joined_epoch: u64,
        inbox_positions: &[(DevicePublicKey, u64)],
        now: u64,
    ) {
        let welcome = WelcomeRecord {
            welcome: commit.welcome.clone(),
            ratchet_tree: commit.ratchet_tree.clone(),
            group_info: commit.group_info.clone(),
            remaining: commit.added.len() as u32,
        };
        batch.insert(keys::welcome(commit.group_id, position), encode(&welcome));
        let inbox = encode(&InboxRecord {
            group_id: commit.group_id.to_vec(),
            group_position: position,
            epoch: joined_epoch,
            sender_device: commit.sender.to_vec(),
            received_at_ms: now,
            sender_user: commit.sender_user.to_string(),
        });
        for (device, inbox_position) in inbox_positions {
            batch.insert(keys::inbox_entry(device, *inbox_position), inbox.as_slice());
            batch.insert(keys::inbox_head(device), inbox_position.to_be_bytes());
        }
    }

    /// Checks the declared routing change against the relay's membership.
    fn check_routing_change(&self, commit: &CommitSubmission<'_>) -> RelayResult<()> {
        let invalid = |why: &str| Err(Refusal::InvalidArgument(why.to_string()).into());
        let added: HashSet<&DevicePublicKey> = commit.added.iter().collect();
        let removed: HashSet<&DevicePublicKey> = commit.removed.iter().collect();
        if added.len() != commit.added.len() || removed.len() != commit.removed.len() {
            return invalid("a device is listed twice in the routing change");
        }
        if commit.added.is_empty() != commit.welcome.is_empty() {
            return invalid("a commit carries a Welcome exactly when it adds devices");
        }
        for device in commit.added {
            if self.device(device)?.is_none() {
                return Err(Refusal::NotFound("added device").into());
            }
            // A device both added and removed is re-added: it stays.
            if removed.contains(device) {
                continue;
            }
            if let Some(member) = self.membership(commit.group_id, device)? {
                if member.is_active() {
                    return invalid("an added device is already a member");
                }
            }
        }
        for device in commit.removed {
            match self.membership(commit.group_id, device)? {
                Some(member) if member.is_active() => {}
                _ => return invalid("a removed device is not a member"),
            }
        }
        Ok(())
    }
}
