//! The move from sled to fjall, on a data directory written by the relay
//! as released on 2026-12-02 (commit 8af573a, sled 0.34): staff sam, leaders
//! ana and ben, a cohort with two messages ben has not fetched, an unused
//! invite. How it was made: `tests/fixtures/README.md` beside it.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::engine::{Engine, Entry, FjallEngine, SledEngine};
use super::migrate::{self, ID_COUNTER};
use super::{keys, Store, StoreOptions};
use convene_proto::ids::RELAY_ID_LEN;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/relay-data-2026-12-02-sled.tgz"
);

/// Unpacks the fixture; returns the data directory inside `into`.
fn unpack(into: &Path) -> PathBuf {
    let status = Command::new("tar")
        .args(["-xzf", FIXTURE, "-C"])
        .arg(into)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed on {FIXTURE}");
    into.join("relay-data")
}

fn all_entries(engine: &dyn Engine) -> Vec<Entry> {
    engine
        .range(Bound::Unbounded, Bound::Unbounded)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sled_entries(data_dir: &Path) -> (Vec<Entry>, [u8; RELAY_ID_LEN]) {
    let sled = SledEngine::open(data_dir, 8 << 20).unwrap();
    let entries = all_entries(&sled);
    let relay_id = sled
        .get(&keys::meta("relay_id"))
        .unwrap()
        .unwrap()
        .try_into()
        .unwrap();
    (entries, relay_id)
}

fn without_id_counter(entries: Vec<Entry>) -> Vec<Entry> {
    entries
        .into_iter()
        .filter(|(key, _)| *key != keys::meta(ID_COUNTER))
        .collect()
}

#[test]
fn a_directory_written_by_the_sled_relay_opens_with_every_entry_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    let (before, relay_id) = sled_entries(&data_dir);
    assert!(before.len() > 20, "the fixture holds a working relay");

    let store = Store::open(&data_dir, StoreOptions::default()).unwrap();
    assert_eq!(store.relay_id().as_slice(), relay_id.as_slice());
    assert_eq!(store.engine_name(), "fjall");
    let after = without_id_counter(all_entries(store.kv.engine()));
    assert_eq!(after, before);
    for sled_file in ["conf", "db", "blobs"] {
        assert!(!data_dir.join(sled_file).exists(), "{sled_file} is left");
    }
    assert!(store.authority_key().unwrap().is_some());
}

#[test]
fn new_key_package_ids_stay_above_the_ones_sled_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    let (before, _) = sled_entries(&data_dir);
    let newest_old_id = before
        .iter()
        .filter(|(key, _)| key.first() == Some(&keys::KEY_PACKAGE))
        .filter_map(|(key, _)| key.get(key.len() - 8..))
        .map(|id| u64::from_be_bytes(id.try_into().unwrap()))
        .max()
        .expect("the fixture's devices uploaded KeyPackages");

    let store = Store::open(&data_dir, StoreOptions::default()).unwrap();
    assert!(store.kv.generate_id().unwrap() > newest_old_id);
}

#[test]
fn a_migration_killed_while_copying_starts_again_from_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    let (before, _) = sled_entries(&data_dir);
    {
        // What a killed copy leaves: a partial new store, beside the
        // untouched original.
        let partial = FjallEngine::open(&data_dir.join("fjall.migrating"), 8 << 20).unwrap();
        let mut batch = super::engine::Batch::default();
        batch.insert(b"half-copied", b"x");
        partial.apply(batch).unwrap();
        partial.persist().unwrap();
    }
    let store = Store::open(&data_dir, StoreOptions::default()).unwrap();
    assert_eq!(without_id_counter(all_entries(store.kv.engine())), before);
    assert!(!data_dir.join("fjall.migrating").exists());
}

#[test]
fn a_migration_killed_after_the_switch_only_finishes_the_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    let (before, _) = sled_entries(&data_dir);
    let moved = migrate::from_sled(&data_dir, 8 << 20).unwrap();
    assert_eq!(moved.map(|m| m.entries), Some(before.len() as u64));
    // As if killed between the rename and the deletion of sled's files.
    std::fs::write(data_dir.join("conf"), b"left over").unwrap();
    std::fs::write(data_dir.join("db"), b"left over").unwrap();

    assert_eq!(migrate::from_sled(&data_dir, 8 << 20).unwrap(), None);
    assert!(!data_dir.join("conf").exists() && !data_dir.join("db").exists());
    let store = Store::open(&data_dir, StoreOptions::default()).unwrap();
    assert_eq!(without_id_counter(all_entries(store.kv.engine())), before);
}

#[test]
fn a_new_data_directory_is_never_taken_for_an_old_one() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(migrate::from_sled(dir.path(), 8 << 20).unwrap(), None);
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    assert_eq!(migrate::from_sled(dir.path(), 8 << 20).unwrap(), None);
    assert!(migrate::engine_dir(dir.path()).is_dir());
}
