//! Tests of how a resubmitted message is recognised from the group log
//! itself, with no record written per message (see `submission_ids`).

use convene_proto::ids::Position;

use super::group_tests::{commit, fixture, message, refusal, Fixture, G, LIMITS};
use super::*;
use crate::error::Refusal;

/// The fixture's group with device 2 added by device 1 (epoch 1).
fn fixture_with_two_members() -> Fixture {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"add", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    f
}

/// Messages "m1" and "m2" from device 1, then the second's log entry
/// deleted behind the store's back (its indexes still kept).
fn two_messages_then_the_second_entry_lost() -> Fixture {
    let f = fixture();
    for id in [b"m1", b"m2"] {
        f.store
            .append_message(&message(&f.store, id, 1), LIMITS, 5)
            .unwrap();
    }
    overwrite_log_entry(&f.store, 2, None);
    f
}

/// Writes (or, given `None`, deletes) a log entry directly in the engine.
fn overwrite_log_entry(store: &Store, position: u64, raw: Option<&[u8]>) {
    let mut batch = engine::Batch::default();
    match raw {
        Some(raw) => batch.insert(keys::log_entry(&G, position), raw),
        None => batch.remove(keys::log_entry(&G, position)),
    }
    store.kv.apply_batch(batch).unwrap();
}

fn submission_records(store: &Store) -> usize {
    store.kv.scan_prefix(vec![keys::SUBMISSION]).count()
}

#[test]
fn a_members_message_writes_no_submission_record() {
    let f = fixture();
    f.store
        .append_message(&message(&f.store, b"m1", 1), LIMITS, 5)
        .unwrap();
    assert_eq!(submission_records(&f.store), 0);
    // A commit still keeps its record: its replay must outlive its entry.
    f.store
        .submit_commit(&commit(0, b"c1", 1, &[], &[]), LIMITS, 6)
        .unwrap();
    assert_eq!(submission_records(&f.store), 1);
}

#[test]
fn a_resubmitted_message_is_replayed_after_a_restart() {
    let Fixture { _dir: dir, store } = fixture();
    let first = store
        .append_message(&message(&store, b"m1", 1), LIMITS, 5)
        .unwrap();
    store
        .append_message(&message(&store, b"m2", 1), LIMITS, 5)
        .unwrap();
    drop(store);

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let again = store
        .append_message(&message(&store, b"m1", 1), LIMITS, 9)
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.position, again.epoch), (first.position, first.epoch));
    assert_eq!(store.group(&G).unwrap().unwrap().last_position, 2);
}

#[test]
fn a_resubmission_is_recognised_across_entries_appended_by_commits() {
    let f = fixture();
    let first = f
        .store
        .append_message(&message(&f.store, b"m1", 1), LIMITS, 5)
        .unwrap();
    f.store
        .submit_commit(&commit(0, b"c1", 1, &[], &[]), LIMITS, 6)
        .unwrap();
    let again = f
        .store
        .append_message(&message(&f.store, b"m1", 1), LIMITS, 7)
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.position, again.epoch), (first.position, first.epoch));
    // A fresh id after the commit is a new entry in the new epoch.
    let next = f
        .store
        .append_message(&message(&f.store, b"m2", 1), LIMITS, 8)
        .unwrap();
    assert!(!next.replayed);
    assert_eq!(next.position, Position(3));
    assert_eq!(next.epoch.get(), 1);
}

#[test]
fn a_removed_member_is_still_told_the_outcome_of_what_it_sent_before() {
    let f = fixture_with_two_members();
    let sent = f
        .store
        .append_message(&message(&f.store, b"m1", 2), LIMITS, 6)
        .unwrap();
    f.store
        .submit_commit(
            &commit(1, b"remove", 1, &[], &[DevicePublicKey([2; 32])]),
            LIMITS,
            7,
        )
        .unwrap();
    let mut resent = message(&f.store, b"m1", 2);
    resent.epoch = Some(sent.epoch);
    let again = f.store.append_message(&resent, LIMITS, 8).unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, sent.position);
    // Anything new from it is refused.
    assert_eq!(
        refusal(
            f.store
                .append_message(&message(&f.store, b"m2", 2), LIMITS, 9)
        ),
        Refusal::NotAMember
    );
}

#[test]
fn two_devices_using_the_same_submission_id_each_get_their_own_outcome() {
    // Submission ids are the sender's own (the relay once kept them per
    // device): another device's use of the same bytes is another submission.
    let f = fixture_with_two_members();
    let mine = f
        .store
        .append_message(&message(&f.store, b"same", 1), LIMITS, 6)
        .unwrap();
    let theirs = f
        .store
        .append_message(&message(&f.store, b"same", 2), LIMITS, 7)
        .unwrap();
    assert!(!theirs.replayed);
    assert_ne!(theirs.position, mine.position);
    for (sender, first) in [(1, &mine), (2, &theirs)] {
        let again = f
            .store
            .append_message(&message(&f.store, b"same", sender), LIMITS, 8)
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.position, first.position);
    }
    assert_eq!(f.store.group(&G).unwrap().unwrap().last_position, 3);
}

#[test]
fn a_device_that_is_not_a_member_builds_no_index() {
    let f = fixture();
    f.store
        .append_message(&message(&f.store, b"m1", 1), LIMITS, 5)
        .unwrap();
    f.store.forget_submission_ids();
    assert_eq!(
        refusal(
            f.store
                .append_message(&message(&f.store, b"m2", 3), LIMITS, 6)
        ),
        Refusal::NotAMember
    );
    assert_eq!(f.store.indexed_submission_ids(), (0, 0));
}

#[test]
fn a_resubmission_is_recognised_when_the_logs_newest_entry_is_missing() {
    // The newest entry is lost without a trim (as no code path does today):
    // the index must still give the next entry the next position.
    let f = two_messages_then_the_second_entry_lost();
    f.store.forget_submission_ids();
    let third = f
        .store
        .append_message(&message(&f.store, b"m3", 1), LIMITS, 6)
        .unwrap();
    assert_eq!(third.position, Position(3));
    let again = f
        .store
        .append_message(&message(&f.store, b"m3", 1), LIMITS, 7)
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, Position(3));
}

#[test]
fn an_unreadable_log_entry_does_not_stop_the_group() {
    let f = fixture();
    f.store
        .append_message(&message(&f.store, b"m1", 1), LIMITS, 5)
        .unwrap();
    overwrite_log_entry(&f.store, 1, Some(&[0xff; 7]));
    f.store.forget_submission_ids();
    let next = f
        .store
        .append_message(&message(&f.store, b"m2", 1), LIMITS, 6)
        .unwrap();
    assert_eq!(next.position, Position(2));
}

#[test]
fn building_an_index_reports_the_entries_it_read_whether_accepted_or_refused() {
    let Fixture { _dir: dir, store } = fixture();
    for id in [b"m1", b"m2", b"m3"] {
        let sent = store.append_message_counted(&message(&store, id, 1), LIMITS, 5);
        assert!(sent.result.is_ok());
        assert_eq!(sent.scanned, 0, "the index was kept");
    }
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    // Refused for its epoch after the log was read: still counted, so
    // that its sender pays for the read.
    let mut stale = message(&store, b"m4", 1);
    stale.epoch = Some(convene_proto::ids::Epoch(7));
    let refused = store.append_message_counted(&stale, LIMITS, 6);
    assert!(matches!(
        refused.result,
        Err(crate::error::RelayError::Refused(
            Refusal::StaleEpoch { .. }
        ))
    ));
    assert_eq!(refused.scanned, 3);
    store.forget_submission_ids();
    let accepted = store.append_message_counted(&message(&store, b"m4", 1), LIMITS, 7);
    assert!(accepted.result.is_ok());
    assert_eq!(accepted.scanned, 3);
}

#[test]
fn an_index_naming_a_missing_entry_lets_the_message_through() {
    // The entry goes behind the kept index's back (as no code path does).
    let f = two_messages_then_the_second_entry_lost();
    let again = f
        .store
        .append_message(&message(&f.store, b"m2", 1), LIMITS, 6)
        .unwrap();
    assert!(!again.replayed);
    assert_eq!(again.position, Position(3));
}
