//! Notices in a group's history where entries were lost, so that a reader
//! sees the hole instead of a conversation that silently skips.
//!
//! Entries are lost when the relay deleted them before this device fetched
//! them (its log is bounded), when this device dropped entries it kept for
//! a group it could not follow (its own bound), when a restored copy took
//! over after the original had read on, and when a device that rejoined a
//! group discards what was encrypted for a state it never had. Each writes
//! one notice at the position of the last entry lost, counting them; the
//! app is told once, by [`Event::EntriesDropped`] or
//! [`Event::GroupRecovered`], never both for the same entries.

use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{self, MessageRecord};
use crate::types::GroupId;

impl Engine {
    /// Records, in the open operation, that `count` entries of a group up
    /// to `position` could not be read, adding to a notice already there.
    pub(super) fn note_lost(
        &mut self,
        group_id: &GroupId,
        position: u64,
        count: u64,
    ) -> Result<(), ClientError> {
        if count == 0 {
            return Ok(());
        }
        let key = records::history_key(group_id, position);
        let notice = match self.store().get_record::<MessageRecord>(&key)? {
            // A message this device read is never overwritten.
            Some(existing) if existing.lost == 0 => return Ok(()),
            Some(mut existing) => {
                existing.lost = existing.lost.saturating_add(count);
                existing
            }
            None => MessageRecord {
                group_id: group_id.to_vec(),
                position,
                received_at_ms: crate::now_ms(),
                lost: count,
                ..Default::default()
            },
        };
        self.store().put_record(key, &notice);
        Ok(())
    }

    /// Records and tells that `count` entries of a group up to `position`
    /// were dropped before this device could read them.
    pub(super) fn entries_dropped(
        &mut self,
        group_id: &GroupId,
        position: u64,
        count: u64,
    ) -> Result<(), ClientError> {
        if count == 0 {
            return Ok(());
        }
        self.note_lost(group_id, position, count)?;
        tracing::warn!(
            count,
            "entries of a group were lost before this device read them"
        );
        self.emit(Event::EntriesDropped {
            group: group_id.clone(),
            count,
        });
        Ok(())
    }
}
