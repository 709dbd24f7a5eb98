//! Managed groups at the MLS level: a manager's external proposals are
//! checked, kept and committed by a member; a leader's own proposal and a
//! proposal forged in the manager's name are refused.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;

use super::managed::open_group_info;
use super::tests::{group_id, meta, on_both_storages, Device, TestStorage};
use super::{Incoming, MlsError, Provider};
use crate::sealing::SealingKey;
use crate::types::Role;

const GROUP: &[u8] = b"cohort";

fn key_package<S: TestStorage>(
    crypto: &RustCrypto,
    owner: &Device<S>,
    claimer: &Device<S>,
) -> KeyPackage {
    let (kps, _) = owner.ops(crypto).key_packages(1, false).unwrap();
    owner.store.keep();
    claimer
        .ops(crypto)
        .parse_key_package(&kps[0], owner.user, &owner.key.public())
        .unwrap()
}

/// A cohort that staff created and filled with two leaders.
struct Cohort<S> {
    staff: Device<S>,
    ann: Device<S>,
    ben: Device<S>,
    anns: MlsGroup,
    bens: MlsGroup,
    group_info: Vec<u8>,
}

fn cohort<S: TestStorage>(crypto: &RustCrypto) -> Cohort<S> {
    let staff = Device::<S>::of("staff", Role::Staff);
    let ann = Device::<S>::of("ann", Role::Leader);
    let ben = Device::<S>::of("ben", Role::Leader);
    let seal = SealingKey::generate().unwrap();
    let mut meta = meta();
    meta.manager_seal_key = bytes::Bytes::copy_from_slice(seal.public());
    let mut group = staff
        .ops(crypto)
        .create_group(&group_id(GROUP), &meta, true)
        .unwrap();
    let kps = [
        key_package(crypto, &ann, &staff),
        key_package(crypto, &ben, &staff),
    ];
    let add = staff.ops(crypto).add(&mut group, &kps).unwrap();
    assert!(
        !add.group_info.is_empty(),
        "a managed group's commit leaves a GroupInfo"
    );
    // What the relay keeps is sealed: it names neither the group nor a
    // member.
    for plain in [&b"Cohort 2026"[..], b"ann", b"ben"] {
        assert!(!add.group_info.windows(plain.len()).any(|w| w == plain));
    }
    let group_info = open_group_info(&seal, &group_id(GROUP), &add.group_info)
        .unwrap()
        .to_vec();
    assert!(open_group_info(&seal, &group_id(b"another group"), &add.group_info).is_err());
    staff.ops(crypto).merge_pending(&mut group).unwrap();
    let anns = ann
        .ops(crypto)
        .join(&add.welcome, &Default::default())
        .unwrap();
    let bens = ben
        .ops(crypto)
        .join(&add.welcome, &Default::default())
        .unwrap();
    Cohort {
        staff,
        ann,
        ben,
        anns,
        bens,
        group_info,
    }
}

fn a_managers_proposal_is_kept_committed_by_a_member_and_its_joiner_accepts<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let Cohort {
        staff,
        ann,
        ben,
        mut anns,
        mut bens,
        group_info,
    } = cohort::<S>(&crypto);
    let view = super::managed::read_group_info(
        &crypto,
        &staff.anchor,
        &group_id(GROUP),
        &group_info,
        &staff.key.public(),
    )
    .unwrap();
    assert_eq!(view.epoch, 1);
    assert_eq!(view.members.len(), 3);

    let carl = Device::<S>::of("carl", Role::Leader);
    let kp = key_package(&crypto, &carl, &staff);
    let proposals = view
        .proposals(&group_id(GROUP), &staff.key, vec![kp], &[])
        .unwrap();
    assert_eq!(proposals.len(), 1);
    for (device, group) in [(&ann, &mut anns), (&ben, &mut bens)] {
        let kept = device.ops(&crypto).process(group, &proposals[0]).unwrap();
        assert!(matches!(kept, Incoming::Proposal), "{kept:?}");
    }

    let commit = ann.ops(&crypto).commit_pending(&mut anns).unwrap();
    assert_eq!(commit.added.len(), 1);
    assert_eq!(commit.added[0].user_id, "carl");
    ann.ops(&crypto).merge_pending(&mut anns).unwrap();
    match ben.ops(&crypto).process(&mut bens, &commit.commit).unwrap() {
        Incoming::Commit { added, .. } => assert_eq!(added[0].user_id, "carl"),
        other => panic!("{other:?}"),
    }
    // Carl's Welcome comes from a leader, which a cohort allows only
    // because staff manage it.
    let carls = carl
        .ops(&crypto)
        .join(&commit.welcome, &Default::default())
        .unwrap();
    assert_eq!(
        carls.epoch_authenticator().as_slice(),
        bens.epoch_authenticator().as_slice()
    );
}

fn a_leaders_own_proposal_to_add_someone_is_refused<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let Cohort {
        ann,
        ben,
        mut anns,
        mut bens,
        ..
    } = cohort::<S>(&crypto);
    let carl = Device::<S>::of("carl", Role::Leader);
    let kp = key_package(&crypto, &carl, &ann);
    let provider = Provider::new(&crypto, &ann.store);
    let (proposal, _) = anns.propose_add_member(&provider, &ann.key, &kp).unwrap();
    let bytes = proposal.tls_serialize_detached().unwrap();
    let err = ben.ops(&crypto).process(&mut bens, &bytes).unwrap_err();
    assert!(matches!(err, MlsError::PolicyViolation(_)), "{err:?}");
    assert_eq!(bens.pending_proposals().count(), 0);
}

fn a_proposal_forged_in_the_managers_name_is_refused<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let Cohort {
        ben,
        mut bens,
        group_info,
        ..
    } = cohort::<S>(&crypto);
    // Another staff member is not this group's manager...
    let eve = Device::<S>::of("eve", Role::Staff);
    let err = super::managed::read_group_info(
        &crypto,
        &eve.anchor,
        &group_id(GROUP),
        &group_info,
        &eve.key.public(),
    )
    .unwrap_err();
    assert!(matches!(err, MlsError::PolicyViolation(_)), "{err:?}");

    // ...and cannot sign as the manager.
    let carl = Device::<S>::of("carl", Role::Leader);
    let kp = key_package(&crypto, &carl, &eve);
    let forged = ExternalProposal::new_add::<Provider<'_, S>>(
        kp,
        GroupId::from_slice(GROUP),
        bens.epoch(),
        &eve.key,
        SenderExtensionIndex::new(0),
    )
    .unwrap()
    .tls_serialize_detached()
    .unwrap();
    assert!(ben.ops(&crypto).process(&mut bens, &forged).is_err());
    assert_eq!(bens.pending_proposals().count(), 0);
}

on_both_storages!(
    a_managers_proposal_is_kept_committed_by_a_member_and_its_joiner_accepts,
    a_leaders_own_proposal_to_add_someone_is_refused,
    a_proposal_forged_in_the_managers_name_is_refused,
);
