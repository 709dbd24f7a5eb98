//! Tests of the commit gate and routing across `groups` and `delivery`;
//! the fixture and helpers are shared with `trim_tests`.

use bytes::Bytes;
use convene_proto::relay::{MessageKind, Role};

use super::*;

static SENDER: std::sync::LazyLock<convene_proto::ids::UserId> =
    std::sync::LazyLock::new(|| crate::test_user_id("sender"));

use convene_proto::ids::{Epoch, Position};

/// The group these tests work in.
pub(super) static G: std::sync::LazyLock<GroupId> =
    std::sync::LazyLock::new(|| crate::test_group_id(b"g"));
use crate::error::Refusal;

pub(super) const LIMITS: QueueLimits = QueueLimits {
    max_group_backlog: 1_000,
    max_inbox: 10,
    max_inbox_per_sender: 10,
};
/// Trims only what every follower acknowledged.
pub(super) const KEEP_ALL: TrimPolicy = TrimPolicy {
    max_backlog: u64::MAX,
    keep_since_ms: 0,
};
pub(super) const ALL: ReadBudget = ReadBudget {
    max_items: usize::MAX,
    max_bytes: usize::MAX,
};

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) store: Store,
}

/// A store with devices 1..=4 enrolled and group "g" created by device 1.
pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for d in 1..=4u8 {
        let invite = NewInvite {
            user_certificate: Vec::new(),
            role: Role::Leader,
            user_id: String::new(),
            display_name: String::new(),
            ttl_ms: 1_000,
            created_by: None,
            delegation: Vec::new(),
        };
        store.create_invite(&[d; 32], &invite, 0).unwrap();
        let name = format!("user{d}");
        let enrolment = Enrolment {
            credential: &[],
            authority_key: None,
            invite_hash: [d; 32],
            user_id: &name,
            display_name: "User",
            device: DevicePublicKey([d; 32]),
        };
        store.enrol(&enrolment, 1).unwrap();
    }
    store
        .create_group(&G, &DevicePublicKey([1; 32]), 0)
        .unwrap();
    Fixture { _dir: dir, store }
}

pub(super) fn commit<'a>(
    epoch: u64,
    id: &'a [u8],
    sender: u8,
    added: &'a [DevicePublicKey],
    removed: &'a [DevicePublicKey],
) -> CommitSubmission<'a> {
    CommitSubmission {
        group_id: &G,
        epoch: Epoch(epoch),
        submission_id: id,
        sender: DevicePublicKey([sender; 32]),
        sender_user: &SENDER,
        commit: Bytes::from_static(b"commit"),
        welcome: if added.is_empty() {
            Bytes::new()
        } else {
            Bytes::from_static(b"welcome")
        },
        ratchet_tree: Bytes::new(),
        group_info: Bytes::new(),
        added,
        removed,
    }
}

/// An application message at the group's current epoch.
pub(super) fn message<'a>(store: &Store, id: &'a [u8], sender: u8) -> MessageSubmission<'a> {
    let epoch = store.group(&G).unwrap().map_or(0, |g| g.epoch);
    MessageSubmission {
        group_id: &G,
        kind: MessageKind::Application,
        submission_id: id,
        sender: DevicePublicKey([sender; 32]),
        payload: Bytes::from_static(b"ciphertext"),
        epoch: Some(Epoch(epoch)),
        from_outside: false,
    }
}

pub(super) fn refusal(result: RelayResult<AppendOutcome>) -> Refusal {
    match result {
        Err(crate::error::RelayError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn exactly_one_commit_per_epoch() {
    let f = fixture();
    let added = [DevicePublicKey([2; 32])];
    let first = f
        .store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    assert_eq!((first.position, first.epoch), (Position(1), Epoch(1)));
    let second = f
        .store
        .submit_commit(&commit(0, b"c2", 2, &[], &[]), LIMITS, 5);
    assert_eq!(
        refusal(second),
        Refusal::StaleEpoch {
            submitted: 0,
            current: 1
        }
    );
    assert_eq!(f.store.group(&G).unwrap().unwrap().epoch, 1);
}

#[test]
fn concurrent_commits_on_one_epoch_accept_one() {
    let f = std::sync::Arc::new(fixture());
    let added = [DevicePublicKey([2; 32]), DevicePublicKey([3; 32])];
    f.store
        .submit_commit(&commit(0, b"setup", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    let threads: Vec<_> = (1..=3u8)
        .map(|sender| {
            let f = f.clone();
            std::thread::spawn(move || {
                let id = [sender; 16];
                f.store
                    .submit_commit(&commit(1, &id, sender, &[], &[]), LIMITS, 6)
                    .is_ok()
            })
        })
        .collect();
    let accepted = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&ok| ok)
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(f.store.group(&G).unwrap().unwrap().epoch, 2);
}

#[test]
fn resubmission_returns_the_first_outcome() {
    let f = fixture();
    let first = f
        .store
        .submit_commit(&commit(0, b"same", 1, &[], &[]), LIMITS, 5)
        .unwrap();
    let again = f
        .store
        .submit_commit(&commit(0, b"same", 1, &[], &[]), LIMITS, 6)
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.position, again.epoch), (first.position, first.epoch));
    assert_eq!(f.store.group(&G).unwrap().unwrap().last_position, 1);

    let m1 = f
        .store
        .append_message(&message(&f.store, b"m", 1), LIMITS, 7)
        .unwrap();
    let m2 = f
        .store
        .append_message(&message(&f.store, b"m", 1), LIMITS, 8)
        .unwrap();
    assert_eq!(m1.position, m2.position);
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 2);
}

#[test]
fn welcome_reaches_only_an_accepted_commit_s_joiners() {
    let f = fixture();
    let added = [DevicePublicKey([2; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    let losing_added = [DevicePublicKey([3; 32])];
    assert!(f
        .store
        .submit_commit(&commit(0, b"c2", 1, &losing_added, &[]), LIMITS, 5)
        .is_err());
    let inbox2 = f
        .store
        .read_inbox(
            &DevicePublicKey([2; 32]),
            0,
            f.store.inbox_head(&DevicePublicKey([2; 32])).unwrap(),
            ALL,
        )
        .unwrap();
    assert_eq!(inbox2.len(), 1);
    assert_eq!(inbox2[0].welcome.welcome.as_ref(), b"welcome");
    assert_eq!(
        (inbox2[0].record.group_position, inbox2[0].record.epoch),
        (1, 1)
    );
    assert_eq!(
        f.store.inbox_head(&DevicePublicKey([3; 32])).unwrap(),
        0,
        "the refused commit's Welcome was stored"
    );
    // The joiner follows from after the commit.
    let member = f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .unwrap();
    assert_eq!((member.from_position, member.acked), (2, 1));
}

#[test]
fn non_members_cannot_post_and_removed_members_leave_after_acking() {
    let f = fixture();
    assert_eq!(
        refusal(
            f.store
                .append_message(&message(&f.store, b"x", 2), LIMITS, 5)
        ),
        Refusal::NotAMember
    );
    let added = [DevicePublicKey([2; 32])];
    f.store
        .submit_commit(&commit(0, b"c1", 1, &added, &[]), LIMITS, 5)
        .unwrap();
    let removed = [DevicePublicKey([2; 32])];
    let removal = f
        .store
        .submit_commit(&commit(1, b"c2", 1, &[], &removed), LIMITS, 6)
        .unwrap();
    assert_eq!(
        refusal(
            f.store
                .append_message(&message(&f.store, b"y", 2), LIMITS, 7)
        ),
        Refusal::NotAMember
    );
    f.store
        .append_message(&message(&f.store, b"z", 1), LIMITS, 8)
        .unwrap();
    // The removed device still gets the removing commit, and nothing after.
    let member = f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .unwrap();
    assert_eq!(member.last_deliverable(3), removal.position.get());
    let outcome = f
        .store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(99))
        .unwrap();
    assert!(outcome.left_group);
    assert!(f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .is_none());
    assert!(f
        .store
        .device_groups(&DevicePublicKey([2; 32]))
        .unwrap()
        .is_empty());
}

#[test]
fn a_message_for_another_epoch_is_refused_with_the_current_one() {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    for (id, epoch) in [(&b"old"[..], 0), (&b"new"[..], 2)] {
        let mut stale = message(&f.store, id, 2);
        stale.epoch = Some(Epoch(epoch));
        assert_eq!(
            refusal(f.store.append_message(&stale, LIMITS, 6)),
            Refusal::StaleEpoch {
                submitted: epoch,
                current: 1
            }
        );
    }
    assert_eq!(f.store.stored_log_entries(&G).unwrap(), 1);
    let current = f
        .store
        .append_message(&message(&f.store, b"now", 2), LIMITS, 6)
        .unwrap();
    assert_eq!((current.position, current.epoch), (Position(2), Epoch(1)));
}

#[test]
fn a_managers_outside_proposal_is_logged_and_the_newest_group_info_kept() {
    let f = fixture();
    // A non-member's message is refused unless it is an outside proposal
    // (the handler sets `from_outside` only for staff proposals).
    let mut outside = message(&f.store, b"s1", 4);
    outside.kind = MessageKind::Proposal;
    assert_eq!(
        refusal(f.store.append_message(&outside, LIMITS, 1)),
        Refusal::NotAMember
    );
    outside.from_outside = true;
    let logged = f.store.append_message(&outside, LIMITS, 1).unwrap();
    assert_eq!(logged.position, Position(1));

    assert_eq!(f.store.group_info(&G).unwrap(), None);
    let mut first = commit(0, b"c1", 1, &[], &[]);
    first.group_info = Bytes::from_static(b"info-1");
    f.store.submit_commit(&first, LIMITS, 2).unwrap();
    // A commit without one leaves the previous GroupInfo in place.
    f.store
        .submit_commit(&commit(1, b"c2", 1, &[], &[]), LIMITS, 3)
        .unwrap();
    assert_eq!(
        f.store.group_info(&G).unwrap(),
        Some(Bytes::from_static(b"info-1"))
    );
}

#[test]
fn the_newest_position_survives_a_restart_without_a_group_record_write() {
    let Fixture { _dir: dir, store } = fixture();
    for id in [b"m1", b"m2", b"m3"] {
        store
            .append_message(&message(&store, id, 1), LIMITS, 5)
            .unwrap();
    }
    assert_eq!(store.group(&G).unwrap().unwrap().last_position, 3);
    drop(store);

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.group(&G).unwrap().unwrap().last_position, 3);
    let next = store
        .append_message(&message(&store, b"m4", 1), LIMITS, 6)
        .unwrap();
    assert_eq!(next.position, Position(4));
    // Trimmed to the end, the record itself remembers the position.
    store
        .ack_group(&G, &DevicePublicKey([1; 32]), Position(4))
        .unwrap();
    store.trim_group(&G, KEEP_ALL).unwrap();
    assert_eq!(store.stored_log_entries(&G).unwrap(), 0);
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.group(&G).unwrap().unwrap().last_position, 4);
    assert_eq!(
        store
            .append_message(&message(&store, b"m5", 1), LIMITS, 7)
            .unwrap()
            .position,
        Position(5)
    );
}

#[test]
fn a_device_both_added_and_removed_is_readded_and_sent_the_welcome() {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    f.store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(1))
        .unwrap();
    let readd = f
        .store
        .submit_commit(
            &commit(
                1,
                b"c2",
                1,
                &[DevicePublicKey([2; 32])],
                &[DevicePublicKey([2; 32])],
            ),
            LIMITS,
            6,
        )
        .unwrap();
    assert_eq!(readd.inbox, vec![(DevicePublicKey([2; 32]), 2)]);
    let member = f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .unwrap();
    assert!(member.is_active());
    assert_eq!((member.from_position, member.acked), (2, 1));
    // Only a member can be re-added.
    let stranger = f.store.submit_commit(
        &commit(
            2,
            b"c3",
            1,
            &[DevicePublicKey([3; 32])],
            &[DevicePublicKey([3; 32])],
        ),
        LIMITS,
        7,
    );
    assert!(matches!(refusal(stranger), Refusal::InvalidArgument(_)));
}

#[test]
fn a_device_added_back_before_it_fetched_its_removal_keeps_its_cursor() {
    let f = fixture();
    f.store
        .submit_commit(
            &commit(0, b"c1", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            5,
        )
        .unwrap();
    f.store
        .ack_group(&G, &DevicePublicKey([2; 32]), Position(1))
        .unwrap();
    let before = f
        .store
        .append_message(&message(&f.store, b"m", 1), LIMITS, 6)
        .unwrap();
    f.store
        .submit_commit(
            &commit(1, b"c2", 1, &[], &[DevicePublicKey([2; 32])]),
            LIMITS,
            7,
        )
        .unwrap();
    f.store
        .submit_commit(
            &commit(2, b"c3", 1, &[DevicePublicKey([2; 32])], &[]),
            LIMITS,
            8,
        )
        .unwrap();
    let member = f
        .store
        .membership(&G, &DevicePublicKey([2; 32]))
        .unwrap()
        .unwrap();
    assert!(member.is_active());
    assert_eq!(
        member.acked, 1,
        "the message before the removal is still owed"
    );
    assert!(member.acked < before.position.get());
}
