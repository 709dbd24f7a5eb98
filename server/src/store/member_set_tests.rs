//! Tests of the members kept in memory (`member_sets`): after every add,
//! removal and leave they answer as the stored member records do.

use super::group_tests::{commit, fixture, G, LIMITS};
use super::*;
use convene_proto::ids::Position;

#[test]
fn the_member_devices_kept_in_memory_follow_every_add_and_leave() {
    let f = fixture();
    let devices = |store: &Store| {
        let mut devices: Vec<u8> = store
            .member_set(&G)
            .unwrap()
            .devices()
            .map(|d| d.0[0])
            .collect();
        devices.sort_unstable();
        devices
    };
    assert_eq!(devices(&f.store), vec![1]);
    let added = [DevicePublicKey([2; 32]), DevicePublicKey([3; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    assert_eq!(devices(&f.store), vec![1, 2, 3], "an add is seen at once");
    let removed = [DevicePublicKey([2; 32])];
    f.store
        .submit_commit(&commit(1, b"c2", 1, &[], &removed), LIMITS, 6)
        .unwrap();
    // A removed device is still routed to until it has its removal, and
    // through the removing commit only.
    assert_eq!(devices(&f.store), vec![1, 2, 3]);
    let routing = |d: u8| {
        f.store
            .member_set(&G)
            .unwrap()
            .get(&DevicePublicKey([d; 32]))
    };
    let stored = f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .unwrap();
    assert!(!stored.is_active());
    assert_eq!(
        routing(2),
        Some(Routing::from(&stored)),
        "a removal is seen at once"
    );
    assert!(routing(3).is_some_and(|r| r.is_active()));
    f.store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(99))
        .unwrap();
    assert_eq!(devices(&f.store), vec![1, 3], "a leave is seen at once");
}

#[test]
fn routes_to_answers_as_the_stored_membership_does_before_and_after_each_change() {
    let f = fixture();
    let routed = |store: &Store, d: u8| store.routes_to(&G, &DevicePublicKey([d; 32])).unwrap();
    let agrees = |store: &Store| {
        for d in 1..=4 {
            let stored = store
                .membership(&G, &DevicePublicKey([d; 32]))
                .unwrap()
                .is_some();
            assert_eq!(routed(store, d), stored, "device {d}");
        }
    };
    // Asked before and after the group's devices are kept in memory.
    agrees(&f.store);
    f.store.member_set(&G).unwrap();
    agrees(&f.store);
    let added = [DevicePublicKey([2; 32]), DevicePublicKey([3; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    f.store.member_set(&G).unwrap();
    assert!(routed(&f.store, 2));
    agrees(&f.store);
    f.store
        .submit_commit(
            &commit(1, b"c2", 1, &[], &[DevicePublicKey([2; 32])]),
            LIMITS,
            6,
        )
        .unwrap();
    f.store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(99))
        .unwrap();
    assert!(!routed(&f.store, 2), "a leave is seen at once");
    agrees(&f.store);
    // Asking about a group nobody has keeps nothing in memory.
    let unknown = crate::test_group_id(b"made-up");
    assert!(!f
        .store
        .routes_to(&unknown, &DevicePublicKey([1; 32]))
        .unwrap());
    assert!(f.store.member_sets_lock().get(&unknown).is_none());
}
