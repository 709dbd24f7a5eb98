//! The start-up sweep of records that name no valid group id.
//!
//! A relay could once push entries for a group id of a length no group
//! can have (empty, or over 64 bytes), and the client kept them (held
//! entries, a placeholder group record, an outbox intent). Such a group can
//! never exist, so they can never be used; left in place they would stop
//! the device from starting. They are deleted, durably, before anything
//! else reads the store, so that everything after may trust a stored group
//! id.

use prost::Message;

use crate::store::records::{self, stored_group_id, GroupRecord, IntentRecord};
use crate::store::{LocalStore, StoreError};

/// Deletes every group record and intent whose group id is not a valid
/// one and, with the `held_swept` held entries the start-up count already
/// deleted in the open operation, makes it durable; returns how many in
/// all.
pub(super) fn sweep_invalid_group_ids(
    store: &LocalStore,
    held_swept: usize,
) -> Result<usize, StoreError> {
    let mut swept = held_swept;
    swept += sweep::<GroupRecord>(store, &records::groups_prefix(), |r| &r.group_id)?;
    swept += sweep::<IntentRecord>(store, &records::outbox_prefix(), |i| &i.group_id)?;
    if swept > 0 {
        tracing::warn!(
            swept,
            "deleted stored entries of group ids no group can have"
        );
        store.commit_durably()?;
    }
    Ok(swept)
}

fn sweep<R: Message + Default>(
    store: &LocalStore,
    prefix: &[u8],
    group_id: impl Fn(&R) -> &[u8],
) -> Result<usize, StoreError> {
    let mut invalid = Vec::new();
    for item in store.scan::<R>(prefix) {
        let (key, record) = item?;
        if stored_group_id(group_id(&record)).is_err() {
            invalid.push(key);
        }
    }
    let swept = invalid.len();
    for key in invalid {
        store.delete(key);
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKey;
    use convene_proto::relay::GroupMessage;

    #[test]
    fn entries_of_impossible_group_ids_go_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), &StoreKey::from_bytes([4; 32])).unwrap();
        let too_long = vec![1; 65];
        for group_id in [Vec::new(), too_long.clone(), b"a real group".to_vec()] {
            let held = GroupMessage {
                group_id: group_id.clone().into(),
                position: 1,
                ..Default::default()
            };
            store.put_record(records::held_key(&group_id, 1), &held);
            let record = GroupRecord {
                group_id: group_id.clone(),
                ..Default::default()
            };
            store.put_record(records::group_key(&group_id), &record);
        }
        let intent = IntentRecord {
            id: 7,
            group_id: too_long,
            ..Default::default()
        };
        store.put_record(records::intent_key(7), &intent);
        store.commit_durably().unwrap();

        let (_, held_swept) = super::super::held::HeldEntries::load(&store).unwrap();
        assert_eq!(held_swept, 2);
        assert_eq!(sweep_invalid_group_ids(&store, held_swept).unwrap(), 5);

        let held: Vec<_> = store
            .scan::<GroupMessage>(&records::all_held_prefix())
            .collect::<Result<_, _>>()
            .unwrap();
        let groups: Vec<_> = store
            .scan::<GroupRecord>(&records::groups_prefix())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1.group_id, b"a real group");
        assert!(store
            .get_committed_record::<IntentRecord>(&records::intent_key(7))
            .unwrap()
            .is_none());
    }
}
