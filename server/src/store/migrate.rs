//! Moving a data directory written by an earlier relay (sled, in the data
//! directory itself) to the current engine (fjall, in `<data_dir>/fjall`).
//!
//! The move must survive being killed at any point and must never lose what
//! the old directory held:
//! 1. every entry is copied into `<data_dir>/fjall.migrating` (a leftover
//!    from a killed attempt is deleted first), persisted, and read back and
//!    compared (count and SHA-256 over every key and value);
//! 2. that directory is renamed to `<data_dir>/fjall` (one atomic rename,
//!    then an fsync of the data directory): from here on the new engine is
//!    the store;
//! 3. sled's files are deleted. If this is interrupted, the next start sees
//!    `fjall` and deletes what is left.
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

/// Why a data directory could not be moved to the current engine. The old
/// directory is untouched by every one of these.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
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

/// Moves a sled data directory to fjall if `data_dir` holds one; does
/// nothing otherwise.
pub(super) fn from_sled(
    data_dir: &Path,
    cache_bytes: u64,
) -> Result<Option<Migrated>, MigrationError> {
    let target = engine_dir(data_dir);
    if target.is_dir() {
        remove_sled_files(data_dir)?;
        return Ok(None);
    }
    if !SledEngine::is_in(data_dir) {
        return Ok(None);
    }
    let _span = tracing::info_span!("migrate", from = "sled", to = "fjall").entered();
    tracing::info!("moving the data directory to the relay's current engine");
    let partial = partial_dir(data_dir);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(MigrationError::Files)?;
    }
    let sled = SledEngine::open(data_dir, cache_bytes).map_err(MigrationError::Read)?;
    let fjall = FjallEngine::open(&partial, cache_bytes).map_err(MigrationError::Write)?;

    let copied = copy(&sled, &fjall)?;
    let read_back = digest(&fjall).map_err(MigrationError::Write)?;
    if read_back != copied {
        return Err(MigrationError::Mismatch {
            copied: copied.entries,
            read_back: read_back.entries,
        });
    }
    let next_id = sled
        .next_id()
        .map_err(MigrationError::Read)?
        .saturating_add(1);
    let mut counter = Batch::default();
    counter.insert(keys::meta(ID_COUNTER), next_id.to_be_bytes());
    fjall.apply(counter).map_err(MigrationError::Write)?;
    fjall.persist().map_err(MigrationError::Write)?;
    drop(fjall);
    drop(sled);

    std::fs::rename(&partial, &target).map_err(MigrationError::Files)?;
    sync_dir(data_dir)?;
    remove_sled_files(data_dir)?;
    let migrated = Migrated {
        entries: copied.entries,
        bytes: copied.bytes,
    };
    tracing::info!(
        entries = migrated.entries,
        bytes = migrated.bytes,
        "the data directory now uses the relay's current engine"
    );
    Ok(Some(migrated))
}

/// A count and a hash of every entry, in key order.
#[derive(Debug, PartialEq, Eq)]
struct Digest {
    entries: u64,
    bytes: u64,
    sha256: [u8; 32],
}

fn copy(from: &SledEngine, to: &FjallEngine) -> Result<Digest, MigrationError> {
    let mut hash = Sha256::new();
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut batch = Batch::default();
    let (mut in_batch, mut batch_bytes) = (0usize, 0usize);
    for entry in from.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
        let (key, value) = entry.map_err(MigrationError::Read)?;
        hash_entry(&mut hash, &key, &value);
        entries += 1;
        bytes += (key.len() + value.len()) as u64;
        batch_bytes += key.len() + value.len();
        in_batch += 1;
        batch.insert(key, value);
        if in_batch >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
            to.apply(std::mem::take(&mut batch))
                .map_err(MigrationError::Write)?;
            (in_batch, batch_bytes) = (0, 0);
        }
    }
    if !batch.is_empty() {
        to.apply(batch).map_err(MigrationError::Write)?;
    }
    to.persist().map_err(MigrationError::Write)?;
    Ok(Digest {
        entries,
        bytes,
        sha256: hash.finalize().into(),
    })
}

fn digest(engine: &dyn super::engine::Engine) -> Result<Digest, EngineError> {
    let mut hash = Sha256::new();
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in engine.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
        let (key, value) = entry?;
        hash_entry(&mut hash, &key, &value);
        entries += 1;
        bytes += (key.len() + value.len()) as u64;
    }
    Ok(Digest {
        entries,
        bytes,
        sha256: hash.finalize().into(),
    })
}

fn hash_entry(hash: &mut Sha256, key: &[u8], value: &[u8]) {
    hash.update((key.len() as u64).to_be_bytes());
    hash.update(key);
    hash.update((value.len() as u64).to_be_bytes());
    hash.update(value);
}

/// Deletes sled's files from a data directory whose store has moved.
fn remove_sled_files(data_dir: &Path) -> Result<(), MigrationError> {
    let entries = std::fs::read_dir(data_dir).map_err(MigrationError::Files)?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(MigrationError::Files)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_sled = matches!(name.as_ref(), "conf" | "db" | "blobs") || name.starts_with("snap.");
        if !is_sled {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(MigrationError::Files)?;
        } else {
            std::fs::remove_file(&path).map_err(MigrationError::Files)?;
        }
        removed = true;
    }
    if removed {
        sync_dir(data_dir)?;
    }
    Ok(())
}

/// Makes a rename or deletion in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), MigrationError> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(MigrationError::Files)
}
