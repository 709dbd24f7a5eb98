//! Group entries this device has taken from the relay but cannot process
//! yet: for a group whose Welcome has not come, or one it cannot follow
//! until it is re-added.
//!
//! An entry the client cannot process must not block anything: it is
//! moved into the local store in the same operation that advances nothing
//! else, and then acknowledged like any other, so the relay's window for
//! that stream keeps moving and no other stream waits. What is kept is
//! bounded per group and in all; past a bound the oldest entries of the
//! group go, and the app is told how many ([`Event::EntriesDropped`]).
//! Entries kept for a group are processed, in log order, once the device
//! joins it; those from before the point it joined at were encrypted for a
//! state it never had, and are counted as missed.

use std::collections::HashMap;

use convene_proto::relay::{GroupMessage, MessageKind};
use prost::Message as _;

use super::Engine;
use crate::error::ClientError;
use crate::store::records::{self, GroupRecord};
use crate::store::LocalStore;
use crate::types::GroupId;

/// Entries kept for one group at most.
const MAX_PER_GROUP: u64 = 1_000;
/// Bytes kept for one group at most.
const MAX_BYTES_PER_GROUP: u64 = 8 * 1024 * 1024;
/// Entries kept in all at most.
const MAX_IN_ALL: u64 = 10_000;
/// Bytes kept in all at most.
const MAX_BYTES_IN_ALL: u64 = 64 * 1024 * 1024;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    count: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }

    fn remove(&mut self, bytes: u64) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// How much is held, per group and in all (the entries are in the store).
#[derive(Debug, Default)]
pub(super) struct HeldEntries {
    groups: HashMap<GroupId, Tally>,
    all: Tally,
    /// Entries dropped since the app was last told, per group: how many,
    /// and the last one's position.
    dropped: HashMap<GroupId, (u64, u64)>,
}

impl HeldEntries {
    /// Counts what a store holds (at start-up), and deletes (in the open
    /// operation) the entries of group ids no group can have (see
    /// `sweep`); returns how many it deleted.
    pub(super) fn load(store: &LocalStore) -> Result<(HeldEntries, usize), ClientError> {
        let mut held = HeldEntries::default();
        let mut impossible = Vec::new();
        for item in store.scan::<GroupMessage>(&records::all_held_prefix()) {
            let (key, message) = item?;
            let Ok(group_id) = records::stored_group_id(&message.group_id) else {
                impossible.push(key);
                continue;
            };
            let bytes = message.encoded_len() as u64;
            held.groups.entry(group_id).or_default().add(bytes);
            held.all.add(bytes);
        }
        let swept = impossible.len();
        for key in impossible {
            store.delete(key);
        }
        Ok((held, swept))
    }

    /// Groups with entries held.
    pub(super) fn groups(&self) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|(_, t)| t.count > 0)
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Which group must give up an entry before `adding` more bytes are
    /// kept for `group_id`: the group itself past its own bound, or past
    /// the bound in all, the group holding the most (so that one flooded
    /// group cannot push out another's entries).
    fn to_make_room(&self, group_id: &GroupId, adding: u64) -> Option<GroupId> {
        let group = self.groups.get(group_id).copied().unwrap_or_default();
        if group.count + 1 > MAX_PER_GROUP || group.bytes + adding > MAX_BYTES_PER_GROUP {
            return Some(group_id.clone());
        }
        if self.all.count + 1 > MAX_IN_ALL || self.all.bytes + adding > MAX_BYTES_IN_ALL {
            return self
                .groups
                .iter()
                .max_by_key(|(_, tally)| tally.bytes)
                .map(|(group, _)| group.clone());
        }
        None
    }
}

impl Engine {
    /// Keeps `message` for later, in the open operation, making room within
    /// the bounds by dropping the group's oldest entries.
    pub(super) fn hold(&mut self, message: &GroupMessage) -> Result<(), ClientError> {
        let group_id = GroupId::from_field(&message.group_id)?;
        let key = records::held_key(&group_id, message.position);
        if self.store().get(&key)?.is_some() {
            return Ok(());
        }
        let bytes = message.encoded_len() as u64;
        while let Some(victim) = self.held.to_make_room(&group_id, bytes) {
            if !self.drop_oldest_held(&victim)? {
                // Nothing left to give up: the new entry goes.
                self.note_dropped(&group_id, message.position);
                return Ok(());
            }
        }
        self.store().put(key, message.encode_to_vec());
        self.held.groups.entry(group_id).or_default().add(bytes);
        self.held.all.add(bytes);
        Ok(())
    }

    /// Drops the group's oldest held entry; false when it has none.
    fn drop_oldest_held(&mut self, group_id: &GroupId) -> Result<bool, ClientError> {
        // The scan sees committed entries; one already dropped in the open
        // operation is passed over.
        let mut oldest = None;
        for item in self
            .store()
            .scan::<GroupMessage>(&records::held_prefix(group_id))
        {
            let (key, message) = item?;
            if self.store().get(&key)?.is_some() {
                oldest = Some((key, message));
                break;
            }
        }
        let Some((key, message)) = oldest else {
            return Ok(false);
        };
        self.store().delete(key);
        self.forget_held(group_id, message.encoded_len() as u64);
        self.note_dropped(group_id, message.position);
        Ok(true)
    }

    pub(super) fn forget_held(&mut self, group_id: &GroupId, bytes: u64) {
        if let Some(tally) = self.held.groups.get_mut(group_id) {
            tally.remove(bytes);
            if tally.count == 0 {
                self.held.groups.remove(group_id);
            }
        }
        self.held.all.remove(bytes);
    }

    fn note_dropped(&mut self, group_id: &GroupId, position: u64) {
        let (count, last) = self.held.dropped.entry(group_id.clone()).or_default();
        *count += 1;
        *last = (*last).max(position);
    }

    /// Takes every entry held for a group, in log order, deleting them in
    /// the open operation. Only committed entries are seen: call between
    /// operations' commits (each push commits its own).
    pub(super) fn take_held(
        &mut self,
        group_id: &GroupId,
    ) -> Result<Vec<GroupMessage>, ClientError> {
        let held: Vec<(Vec<u8>, GroupMessage)> = self
            .store()
            .scan::<GroupMessage>(&records::held_prefix(group_id))
            .collect::<Result<_, _>>()?;
        let mut messages = Vec::with_capacity(held.len());
        for (key, message) in held {
            self.store().delete(key);
            self.forget_held(group_id, message.encoded_len() as u64);
            messages.push(message);
        }
        Ok(messages)
    }

    /// Processes what was held for a group that this device now follows
    /// from `joined_at` on: earlier entries go (they were encrypted for a
    /// state this device never had), later ones are applied in order until
    /// one must wait again. Each entry leaves the store in the operation
    /// that applies it, so a failure or a crash loses none of the rest.
    pub(super) fn release_held(
        &mut self,
        group_id: &GroupId,
        joined_at: u64,
    ) -> Result<(), ClientError> {
        let held: Vec<(Vec<u8>, GroupMessage)> = self
            .store()
            .scan::<GroupMessage>(&records::held_prefix(group_id))
            .collect::<Result<_, _>>()?;
        let (before, after): (Vec<_>, Vec<_>) =
            held.into_iter().partition(|(_, m)| m.position <= joined_at);
        for (key, message) in before {
            self.store().delete(key);
            self.forget_held(group_id, message.encoded_len() as u64);
        }
        self.store().commit()?;
        for (key, message) in after {
            self.store().delete(key);
            self.forget_held(group_id, message.encoded_len() as u64);
            self.on_group_message(message)?;
        }
        Ok(())
    }

    /// Application entries held for a group up to `position`: messages
    /// this device will never read.
    pub(super) fn held_application_entries(
        &self,
        group_id: &GroupId,
        position: u64,
    ) -> Result<u64, ClientError> {
        let mut count = 0;
        for item in self
            .store()
            .scan::<GroupMessage>(&records::held_prefix(group_id))
        {
            let (_, message) = item?;
            if message.position > position {
                break;
            }
            if message.kind == MessageKind::Application as i32 {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Tells the app about entries dropped since it was last told, and
    /// notes them in their groups' histories (in the open operation).
    pub(super) fn report_dropped(&mut self) -> Result<(), ClientError> {
        for (group_id, (count, last)) in std::mem::take(&mut self.held.dropped) {
            if let Some(mut record) = self.group_record(&group_id)? {
                record.missed = record.missed.saturating_add(count);
                self.store()
                    .put_record(records::group_key(&group_id), &record);
            }
            self.entries_dropped(&group_id, last, count)?;
        }
        Ok(())
    }

    /// Whether anything is held for a group with no record yet.
    pub(super) fn held_without_record(&self) -> Result<Vec<GroupId>, ClientError> {
        let mut unknown = Vec::new();
        for group_id in self.held.groups() {
            if self.group_record(&group_id)?.is_none() {
                unknown.push(group_id);
            }
        }
        Ok(unknown)
    }
}

/// A record for a group this device is in at the relay without holding
/// its MLS state (its Welcome failed or never came).
pub(super) fn pending_join_record(group_id: &GroupId) -> GroupRecord {
    GroupRecord {
        group_id: group_id.to_vec(),
        active: true,
        pending_join: true,
        joined_at_ms: crate::now_ms(),
        ..Default::default()
    }
}
