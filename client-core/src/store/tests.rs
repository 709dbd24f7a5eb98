//! The local store: encryption at rest, atomic operations, recovery of
//! an interrupted write, and the lock against a second process.

use super::*;

fn test_key() -> StoreKey {
    StoreKey::from_bytes([7; 32])
}

/// Runs `op` on a state another handle in this process has just
/// dropped. sled releases its file lock when its background flusher
/// stops, a moment after the handle goes, so a busy machine can still
/// see it held.
fn when_released<T>(mut op: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    for _ in 0..100 {
        match op() {
            Err(err) if err.is_locked() => std::thread::sleep(std::time::Duration::from_millis(50)),
            other => return other,
        }
    }
    op()
}

fn reopen(dir: &Path, key: &StoreKey) -> Result<LocalStore, StoreError> {
    when_released(|| LocalStore::open(dir, key))
}

#[test]
fn a_wrong_key_is_refused_and_the_key_can_change() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path(), &test_key()).unwrap();
        store.put(key(tag::DIRECT, &[b"ana"]), b"group".to_vec());
        store.commit_durably().unwrap();
    }
    let other = StoreKey::from_bytes([8; 32]);
    assert!(matches!(
        reopen(dir.path(), &other),
        Err(StoreError::WrongKey)
    ));
    when_released(|| LocalStore::change_key(dir.path(), &test_key(), &other)).unwrap();
    assert!(matches!(
        reopen(dir.path(), &test_key()),
        Err(StoreError::WrongKey)
    ));
    let store = reopen(dir.path(), &other).unwrap();
    assert_eq!(
        store.get(&key(tag::DIRECT, &[b"ana"])).unwrap().as_deref(),
        Some(&b"group"[..])
    );
}

#[test]
fn overlay_is_seen_then_committed_or_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path(), &test_key()).unwrap();
    store.put(b"a".to_vec(), b"1".to_vec());
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(
        store.get_committed(b"a").unwrap().is_none(),
        "not written before commit"
    );
    store.rollback();
    assert!(store.get(b"a").unwrap().is_none());

    store.put(b"a".to_vec(), b"2".to_vec());
    store.commit_durably().unwrap();
    store.delete(b"a".to_vec());
    assert!(
        store.get(b"a").unwrap().is_none(),
        "a pending delete hides the value"
    );
    store.rollback();
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
}

fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            found.push((path, bytes));
        }
    }
    found.sort();
    found
}

/// A local state cut short (a full disk, a bad copy): opening it gives a
/// typed error or what survived, never a panic, and a failed open
/// changes no file, so a backup or a better copy can still be used.
#[test]
fn a_truncated_store_is_refused_or_read_without_panic_and_left_as_it_was() {
    for keep in [0.0, 0.1, 0.5, 0.9] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = reopen(dir.path(), &test_key()).unwrap();
            for i in 0..200u32 {
                store.put(i.to_be_bytes().to_vec(), vec![i as u8; 300]);
            }
            store.commit_durably().unwrap();
        }
        for (path, bytes) in files(dir.path()) {
            let cut = (bytes.len() as f64 * keep) as usize;
            std::fs::write(&path, &bytes[..cut]).unwrap();
        }
        let damaged = files(dir.path());
        match reopen(dir.path(), &test_key()) {
            Err(err) => {
                eprintln!("kept {:.0}%: refused: {err}", keep * 100.0);
                assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
                assert_eq!(
                    files(dir.path()),
                    damaged,
                    "a failed open changed the files"
                );
            }
            Ok(store) => {
                let mut read = 0;
                for i in 0..200u32 {
                    if let Ok(Some(value)) = store.get(&i.to_be_bytes()) {
                        assert_eq!(value, vec![i as u8; 300], "a damaged value was read");
                        read += 1;
                    }
                }
                eprintln!(
                    "kept {:.0}%: opened, {read} of 200 values read",
                    keep * 100.0
                );
            }
        }
    }
}

#[test]
fn a_state_held_open_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _held = LocalStore::open(dir.path(), &test_key()).unwrap();
    let Err(err) = LocalStore::open(dir.path(), &test_key()) else {
        panic!("a second open of a held state succeeded");
    };
    assert!(err.is_locked(), "not recognised as locked: {err}");
    // Said in people's words, once: no OS error's debug form behind it.
    let told = crate::error::with_causes(&err);
    assert!(told.contains("in use by another process"), "{told}");
    assert!(!told.contains("Os {"), "{told}");
}

#[test]
fn committed_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reopen(dir.path(), &test_key()).unwrap();
        store.put(b"k".to_vec(), b"v".to_vec());
        store.commit_durably().unwrap();
        store.put(b"lost".to_vec(), b"v".to_vec());
    }
    let store = reopen(dir.path(), &test_key()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(store.get(b"lost").unwrap().is_none());
}

#[test]
fn keys_are_unambiguous() {
    assert_ne!(key(1, &[b"ab", b"c"]), key(1, &[b"a", b"bc"]));
}

#[cfg(unix)]
#[test]
fn the_state_directory_is_readable_by_its_user_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state").join("db");
    drop(LocalStore::open(&dir, &test_key()).unwrap());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
