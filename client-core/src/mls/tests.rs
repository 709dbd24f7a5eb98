//! Two devices running MLS over their own storage, including after the
//! stores are closed and reopened; and the test devices the other MLS
//! tests use. A test that relies on neither the local store's transactions
//! nor reopening it runs on both storages ([`on_both_storages`]), as
//! openmls_test runs a test on each provider.

use convene_proto::content::{GroupKind, GroupMeta};
use openmls_rust_crypto::RustCrypto;

use super::*;
use crate::store::LocalStore;

use crate::trust::{Authority, TrustAnchor, UserDetails};
use crate::types::Role;

/// Where a test device keeps its MLS state.
pub(super) trait TestStorage: MlsStorage + Sized {
    /// A new, empty storage (in `dir` if it needs one).
    fn fresh(dir: &std::path::Path) -> Self;
    /// Makes what the operation wrote durable (nothing to do in memory).
    fn keep(&self);
}

impl TestStorage for LocalStore {
    fn fresh(dir: &std::path::Path) -> Self {
        LocalStore::open(dir, &crate::store::StoreKey::from_bytes([1; 32])).unwrap()
    }

    fn keep(&self) {
        self.commit_durably().unwrap();
    }
}

impl TestStorage for openmls_memory_storage::MemoryStorage {
    fn fresh(_: &std::path::Path) -> Self {
        Self::default()
    }

    fn keep(&self) {}
}

/// Runs each named test, generic over [`TestStorage`], once on the local
/// store and once on openmls's memory storage.
macro_rules! on_both_storages {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn local_store() {
                super::$name::<crate::store::LocalStore>()
            }

            #[test]
            fn memory_storage() {
                super::$name::<openmls_memory_storage::MemoryStorage>()
            }
        }
    )*};
}
pub(super) use on_both_storages;

pub(super) struct Device<S = LocalStore> {
    pub(super) user: &'static str,
    pub(super) dir: tempfile::TempDir,
    pub(super) store: S,
    pub(super) key: DeviceKey,
    pub(super) chain: Vec<u8>,
    pub(super) anchor: TrustAnchor,
}

/// A group id from a short name.
pub(super) fn group_id(name: &[u8]) -> GroupId {
    GroupId::from_field(name).unwrap()
}

/// The organisation these tests' devices belong to.
fn authority() -> Authority {
    Authority::from_secret_bytes(&[42; 32])
}

impl Device {
    /// A staff member's device over a local store, certified by
    /// [`authority`].
    pub(super) fn new(user: &'static str) -> Device {
        Device::of(user, Role::Staff)
    }
}

impl<S: TestStorage> Device<S> {
    /// A device of a user with `role` over a new `S`, certified by
    /// [`authority`].
    pub(super) fn of(user: &'static str, role: Role) -> Device<S> {
        let dir = tempfile::tempdir().unwrap();
        let store = S::fresh(dir.path());
        let key = DeviceKey::generate();
        let details = UserDetails {
            user_id: user.into(),
            display_name: user.into(),
            role,
            sector: String::new(),
            certified: Default::default(),
        };
        let (_, chain) = authority().issue_direct_chain(
            &details,
            key.public(),
            crate::now_ms() - 1000,
            3_600_000,
        );
        Device {
            user,
            dir,
            store,
            key,
            chain,
            anchor: TrustAnchor::new(authority().public()),
        }
    }

    pub(super) fn ops<'a>(&'a self, crypto: &'a RustCrypto) -> MlsOps<'a, S> {
        MlsOps::new(
            crypto,
            &self.store,
            &self.key,
            self.user,
            &self.chain,
            self.anchor.clone(),
        )
    }
}

impl Device {
    fn reopen(self) -> Device {
        let Device {
            user,
            dir,
            store,
            key,
            chain,
            anchor,
        } = self;
        drop(store);
        let store =
            LocalStore::open(dir.path(), &crate::store::StoreKey::from_bytes([1; 32])).unwrap();
        Device {
            user,
            dir,
            store,
            key,
            chain,
            anchor,
        }
    }
}

pub(super) fn meta() -> GroupMeta {
    GroupMeta {
        version: 1,
        kind: GroupKind::Cohort as i32,
        name: "Cohort 2026".into(),
        direct_pair: vec![],
        membership: convene_proto::content::MembershipPolicy::Staff as i32,
        ..Default::default()
    }
}

/// `ann`'s new group `name` with `bob` added from a KeyPackage of his, as
/// each of them holds it.
pub(super) fn ann_adds_bob<S: TestStorage>(
    crypto: &RustCrypto,
    ann: &Device<S>,
    bob: &Device<S>,
    name: &[u8],
) -> (MlsGroup, MlsGroup) {
    let (kps, _) = bob.ops(crypto).key_packages(1, false).unwrap();
    bob.store.keep();
    let mut group = ann
        .ops(crypto)
        .create_group(&group_id(name), &meta(), false)
        .unwrap();
    let kp = ann
        .ops(crypto)
        .parse_key_package(&kps[0], bob.user, &bob.key.public())
        .unwrap();
    let add = ann.ops(crypto).add(&mut group, &[kp]).unwrap();
    assert_eq!(add.added.len(), 1);
    ann.ops(crypto).merge_pending(&mut group).unwrap();
    ann.store.keep();
    let bobs = bob
        .ops(crypto)
        .join(&add.welcome, &Default::default())
        .unwrap();
    bob.store.keep();
    (group, bobs)
}

fn a_welcomed_member_and_its_adder_read_each_other<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let ann = Device::<S>::of("ann", Role::Staff);
    let bob = Device::<S>::of("bob", Role::Staff);
    let (mut group, mut bobs) = ann_adds_bob(&crypto, &ann, &bob, b"group-1");
    assert_eq!(members(&bobs), members(&group));
    let ct = ann.ops(&crypto).encrypt(&mut group, b"hello bob").unwrap();
    match bob.ops(&crypto).process(&mut bobs, &ct).unwrap() {
        Incoming::Application {
            sender, plaintext, ..
        } => assert_eq!(
            (sender.user_id.as_str(), plaintext.as_slice()),
            ("ann", &b"hello bob"[..])
        ),
        other => panic!("{other:?}"),
    }
    let ct = bob.ops(&crypto).encrypt(&mut bobs, b"hello ann").unwrap();
    match ann.ops(&crypto).process(&mut group, &ct).unwrap() {
        Incoming::Application { plaintext, .. } => assert_eq!(plaintext, b"hello ann"),
        other => panic!("{other:?}"),
    }
    // A replayed ciphertext is refused (its key was deleted after use).
    assert!(ann.ops(&crypto).process(&mut group, &ct).is_err());
}

on_both_storages!(
    a_welcomed_member_and_its_adder_read_each_other,
    a_key_package_for_someone_else_is_refused,
    removal_is_seen_by_the_removed_and_a_cleared_commit_is_forgotten,
    the_relay_reads_a_key_packages_device_and_lifetime,
);

#[test]
fn a_group_survives_reopening_both_stores() {
    let crypto = RustCrypto::default();
    let ann = Device::new("ann");
    let bob = Device::new("bob");

    // bob publishes a KeyPackage (its private part committed first).
    let (kps, _) = bob.ops(&crypto).key_packages(1, false).unwrap();
    bob.store.commit_durably().unwrap();

    // ann creates the group and adds bob.
    let mut group = ann
        .ops(&crypto)
        .create_group(&group_id(b"group-1"), &meta(), false)
        .unwrap();
    let kp = ann
        .ops(&crypto)
        .parse_key_package(&kps[0], "bob", &bob.key.public())
        .unwrap();
    let bundle = ann.ops(&crypto).add(&mut group, &[kp]).unwrap();
    assert_eq!(bundle.added.len(), 1);
    ann.ops(&crypto).merge_pending(&mut group).unwrap();
    ann.store.commit_durably().unwrap();

    let mut bobs = bob
        .ops(&crypto)
        .join(&bundle.welcome, &Default::default())
        .unwrap();
    bob.store.commit_durably().unwrap();
    assert_eq!(group_meta(&bobs).unwrap().name, "Cohort 2026");
    assert_eq!(members(&bobs), members(&group));
    assert_eq!(
        group.epoch_authenticator().as_slice(),
        bobs.epoch_authenticator().as_slice()
    );

    let ct = ann.ops(&crypto).encrypt(&mut group, b"hello bob").unwrap();
    ann.store.commit_durably().unwrap();
    match bob.ops(&crypto).process(&mut bobs, &ct).unwrap() {
        Incoming::Application {
            sender, plaintext, ..
        } => {
            assert_eq!(
                (sender.user_id.as_str(), plaintext.as_slice()),
                ("ann", &b"hello bob"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    bob.store.commit_durably().unwrap();
    drop((group, bobs));

    // Both restart; the group goes on.
    let ann = ann.reopen();
    let bob = bob.reopen();
    let mut group = ann
        .ops(&crypto)
        .load(&group_id(b"group-1"))
        .unwrap()
        .expect("ann's group persisted");
    let mut bobs = bob
        .ops(&crypto)
        .load(&group_id(b"group-1"))
        .unwrap()
        .expect("bob's group persisted");
    let ct = bob.ops(&crypto).encrypt(&mut bobs, b"hello ann").unwrap();
    match ann.ops(&crypto).process(&mut group, &ct).unwrap() {
        Incoming::Application { plaintext, .. } => assert_eq!(plaintext, b"hello ann"),
        other => panic!("{other:?}"),
    }
    // A replayed ciphertext is refused (its key was deleted after use).
    assert!(ann.ops(&crypto).process(&mut group, &ct).is_err());
}

#[test]
fn an_uncommitted_operation_leaves_no_trace() {
    let crypto = RustCrypto::default();
    let ann = Device::new("ann");
    ann.ops(&crypto)
        .create_group(&group_id(b"g"), &meta(), false)
        .unwrap();
    ann.store.rollback();
    assert!(ann.ops(&crypto).load(&group_id(b"g")).unwrap().is_none());
}

fn a_key_package_for_someone_else_is_refused<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let bob = Device::<S>::of("bob", Role::Staff);
    let (kps, _) = bob.ops(&crypto).key_packages(1, false).unwrap();
    let ann = Device::<S>::of("ann", Role::Staff);
    let err = ann
        .ops(&crypto)
        .parse_key_package(&kps[0], "carol", &bob.key.public())
        .unwrap_err();
    assert!(
        matches!(&err, MlsError::WrongKeyPackage(owner) if owner == "bob"),
        "{err:?}"
    );
    let err = ann
        .ops(&crypto)
        .parse_key_package(&kps[0], "bob", &[9; 32])
        .unwrap_err();
    assert!(matches!(err, MlsError::WrongKeyPackage(_)));
}

fn removal_is_seen_by_the_removed_and_a_cleared_commit_is_forgotten<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let ann = Device::<S>::of("ann", Role::Staff);
    let bob = Device::<S>::of("bob", Role::Staff);
    let (mut group, mut bobs) = ann_adds_bob(&crypto, &ann, &bob, b"g");

    // A commit built and then cleared (refused by the relay) changes nothing.
    let before = group.epoch();
    ann.ops(&crypto)
        .remove(&mut group, &[bob.key.public()])
        .unwrap();
    ann.ops(&crypto).clear_pending(&mut group).unwrap();
    assert_eq!(group.epoch(), before);

    let removal = ann
        .ops(&crypto)
        .remove(&mut group, &[bob.key.public()])
        .unwrap();
    assert_eq!(removal.removed[0].user_id, "bob");
    ann.ops(&crypto).merge_pending(&mut group).unwrap();
    match bob
        .ops(&crypto)
        .process(&mut bobs, &removal.commit)
        .unwrap()
    {
        Incoming::Commit {
            self_removed,
            removed,
            ..
        } => {
            assert!(self_removed);
            assert_eq!(removed[0].user_id, "bob");
        }
        other => panic!("{other:?}"),
    }
    // After removal bob cannot read ann's messages.
    let ct = ann
        .ops(&crypto)
        .encrypt(&mut group, b"not for bob")
        .unwrap();
    assert!(bob.ops(&crypto).process(&mut bobs, &ct).is_err());
}

fn the_relay_reads_a_key_packages_device_and_lifetime<S: TestStorage>() {
    let crypto = RustCrypto::default();
    let bob = Device::<S>::of("bob", Role::Staff);
    let (kps, last_resort) = bob.ops(&crypto).key_packages(1, true).unwrap();
    for bytes in [&kps[0], &last_resort.unwrap()] {
        let leaf = convene_proto::mls_frame::read_key_package(bytes).unwrap();
        assert_eq!(leaf.signature_key, bob.key.public());
        let parsed = ops_parse(&bob, &crypto, bytes);
        let lifetime = parsed.life_time();
        assert_eq!(
            (leaf.lifetime.not_before_secs, leaf.lifetime.not_after_secs),
            (lifetime.not_before(), lifetime.not_after())
        );
    }
}

fn ops_parse<S: TestStorage>(device: &Device<S>, crypto: &RustCrypto, bytes: &[u8]) -> KeyPackage {
    device
        .ops(crypto)
        .parse_key_package(bytes, device.user, &device.key.public())
        .unwrap()
}
