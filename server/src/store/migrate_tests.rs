//! The move from sled to fjall, on a data directory written by the relay
//! as released on 2026-12-02 (commit 8af573a, sled 0.34): staff sam, leaders
//! ana and ben, a cohort with two messages ben has not fetched, an unused
//! invite. How it was made: `tests/fixtures/README.md` beside it.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::engine::{Engine, Entry, FjallEngine, SledEngine};
use super::migrate::{self, ID_COUNTER};
use super::{keys, OpenError, Store, StoreOptions};
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

/// Why opening `data_dir` was refused; the test fails if it opened or was
/// refused for another reason than the move.
fn refused_move(data_dir: &Path) -> migrate::MigrationError {
    match Store::open(data_dir, StoreOptions::default()) {
        Err(OpenError::Migration { source, .. }) => source,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("the directory was opened"),
    }
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
    assert!(!data_dir.join("conf").exists() && !data_dir.join("blobs").exists());
    assert!(
        data_dir.join("db").is_dir(),
        "sled's db file is gone, the guard stands"
    );
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
    // What a kill between the rename and the deletion leaves: the verified
    // copy in place, the marker, and sled's files (here from a second copy
    // of the fixture, moved the whole way).
    let other = tempfile::tempdir().unwrap();
    let moved = unpack(other.path());
    migrate::from_sled(&moved, 8 << 20).unwrap();
    std::fs::rename(migrate::engine_dir(&moved), migrate::engine_dir(&data_dir)).unwrap();
    std::fs::write(data_dir.join("sled-cleanup-pending"), b"").unwrap();

    assert_eq!(migrate::from_sled(&data_dir, 8 << 20).unwrap(), None);
    assert!(!data_dir.join("conf").exists());
    assert!(
        data_dir.join("db").is_dir(),
        "the guard stands where sled's db was"
    );
    assert!(!data_dir.join("sled-cleanup-pending").exists());
    let store = Store::open(&data_dir, StoreOptions::default()).unwrap();
    assert_eq!(without_id_counter(all_entries(store.kv.engine())), before);
}

#[test]
fn sled_files_beside_the_store_with_no_record_of_a_move_are_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    drop(FjallEngine::open(&migrate::engine_dir(&data_dir), 8 << 20).unwrap());
    let refusal = refused_move(&data_dir);
    assert!(
        matches!(refusal, migrate::MigrationError::BothStores),
        "{refusal}"
    );
    assert!(data_dir.join("db").is_file() && data_dir.join("conf").is_file());
}

#[test]
fn a_sled_conf_without_its_db_is_refused_not_taken_for_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conf"), b"segment_size: 524288").unwrap();
    let refusal = refused_move(dir.path());
    assert!(
        matches!(refusal, migrate::MigrationError::SledWithoutDb),
        "{refusal}"
    );
    assert!(!migrate::engine_dir(dir.path()).exists());
}

#[test]
fn an_older_relay_finds_a_guard_where_its_database_was() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = unpack(dir.path());
    drop(Store::open(&data_dir, StoreOptions::default()).unwrap());
    assert!(data_dir.join("db").is_dir());
    assert!(SledEngine::open(&data_dir, 8 << 20).is_err());
    let fresh = tempfile::tempdir().unwrap();
    drop(Store::open(fresh.path(), StoreOptions::default()).unwrap());
    assert!(SledEngine::open(fresh.path(), 8 << 20).is_err());
    // What the older relay leaves when the guard stops it is no store.
    std::fs::write(data_dir.join("conf"), b"segment_size: 524288").unwrap();
    std::fs::create_dir_all(data_dir.join("blobs")).unwrap();
    drop(Store::open(&data_dir, StoreOptions::default()).unwrap());
}

#[test]
fn a_new_data_directory_is_never_taken_for_an_old_one() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(migrate::from_sled(dir.path(), 8 << 20).unwrap(), None);
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    assert_eq!(migrate::from_sled(dir.path(), 8 << 20).unwrap(), None);
    assert!(migrate::engine_dir(dir.path()).is_dir());
}
