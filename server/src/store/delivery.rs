//! Reading a device's streams, recording its acknowledgements, and trimming
//! what every recipient has acknowledged.
//!
//! Nothing is deleted on read: a group log entry goes once every device that
//! follows the group has acknowledged it, or once it is past the group's
//! bound in count or age, whoever has not fetched it ([`Store::trim_group`]);
//! an inbox entry goes once its device has acknowledged it.

use super::engine::Batch;
use bytes::Bytes;
use convene_proto::ids::{GroupId, Position};

use super::records::{GroupRecord, InboxRecord, LogEntry, WelcomeRecord};
use super::{corrupt, encode, keys, DevicePublicKey, Store};
use crate::error::RelayResult;

/// Items a log read reserves room for at once (a read may return more).
const READ_CAPACITY: usize = 1024;

/// A group log entry read for delivery.
#[derive(Debug, Clone)]
pub struct LogItem {
    pub position: u64,
    pub entry: LogEntry,
}

/// An inbox entry read for delivery, with the Welcome it points at.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub position: u64,
    pub record: InboxRecord,
    pub welcome: WelcomeRecord,
}

/// What an acknowledgement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOutcome {
    /// The device's cursor moved, so the log may now be trimmed.
    pub advanced: bool,
    /// A removed device acknowledged its removal and no longer follows the
    /// group.
    pub left_group: bool,
}

/// How far a group log is kept for devices that have not fetched it.
#[derive(Debug, Clone, Copy)]
pub struct TrimPolicy {
    /// Entries kept behind the newest at most.
    pub max_backlog: u64,
    /// Entries received before this (ms since the Unix epoch) are deleted.
    pub keep_since_ms: u64,
}

/// How much one read may return: at least one item, then up to these.
#[derive(Debug, Clone, Copy)]
pub struct ReadBudget {
    pub max_items: usize,
    pub max_bytes: usize,
}

impl Store {
    /// Log entries of a group at positions `after + 1 ..= through`.
    pub fn read_log(
        &self,
        group_id: &GroupId,
        after: u64,
        through: u64,
        budget: ReadBudget,
    ) -> RelayResult<Vec<LogItem>> {
        if through <= after {
            return Ok(Vec::new());
        }
        let wanted = usize::try_from(through - after).unwrap_or(usize::MAX);
        let mut items = Vec::with_capacity(wanted.min(budget.max_items).min(READ_CAPACITY));
        let start = keys::log_entry(group_id, after + 1);
        let end = keys::log_entry(group_id, through);
        let mut bytes = 0usize;
        for item in self.kv.range(start..=end) {
            let (key, raw) = item?;
            let position = keys::trailing_u64(&key).ok_or_else(|| corrupt("log key"))?;
            // Decoded from an owned buffer, the payload is a view of it,
            // not a second copy.
            let entry: LogEntry = prost::Message::decode(Bytes::from(raw))?;
            bytes += entry.payload.len();
            items.push(LogItem { position, entry });
            if items.len() >= budget.max_items || bytes >= budget.max_bytes {
                break;
            }
        }
        Ok(items)
    }

    /// Inbox entries of a device at positions `after + 1 ..= through`.
    pub fn read_inbox(
        &self,
        device: &DevicePublicKey,
        after: u64,
        through: u64,
        budget: ReadBudget,
    ) -> RelayResult<Vec<InboxItem>> {
        let mut items = Vec::new();
        if through <= after {
            return Ok(items);
        }
        let start = keys::inbox_entry(device, after + 1);
        let end = keys::inbox_entry(device, through);
        let mut bytes = 0usize;
        for item in self.kv.range(start..=end) {
            let (key, raw) = item?;
            let position = keys::trailing_u64(&key).ok_or_else(|| corrupt("inbox key"))?;
            let record: InboxRecord = prost::Message::decode(raw.as_ref())?;
            let Some(welcome) =
                self.get::<WelcomeRecord>(&keys::welcome(&record.group_id, record.group_position))?
            else {
                // Another session of the device may have acknowledged the
                // entry, and with it the Welcome's last reference, since
                // this scan began: then the entry is gone too.
                if self.kv.contains_key(&key)? {
                    return Err(corrupt("inbox entry without its Welcome"));
                }
                break;
            };
            bytes += welcome.welcome.len() + welcome.ratchet_tree.len() + welcome.group_info.len();
            items.push(InboxItem {
                position,
                record,
                welcome,
            });
            if items.len() >= budget.max_items || bytes >= budget.max_bytes {
                break;
            }
        }
        Ok(items)
    }

    /// The newest position in a device's inbox.
    pub fn inbox_head(&self, device: &DevicePublicKey) -> RelayResult<u64> {
        self.inbox_counter(&keys::inbox_head(device))
    }

    /// The newest inbox position of every device that ever had one.
    pub fn inbox_heads(&self) -> impl Iterator<Item = RelayResult<(DevicePublicKey, u64)>> + '_ {
        self.kv.scan_prefix([keys::INBOX_HEAD]).map(|item| {
            let (key, raw) = item?;
            let device = keys::trailing_device(&key).ok_or_else(|| corrupt("inbox head key"))?;
            let head = raw
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("inbox head"))?;
            Ok((device, head))
        })
    }

    /// Everything up to here in a device's inbox was acknowledged.
    pub fn inbox_acked(&self, device: &DevicePublicKey) -> RelayResult<u64> {
        self.inbox_counter(&keys::inbox_acked(device))
    }

    /// Records that `device` has everything of the group log up to
    /// `position`. Acknowledging what was never delivered, or going
    /// backwards, changes nothing.
    pub fn ack_group(
        &self,
        group_id: &GroupId,
        device: &DevicePublicKey,
        position: Position,
    ) -> RelayResult<AckOutcome> {
        let position = position.get();
        let unchanged = AckOutcome {
            advanced: false,
            left_group: false,
        };
        let _guard = self.group_locks.lock(group_id);
        let Some(group) = self.group(group_id)? else {
            return Ok(unchanged);
        };
        let Some(mut member) = self.membership(group_id, device)? else {
            return Ok(unchanged);
        };
        let acked = position
            .min(member.last_deliverable(group.last_position))
            .max(member.acked);
        if acked == member.acked {
            return Ok(unchanged);
        }
        member.acked = acked;
        let mut batch = Batch::default();
        let left_group = !member.is_active() && acked >= member.until_position;
        if left_group {
            batch.remove(keys::member(group_id, device));
            batch.remove(keys::device_group(device, group_id));
        } else {
            batch.insert(keys::member(group_id, device), encode(&member));
        }
        self.kv.apply_batch(batch)?;
        if left_group {
            self.forget_member_set(group_id);
        }
        Ok(AckOutcome {
            advanced: true,
            left_group,
        })
    }

    /// Deletes the log entries that every device following the group has
    /// acknowledged (revoked devices aside), and, whatever any device has acknowledged, those past
    /// the group's bound: more than `policy.max_backlog` entries behind the
    /// newest, or received before `policy.keep_since_ms`. A device that
    /// missed entries this way is told so by its pump (`StreamGap`).
    /// Returns how many entries were deleted.
    pub fn trim_group(&self, group_id: &GroupId, policy: TrimPolicy) -> RelayResult<u64> {
        let _guard = self.group_locks.lock(group_id);
        let Some(mut group) = self.group(group_id)? else {
            return Ok(0);
        };
        let members = self.members(group_id)?;
        // A revoked device can never connect to acknowledge anything: it
        // holds nobody back.
        let mut acked = group.last_position;
        for (device, member) in &members {
            let revoked = self
                .device(device)?
                .is_some_and(|record| record.revoked_at_ms != 0);
            if !revoked {
                acked = acked.min(member.acked);
            }
        }
        let bound = group.last_position.saturating_sub(policy.max_backlog);
        let mut safe = acked.max(bound).min(group.last_position);
        let mut batch = Batch::default();
        let mut deleted = 0;
        let mut last_deleted = None;
        let start = keys::log_entry(group_id, group.trimmed_through + 1);
        let end = keys::log_entry(group_id, group.last_position);
        for item in self.kv.range(start..=end) {
            let (key, raw) = item?;
            let position = keys::trailing_u64(&key).ok_or_else(|| corrupt("log key"))?;
            if position > safe {
                // Past what every device has: deleted only once too old.
                let entry: LogEntry = prost::Message::decode(raw.as_ref())?;
                if entry.received_at_ms >= policy.keep_since_ms {
                    break;
                }
                safe = position;
                last_deleted = Some(entry);
            } else if position == safe {
                last_deleted = Some(prost::Message::decode(raw.as_ref())?);
            }
            batch.remove(key);
            deleted += 1;
        }
        if safe <= group.trimmed_through {
            return Ok(0);
        }
        group.trimmed_epoch = match last_deleted {
            Some(entry) => entry.epoch_after(),
            None => group.epoch,
        };
        group.trimmed_through = safe;
        batch.insert(keys::group(group_id), encode(&group));
        self.kv.apply_batch(batch)?;
        Ok(deleted)
    }

    /// Adds to `batch` the deletion of the group's oldest entries so that,
    /// with one more appended, it holds at most `max_backlog`: a group log
    /// never refuses a sender because some other device is away. Updates
    /// `group` (which the caller writes in the same batch).
    pub(super) fn make_room(
        &self,
        batch: &mut Batch,
        group_id: &GroupId,
        group: &mut GroupRecord,
        max_backlog: u64,
    ) -> RelayResult<()> {
        let excess = (group.backlog() + 1).saturating_sub(max_backlog.max(1));
        if excess == 0 {
            return Ok(());
        }
        let start = keys::log_entry(group_id, group.trimmed_through + 1);
        let end = keys::log_entry(group_id, group.trimmed_through + excess);
        let mut last = None;
        for item in self.kv.range(start..=end) {
            let (key, raw) = item?;
            last = Some(raw);
            batch.remove(key);
        }
        group.trimmed_through += excess;
        if let Some(raw) = last {
            let entry: LogEntry = prost::Message::decode(raw.as_ref())?;
            group.trimmed_epoch = entry.epoch_after();
        }
        Ok(())
    }

    /// How many of a device's inbox entries after `acked` (through `head`)
    /// devices of user `sender` wrote (all of a user's devices share one
    /// quota, so linking more devices buys no more). At most `max_inbox`
    /// entries are read.
    pub(super) fn inbox_entries_from(
        &self,
        device: &DevicePublicKey,
        sender: &str,
        acked: u64,
        head: u64,
    ) -> RelayResult<u64> {
        if head <= acked {
            return Ok(0);
        }
        let start = keys::inbox_entry(device, acked + 1);
        let end = keys::inbox_entry(device, head);
        let mut count = 0;
        for item in self.kv.range(start..=end) {
            let (_, raw) = item?;
            let record: InboxRecord = prost::Message::decode(raw.as_ref())?;
            if record.sender_user == sender {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Deletes a device's inbox entries up to `position`, and each Welcome
    /// once all its recipients have acknowledged it. Two sessions may
    /// acknowledge at once: an entry counts toward its Welcome only once.
    pub fn ack_inbox(&self, device: &DevicePublicKey, position: u64) -> RelayResult<()> {
        let position = position.min(self.inbox_head(device)?);
        if position == 0 {
            return Ok(());
        }
        let start = keys::inbox_entry(device, 1);
        let end = keys::inbox_entry(device, position);
        let entries: Vec<_> = self.kv.range(start..=end).collect::<Result<_, _>>()?;
        for (key, raw) in entries {
            let record: InboxRecord = prost::Message::decode(raw.as_ref())?;
            // The Welcome's refcount is the group's: take its lock, and apply
            // the entry's removal and the decrement together.
            let _guard = self.group_locks.lock(record.group_id.as_slice());
            if !self.kv.contains_key(&key)? {
                // Another session acknowledged it meanwhile.
                continue;
            }
            let welcome_key = keys::welcome(&record.group_id, record.group_position);
            let mut batch = Batch::default();
            batch.remove(key);
            if let Some(mut welcome) = self.get::<WelcomeRecord>(&welcome_key)? {
                welcome.remaining = welcome.remaining.saturating_sub(1);
                if welcome.remaining == 0 {
                    batch.remove(welcome_key);
                } else {
                    batch.insert(welcome_key, encode(&welcome));
                }
            }
            self.kv.apply_batch(batch)?;
        }
        // Two sessions of one device may acknowledge at once: the mark only
        // moves forward.
        let _guard = self.device_locks.lock(device);
        let acked = self.inbox_counter(&keys::inbox_acked(device))?;
        if position > acked {
            self.kv
                .insert(keys::inbox_acked(device), position.to_be_bytes())?;
        }
        Ok(())
    }

    /// Log entries stored for a group (for operators and tests).
    pub fn stored_log_entries(&self, group_id: &GroupId) -> RelayResult<usize> {
        let mut count = 0;
        for item in self.kv.scan_prefix(keys::log_prefix(group_id)) {
            item?;
            count += 1;
        }
        Ok(count)
    }
}
