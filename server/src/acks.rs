//! Group acknowledgements, gathered in memory and written in batches.
//!
//! A busy device acknowledges every burst of pushes; writing each to the
//! store (and waiting for a flush) would make acknowledgements cost as much
//! as the messages themselves. An acknowledgement need not be durable: if the
//! relay loses one in a crash, the device is sent those entries again and
//! its client drops what it already has. So the latest position per device
//! and group is kept here, the device's pump uses it at once, and the
//! maintenance task writes them all to the store a few times a second.
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

    /// Takes everything gathered, for writing.
    pub fn take(&self) -> Vec<(GroupId, DevicePublicKey, Position)> {
        self.take_where(|_| true)
    }

    /// Takes what was gathered for the groups `due` accepts, for writing;
    /// the rest stays (and is still what [`AckBuffer::get`] answers).
    pub fn take_where(
        &self,
        due: impl Fn(&GroupId) -> bool,
    ) -> Vec<(GroupId, DevicePublicKey, Position)> {
        let mut taken = Vec::new();
        lock(&self.pending).retain(|(group_id, device), position| {
            let take = due(group_id);
            if take {
                taken.push((group_id.clone(), *device, *position));
            }
            !take
        });
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_position_until_taken() {
        let acks = AckBuffer::default();
        assert!(acks.record(
            &crate::test_group_id(b"g"),
            &DevicePublicKey([1; 32]),
            Position(5)
        ));
        assert!(acks.record(
            &crate::test_group_id(b"g"),
            &DevicePublicKey([1; 32]),
            Position(3)
        ));
        assert_eq!(
            acks.get(&crate::test_group_id(b"g"), &DevicePublicKey([1; 32])),
            Some(Position(5))
        );
        assert_eq!(
            acks.get(&crate::test_group_id(b"g"), &DevicePublicKey([2; 32])),
            None
        );
        assert_eq!(
            acks.take(),
            vec![(
                crate::test_group_id(b"g"),
                DevicePublicKey([1; 32]),
                Position(5)
            )]
        );
        assert_eq!(
            acks.get(&crate::test_group_id(b"g"), &DevicePublicKey([1; 32])),
            None
        );
    }

    #[test]
    fn takes_only_the_groups_whose_turn_it_is() {
        let acks = AckBuffer::default();
        let (due, later) = (crate::test_group_id(b"due"), crate::test_group_id(b"later"));
        assert!(acks.record(&due, &DevicePublicKey([1; 32]), Position(2)));
        assert!(acks.record(&later, &DevicePublicKey([1; 32]), Position(7)));
        assert_eq!(
            acks.take_where(|group| *group == due),
            vec![(due.clone(), DevicePublicKey([1; 32]), Position(2))]
        );
        // The other group's stays, still seen by the pump.
        assert_eq!(
            acks.get(&later, &DevicePublicKey([1; 32])),
            Some(Position(7))
        );
        assert_eq!(acks.get(&due, &DevicePublicKey([1; 32])), None);
    }
}
