//! Recently appended group messages, already encoded as the push frames
//! their recipients get.
//!
//! Every member other than the sender receives exactly the same
//! `GroupMessage` push, so reading it back from the store and encoding it
//! once per member device would make, for a cohort of 33, thirty-two
//! copies of the same bytes. The handler that accepts a message encodes it
//! once, and each member's pump sends a reference to those bytes. The cache
//! only speeds delivery up: an entry missing from it (evicted, a commit, a
//! restarted relay) is read from the store, so what is delivered never
//! depends on it.
//!
//! It is bounded per group and in all, so a busy or hostile group cannot
//! grow it without limit.

use convene_proto::ids::{GroupId, Position};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use crate::locked::lock;
use crate::store::DevicePublicKey;

/// Entries kept per group: more than a busy cohort has in flight.
const PER_GROUP: usize = 4_096;
/// Frame bytes kept per group.
const PER_GROUP_BYTES: usize = 2 * 1024 * 1024;

/// One appended message, encoded for its recipients.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    /// The device that sent it: it gets `receipt` instead of `frame`.
    pub sender: DevicePublicKey,
    /// The `GroupMessage` push for every other member.
    pub frame: Bytes,
    /// The `Receipt` push for the sender.
    pub receipt: Bytes,
    /// The payload's length, which counts against a device's push window.
    pub payload_len: usize,
}

#[derive(Default)]
struct GroupFrames {
    /// By position. Handlers insert after releasing the group's lock, so
    /// positions may arrive slightly out of order.
    entries: BTreeMap<Position, CachedEntry>,
    bytes: usize,
}

impl GroupFrames {
    /// Drops the oldest entry; returns its size.
    fn pop_oldest(&mut self) -> usize {
        match self.entries.pop_first() {
            Some((_, entry)) => {
                let size = entry.size();
                self.bytes -= size;
                size
            }
            None => 0,
        }
    }
}

impl CachedEntry {
    fn size(&self) -> usize {
        self.frame.len() + self.receipt.len()
    }
}

#[derive(Default)]
struct Inner {
    groups: HashMap<GroupId, GroupFrames>,
    /// Frame bytes held in all.
    total: usize,
}

/// The cache, shared by every connection.
pub struct FrameCache {
    inner: Mutex<Inner>,
    total_budget: usize,
}

impl FrameCache {
    /// A cache holding at most `total_budget` bytes of frames.
    pub fn new(total_budget: usize) -> FrameCache {
        FrameCache {
            inner: Mutex::new(Inner::default()),
            total_budget,
        }
    }

    /// Keeps the entry appended at `position`, making room by forgetting
    /// the group's oldest entries; when the whole cache is full the entry
    /// is not kept (its recipients read it from the store).
    pub fn insert(&self, group_id: &GroupId, position: Position, entry: CachedEntry) {
        let size = entry.size();
        let mut inner = lock(&self.inner);
        let Inner { groups, total } = &mut *inner;
        let group = groups.entry(group_id.clone()).or_default();
        while !group.entries.is_empty()
            && (group.entries.len() >= PER_GROUP || group.bytes + size > PER_GROUP_BYTES)
        {
            *total -= group.pop_oldest();
        }
        if *total + size > self.total_budget {
            if group.entries.is_empty() {
                groups.remove(group_id);
            }
            return;
        }
        if let Some(old) = group.entries.insert(position, entry) {
            group.bytes -= old.size();
            *total -= old.size();
        }
        group.bytes += size;
        *total += size;
    }

    /// The entry at `position` of a group, if still cached.
    pub fn get(&self, group_id: &GroupId, position: Position) -> Option<CachedEntry> {
        let inner = lock(&self.inner);
        inner.groups.get(group_id)?.entries.get(&position).cloned()
    }

    /// Forgets a group's entries up to `position` (every member has them).
    pub fn trim(&self, group_id: &GroupId, position: Position) {
        let mut inner = lock(&self.inner);
        let Inner { groups, total } = &mut *inner;
        let Some(group) = groups.get_mut(group_id) else {
            return;
        };
        while group
            .entries
            .first_key_value()
            .is_some_and(|(p, _)| *p <= position)
        {
            *total -= group.pop_oldest();
        }
        if group.entries.is_empty() {
            groups.remove(group_id);
        }
    }

    /// Bytes of frames held.
    pub fn bytes(&self) -> usize {
        lock(&self.inner).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(byte: u8) -> CachedEntry {
        CachedEntry {
            sender: DevicePublicKey([byte; 32]),
            frame: Bytes::from(vec![byte; 100]),
            receipt: Bytes::from(vec![byte; 10]),
            payload_len: 80,
        }
    }

    #[test]
    fn serves_consecutive_positions_and_forgets_trimmed_ones() {
        let cache = FrameCache::new(1 << 20);
        for position in 5..10 {
            cache.insert(
                &crate::test_group_id(b"g"),
                Position(position),
                entry(position as u8),
            );
        }
        assert!(cache
            .get(&crate::test_group_id(b"g"), Position(4))
            .is_none());
        assert_eq!(
            cache
                .get(&crate::test_group_id(b"g"), Position(7))
                .map(|e| e.sender),
            Some(DevicePublicKey([7; 32]))
        );
        assert!(cache
            .get(&crate::test_group_id(b"g"), Position(10))
            .is_none());
        cache.trim(&crate::test_group_id(b"g"), Position(7));
        assert!(cache
            .get(&crate::test_group_id(b"g"), Position(7))
            .is_none());
        assert!(cache
            .get(&crate::test_group_id(b"g"), Position(8))
            .is_some());
        assert_eq!(cache.bytes(), 2 * 110);
    }

    #[test]
    fn positions_may_arrive_out_of_order() {
        let cache = FrameCache::new(1 << 20);
        cache.insert(&crate::test_group_id(b"g"), Position(3), entry(3));
        cache.insert(&crate::test_group_id(b"g"), Position(2), entry(2));
        assert_eq!(
            cache
                .get(&crate::test_group_id(b"g"), Position(2))
                .map(|e| e.sender),
            Some(DevicePublicKey([2; 32]))
        );
        assert_eq!(
            cache
                .get(&crate::test_group_id(b"g"), Position(3))
                .map(|e| e.sender),
            Some(DevicePublicKey([3; 32]))
        );
        assert_eq!(cache.bytes(), 220);
    }

    #[test]
    fn stays_within_its_budgets() {
        let cache = FrameCache::new(300);
        for position in 1..=10 {
            cache.insert(&crate::test_group_id(b"a"), Position(position), entry(1));
        }
        assert!(cache.bytes() <= 300);
        for position in 1..=(PER_GROUP as u64 + 10) {
            cache.insert(&crate::test_group_id(b"b"), Position(position), entry(2));
        }
        assert!(cache.bytes() <= 300);

        let big = FrameCache::new(usize::MAX);
        for position in 1..=(PER_GROUP as u64 + 10) {
            big.insert(&crate::test_group_id(b"c"), Position(position), entry(3));
        }
        assert!(big.get(&crate::test_group_id(b"c"), Position(10)).is_none());
        assert!(big
            .get(&crate::test_group_id(b"c"), Position(PER_GROUP as u64 + 10))
            .is_some());
        assert_eq!(big.bytes(), PER_GROUP * 110);
    }
}
