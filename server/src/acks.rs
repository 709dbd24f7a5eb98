//! Group acknowledgements, gathered in memory and written in batches.
//!
//! A busy device acknowledges every burst of pushes; writing each to the
//! store (and waiting for a flush) would make acknowledgements cost as much
//! as the messages themselves. An acknowledgement need not be durable: if the
//! relay loses one in a crash, the device is sent those entries again and
//! its client drops what it already has. So the latest position per device
//! and group is kept here, the device's pump uses it at once, and the
//! maintenance task writes each group's to the store at the group's turn,
//! once every 2 s ([`crate::maintenance`]). An entry leaves the buffer only
//! once written, and only if no newer position arrived meanwhile, so what
//! the buffer and the store say together is never behind.
//!
//! The buffer is bounded: past its limit, an acknowledgement is written to
//! the store at once.

use convene_proto::ids::{GroupId, Position};
use std::collections::HashMap;
use std::sync::Mutex;

use crate::locked::lock;
use crate::store::DevicePublicKey;

/// (group, device) pairs held at most before acknowledgements go straight
/// to the store.
const MAX_PENDING: usize = 100_000;

/// Acknowledged positions not yet written to the store.
#[derive(Default)]
pub struct AckBuffer {
    pending: Mutex<HashMap<(GroupId, DevicePublicKey), Position>>,
}

impl AckBuffer {
    /// Keeps `position` for the device's group; `false` if the buffer is
    /// full and the caller must write it itself.
    pub fn record(&self, group_id: &GroupId, device: &DevicePublicKey, position: Position) -> bool {
        let mut pending = lock(&self.pending);
        if let Some(kept) = pending.get_mut(&(group_id.clone(), *device)) {
            *kept = (*kept).max(position);
            return true;
        }
        if pending.len() >= MAX_PENDING {
            return false;
        }
        pending.insert((group_id.clone(), *device), position);
        true
    }

    /// The newest acknowledged position not yet written, if any.
    pub fn get(&self, group_id: &GroupId, device: &DevicePublicKey) -> Option<Position> {
        lock(&self.pending)
            .get(&(group_id.clone(), *device))
            .copied()
    }

    /// Everything gathered (for tests: the relay writes by turns).
    #[cfg(test)]
    pub fn pending(&self) -> Vec<(GroupId, DevicePublicKey, Position)> {
        self.pending_where(|_| true)
    }

    /// What was gathered for the groups `due` accepts, to be written; it
    /// stays in the buffer (and is what [`AckBuffer::get`] answers) until
    /// [`AckBuffer::written`] is told of it.
    pub fn pending_where(
        &self,
        due: impl Fn(&GroupId) -> bool,
    ) -> Vec<(GroupId, DevicePublicKey, Position)> {
        lock(&self.pending)
            .iter()
            .filter(|((group_id, _), _)| due(group_id))
            .map(|((group_id, device), position)| (group_id.clone(), *device, *position))
            .collect()
    }

    /// Forgets an entry now in the store, unless a newer position arrived
    /// since it was read.
    pub fn written(&self, group_id: &GroupId, device: &DevicePublicKey, position: Position) {
        let mut pending = lock(&self.pending);
        let key = (group_id.clone(), *device);
        if pending.get(&key) == Some(&position) {
            pending.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_position_until_it_is_written() {
        let acks = AckBuffer::default();
        let (g, d) = (crate::test_group_id(b"g"), DevicePublicKey([1; 32]));
        assert!(acks.record(&g, &d, Position(5)));
        assert!(acks.record(&g, &d, Position(3)));
        assert_eq!(acks.get(&g, &d), Some(Position(5)));
        assert_eq!(acks.get(&g, &DevicePublicKey([2; 32])), None);
        assert_eq!(acks.pending(), vec![(g.clone(), d, Position(5))]);
        // Still answered while it is being written.
        assert_eq!(acks.get(&g, &d), Some(Position(5)));
        acks.written(&g, &d, Position(5));
        assert_eq!(acks.get(&g, &d), None);
    }

    #[test]
    fn a_position_newer_than_the_one_written_stays() {
        let acks = AckBuffer::default();
        let (g, d) = (crate::test_group_id(b"g"), DevicePublicKey([1; 32]));
        assert!(acks.record(&g, &d, Position(5)));
        let read = acks.pending();
        assert!(acks.record(&g, &d, Position(8)));
        for (group_id, device, position) in read {
            acks.written(&group_id, &device, position);
        }
        assert_eq!(acks.get(&g, &d), Some(Position(8)));
    }

    #[test]
    fn gives_only_the_groups_whose_turn_it_is() {
        let acks = AckBuffer::default();
        let (due, later) = (crate::test_group_id(b"due"), crate::test_group_id(b"later"));
        assert!(acks.record(&due, &DevicePublicKey([1; 32]), Position(2)));
        assert!(acks.record(&later, &DevicePublicKey([1; 32]), Position(7)));
        assert_eq!(
            acks.pending_where(|group| *group == due),
            vec![(due.clone(), DevicePublicKey([1; 32]), Position(2))]
        );
    }
}
