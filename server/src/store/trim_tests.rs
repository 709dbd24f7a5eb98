//! Tests of trimming: what the relay deletes from group logs and inboxes,
//! and when (every follower acknowledged, a revoked device, the log's
//! bound, age).

use super::group_tests::{commit, fixture, message, ALL, G, KEEP_ALL, LIMITS};
use super::*;
use convene_proto::ids::Position;

#[test]
fn trimming_waits_for_every_follower() {
    let f = fixture();
    let added = [DevicePublicKey([2; 32]), DevicePublicKey([3; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    for i in 0..3u8 {
        f.store
            .append_message(&message(&f.store, &[i; 16], 1), LIMITS, 6)
            .unwrap();
    }
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 4);
    f.store
        .ack_group(&G, &DevicePublicKey([1; 32]), Position(4))
        .unwrap();
    f.store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(4))
        .unwrap();
    assert_eq!(
        f.store.trim_group(&G, KEEP_ALL).unwrap(),
        1,
        "only the commit, which device 3 never follows"
    );
    f.store
        .ack_group(&G, &DevicePublicKey([3; 32]), Position(3))
        .unwrap();
    assert_eq!(f.store.trim_group(&G, KEEP_ALL).unwrap(), 2);
    f.store
        .ack_group(&G, &DevicePublicKey([3; 32]), Position(4))
        .unwrap();
    assert_eq!(f.store.trim_group(&G, KEEP_ALL).unwrap(), 1);
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 0);
    let read = f.store.read_log(&G, 0, 4, ALL).unwrap();
    assert!(read.is_empty());
}

#[test]
fn a_revoked_device_holds_no_group_log_back() {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    for i in 0..3u8 {
        f.store
            .append_message(&message(&f.store, &[i; 16], 1), LIMITS, 6)
            .unwrap();
    }
    f.store
        .ack_group(&G, &DevicePublicKey([1; 32]), Position(4))
        .unwrap();
    // Device 2 never acknowledges: it was lost, and its user removed it.
    // Only the commit that added it, which it never follows, goes.
    assert_eq!(f.store.trim_group(&G, KEEP_ALL).unwrap(), 1);
    f.store
        .remove_own_device(&crate::test_user_id("user2"), &DevicePublicKey([2; 32]), 7)
        .unwrap();
    assert_eq!(f.store.trim_group(&G, KEEP_ALL).unwrap(), 3);
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 0);
}

#[test]
fn inbox_ack_frees_the_shared_welcome() {
    let f = fixture();
    let added = [DevicePublicKey([2; 32]), DevicePublicKey([3; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    f.store.ack_inbox(&DevicePublicKey([2; 32]), 1).unwrap();
    assert_eq!(
        f.store
            .read_inbox(&DevicePublicKey([3; 32]), 0, 1, ALL)
            .unwrap()
            .len(),
        1,
        "still there for device 3"
    );
    f.store.ack_inbox(&DevicePublicKey([3; 32]), 1).unwrap();
    assert!(f
        .store
        .get::<records::WelcomeRecord>(&keys::welcome(&G, 1))
        .unwrap()
        .is_none());
}

#[test]
fn a_full_group_log_drops_its_oldest_entries_instead_of_refusing() {
    let f = fixture();
    let small = QueueLimits {
        max_group_backlog: 2,
        max_inbox: 1,
        max_inbox_per_sender: 1,
    };
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            small,
            5,
        )
        .unwrap();
    // Device 2 never acknowledges anything; device 1 goes on sending.
    for id in [b"a", b"b", b"c"] {
        f.store
            .append_message(&message(&f.store, id, 1), small, 6)
            .unwrap();
    }
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 2);
    let group = f.store.group(&G).unwrap().unwrap();
    assert_eq!((group.trimmed_through, group.last_position), (2, 4));
    // The commit at 1 started epoch 1, which is what follows the gap.
    assert_eq!(group.trimmed_epoch, 1);
    let read = f.store.read_log(&G, 0, 4, ALL).unwrap();
    assert_eq!(read.iter().map(|i| i.position).collect::<Vec<_>>(), [3, 4]);
    // A commit is never refused for it either.
    f.store
        .submit_commit(&commit(1, b"c2", 1, &[], &[]), small, 7)
        .unwrap();
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 2);
}

#[test]
fn entries_nobody_fetched_age_out() {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    f.store
        .append_message(&message(&f.store, b"old", 1), LIMITS, 10)
        .unwrap();
    f.store
        .append_message(&message(&f.store, b"new", 1), LIMITS, 50)
        .unwrap();
    let policy = TrimPolicy {
        max_backlog: u64::MAX,
        keep_since_ms: 20,
    };
    assert_eq!(f.store.trim_group(&G, policy).unwrap(), 2);
    let group = f.store.group(&G).unwrap().unwrap();
    assert_eq!((group.trimmed_through, group.trimmed_epoch), (2, 1));
    assert_eq!(f.store.trim_group(&G, policy).unwrap(), 0);
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 1);
}
