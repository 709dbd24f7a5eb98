//! Rejoining a group: whose KeyPackage may replace a member's leaf, and
//! what a Welcome into a group this device was in must keep.

use openmls_rust_crypto::RustCrypto;

use super::tests::{group_id, meta, on_both_storages, Device, TestStorage};
use super::*;
use crate::types::Role;

/// Ann's group `g` with Bob and Carol in it, as each of them holds it.
struct Trio<S> {
    crypto: RustCrypto,
    ann: Device<S>,
    bob: Device<S>,
    carol: Device<S>,
    groups: [MlsGroup; 3],
}

fn trio<S: TestStorage>() -> Trio<S> {
    let crypto = RustCrypto::default();
    let device = |user| Device::<S>::of(user, Role::Staff);
    let (ann, bob, carol) = (device("ann"), device("bob"), device("carol"));
    let mut anns = ann
        .ops(&crypto)
        .create_group(&group_id(b"g"), &meta(), false)
        .unwrap();
    let claimed = [&bob, &carol].map(|device| {
        let (kps, _) = device.ops(&crypto).key_packages(1, false).unwrap();
        device.store.keep();
        ann.ops(&crypto)
            .parse_key_package(&kps[0], device.user, &device.key.public())
            .unwrap()
    });
    let add = ann.ops(&crypto).add(&mut anns, &claimed).unwrap();
    ann.ops(&crypto).merge_pending(&mut anns).unwrap();
    let [bobs, carols] = [&bob, &carol].map(|device| {
        device
            .ops(&crypto)
            .join(&add.welcome, &JoinRules::default())
            .unwrap()
    });
    Trio {
        crypto,
        ann,
        bob,
        carol,
        groups: [anns, bobs, carols],
    }
}

/// Bob's state of the group, as a Welcome that re-adds him is judged.
fn held_by_bob<S: TestStorage>(t: &Trio<S>) -> PreviousState {
    PreviousState {
        meta: Some(meta()),
        members: members(&t.groups[1]).iter().map(|m| m.device).collect(),
        managers: Vec::new(),
    }
}

fn a_members_leaf_is_replaced_only_from_a_key_package_it_made_to_rejoin_that_group<
    S: TestStorage,
>() {
    let mut t = trio::<S>();
    let crypto = &t.crypto;
    let bob_key = t.bob.key.public();
    let claim = |bytes: &[u8]| {
        t.carol
            .ops(crypto)
            .parse_key_package(bytes, "bob", &bob_key)
            .unwrap()
    };
    // Carol claims one of Bob's stock KeyPackages, or one he made to rejoin
    // another group, and replaces his leaf: Ann refuses both.
    let (stock, _) = t.bob.ops(crypto).key_packages(1, false).unwrap();
    let epoch = t.groups[0].epoch().as_u64();
    let elsewhere = t
        .bob
        .ops(crypto)
        .rejoin_key_package(&group_id(b"other"), epoch)
        .unwrap();
    for bytes in [&stock[0], &elsewhere.one_time[0]] {
        let kp = claim(bytes);
        let push_out = t
            .carol
            .ops(crypto)
            .readd(&mut t.groups[2], &bob_key, kp)
            .unwrap();
        t.carol.ops(crypto).clear_pending(&mut t.groups[2]).unwrap();
        let err = t
            .ann
            .ops(crypto)
            .process(&mut t.groups[0], &push_out.commit)
            .unwrap_err();
        assert!(
            matches!(&err, MlsError::RefusedChange { reason, .. } if reason.contains("without its asking")),
            "{err:?}"
        );
    }

    // The KeyPackage Bob made to rejoin this group is taken, and the
    // Welcome brings him back.
    let rejoin = t
        .bob
        .ops(crypto)
        .rejoin_key_package(&group_id(b"g"), epoch)
        .unwrap();
    t.bob.store.keep();
    let kp = claim(&rejoin.one_time[0]);
    let readd = t
        .carol
        .ops(crypto)
        .readd(&mut t.groups[2], &bob_key, kp)
        .unwrap();
    t.carol.ops(crypto).merge_pending(&mut t.groups[2]).unwrap();
    assert!(matches!(
        t.ann.ops(crypto).process(&mut t.groups[0], &readd.commit),
        Ok(Incoming::Commit { .. })
    ));
    let rules = JoinRules {
        after_epoch: Some(t.groups[1].epoch().as_u64()),
        rejoining: Some(held_by_bob(&t)),
    };
    let back = t.bob.ops(crypto).join(&readd.welcome, &rules).unwrap();
    assert_eq!(
        back.epoch_authenticator().as_slice(),
        t.groups[0].epoch_authenticator().as_slice()
    );
}

#[test]
fn a_welcome_is_refused_when_it_goes_back_changes_the_group_comes_from_a_stranger_or_uses_a_stock_key_package(
) {
    let crypto = RustCrypto::default();
    let (ann, bob) = (Device::new("ann"), Device::new("bob"));
    // A last-resort KeyPackage keeps its private key, so the same Welcome
    // could be opened again: only the rules refuse it.
    let (_, last_resort) = bob.ops(&crypto).key_packages(0, true).unwrap();
    bob.store.commit_durably().unwrap();
    let kp = ann
        .ops(&crypto)
        .parse_key_package(&last_resort.unwrap(), "bob", &bob.key.public())
        .unwrap();
    let mut anns = ann
        .ops(&crypto)
        .create_group(&group_id(b"g"), &meta(), false)
        .unwrap();
    let add = ann.ops(&crypto).add(&mut anns, &[kp]).unwrap();
    ann.ops(&crypto).merge_pending(&mut anns).unwrap();
    let epoch = anns.epoch().as_u64();
    let knew = |members: Vec<convene_proto::ids::DevicePublicKey>, meta| JoinRules {
        after_epoch: Some(epoch - 1),
        rejoining: Some(PreviousState {
            meta: Some(meta),
            members,
            managers: Vec::new(),
        }),
    };
    let both = vec![ann.key.public(), bob.key.public()];
    // Staff may rename a group while a device is away; any other change
    // of its metadata (here, whom its GroupInfo is sealed to) is refused.
    let mut resealed = meta();
    resealed.manager_seal_key = vec![7; 32].into();
    let refusals = [
        (
            JoinRules {
                after_epoch: Some(epoch),
                rejoining: None,
            },
            "has been past",
        ),
        (knew(both.clone(), resealed), "settings"),
        (knew(vec![bob.key.public()], meta()), "was not a member"),
        // Everything else as Bob knew it, but the Welcome is on a KeyPackage
        // from his stock, not one he made to rejoin: a member could put
        // him into a state of its own making that way.
        (knew(both.clone(), meta()), "did not make to rejoin"),
    ];
    for (rules, why) in refusals {
        let err = bob.ops(&crypto).join(&add.welcome, &rules).unwrap_err();
        assert!(
            matches!(&err, MlsError::PolicyViolation(reason) if reason.contains(why)),
            "{why}: {err:?}"
        );
        bob.store.rollback();
    }
    // As a first join (Bob held nothing of it), the same Welcome is fine.
    let joined = bob.ops(&crypto).join(&add.welcome, &JoinRules::default());
    assert!(joined.is_ok(), "{:?}", joined.err());
}

fn a_request_to_be_re_added_replayed_later_replaces_nothing<S: TestStorage>() {
    let mut t = trio::<S>();
    let crypto = &t.crypto;
    let bob_key = t.bob.key.public();
    let epoch = t.groups[0].epoch().as_u64();
    let rejoin = t
        .bob
        .ops(crypto)
        .rejoin_key_package(&group_id(b"g"), epoch)
        .unwrap();
    t.bob.store.keep();
    let bytes = rejoin.one_time[0].clone();
    let claim = |t: &Trio<S>| {
        t.carol
            .ops(&t.crypto)
            .parse_key_package(&bytes, "bob", &bob_key)
            .unwrap()
    };
    // Carol answers Bob's request; everyone follows.
    let kp = claim(&t);
    let readd = t
        .carol
        .ops(crypto)
        .readd(&mut t.groups[2], &bob_key, kp)
        .unwrap();
    t.carol.ops(crypto).merge_pending(&mut t.groups[2]).unwrap();
    t.ann
        .ops(crypto)
        .process(&mut t.groups[0], &readd.commit)
        .unwrap();
    let rules = JoinRules {
        after_epoch: Some(epoch),
        rejoining: Some(held_by_bob(&t)),
    };
    t.groups[1] = t.bob.ops(crypto).join(&readd.welcome, &rules).unwrap();

    // Carol replays the same request at once (the leaf it would put in is
    // the one Bob has), and again after Bob renewed his leaf (an epoch too
    // late): Ann refuses both.
    let refused = |t: &mut Trio<S>| {
        let kp = claim(t);
        let replay = t
            .carol
            .ops(&t.crypto)
            .readd(&mut t.groups[2], &bob_key, kp)
            .unwrap();
        t.carol
            .ops(&t.crypto)
            .clear_pending(&mut t.groups[2])
            .unwrap();
        let err = t
            .ann
            .ops(&t.crypto)
            .process(&mut t.groups[0], &replay.commit)
            .unwrap_err();
        assert!(
            matches!(&err, MlsError::RefusedChange { reason, .. } if reason.contains("without its asking")),
            "{err:?}"
        );
    };
    refused(&mut t);
    let update = t.bob.ops(&t.crypto).update(&mut t.groups[1], None).unwrap();
    t.bob
        .ops(&t.crypto)
        .merge_pending(&mut t.groups[1])
        .unwrap();
    let [anns, _, carols] = &mut t.groups;
    t.ann.ops(&t.crypto).process(anns, &update.commit).unwrap();
    t.carol
        .ops(&t.crypto)
        .process(carols, &update.commit)
        .unwrap();
    refused(&mut t);
}

on_both_storages!(
    a_members_leaf_is_replaced_only_from_a_key_package_it_made_to_rejoin_that_group,
    a_request_to_be_re_added_replayed_later_replaces_nothing,
);
