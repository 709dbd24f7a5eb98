//! Which submission ids each group log holds, kept in memory: how a
//! resubmitted message is recognised without a record written for it.
//!
//! A device that did not see the answer to a submission (a lost
//! connection) sends it again with the same submission id, and must be told
//! the first outcome instead of having it appended twice. A submission
//! record written beside every log entry did this, at a fifth of the bytes
//! written per message and an engine lookup that missed on every append
//! (docs/BENCHMARKS.md, issue 19). The log entry already holds its sender
//! and submission id, and stays in the log at least until its sender's
//! device has acknowledged it as the Receipt that settles the send on the
//! device (client-core `sync::on_receipt`), after which it never sends it
//! again. So the log itself answers a resubmission, through this index of
//! (sender, id) to positions.
//!
//! A log also loses entries to its bounds (`limits.max_group_backlog`
//! entries and `retention.group_entry_secs` of age) whoever has not fetched
//! them; a device that resubmits one of those after so long is answered as
//! if it were new. Commits and staff's proposals keep a submission record
//! (`Store::replay`): a commit's outcome decides whether its sender follows
//! the group, and staff proposing from outside receive no Receipt.
//!
//! A group's index is used and changed only under the group's lock, taken
//! out of the shared map while in use, so that reading a log to build it
//! never blocks other groups. It is brought up to date with the group's
//! record each time it is taken: entries appended by any path (commits,
//! outside proposals) are read from the log, and trimmed ones dropped.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::MutexGuard;

use convene_proto::ids::GroupId;

use prost::Message;

use super::records::GroupRecord;
use super::{corrupt, keys, DevicePublicKey, Store};
use crate::error::RelayResult;

/// Submission ids kept in memory in all, counted by the room allocated for
/// them (about 28 bytes each: at most about 28 MiB). Past it, indexes are
/// dropped one at a time and rebuilt from the log when next needed.
const SUBMISSION_IDS: usize = 1 << 20;
/// The most ids one group's index holds: its newest entries. A quarter of
/// [`SUBMISSION_IDS`], because a hash map's room is up to 1.75 times what
/// it holds: so a full index always fits beside others. The configuration
/// refuses a `max_group_backlog` above it, so an index holds its whole log.
pub const MAX_INDEXED_ENTRIES: usize = SUBMISSION_IDS / 4;
/// Groups whose indexes are kept at once.
const INDEXED_GROUPS: usize = 10_000;

/// A submission as the index keys it: its sender and id (ids are each
/// sender's own, as they were when a record was kept per device), hashed
/// with a key chosen at random for each process, so that no device can
/// choose ids that collide with another's. A match is checked against the
/// entry itself, so a collision costs only the recognition of a
/// resubmission, never a wrong answer.
type SubmissionKey = u64;

/// The key `order` holds for a position without an entry to match (no
/// submission hashes to it: see [`submission_key`]).
const MISSING: SubmissionKey = 0;

fn submission_key(keys: &RandomState, sender: &DevicePublicKey, id: &[u8]) -> SubmissionKey {
    let mut hasher = keys.build_hasher();
    hasher.write(&sender.0);
    hasher.write(id);
    hasher.finish().max(1)
}

/// The two fields of a stored `LogEntry` (records.rs) an index needs;
/// decoding only these skips the payload.
#[derive(Clone, PartialEq, prost::Message)]
struct LoggedSubmission {
    #[prost(bytes = "vec", tag = "2")]
    sender_device: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    submission_id: Vec<u8>,
}

/// One group's submission ids by log position.
#[derive(Debug)]
pub(super) struct GroupSubmissionIds {
    keys: RandomState,
    /// The position of `order`'s first id.
    first: u64,
    /// The key of each position from `first` on ([`MISSING`] for a
    /// position without an entry to match).
    order: VecDeque<SubmissionKey>,
    positions: HashMap<SubmissionKey, u64>,
}

impl GroupSubmissionIds {
    fn starting_at(keys: RandomState, first: u64) -> GroupSubmissionIds {
        GroupSubmissionIds {
            keys,
            first,
            order: VecDeque::new(),
            positions: HashMap::new(),
        }
    }

    /// The position after the newest id.
    fn next(&self) -> u64 {
        self.first + self.order.len() as u64
    }

    /// How many ids it holds.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// How many ids its memory would hold: what it counts against
    /// [`SUBMISSION_IDS`].
    fn weight(&self) -> usize {
        self.order.capacity().max(self.positions.capacity())
    }

    /// Gives back memory left from a longer log (after a trim).
    fn shrink(&mut self) {
        if self.weight() > 2 * self.len() + 64 {
            self.order.shrink_to_fit();
            self.positions.shrink_to_fit();
        }
    }

    /// The position of the entry `sender` submitted with `id`, if the log
    /// holds it (or, on a hash collision, of another: check the entry).
    pub(super) fn position_of(&self, sender: &DevicePublicKey, id: &[u8]) -> Option<u64> {
        let key = submission_key(&self.keys, sender, id);
        self.positions.get(&key).copied()
    }

    /// Records the sender and id of the entry at the next position.
    pub(super) fn push(&mut self, sender: &DevicePublicKey, id: &[u8]) {
        let key = submission_key(&self.keys, sender, id);
        self.make_room();
        self.positions.insert(key, self.next());
        self.order.push_back(key);
    }

    /// Records that the next position has no entry a resubmission can
    /// match.
    fn push_missing(&mut self) {
        self.make_room();
        self.order.push_back(MISSING);
    }

    /// Keeps at most [`MAX_INDEXED_ENTRIES`] of the newest positions.
    fn make_room(&mut self) {
        if self.order.len() >= MAX_INDEXED_ENTRIES {
            self.drop_first();
        }
    }

    /// Forgets the ids of positions up to `through` (trimmed from the log).
    pub(super) fn trim_through(&mut self, through: u64) {
        while self.first <= through && !self.order.is_empty() {
            self.drop_first();
        }
        self.first = self.first.max(through + 1);
    }

    fn drop_first(&mut self) {
        if let Some(key) = self.order.pop_front().filter(|key| *key != MISSING) {
            // Only if the map still points here: a key used twice points
            // at its newest position.
            if self.positions.get(&key) == Some(&self.first) {
                self.positions.remove(&key);
            }
        }
        self.first += 1;
    }
}

/// The indexes kept, bounded (see [`SUBMISSION_IDS`]).
#[derive(Default)]
pub(super) struct SubmissionIdCache {
    /// The hash key of every index of this process.
    keys: RandomState,
    groups: HashMap<GroupId, GroupSubmissionIds>,
    ids: usize,
}

impl SubmissionIdCache {
    fn take(&mut self, group_id: &GroupId) -> Option<GroupSubmissionIds> {
        let index = self.groups.remove(group_id)?;
        self.ids -= index.weight();
        Some(index)
    }

    fn keep(&mut self, group_id: &GroupId, mut index: GroupSubmissionIds) {
        self.take(group_id);
        index.shrink();
        while self.groups.len() >= INDEXED_GROUPS || self.ids + index.weight() > SUBMISSION_IDS {
            let Some(evicted) = self.groups.keys().next().cloned() else {
                break;
            };
            self.take(&evicted);
        }
        self.ids += index.weight();
        self.groups.insert(group_id.clone(), index);
    }
}

impl Store {
    /// The group's submission index, taken out of the cache and brought up
    /// to date with `group` (its record as read under its lock), and how
    /// many log entries that read. Call holding the group's lock, and give
    /// it back with [`Store::keep_submission_ids`].
    pub(super) fn take_submission_ids(
        &self,
        group_id: &GroupId,
        group: &GroupRecord,
    ) -> RelayResult<(GroupSubmissionIds, u64)> {
        let oldest = group.trimmed_through.max(
            group
                .last_position
                .saturating_sub(MAX_INDEXED_ENTRIES as u64),
        ) + 1;
        let (kept, keys) = {
            let mut cache = self.submission_ids_lock();
            (cache.take(group_id), cache.keys.clone())
        };
        let mut index = match kept {
            // Ids are noted only once their batch is applied, so an index
            // never runs past the log's end; one that did is rebuilt, not
            // trusted.
            Some(index) if index.next() <= group.last_position + 1 => index,
            _ => GroupSubmissionIds::starting_at(keys, oldest),
        };
        index.trim_through(oldest - 1);
        let mut scanned = 0;
        if index.next() <= group.last_position {
            scanned = self.read_submission_ids(group_id, &mut index, group.last_position)?;
        }
        Ok((index, scanned))
    }

    /// Gives back an index taken with [`Store::take_submission_ids`].
    pub(super) fn keep_submission_ids(&self, group_id: &GroupId, index: GroupSubmissionIds) {
        self.submission_ids_lock().keep(group_id, index);
    }

    /// Adds the ids of the log's entries from `index.next()` to `through`,
    /// and returns how many entries it read.
    fn read_submission_ids(
        &self,
        group_id: &GroupId,
        index: &mut GroupSubmissionIds,
        through: u64,
    ) -> RelayResult<u64> {
        let start = keys::log_entry(group_id, index.next());
        let end = keys::log_entry(group_id, through);
        let mut scanned = 0;
        for item in self.kv.range(start..=end) {
            let (key, raw) = item?;
            scanned += 1;
            let position = keys::trailing_u64(&key).ok_or_else(|| corrupt("log key"))?;
            // Positions absent from the log match nothing.
            while index.next() < position {
                index.push_missing();
            }
            // Only the sender and the id are decoded (the payload is
            // skipped). An entry that cannot be read, or whose sender is no
            // device, matches nothing: it must not stop the group.
            let sender = LoggedSubmission::decode(raw.as_slice())
                .ok()
                .and_then(|entry| {
                    let sender =
                        DevicePublicKey::from_field("sender_device", &entry.sender_device).ok()?;
                    Some((sender, entry.submission_id))
                });
            match sender {
                Some((sender, id)) => index.push(&sender, &id),
                None => {
                    tracing::warn!(position, "a log entry without a readable sender and id");
                    index.push_missing();
                }
            }
        }
        while index.next() <= through {
            index.push_missing();
        }
        Ok(scanned)
    }

    /// Forgets every index (tests: as after a restart).
    #[cfg(test)]
    pub(super) fn forget_submission_ids(&self) {
        let mut cache = self.submission_ids_lock();
        cache.groups.clear();
        cache.ids = 0;
    }

    /// How many groups have an index kept, and the ids they count.
    #[cfg(test)]
    pub(super) fn indexed_submission_ids(&self) -> (usize, usize) {
        let cache = self.submission_ids_lock();
        (cache.groups.len(), cache.ids)
    }

    fn submission_ids_lock(&self) -> MutexGuard<'_, SubmissionIdCache> {
        // Plain map updates cannot panic half-way.
        self.submission_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: DevicePublicKey = DevicePublicKey([1; 32]);
    const YOU: DevicePublicKey = DevicePublicKey([2; 32]);

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    fn index_from(first: u64) -> GroupSubmissionIds {
        GroupSubmissionIds::starting_at(RandomState::new(), first)
    }

    #[test]
    fn ids_map_to_their_positions_until_trimmed() {
        let mut index = index_from(5);
        for n in 0..4 {
            index.push(&ME, &id(n));
        }
        assert_eq!(index.position_of(&ME, &id(0)), Some(5));
        assert_eq!(index.position_of(&ME, &id(3)), Some(8));
        index.trim_through(6);
        assert_eq!(index.position_of(&ME, &id(0)), None);
        assert_eq!(index.position_of(&ME, &id(1)), None);
        assert_eq!(index.position_of(&ME, &id(2)), Some(7));
        assert_eq!(index.next(), 9);
        // Trimmed past its end, it starts again after the trim.
        index.trim_through(20);
        assert_eq!((index.len(), index.next()), (0, 21));
    }

    #[test]
    fn an_id_is_its_senders_own() {
        let mut index = index_from(1);
        index.push(&ME, &id(1));
        assert_eq!(index.position_of(&YOU, &id(1)), None);
        index.push(&YOU, &id(1));
        assert_eq!(index.position_of(&ME, &id(1)), Some(1));
        assert_eq!(index.position_of(&YOU, &id(1)), Some(2));
    }

    #[test]
    fn a_missing_position_matches_nothing_and_keeps_the_next_in_place() {
        let mut index = index_from(1);
        index.push(&ME, b"short");
        index.push_missing();
        index.push(&ME, &id(1));
        assert_eq!(index.position_of(&ME, b"short"), Some(1));
        assert_eq!(index.position_of(&ME, &id(1)), Some(3));
        index.trim_through(2);
        assert_eq!(index.position_of(&ME, b"short"), None);
        assert_eq!(index.position_of(&ME, &id(1)), Some(3));
    }

    #[test]
    fn an_id_used_twice_keeps_its_newest_position_when_the_first_goes() {
        let mut index = index_from(1);
        index.push(&ME, &id(1));
        index.push(&ME, &id(1));
        index.trim_through(1);
        assert_eq!(index.position_of(&ME, &id(1)), Some(2));
    }

    #[test]
    fn the_ids_of_a_stored_entry_are_read_without_its_payload() {
        let entry = super::super::records::LogEntry {
            sender_device: bytes::Bytes::copy_from_slice(&ME.0),
            submission_id: bytes::Bytes::copy_from_slice(&id(7)),
            payload: bytes::Bytes::from(vec![9u8; 300]),
            epoch: 4,
            ..Default::default()
        };
        let ids =
            LoggedSubmission::decode(prost::Message::encode_to_vec(&entry).as_slice()).unwrap();
        assert_eq!(ids.sender_device, ME.0.to_vec());
        assert_eq!(ids.submission_id, id(7).to_vec());
    }

    #[test]
    fn a_trimmed_index_gives_back_its_memory_when_kept() {
        let mut cache = SubmissionIdCache::default();
        let group = crate::test_group_id(b"g");
        let mut index = index_from(1);
        for n in 0..10_000u32 {
            index.push(&ME, &n.to_be_bytes());
        }
        index.trim_through(9_999);
        assert_eq!(index.len(), 1);
        cache.keep(&group, index);
        assert!(cache.ids < 1_000, "counted {}", cache.ids);
        assert_eq!(
            cache.groups[&group].position_of(&ME, &9_999u32.to_be_bytes()),
            Some(10_000)
        );
    }

    #[test]
    fn the_cache_makes_room_one_index_at_a_time() {
        let mut cache = SubmissionIdCache::default();
        for g in 0..INDEXED_GROUPS + 2 {
            let group = crate::test_group_id(format!("g{g}").as_bytes());
            let mut index = index_from(1);
            index.push(&ME, &id(1));
            cache.keep(&group, index);
        }
        assert_eq!(cache.groups.len(), INDEXED_GROUPS);
        let counted: usize = cache.groups.values().map(GroupSubmissionIds::weight).sum();
        assert_eq!(cache.ids, counted);
    }
}
