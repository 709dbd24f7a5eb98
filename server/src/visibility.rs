//! What is safe to deliver: entries become visible only once durable.
//!
//! A store write is applied in memory before it is flushed. If a recipient
//! were sent an entry that a crash then lost, the relay would reuse its
//! position for another entry after restarting, and a client that
//! de-duplicates by position would drop that other entry. So every stream has
//! a watermark: the newest position known to be on disk. Writers raise it
//! after their flush; delivery reads never beyond it.
//!
//! Positions in one stream are assigned in order under that stream's lock,
//! and an entry is flushed no later than every entry after it, so raising a
//! watermark to a position makes everything below it visible safely.
//!
//! At start-up everything recovered from disk is durable: the watermarks
//! start at each stream's newest position, read before any connection is
//! accepted.

use convene_proto::ids::{GroupId, Position};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::error::RelayResult;
use crate::store::{DevicePublicKey, Store};

/// Durable watermarks of every group log and every device inbox.
#[derive(Default)]
pub struct Visibility {
    groups: RwLock<HashMap<GroupId, AtomicU64>>,
    inboxes: RwLock<HashMap<DevicePublicKey, AtomicU64>>,
}

impl Visibility {
    /// Loads the watermarks of everything the store holds.
    pub fn load(store: &Store) -> RelayResult<Visibility> {
        let mut groups = HashMap::new();
        for item in store.groups() {
            let (group_id, record) = item?;
            groups.insert(group_id, AtomicU64::new(record.last_position));
        }
        let mut inboxes = HashMap::new();
        for item in store.inbox_heads() {
            let (device, head) = item?;
            inboxes.insert(device, AtomicU64::new(head));
        }
        Ok(Visibility {
            groups: RwLock::new(groups),
            inboxes: RwLock::new(inboxes),
        })
    }

    /// The newest durable position of a group log.
    pub fn group(&self, group_id: &GroupId) -> u64 {
        read(&self.groups)
            .get(group_id)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// The newest durable position of a device's inbox.
    pub fn inbox(&self, device: &DevicePublicKey) -> u64 {
        read(&self.inboxes)
            .get(device)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Raises a group's watermark after a flush covered `position`.
    pub fn publish_group(&self, group_id: &GroupId, position: Position) {
        if let Some(watermark) = read(&self.groups).get(group_id) {
            watermark.fetch_max(position.get(), Ordering::AcqRel);
            return;
        }
        write(&self.groups)
            .entry(group_id.clone())
            .or_default()
            .fetch_max(position.get(), Ordering::AcqRel);
    }

    /// Raises a device inbox's watermark after a flush covered `position`.
    pub fn publish_inbox(&self, device: &DevicePublicKey, position: u64) {
        if let Some(watermark) = read(&self.inboxes).get(device) {
            watermark.fetch_max(position, Ordering::AcqRel);
            return;
        }
        write(&self.inboxes)
            .entry(*device)
            .or_default()
            .fetch_max(position, Ordering::AcqRel);
    }
}

// The maps only ever grow and each value is an atomic: a panic while one of
// these locks is held cannot leave them inconsistent.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_only_rise() {
        let visibility = Visibility::default();
        assert_eq!(visibility.group(&crate::test_group_id(b"g")), 0);
        visibility.publish_group(&crate::test_group_id(b"g"), Position(5));
        visibility.publish_group(&crate::test_group_id(b"g"), Position(3));
        assert_eq!(visibility.group(&crate::test_group_id(b"g")), 5);
        visibility.publish_inbox(&DevicePublicKey([1; 32]), 2);
        assert_eq!(visibility.inbox(&DevicePublicKey([1; 32])), 2);
        assert_eq!(visibility.inbox(&DevicePublicKey([2; 32])), 0);
    }
}
