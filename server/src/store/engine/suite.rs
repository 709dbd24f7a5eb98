//! The contract of [`Engine`], as tests every engine runs.
//!
//! `engine_suite!(name, opener)` instantiates every test for one engine;
//! `opener` opens (or reopens) that engine in a directory.

use std::io::{BufRead as _, BufReader};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Batch, Engine, Kv};

/// Opens an engine in a directory, creating it if needed.
pub(crate) type Opener = fn(&Path) -> Box<dyn Engine>;

fn kv(engine: Box<dyn Engine>) -> Kv {
    Kv::new(engine, b"\x01next_id".to_vec())
}

fn keys(kv: &Kv, prefix: &[u8]) -> Vec<Vec<u8>> {
    kv.scan_prefix(prefix)
        .map(|entry| entry.unwrap().0)
        .collect()
}

pub(crate) fn keys_are_ordered_bytewise(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let kv = kv(open(dir.path()));
    for key in [&b"b"[..], b"a\xff", b"a", b"ab", b"\x00", b"a\x00"] {
        kv.insert(key, b"v").unwrap();
    }
    let all: Vec<_> = kv.range::<&[u8], _>(..).map(|e| e.unwrap().0).collect();
    let expected: Vec<&[u8]> = vec![b"\x00", b"a", b"a\x00", b"ab", b"a\xff", b"b"];
    assert_eq!(all, expected);
}

pub(crate) fn ranges_and_prefixes_honour_their_bounds(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let kv = kv(open(dir.path()));
    for i in 0u8..10 {
        kv.insert([7, i], [i]).unwrap();
    }
    kv.insert([8], b"next table").unwrap();
    kv.insert([0xFF, 0xFF], b"last").unwrap();
    assert_eq!(keys(&kv, &[7]).len(), 10);
    let middle: Vec<_> = kv
        .range([7u8, 3].as_slice()..[7u8, 6].as_slice())
        .map(|e| e.unwrap().1)
        .collect();
    assert_eq!(middle, vec![vec![3], vec![4], vec![5]]);
    let inclusive: Vec<_> = kv
        .range([7u8, 8].as_slice()..=[7u8, 9].as_slice())
        .map(|e| e.unwrap().1)
        .collect();
    assert_eq!(inclusive, vec![vec![8], vec![9]]);
    assert_eq!(keys(&kv, &[0xFF]), vec![vec![0xFF, 0xFF]]);
    let after: Vec<_> = kv
        .engine()
        .range(Bound::Excluded(&[7, 9]), Bound::Unbounded)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(after, vec![vec![8], vec![0xFF, 0xFF]]);
}

pub(crate) fn a_batch_is_applied_whole(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let kv = kv(open(dir.path()));
    kv.insert(b"gone", b"1").unwrap();
    let mut batch = Batch::default();
    batch.insert(b"x", b"1");
    batch.insert(b"y", b"2");
    batch.remove(b"gone");
    kv.apply_batch(batch).unwrap();
    assert_eq!(kv.get(b"x").unwrap(), Some(b"1".to_vec()));
    assert_eq!(kv.get(b"y").unwrap(), Some(b"2".to_vec()));
    assert!(!kv.contains_key(b"gone").unwrap());
    kv.remove(b"x").unwrap();
    assert_eq!(kv.get(b"x").unwrap(), None);
}

pub(crate) fn persisted_writes_survive_a_reopen(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    {
        let kv = kv(open(dir.path()));
        kv.insert(b"kept", b"value").unwrap();
        kv.persist().unwrap();
    }
    let kv = kv(open(dir.path()));
    assert_eq!(kv.get(b"kept").unwrap(), Some(b"value".to_vec()));
    assert!(kv.size_on_disk().unwrap() > 0);
}

pub(crate) fn ids_grow_across_reopens(open: Opener) {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let kv = kv(open(dir.path()));
        let a = kv.generate_id().unwrap();
        let b = kv.generate_id().unwrap();
        assert!(b > a);
        kv.persist().unwrap();
        b
    };
    let kv = kv(open(dir.path()));
    assert!(kv.generate_id().unwrap() > first);
}

/// The environment variable that turns [`writer_until_killed`] on: the
/// directory it writes to.
pub(crate) const KILL_CHILD_DIR: &str = "CONVENE_ENGINE_KILL_CHILD_DIR";

/// The body of the child process of [`persisted_batches_survive_a_kill`]:
/// batches of two keys, persisted every other batch, reported on stdout.
pub(crate) fn writer_until_killed(open: Opener) {
    let Some(dir) = std::env::var_os(KILL_CHILD_DIR) else {
        return;
    };
    let kv = kv(open(Path::new(&dir)));
    for i in 0u32.. {
        // Each batch carries a fresh id, as a KeyPackage upload does.
        let id = kv.generate_id().unwrap();
        let mut batch = Batch::default();
        batch.insert(format!("a{i:08}"), id.to_be_bytes());
        batch.insert(format!("b{i:08}"), i.to_be_bytes());
        kv.apply_batch(batch).unwrap();
        if i % 2 == 0 {
            kv.persist().unwrap();
            println!("persisted {i}");
        }
    }
}

/// Runs `child_test` (a `writer_until_killed` test of this binary) in a
/// child process, kills it with SIGKILL once it has persisted a few hundred
/// batches, and checks what the reopened engine holds: every persisted
/// batch, every batch whole, no batch without the ones before it, and no id
/// handed out again.
pub(crate) fn persisted_batches_survive_a_kill(open: Opener, child_test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([child_test, "--exact", "--include-ignored", "--nocapture"])
        .env(KILL_CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut persisted = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("persisted ") {
            let i: u32 = i.parse().unwrap();
            persisted = Some(i);
            if i >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let persisted = persisted.expect("the child persisted nothing");

    let kv = kv(open(dir.path()));
    let a = keys(&kv, b"a");
    let b = keys(&kv, b"b");
    assert_eq!(a.len(), b.len(), "a batch was torn");
    assert!(a.len() as u32 > persisted, "a persisted batch was lost");
    for (i, key) in a.iter().enumerate() {
        assert_eq!(key, format!("a{i:08}").as_bytes(), "a batch went missing");
    }
    let newest_stored_id = kv
        .scan_prefix(b"a")
        .map(|entry| u64::from_be_bytes(entry.unwrap().1.try_into().unwrap()))
        .max()
        .unwrap();
    assert!(
        kv.generate_id().unwrap() > newest_stored_id,
        "an id stored before the kill was handed out again"
    );
}

/// Instantiates the suite for one engine.
macro_rules! engine_suite {
    ($module:ident, $open:expr) => {
        mod $module {
            use crate::store::engine::suite;

            #[test]
            fn keys_are_ordered_bytewise() {
                suite::keys_are_ordered_bytewise($open);
            }
            #[test]
            fn ranges_and_prefixes_honour_their_bounds() {
                suite::ranges_and_prefixes_honour_their_bounds($open);
            }
            #[test]
            fn a_batch_is_applied_whole() {
                suite::a_batch_is_applied_whole($open);
            }
            #[test]
            fn persisted_writes_survive_a_reopen() {
                suite::persisted_writes_survive_a_reopen($open);
            }
            #[test]
            fn ids_grow_across_reopens() {
                suite::ids_grow_across_reopens($open);
            }
            #[test]
            fn persisted_batches_survive_a_kill() {
                suite::persisted_batches_survive_a_kill(
                    $open,
                    concat!(module_path!(), "::writer_until_killed")
                        .split_once("::")
                        .map(|(_, path)| path)
                        .unwrap(),
                );
            }
            /// The child process of `persisted_batches_survive_a_kill`.
            #[test]
            #[ignore = "run by persisted_batches_survive_a_kill as its child process"]
            fn writer_until_killed() {
                suite::writer_until_killed($open);
            }
        }
    };
}

engine_suite!(sled_suite, |path| Box::new(
    crate::store::engine::SledEngine::open(path, 8 << 20).unwrap()
));
engine_suite!(fjall_suite, |path| Box::new(
    crate::store::engine::FjallEngine::open(path, 8 << 20).unwrap()
));
