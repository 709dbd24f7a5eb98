//! Each group's members kept in memory: which devices a group routes to,
//! and which of its positions each receives.
//!
//! Every message wakes each of its group's devices, every pass of a
//! device's pump checks that it still follows the group, and every append
//! checks that its sender is a member; reading member records from the
//! engine for each was, after socket writes, the largest share of the
//! relay's work per message (docs/BENCHMARKS.md, issue 19).
//!
//! A group's set is loaded under the group's lock, and every change to its
//! members' routing (an add, a removal, a leave) forgets it under the same
//! lock once the change is applied ([`Store::forget_member_set`]). So a set
//! read while holding the group's lock is never stale. One read without it
//! may miss a change applied a moment before, whose lock is not yet
//! released; nothing that change makes visible (its log position) is
//! published before then, which is what the pump relies on.
//! What a device has acknowledged is not kept here: it changes with every
//! acknowledgement, and is read from the record where it matters.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use convene_proto::ids::GroupId;

use super::records::MemberRecord;
use super::{DevicePublicKey, Store};
use crate::error::RelayResult;

/// Groups whose members are kept in memory at once, and their devices in
/// all (48 bytes each: at most 48 MiB). Past either, sets are dropped one at
/// a time (whichever the map yields first) and reloaded when next needed.
const MEMBER_SETS: usize = 10_000;
const MEMBER_SET_DEVICES: usize = 1 << 20;

/// Which of a group's positions a device receives (RFC 9420 section 12.4:
/// a removed member still receives the commit that removes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// The first position the device receives.
    pub from_position: u64,
    /// When removed: the last position it receives (the removing commit).
    /// Zero while it is a member.
    pub until_position: u64,
}

impl Routing {
    /// A current member (not removed).
    pub fn is_active(&self) -> bool {
        self.until_position == 0
    }

    /// The last position the device should receive, given the log's end.
    pub fn last_deliverable(&self, last_position: u64) -> u64 {
        if self.is_active() {
            last_position
        } else {
            self.until_position.min(last_position)
        }
    }
}

impl From<&MemberRecord> for Routing {
    fn from(record: &MemberRecord) -> Routing {
        Routing {
            from_position: record.from_position,
            until_position: record.until_position,
        }
    }
}

/// One group's devices (including removed ones that have not yet fetched
/// their removal), sorted by key.
#[derive(Debug, Default)]
pub struct MemberSet {
    members: Vec<(DevicePublicKey, Routing)>,
}

impl MemberSet {
    /// Every device the group routes to.
    pub fn devices(&self) -> impl Iterator<Item = &DevicePublicKey> {
        self.members.iter().map(|(device, _)| device)
    }

    /// How the group routes to `device`, if it does.
    pub fn get(&self, device: &DevicePublicKey) -> Option<Routing> {
        self.members
            .binary_search_by(|(key, _)| key.0.cmp(&device.0))
            .ok()
            .map(|at| self.members[at].1)
    }

    /// How many devices the group routes to.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group routes to no device.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The member sets kept, bounded (see [`MEMBER_SETS`]).
#[derive(Default)]
pub(super) struct MemberSets {
    sets: HashMap<GroupId, Arc<MemberSet>>,
    devices: usize,
}

impl MemberSets {
    fn keep(&mut self, group_id: &GroupId, set: Arc<MemberSet>) {
        if set.len() > MEMBER_SET_DEVICES {
            return;
        }
        self.forget(group_id);
        while self.sets.len() >= MEMBER_SETS || self.devices + set.len() > MEMBER_SET_DEVICES {
            let Some(evicted) = self.sets.keys().next().cloned() else {
                break;
            };
            self.forget(&evicted);
        }
        self.devices += set.len();
        self.sets.insert(group_id.clone(), set);
    }

    fn forget(&mut self, group_id: &GroupId) {
        if let Some(old) = self.sets.remove(group_id) {
            self.devices -= old.len();
        }
    }

    pub(super) fn get(&self, group_id: &GroupId) -> Option<&Arc<MemberSet>> {
        self.sets.get(group_id)
    }
}

impl Store {
    /// The group's members, from memory, loading them under the group's
    /// lock when they are not kept.
    ///
    /// Never call it holding a group's lock: lock stripes are shared by
    /// groups and not re-entrant (use [`Store::member_set_locked`]).
    pub fn member_set(&self, group_id: &GroupId) -> RelayResult<Arc<MemberSet>> {
        if let Some(set) = self.member_sets_lock().get(group_id) {
            return Ok(set.clone());
        }
        let _guard = self.group_locks.lock(group_id);
        self.member_set_locked(group_id)
    }

    /// As [`Store::member_set`], for a caller that holds the group's lock.
    pub(super) fn member_set_locked(&self, group_id: &GroupId) -> RelayResult<Arc<MemberSet>> {
        if let Some(set) = self.member_sets_lock().get(group_id) {
            return Ok(set.clone());
        }
        let mut members: Vec<(DevicePublicKey, Routing)> = self
            .members(group_id)?
            .iter()
            .map(|(device, record)| (*device, Routing::from(record)))
            .collect();
        members.sort_unstable_by_key(|(device, _)| device.0);
        let set = Arc::new(MemberSet { members });
        self.member_sets_lock().keep(group_id, set.clone());
        Ok(set)
    }

    /// Whether the group routes to `device` (as `membership` being
    /// `Some`), answered from memory when the group's members are kept
    /// there (an acknowledgement asks this for every group it names).
    /// Otherwise reads the one record and keeps nothing, so that group ids
    /// a device makes up take no memory.
    pub fn routes_to(&self, group_id: &GroupId, device: &DevicePublicKey) -> RelayResult<bool> {
        if let Some(set) = self.member_sets_lock().get(group_id) {
            return Ok(set.get(device).is_some());
        }
        Ok(self.membership(group_id, device)?.is_some())
    }

    /// Forgets a group's members. Call holding the group's lock, after
    /// applying a batch that adds, deletes or changes the routing of one of
    /// its member records.
    pub(super) fn forget_member_set(&self, group_id: &GroupId) {
        self.member_sets_lock().forget(group_id);
    }

    pub(super) fn member_sets_lock(&self) -> MutexGuard<'_, MemberSets> {
        // Plain map updates cannot panic half-way.
        self.member_sets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(devices: usize) -> Arc<MemberSet> {
        Arc::new(MemberSet {
            members: (0..devices)
                .map(|i| {
                    let mut key = [0u8; 32];
                    key[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let routing = Routing {
                        from_position: 1,
                        until_position: 0,
                    };
                    (DevicePublicKey(key), routing)
                })
                .collect(),
        })
    }

    #[test]
    fn past_its_bound_one_set_makes_room_and_the_rest_are_kept() {
        let mut sets = MemberSets::default();
        for i in 0..MEMBER_SETS as u32 {
            sets.keep(&crate::test_group_id(&i.to_be_bytes()), set_of(2));
        }
        assert_eq!(
            (sets.sets.len(), sets.devices),
            (MEMBER_SETS, 2 * MEMBER_SETS)
        );
        let newest = crate::test_group_id(b"newest");
        sets.keep(&newest, set_of(3));
        assert_eq!(sets.sets.len(), MEMBER_SETS, "one made room, not all");
        assert_eq!(sets.devices, 2 * (MEMBER_SETS - 1) + 3);
        assert!(sets.get(&newest).is_some());
        // Kept again, a set replaces itself and counts once.
        sets.keep(&newest, set_of(1));
        assert_eq!(sets.devices, 2 * (MEMBER_SETS - 1) + 1);
    }

    #[test]
    fn a_set_answers_for_its_own_devices_and_no_other() {
        let set = set_of(100);
        let routing = set.get(&set.members[57].0);
        assert_eq!(routing, Some(set.members[57].1));
        assert_eq!(set.get(&DevicePublicKey([0xff; 32])), None);
    }
}
