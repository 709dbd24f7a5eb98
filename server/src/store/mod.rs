//! The relay's persistent state, in one data directory.
//!
//! Everything lives in one ordered key space under table-tagged keys
//! (`keys`), so that every operation writes all of its records in one atomic
//! batch. Operations that read before they write hold the entity's lock
//! stripe (`locks`) from the read to the batch, which serialises them. The
//! key space is kept by an embedded engine behind the [`Engine`] trait
//! (`engine`): fjall since issue 19, in `<data_dir>/fjall`; a directory
//! written by an earlier relay on sled is migrated when it is first opened
//! (`migrate`).
//!
//! Writing is not yet durability: the engine buffers writes. Callers make an
//! operation durable before acknowledging it through the durability module's
//! `Flusher`, which shares one flush among all concurrent writers.
//!
//! The submodules group the operations by what they serve: accounts and
//! invites, KeyPackages, groups and their logs, delivery and acknowledgement,
//! blobs, and the periodic clean-up.

mod accounts;
mod blobs;
mod certificates;
mod commits;
mod delivery;
pub mod engine;
mod founding;
#[cfg(test)]
mod group_tests;
mod groups;
mod key_packages;
pub(crate) mod keys;
mod links;
mod locks;
mod maintenance;
#[cfg(test)]
mod member_set_tests;
mod member_sets;
mod migrate;
#[cfg(test)]
mod migrate_tests;
pub(crate) mod records;
mod revocations;
#[cfg(test)]
mod submission_id_tests;
mod submission_ids;
#[cfg(test)]
mod trim_tests;

use std::path::Path;
use std::sync::Mutex;

use convene_proto::ids::{GroupId, UserId, RELAY_ID_LEN};
use prost::Message;
use rand::RngCore;

pub use accounts::{Enrolment, NewInvite};
pub use blobs::{BlobOwner, BlobQuota};
pub use commits::CommitSubmission;
pub use delivery::{AckOutcome, InboxItem, LogItem, ReadBudget, TrimPolicy};
pub use engine::{Engine, EngineError};
pub use founding::Founding;
pub use groups::{AppendOutcome, MessageAppend, MessageSubmission, QueueLimits};
pub use key_packages::{Claim, KeyPackageStock, KeyPackageUpload};
pub use keys::DevicePublicKey;
pub use links::{LinkAnswer, NewLink, MAX_PENDING_LINKS};
pub use maintenance::{Retention, SweepReport};
pub use member_sets::{MemberSet, Routing};
pub use revocations::RevocationTarget;
pub use submission_ids::MAX_INDEXED_ENTRIES;

use crate::error::{RelayError, RelayResult};
use engine::{FjallEngine, Kv};
use locks::LockTable;

/// The version of the stored layout. A relay refuses a data directory
/// written by a newer, incompatible version instead of misreading it.
const SCHEMA_VERSION: u64 = 1;

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the data directory {path}")]
    Engine { path: String, source: EngineError },
    #[error("cannot move the data directory {path} to the relay's current engine")]
    Migration {
        path: String,
        #[source]
        source: migrate::MigrationError,
    },
    #[error(
        "the data directory {path} was written by a newer relay (schema {found}, this relay knows {known})"
    )]
    TooNew {
        path: String,
        found: u64,
        known: u64,
    },
    #[error("the data directory {path} is damaged: {detail}")]
    Damaged { path: String, detail: String },
}

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The engine's block cache budget, in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The relay's persistent state.
pub struct Store {
    kv: Kv,
    relay_id: [u8; RELAY_ID_LEN],
    group_locks: LockTable,
    device_locks: LockTable,
    /// Enrolment touches the user namespace and the invite: rare enough for
    /// one lock.
    enrol_lock: Mutex<()>,
    /// The newest log position of each group read or written since the
    /// store opened (see [`Store::group`]).
    heads: Mutex<std::collections::HashMap<GroupId, u64>>,
    /// Each group's members, as read under the group's lock and forgotten
    /// under it whenever they change (see [`member_sets`]).
    member_sets: Mutex<member_sets::MemberSets>,
    /// Each group log's submission ids, which answer a resubmitted message
    /// (see [`submission_ids`]).
    submission_ids: Mutex<submission_ids::SubmissionIdCache>,
}

impl Store {
    /// Opens (or creates) the store in `path`, first moving a directory
    /// written by an earlier relay on sled to the current engine. Fails if
    /// another process has it open.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, OpenError> {
        let shown = path.display().to_string();
        let engine_err = |source| OpenError::Engine {
            path: shown.clone(),
            source,
        };
        // The relay's metadata is readable by this user alone (0700).
        private_dir(path).map_err(|err| engine_err(err.into()))?;
        migrate::from_sled(path, options.cache_bytes).map_err(|source| OpenError::Migration {
            path: shown.clone(),
            source,
        })?;
        let engine = FjallEngine::open(&migrate::engine_dir(path), options.cache_bytes)
            .map_err(engine_err)?;
        let kv = Kv::new(Box::new(engine), keys::meta(migrate::ID_COUNTER));
        let damaged = |detail: String| OpenError::Damaged {
            path: shown.clone(),
            detail,
        };

        match kv.get(keys::meta("schema")).map_err(engine_err)? {
            Some(raw) => {
                let found = u64::from_be_bytes(
                    raw.as_slice()
                        .try_into()
                        .map_err(|_| damaged("schema version is unreadable".into()))?,
                );
                if found > SCHEMA_VERSION {
                    return Err(OpenError::TooNew {
                        path: shown,
                        found,
                        known: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                kv.insert(keys::meta("schema"), SCHEMA_VERSION.to_be_bytes())
                    .map_err(engine_err)?;
            }
        }

        let relay_id = match kv.get(keys::meta("relay_id")).map_err(engine_err)? {
            Some(raw) => raw
                .as_slice()
                .try_into()
                .map_err(|_| damaged("relay id is unreadable".into()))?,
            None => {
                let mut id = [0u8; RELAY_ID_LEN];
                rand::rngs::OsRng.fill_bytes(&mut id);
                kv.insert(keys::meta("relay_id"), id).map_err(engine_err)?;
                id
            }
        };
        kv.persist().map_err(engine_err)?;

        Ok(Store {
            kv,
            relay_id,
            group_locks: LockTable::new(),
            device_locks: LockTable::new(),
            enrol_lock: Mutex::new(()),
            heads: Mutex::default(),
            member_sets: Mutex::default(),
            submission_ids: Mutex::default(),
        })
    }

    /// The relay's identity, fixed when the data directory was created.
    pub fn relay_id(&self) -> [u8; RELAY_ID_LEN] {
        self.relay_id
    }

    /// Writes everything buffered to disk and waits for it (fsync).
    pub fn flush(&self) -> RelayResult<()> {
        Ok(self.kv.persist()?)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> RelayResult<u64> {
        Ok(self.kv.size_on_disk()?)
    }

    /// The name of the engine underneath, for logs and benchmarks.
    pub fn engine_name(&self) -> &'static str {
        self.kv.engine().name()
    }

    fn get<R: Message + Default>(&self, key: &[u8]) -> RelayResult<Option<R>> {
        match self.kv.get(key)? {
            Some(raw) => Ok(Some(R::decode(raw.as_ref())?)),
            None => Ok(None),
        }
    }

    /// Visits every record under `prefix`, decoded.
    fn scan<R: Message + Default>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = RelayResult<(Vec<u8>, R)>> + '_ {
        self.kv.scan_prefix(prefix).map(|item| {
            let (key, raw) = item?;
            let record = R::decode(raw.as_ref())?;
            Ok((key, record))
        })
    }
}

pub use convene_proto::now_ms;

fn encode<R: Message>(record: &R) -> Vec<u8> {
    record.encode_to_vec()
}

/// Reads a user id the store holds: one the relay would refuse was never
/// written by it, so it is damage.
pub(crate) fn stored_user_id(text: &str) -> RelayResult<UserId> {
    UserId::parse(text).map_err(|_| corrupt("a stored user id"))
}

fn corrupt(what: &str) -> RelayError {
    RelayError::Corrupt(what.to_string())
}

/// Creates `dir` readable by this user alone (0700 on Unix), or makes an
/// existing one so.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_id_is_stable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path(), StoreOptions::default())
            .unwrap()
            .relay_id();
        let second = Store::open(dir.path(), StoreOptions::default())
            .unwrap()
            .relay_id();
        assert_eq!(first, second);
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_readable_by_the_relays_user_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("convene-data");
        drop(Store::open(&dir, StoreOptions::default()).unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            store
                .kv
                .insert(keys::meta("schema"), 99u64.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
        }
        let err = Store::open(dir.path(), StoreOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::TooNew { found: 99, .. }), "{err}");
    }
}
