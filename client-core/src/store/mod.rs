//! The client's persistent local state: one sled tree in the state
//! directory, holding the MLS state (through [`mls_storage`]), the identity,
//! groups, message history and the outbox.
//!
//! # Atomic operations
//!
//! openmls writes one operation (say, merging a commit) as many separate
//! storage calls, and the client adds its own records (history, cursors,
//! outbox) to the same operation. None of it may land half-way. So every
//! write goes to an in-memory overlay first; reads see the overlay, then the
//! tree. [`LocalStore::commit`] applies the whole overlay as one atomic sled
//! batch, and [`LocalStore::rollback`] forgets it. [`LocalStore::flush`]
//! then makes committed batches durable. Only one operation is open at a
//! time: the client's engine runs them one after another.
//!
//! # Encrypted at rest
//!
//! Every key and value passes through [`cipher`] on its way to sled, under
//! the [`StoreKey`] the app supplies: a copied state directory reveals no
//! message, key or member list. The overlay holds logical (clear) keys and
//! values, in memory only.

mod cipher;
pub(crate) mod fresh;
mod mls_encoding;
mod mls_storage;
pub mod passphrase;
pub mod records;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use prost::Message;

pub use cipher::StoreKey;
pub use mls_encoding::MlsStorageError;
pub use passphrase::{check_new_passphrase, PassphraseError};

use cipher::StoreCipher;

/// Physical key (in each data tree) of the record that checks the store key.
const KEY_CHECK: &[u8] = b"\x00key-check";
const KEY_CHECK_VALUE: &[u8] = b"convene local store v1";
/// Key in sled's default tree naming the data tree in use.
const CURRENT_TREE: &[u8] = b"current-tree";
const FIRST_TREE: &str = "data-1";

/// Table tags: the first byte of every key.
pub(crate) mod tag {
    /// Single records: the identity, cursors.
    pub const META: u8 = 0x01;
    /// openmls's state.
    pub const MLS: u8 = 0x02;
    /// Our view of each group.
    pub const GROUP: u8 = 0x03;
    /// Message history, per group in log order.
    pub const HISTORY: u8 = 0x04;
    /// (group, sender, message id) of every message shown, to drop repeats.
    pub const SEEN: u8 = 0x05;
    /// Operations persisted before they are sent.
    pub const OUTBOX: u8 = 0x06;
    /// Direct channel of each peer.
    pub const DIRECT: u8 = 0x07;
    /// Identity key pinned for each peer.
    pub const PEER: u8 = 0x08;
    /// Revocations this device verified.
    pub const REVOKED: u8 = 0x09;
    /// The private key a managed group's GroupInfo is sealed to.
    pub const MANAGER_KEY: u8 = 0x0A;
    /// Group messages taken from the relay and kept for later, per group
    /// in log order.
    pub const HELD: u8 = 0x0B;
    /// The verified directory: one entry per user.
    pub const DIRECTORY: u8 = 0x0C;
    /// Help requests this device knows, with their offers.
    pub const HELP: u8 = 0x0D;
}

/// Why the local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another open instance in this one) holds the
    /// state directory's lock.
    #[error("the local state in {path} is in use by another process (a convene command or app)")]
    Locked {
        /// The state directory.
        path: String,
    },
    /// The state directory cannot be opened.
    #[error("cannot open the local state in {path}")]
    Open {
        /// The state directory.
        path: String,
        /// sled's error.
        source: sled::Error,
    },
    /// sled failed to read or write.
    #[error("local storage failed")]
    Sled(#[from] sled::Error),
    /// A stored record or value cannot be decoded; the text says which.
    #[error("a stored record is damaged: {0}")]
    Corrupt(String),
    /// The state's files are damaged (cut short, overwritten); they are
    /// left as they are.
    #[error("the local state in {path} is damaged and was left untouched; restore it from a backup, or link this device again")]
    Damaged {
        /// The state directory.
        path: String,
    },
    /// The key does not open this state (a wrong passphrase, usually).
    #[error("the local state cannot be opened with this key (is the passphrase right?)")]
    WrongKey,
}

impl StoreError {
    /// The state is locked by another open instance (another process, or
    /// one in this process that is still closing).
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(err: prost::DecodeError) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// The client's state directory.
pub struct LocalStore {
    db: sled::Db,
    tree: sled::Tree,
    cipher: StoreCipher,
    /// Writes of the open operation, by logical key: `None` deletes.
    overlay: Mutex<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl LocalStore {
    /// Opens (or creates) the state in `dir`, encrypted under `key`. Fails
    /// if another process holds it, or if `key` is not the state's key.
    pub fn open(dir: &Path, key: &StoreKey) -> Result<LocalStore, StoreError> {
        let db = open_db(dir)?;
        let tree = db.open_tree(current_tree(&db)?)?;
        let cipher = StoreCipher::new(key)?;
        check_key(&tree, &cipher)?;
        Ok(LocalStore {
            db,
            tree,
            cipher,
            overlay: Mutex::new(BTreeMap::new()),
        })
    }

    /// Re-encrypts the state in `dir` from key `old` to key `new`. A crash
    /// part-way leaves the state under `old`: the new copy only takes over
    /// once it is complete and on disk.
    pub fn change_key(dir: &Path, old: &StoreKey, new: &StoreKey) -> Result<(), StoreError> {
        let store = LocalStore::open(dir, old)?;
        let current = current_tree(&store.db)?;
        let generation: u64 = current
            .strip_prefix("data-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("the data tree's name".into()))?;
        let next_name = format!("data-{}", generation + 1);
        store.db.drop_tree(next_name.as_bytes())?;
        let next = store.db.open_tree(next_name.as_bytes())?;
        let cipher = StoreCipher::new(new)?;
        let mut batch = sled::Batch::default();
        for item in store.tree.iter() {
            let (physical, sealed) = item?;
            if physical.as_ref() == KEY_CHECK {
                continue;
            }
            let (logical, value) = store.cipher.open(&physical, &sealed)?;
            let moved = cipher.physical_key(&logical);
            let sealed = cipher.seal(&moved, &logical, &value)?;
            batch.insert(moved, sealed);
        }
        batch.insert(
            KEY_CHECK,
            cipher.seal(KEY_CHECK, KEY_CHECK, KEY_CHECK_VALUE)?,
        );
        next.apply_batch(batch)?;
        store.db.flush()?;
        store.db.insert(CURRENT_TREE, next_name.as_bytes())?;
        store.db.flush()?;
        store.db.drop_tree(current.as_bytes())?;
        store.db.flush()?;
        Ok(())
    }

    fn overlay(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        // The overlay is a plain map; a panic cannot leave it half-updated.
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a committed value from sled.
    fn get_committed(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let physical = self.cipher.physical_key(key);
        match self.tree.get(&physical)? {
            None => Ok(None),
            Some(sealed) => {
                let (logical, value) = self.cipher.open(&physical, &sealed)?;
                if logical != key {
                    return Err(StoreError::Corrupt("a value under the wrong key".into()));
                }
                Ok(Some(value))
            }
        }
    }

    /// Reads a value as the open operation sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.overlay().get(key) {
            return Ok(pending.clone());
        }
        self.get_committed(key)
    }

    /// Writes a value in the open operation.
    pub fn put(&self, key: Vec<u8>, value: Vec<u8>) {
        self.overlay().insert(key, Some(value));
    }

    /// Deletes a value in the open operation.
    pub fn delete(&self, key: Vec<u8>) {
        self.overlay().insert(key, None);
    }

    /// Reads a protobuf record.
    pub fn get_record<R: Message + Default>(&self, key: &[u8]) -> Result<Option<R>, StoreError> {
        match self.get(key)? {
            Some(raw) => Ok(Some(R::decode(raw.as_slice())?)),
            None => Ok(None),
        }
    }

    /// Reads a committed protobuf record, ignoring the open operation: for
    /// readers outside the engine, which must not see half an operation.
    pub fn get_committed_record<R: Message + Default>(
        &self,
        key: &[u8],
    ) -> Result<Option<R>, StoreError> {
        match self.get_committed(key)? {
            Some(raw) => Ok(Some(R::decode(raw.as_slice())?)),
            None => Ok(None),
        }
    }

    /// Writes a protobuf record in the open operation.
    pub fn put_record<R: Message>(&self, key: Vec<u8>, record: &R) {
        self.put(key, record.encode_to_vec());
    }

    /// Opens one scanned entry.
    fn decode_entry<R: Message + Default>(
        &self,
        item: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<(Vec<u8>, R), StoreError> {
        let (physical, sealed) = item?;
        let (logical, value) = self.cipher.open(&physical, &sealed)?;
        Ok((logical, R::decode(value.as_slice())?))
    }

    /// Committed records under the logical `prefix` (a whole table, or one
    /// group's history), in key order. The open operation's writes are not
    /// included: scan between operations.
    pub fn scan<R: Message + Default>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, R), StoreError>> + '_ {
        self.tree
            .scan_prefix(self.cipher.physical_prefix(prefix))
            .map(|item| self.decode_entry(item))
    }

    /// Committed records under `prefix`, newest key first.
    pub fn scan_rev<R: Message + Default>(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, R), StoreError>> + '_ {
        self.tree
            .scan_prefix(self.cipher.physical_prefix(prefix))
            .rev()
            .map(|item| self.decode_entry(item))
    }

    /// Applies the open operation's writes as one atomic batch.
    pub fn commit(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.overlay());
        if pending.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in pending {
            let physical = self.cipher.physical_key(&key);
            match value {
                Some(value) => {
                    let sealed = self.cipher.seal(&physical, &key, &value)?;
                    batch.insert(physical, sealed)
                }
                None => batch.remove(physical),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Forgets the open operation's writes.
    pub fn rollback(&self) {
        self.overlay().clear();
    }

    /// Makes every committed operation durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Commits and flushes: the open operation is on disk when this returns.
    pub fn commit_durably(&self) -> Result<(), StoreError> {
        self.commit()?;
        self.flush()
    }
}

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    private_dir(dir).map_err(|source| StoreError::Open {
        path: dir.display().to_string(),
        source: source.into(),
    })?;
    sled::Config::new()
        .path(dir)
        .cache_capacity(32 * 1024 * 1024)
        .open()
        .map_err(|source| match source {
            sled::Error::Corruption { .. } => StoreError::Damaged {
                path: dir.display().to_string(),
            },
            // sled reports a held lock as an `Other` I/O error whose
            // message carries the OS error, so the kind alone cannot tell
            // it apart.
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked {
                    path: dir.display().to_string(),
                }
            }
            source => StoreError::Open {
                path: dir.display().to_string(),
                source,
            },
        })
}

/// Creates `dir` readable by this user alone (0700 on Unix), or makes an
/// existing one so: the state's sizes and names of files are nobody
/// else's business.
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

/// The name of the data tree in use (it changes when the key changes).
fn current_tree(db: &sled::Db) -> Result<String, StoreError> {
    match db.get(CURRENT_TREE)? {
        None => Ok(FIRST_TREE.to_string()),
        Some(name) => String::from_utf8(name.to_vec())
            .map_err(|_| StoreError::Corrupt("the data tree's name".into())),
    }
}

/// Checks that `cipher` opens this tree; a new, empty tree is given its
/// check record.
fn check_key(tree: &sled::Tree, cipher: &StoreCipher) -> Result<(), StoreError> {
    match tree.get(KEY_CHECK)? {
        Some(sealed) => match cipher.open(KEY_CHECK, &sealed) {
            Ok((_, value)) if value == KEY_CHECK_VALUE => Ok(()),
            _ => Err(StoreError::WrongKey),
        },
        None if tree.is_empty() => {
            tree.insert(
                KEY_CHECK,
                cipher.seal(KEY_CHECK, KEY_CHECK, KEY_CHECK_VALUE)?,
            )?;
            tree.flush()?;
            Ok(())
        }
        None => Err(StoreError::Corrupt("the store has no key check".into())),
    }
}

/// Builds a key from a table tag and parts, each part length-prefixed so
/// that no two different part lists give the same key.
pub(crate) fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 2).sum::<usize>());
    key.push(tag);
    for part in parts {
        key.extend_from_slice(&(part.len() as u16).to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

#[cfg(test)]
mod tests;
