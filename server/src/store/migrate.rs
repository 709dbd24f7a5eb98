//! Moving a data directory written by an earlier relay (sled, in the data
//! directory itself) to the current engine (fjall, in `<data_dir>/fjall`).
//!
//! The move must survive being killed at any point, must never lose what
//! the old directory held, and must never delete anything it did not copy:
//! 1. with sled's file lock held (until step 3 is done, so that a second
//!    relay started meanwhile fails instead of undoing the move), every
//!    entry is copied into `<data_dir>/fjall.migrating` (a leftover from a
//!    killed attempt is deleted first), persisted, and the copy is reopened
//!    from disk and compared with the original (count and SHA-256 over
//!    every key and value);
//! 2. the marker `sled-cleanup-pending` is written and synced: from here
//!    on, sled's files are known to be copied;
//! 3. `fjall.migrating` is renamed to `fjall` (one atomic rename, then an
//!    fsync of the data directory): from here on the new engine is the store;
//! 4. sled's files are deleted, a guard is put where sled's `db` file was
//!    (a directory, which an older relay cannot open, so that it refuses
//!    the moved directory instead of starting an empty store in it), and
//!    the marker is removed.
//!
//! A start that finds `fjall` and the marker finishes step 4. A start that
//! finds `fjall` and sled's db file without the marker refuses to guess
//! which is the store ([`MigrationError::BothStores`]).
//!
//! The key layout is the same in both engines, so entries are copied as they
//! are. The one thing sled kept outside the key space, its id generator, is
//! carried over as the store's id counter so that KeyPackage ids keep
//! growing.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::engine::{Batch, Engine as _, EngineError, FjallEngine, SledEngine};
use super::keys;

/// The meta key under which the store reserves ids (see `engine::ids`).
pub(super) const ID_COUNTER: &str = "next_id";

/// Entries copied per batch, and the bytes at which a batch is cut short.
const BATCH_ENTRIES: usize = 10_000;
const BATCH_BYTES: usize = 4 << 20;

/// Why a data directory could not be moved to the current engine. None of
/// these deletes anything sled held: sled's files go only once the copy is
/// verified and in place.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the data directory holds both a sled store (db, conf) and the relay's store (fjall/), \
         with no record of a move between them: move one of them out of the directory"
    )]
    BothStores,
    #[error(
        "the data directory holds sled's conf file but not its db file: restore db or remove conf"
    )]
    SledWithoutDb,
    #[error("cannot read the earlier relay's store")]
    Read(#[source] EngineError),
    #[error("cannot write the new store")]
    Write(#[source] EngineError),
    #[error("cannot create, rename or delete the store's files")]
    Files(#[source] std::io::Error),
    #[error(
        "the copy does not match the original ({copied} entries copied, {read_back} read back)"
    )]
    Mismatch { copied: u64, read_back: u64 },
}

/// What a migration moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Entries copied.
    pub entries: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
}

/// Where the current engine keeps the store inside a data directory.
pub(super) fn engine_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fjall")
}

fn partial_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fjall.migrating")
}

/// Written once the copy is verified; while it exists, sled's files in the
/// data directory are known to be copied and may be deleted.
fn cleanup_marker(data_dir: &Path) -> PathBuf {
    data_dir.join("sled-cleanup-pending")
}

/// Where sled kept its data; a directory of this name is the guard.
fn sled_db(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

/// What the guard directory says to whoever opens it.
const GUARD_NOTE: &str = "This data directory is kept by convene-server in fjall/ (since \
2026-12-02). This directory stands where the older relay kept its sled database, so that \
an older relay refuses to start here instead of starting an empty store.\n";

/// Moves a sled data directory to fjall if `data_dir` holds one, finishes
/// a move that was interrupted, and puts the guard against older relays in
/// place. Returns what was moved, if anything.
pub(super) fn from_sled(
    data_dir: &Path,
    cache_bytes: u64,
) -> Result<Option<Migrated>, MigrationError> {
    let target = engine_dir(data_dir);
    let marker = cleanup_marker(data_dir);
    let sled_db_file = sled_db(data_dir).is_file();
    let sled_conf_file = data_dir.join("conf").is_file();
    if target.is_dir() {
        if marker.exists() {
            finish_cleanup(data_dir)?;
        } else if sled_db_file {
            return Err(MigrationError::BothStores);
        }
        // A `conf` or `blobs` without sled's db file beside the store is
        // what an older relay leaves when the guard stops it: no data.
        remove_partial(data_dir)?;
        put_guard(data_dir)?;
        return Ok(None);
    }
    if marker.exists() {
        // Killed between the marker and the rename: sled is intact, and
        // the move starts again.
        std::fs::remove_file(&marker).map_err(MigrationError::Files)?;
        sync_dir(data_dir)?;
    }
    if !sled_db_file {
        if sled_conf_file {
            return Err(MigrationError::SledWithoutDb);
        }
        put_guard(data_dir)?;
        return Ok(None);
    }
    let migrated = migrate(data_dir, cache_bytes)?;
    Ok(Some(migrated))
}

/// Puts the guard in a data directory that has none (a new one).
fn put_guard(data_dir: &Path) -> Result<(), MigrationError> {
    let guard = sled_db(data_dir);
    if guard.exists() {
        return Ok(());
    }
    match std::fs::create_dir(&guard) {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        other => other.map_err(MigrationError::Files)?,
    }
    std::fs::write(guard.join("README"), GUARD_NOTE).map_err(MigrationError::Files)?;
    sync_dir(data_dir)
}

fn migrate(data_dir: &Path, cache_bytes: u64) -> Result<Migrated, MigrationError> {
    let _span = tracing::info_span!("migrate", from = "sled", to = "fjall").entered();
    tracing::info!("moving the data directory to the relay's current engine");
    // sled locks its files: a second relay started meanwhile fails to open
    // them, before it could delete this one's partial copy.
    let sled = SledEngine::open(data_dir, cache_bytes).map_err(MigrationError::Read)?;
    remove_partial(data_dir)?;
    let partial = partial_dir(data_dir);
    let copied = {
        let fjall = FjallEngine::open(&partial, cache_bytes).map_err(MigrationError::Write)?;
        copy(&sled, &fjall)?
    };
    // Read back from disk, not from the writer's memory.
    let fjall = FjallEngine::open(&partial, cache_bytes).map_err(MigrationError::Write)?;
    let read_back = digest(&fjall).map_err(MigrationError::Write)?;
    if read_back.entries != copied.entries
        || read_back.bytes != copied.bytes
        || read_back.sha256 != copied.sha256
    {
        return Err(MigrationError::Mismatch {
            copied: copied.entries,
            read_back: read_back.entries,
        });
    }
    let next_id = sled
        .next_id()
        .map_err(MigrationError::Read)?
        .max(copied.newest_key_package_id)
        .saturating_add(1);
    let mut counter = Batch::default();
    counter.insert(keys::meta(ID_COUNTER), next_id.to_be_bytes());
    fjall.apply(counter).map_err(MigrationError::Write)?;
    fjall.persist().map_err(MigrationError::Write)?;
    drop(fjall);

    let marker = cleanup_marker(data_dir);
    std::fs::File::create(&marker)
        .and_then(|file| file.sync_all())
        .map_err(MigrationError::Files)?;
    sync_dir(data_dir)?;
    std::fs::rename(&partial, engine_dir(data_dir)).map_err(MigrationError::Files)?;
    sync_dir(data_dir)?;
    // Held to here, sled's lock keeps another relay from taking the marker
    // for a leftover while the rename is pending; after it, a second relay
    // finishing the clean-up beside this one deletes the same files.
    drop(sled);
    finish_cleanup(data_dir)?;
    let migrated = Migrated {
        entries: copied.entries,
        bytes: copied.bytes,
    };
    tracing::info!(
        entries = migrated.entries,
        bytes = migrated.bytes,
        "the data directory now uses the relay's current engine"
    );
    Ok(migrated)
}

/// A count and a hash of every entry, in key order.
#[derive(Debug)]
struct Digest {
    entries: u64,
    bytes: u64,
    sha256: [u8; 32],
    /// The largest KeyPackage id among the keys.
    newest_key_package_id: u64,
}

fn copy(from: &SledEngine, to: &FjallEngine) -> Result<Digest, MigrationError> {
    let mut digest = Digester::default();
    let mut batch = Batch::default();
    let (mut in_batch, mut batch_bytes) = (0usize, 0usize);
    for entry in from.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
        let (key, value) = entry.map_err(MigrationError::Read)?;
        digest.add(&key, &value);
        batch_bytes += key.len() + value.len();
        in_batch += 1;
        batch.insert(key, value);
        if in_batch >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
            to.apply(std::mem::take(&mut batch))
                .map_err(MigrationError::Write)?;
            (in_batch, batch_bytes) = (0, 0);
        }
    }
    to.apply(batch).map_err(MigrationError::Write)?;
    to.persist().map_err(MigrationError::Write)?;
    Ok(digest.finish())
}

fn digest(engine: &dyn super::engine::Engine) -> Result<Digest, EngineError> {
    let mut digest = Digester::default();
    for entry in engine.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
        let (key, value) = entry?;
        digest.add(&key, &value);
    }
    Ok(digest.finish())
}

/// Accumulates a [`Digest`] entry by entry, in key order.
#[derive(Default)]
struct Digester {
    hash: Sha256,
    entries: u64,
    bytes: u64,
    newest_key_package_id: u64,
}

impl Digester {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.hash.update((key.len() as u64).to_be_bytes());
        self.hash.update(key);
        self.hash.update((value.len() as u64).to_be_bytes());
        self.hash.update(value);
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
        if key.first() == Some(&keys::KEY_PACKAGE) {
            let id = key
                .len()
                .checked_sub(8)
                .and_then(|at| key.get(at..))
                .and_then(|id| <[u8; 8]>::try_from(id).ok())
                .map_or(0, u64::from_be_bytes);
            self.newest_key_package_id = self.newest_key_package_id.max(id);
        }
    }

    fn finish(self) -> Digest {
        Digest {
            entries: self.entries,
            bytes: self.bytes,
            sha256: self.hash.finalize().into(),
            newest_key_package_id: self.newest_key_package_id,
        }
    }
}

/// Deletes sled's files (each only if it is of the kind sled made), puts
/// the guard in place and removes the cleanup marker.
fn finish_cleanup(data_dir: &Path) -> Result<(), MigrationError> {
    let remove_file = |path: PathBuf| -> Result<(), MigrationError> {
        if path.is_file() {
            std::fs::remove_file(&path)
                .or_else(gone)
                .map_err(MigrationError::Files)?;
        }
        Ok(())
    };
    remove_file(data_dir.join("conf"))?;
    remove_file(sled_db(data_dir))?;
    let blobs = data_dir.join("blobs");
    if blobs.is_dir() {
        std::fs::remove_dir_all(&blobs)
            .or_else(gone)
            .map_err(MigrationError::Files)?;
    }
    for entry in std::fs::read_dir(data_dir).map_err(MigrationError::Files)? {
        let entry = entry.map_err(MigrationError::Files)?;
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            remove_file(entry.path())?;
        }
    }
    sync_dir(data_dir)?;
    put_guard(data_dir)?;
    std::fs::remove_file(cleanup_marker(data_dir))
        .or_else(gone)
        .map_err(MigrationError::Files)?;
    sync_dir(data_dir)
}

/// A file already deleted (by another relay finishing the same clean-up) is
/// as good as deleted here.
fn gone(err: std::io::Error) -> std::io::Result<()> {
    match err.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(err),
    }
}

/// Deletes what a killed copy left.
fn remove_partial(data_dir: &Path) -> Result<(), MigrationError> {
    let partial = partial_dir(data_dir);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(MigrationError::Files)?;
    }
    Ok(())
}

/// Makes a rename or deletion in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), MigrationError> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(MigrationError::Files)
}
