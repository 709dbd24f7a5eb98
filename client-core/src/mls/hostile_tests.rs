//! Hostile input at the MLS level, as a compromised relay or a removed
//! member could send it: each is refused with a typed error, never a
//! panic, and the group goes on afterwards (nothing stored is lost).
//! On the local store only: after each refusal these tests roll back the
//! store's open operation, which openmls's memory storage has no notion
//! of.

use openmls::prelude::MlsGroup;
use openmls_rust_crypto::RustCrypto;

use super::tests::{group_id, meta, Device};
use super::{Incoming, MlsError};

const GROUP: &[u8] = b"hostile";

/// ann's group with the given members added by ann in one commit.
fn group_of(crypto: &RustCrypto, ann: &Device, others: &[&Device]) -> (MlsGroup, Vec<MlsGroup>) {
    let mut group = ann
        .ops(crypto)
        .create_group(&group_id(GROUP), &meta(), false)
        .unwrap();
    let mut kps = Vec::new();
    for other in others {
        let (raw, _) = other.ops(crypto).key_packages(1, false).unwrap();
        other.store.commit_durably().unwrap();
        kps.push(
            ann.ops(crypto)
                .parse_key_package(&raw[0], other.user, &other.key.public())
                .unwrap(),
        );
    }
    let bundle = ann.ops(crypto).add(&mut group, &kps).unwrap();
    ann.ops(crypto).merge_pending(&mut group).unwrap();
    ann.store.commit_durably().unwrap();
    let joined = others
        .iter()
        .map(|other| {
            let g = other
                .ops(crypto)
                .join(&bundle.welcome, &Default::default())
                .unwrap();
            other.store.commit_durably().unwrap();
            g
        })
        .collect();
    (group, joined)
}

/// `to` reads `ct` from `from`'s device as a text, or panics.
fn reads(crypto: &RustCrypto, to: &Device, group: &mut MlsGroup, ct: &[u8], text: &[u8]) {
    match to.ops(crypto).process(group, ct).unwrap() {
        Incoming::Application { plaintext, .. } => assert_eq!(plaintext, text),
        other => panic!("{other:?}"),
    }
    to.store.commit_durably().unwrap();
}

#[test]
fn a_generation_far_beyond_the_forward_limit_is_refused_and_the_group_goes_on() {
    let crypto = RustCrypto::default();
    let (ann, bob) = (Device::new("ann"), Device::new("bob"));
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob]);
    let bobs = &mut joined[0];
    // ann's 1,101st message, the 1,100 before it withheld by the relay.
    let mut last = Vec::new();
    for _ in 0..1_101 {
        last = ann.ops(&crypto).encrypt(&mut group, b"far ahead").unwrap();
    }
    ann.store.commit_durably().unwrap();
    let err = bob.ops(&crypto).process(bobs, &last).unwrap_err();
    assert!(matches!(err, MlsError::Invalid(_)), "{err:?}");
    bob.store.rollback();
    // bob's state is intact: he still talks to ann, and ann to him.
    let ct = bob.ops(&crypto).encrypt(bobs, b"still here").unwrap();
    bob.store.commit_durably().unwrap();
    reads(&crypto, &ann, &mut group, &ct, b"still here");
}

#[test]
fn a_replayed_message_is_refused_once_read() {
    let crypto = RustCrypto::default();
    let (ann, bob) = (Device::new("ann"), Device::new("bob"));
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob]);
    let ct = ann.ops(&crypto).encrypt(&mut group, b"once").unwrap();
    ann.store.commit_durably().unwrap();
    reads(&crypto, &bob, &mut joined[0], &ct, b"once");
    let err = bob.ops(&crypto).process(&mut joined[0], &ct).unwrap_err();
    assert!(matches!(err, MlsError::Invalid(_)), "{err:?}");
    bob.store.rollback();
    let next = ann.ops(&crypto).encrypt(&mut group, b"twice?").unwrap();
    reads(&crypto, &bob, &mut joined[0], &next, b"twice?");
}

#[test]
fn a_removed_member_can_no_longer_be_heard() {
    let crypto = RustCrypto::default();
    let (ann, bob, cat) = (Device::new("ann"), Device::new("bob"), Device::new("cat"));
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob, &cat]);
    let mut cats = joined.pop().unwrap();
    let mut bobs = joined.pop().unwrap();
    let removal = ann
        .ops(&crypto)
        .remove(&mut group, &[cat.key.public()])
        .unwrap();
    ann.ops(&crypto).merge_pending(&mut group).unwrap();
    ann.store.commit_durably().unwrap();
    bob.ops(&crypto)
        .process(&mut bobs, &removal.commit)
        .unwrap();
    bob.store.commit_durably().unwrap();
    // cat, who never processed her removal, writes in the old epoch.
    let ct = cat
        .ops(&crypto)
        .encrypt(&mut cats, b"still listening")
        .unwrap();
    let err = bob.ops(&crypto).process(&mut bobs, &ct).unwrap_err();
    assert!(matches!(err, MlsError::Invalid(_)), "{err:?}");
    bob.store.rollback();
    let next = ann.ops(&crypto).encrypt(&mut group, b"after").unwrap();
    reads(&crypto, &bob, &mut bobs, &next, b"after");
}

#[test]
fn commits_for_epochs_ahead_or_behind_are_refused_without_harm() {
    let crypto = RustCrypto::default();
    let (ann, bob, cat) = (Device::new("ann"), Device::new("bob"), Device::new("cat"));
    let dan = Device::new("dan");
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob, &cat]);
    let mut cats = joined.pop().unwrap();
    let mut bobs = joined.pop().unwrap();
    // Two commits by ann (cat out, then dan in, in cat's old leaf); bob is
    // shown the second before the first.
    let first = ann
        .ops(&crypto)
        .remove(&mut group, &[cat.key.public()])
        .unwrap();
    ann.ops(&crypto).merge_pending(&mut group).unwrap();
    let (raw, _) = dan.ops(&crypto).key_packages(1, false).unwrap();
    dan.store.commit_durably().unwrap();
    let kp = ann
        .ops(&crypto)
        .parse_key_package(&raw[0], "dan", &dan.key.public())
        .unwrap();
    let second = ann.ops(&crypto).add(&mut group, &[kp]).unwrap();
    ann.ops(&crypto).merge_pending(&mut group).unwrap();
    ann.store.commit_durably().unwrap();
    let epoch = bobs.epoch();
    let ahead = bob
        .ops(&crypto)
        .process(&mut bobs, &second.commit)
        .unwrap_err();
    assert!(matches!(ahead, MlsError::FutureEpoch), "{ahead:?}");
    bob.store.rollback();
    // In order, both apply; replayed, the first is refused (an old epoch).
    bob.ops(&crypto).process(&mut bobs, &first.commit).unwrap();
    bob.ops(&crypto).process(&mut bobs, &second.commit).unwrap();
    bob.store.commit_durably().unwrap();
    assert_eq!(bobs.epoch().as_u64(), epoch.as_u64() + 2);
    let behind = bob
        .ops(&crypto)
        .process(&mut bobs, &first.commit)
        .unwrap_err();
    assert!(matches!(behind, MlsError::Invalid(_)), "{behind:?}");
    bob.store.rollback();
    assert_eq!(
        bobs.epoch_authenticator().as_slice(),
        group.epoch_authenticator().as_slice()
    );
    // cat's stale state writes in an epoch bob still keeps keys for, from
    // the leaf dan now holds: it must not be heard, least of all as dan's.
    let stale = cat.ops(&crypto).encrypt(&mut cats, b"dan here").unwrap();
    match bob.ops(&crypto).process(&mut bobs, &stale) {
        Err(MlsError::Invalid(_)) => {}
        Ok(Incoming::Application { sender, .. }) => {
            panic!("a removed member was heard as {}", sender.user_id)
        }
        other => panic!("{other:?}"),
    }
}

/// A relay that ignores a revocation can still pass on what the revoked
/// device makes. Once a client holds the revocation, it refuses the
/// device's messages, commits and KeyPackages, and a Welcome to a group
/// that still holds it.
#[test]
fn a_revoked_devices_message_commit_key_package_and_group_are_refused() {
    let crypto = RustCrypto::default();
    let (ann, bob, cat) = (Device::new("ann"), Device::new("bob"), Device::new("cat"));
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob]);
    let bobs = &mut joined[0];
    let message = ann.ops(&crypto).encrypt(&mut group, b"revoked?").unwrap();
    let (ann_key_packages, _) = ann.ops(&crypto).key_packages(1, false).unwrap();
    let (cat_key_packages, _) = cat.ops(&crypto).key_packages(1, false).unwrap();
    cat.store.commit_durably().unwrap();
    let cats = ann
        .ops(&crypto)
        .parse_key_package(&cat_key_packages[0], "cat", &cat.key.public())
        .unwrap();
    let adding_cat = ann.ops(&crypto).add(&mut group, &[cats]).unwrap();
    ann.store.commit_durably().unwrap();

    for device in [&bob, &cat] {
        device
            .anchor
            .revocations()
            .add("ann", ann.key.public().as_bytes());
    }
    let refused = bob.ops(&crypto).process(bobs, &message).unwrap_err();
    assert!(refused_as_revoked(&refused), "{refused:?}");
    bob.store.rollback();
    let refused = bob
        .ops(&crypto)
        .process(bobs, &adding_cat.commit)
        .unwrap_err();
    assert!(refused_as_revoked(&refused), "{refused:?}");
    bob.store.rollback();
    let refused = bob
        .ops(&crypto)
        .parse_key_package(&ann_key_packages[0], "ann", &ann.key.public())
        .unwrap_err();
    assert!(refused_as_revoked(&refused), "{refused:?}");
    let refused = cat
        .ops(&crypto)
        .join(&adding_cat.welcome, &Default::default())
        .unwrap_err();
    assert!(refused_as_revoked(&refused), "{refused:?}");
    cat.store.rollback();
}

/// Whether `err` refuses a member because its device was revoked.
fn refused_as_revoked(err: &MlsError) -> bool {
    matches!(
        err,
        MlsError::Untrusted {
            reason: crate::trust::TrustError::Revoked,
            ..
        }
    )
}

/// A leader who made a group of the network kind, or took the network
/// channel's id with a policy of their own, does not get it taken for the
/// network channel.
#[test]
fn only_the_staff_network_channel_passes_for_the_network_channel() {
    use convene_proto::content::{GroupKind, GroupMeta, MembershipPolicy};
    let authority = crate::trust::Authority::from_secret_bytes(&[7; 32]);
    let anchor = crate::trust::TrustAnchor::new(authority.public());
    let network_id = convene_proto::network::network_channel_id(&anchor.authority_key());
    let meta = |kind: GroupKind, membership: MembershipPolicy| GroupMeta {
        version: 1,
        kind: kind as i32,
        membership: membership as i32,
        ..Default::default()
    };
    let check = super::join::check_network_channel;
    let network = meta(GroupKind::Network, MembershipPolicy::Staff);
    assert!(check(&anchor, network_id.as_bytes(), &network).is_ok());
    let any_member = meta(GroupKind::Network, MembershipPolicy::AnyMember);
    assert!(check(&anchor, network_id.as_bytes(), &any_member).is_err());
    let cohort = meta(GroupKind::Cohort, MembershipPolicy::Staff);
    assert!(check(&anchor, network_id.as_bytes(), &cohort).is_err());
    assert!(check(&anchor, b"elsewhere-0123456", &network).is_err());
    assert!(check(&anchor, b"elsewhere-0123456", &cohort).is_ok());
}

#[test]
fn a_group_whose_policy_is_not_its_kinds_is_refused() {
    use convene_proto::content::{GroupKind, GroupMeta, MembershipPolicy};
    let meta = |kind: GroupKind, membership: MembershipPolicy| GroupMeta {
        kind: kind as i32,
        membership: membership as i32,
        ..Default::default()
    };
    let check = super::policy::check_kind;
    for kind in [
        GroupKind::Cohort,
        GroupKind::Network,
        GroupKind::Introduction,
    ] {
        assert!(check(&meta(kind, MembershipPolicy::Staff)).is_ok());
        assert!(check(&meta(kind, MembershipPolicy::AnyMember)).is_err());
        assert!(check(&meta(kind, MembershipPolicy::Pair)).is_err());
    }
    assert!(check(&meta(GroupKind::Direct, MembershipPolicy::Pair)).is_ok());
    assert!(check(&meta(GroupKind::Direct, MembershipPolicy::Staff)).is_err());
    assert!(check(&meta(GroupKind::Unspecified, MembershipPolicy::Staff)).is_err());
}

/// Staff may change a group's settings, never what it is: a cohort (or the
/// network channel) turned into a group any member may add to, or its
/// GroupInfo sealed to another key (managing it taken from the staff who
/// do), is refused by every member, while a new name passes.
#[test]
fn a_commit_never_changes_what_a_group_is() {
    use convene_proto::content::{GroupMeta, MembershipPolicy};

    let crypto = RustCrypto::default();
    let (ann, bob) = (Device::new("ann"), Device::new("bob"));
    let (mut group, mut joined) = group_of(&crypto, &ann, &[&bob]);
    let mut bobs = joined.pop().unwrap();
    let opened = GroupMeta {
        membership: MembershipPolicy::AnyMember as i32,
        ..meta()
    };
    let resealed = GroupMeta {
        manager_seal_key: vec![9; 32].into(),
        ..meta()
    };
    for changed in [opened, resealed] {
        let commit = ann.ops(&crypto).change_meta(&mut group, &changed).unwrap();
        let refused = bob
            .ops(&crypto)
            .process(&mut bobs, &commit.commit)
            .unwrap_err();
        assert!(
            matches!(&refused, MlsError::RefusedChange { reason, .. } if reason.contains("what the group is")),
            "{refused:?}"
        );
        bob.store.rollback();
        ann.ops(&crypto).clear_pending(&mut group).unwrap();
    }

    let renamed = GroupMeta {
        name: "Cohort 2, renamed".into(),
        ..meta()
    };
    let commit = ann.ops(&crypto).change_meta(&mut group, &renamed).unwrap();
    bob.ops(&crypto).process(&mut bobs, &commit.commit).unwrap();
    bob.store.commit_durably().unwrap();
    assert_eq!(super::group_meta(&bobs).unwrap().name, "Cohort 2, renamed");
}
