//! The passphrase that unlocks a device's local state, and the store key
//! derived from it.
//!
//! The passphrase is stretched with argon2id (RFC 9106; 46 MiB, one pass,
//! OWASP's recommended setting) under a random 16-byte salt kept in the
//! state directory, so a stolen state directory must be attacked one slow
//! guess at a time. A new passphrase must have at least
//! [`MIN_PASSPHRASE_CHARS`] characters and a zxcvbn score of at least 3
//! (about 10^10 guesses).
//!
//! Changing the passphrase is crash-safe: the new salt is written aside
//! (`passphrase.salt.next`, flushed with its directory entry) before the
//! state is re-encrypted, and becomes the current salt only once the state
//! opens under it. Unlocking tries the current salt, then the one aside, so
//! a crash at any point leaves a state that one of the two passphrases
//! opens.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use super::StoreKey;

/// Fewest characters a new passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Weakest a new passphrase may be, as zxcvbn scores it (0 to 4): 3 means
/// about 10^10 guesses, each costing an attacker an argon2id run.
const MIN_SCORE: u8 = 3;
const SALT_FILE: &str = "passphrase.salt";
/// Where a new salt waits while the state is re-encrypted.
const NEXT_SALT_FILE: &str = "passphrase.salt.next";
const SALT_LEN: usize = 16;

/// Why a passphrase could not lock or unlock the state.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// A new passphrase shorter than [`MIN_PASSPHRASE_CHARS`].
    #[error("a passphrase has at least {MIN_PASSPHRASE_CHARS} characters")]
    TooShort,
    /// A new passphrase zxcvbn judges easy to guess; `advice` says why and
    /// what helps, in words for people.
    #[error("{advice}")]
    TooWeak {
        /// zxcvbn's warning and suggestions, joined.
        advice: String,
    },
    /// The key derivation failed (it does not for the fixed parameters and
    /// a 16-byte salt; kept typed rather than assumed).
    #[error("cannot derive the store key from the passphrase")]
    Derive(#[source] argon2::Error),
    /// A salt file could not be read, written or renamed.
    #[error("cannot {action} {}", path.display())]
    SaltFile {
        /// What was being done: "read", "write" or "rename".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A salt file has the wrong length: the state directory was damaged.
    #[error("{} is damaged (not a {SALT_LEN}-byte salt)", path.display())]
    SaltDamaged {
        /// The file.
        path: PathBuf,
    },
}

impl PassphraseError {
    /// Whether the passphrase itself was refused (as opposed to the files
    /// around it failing).
    pub fn is_weak(&self) -> bool {
        matches!(
            self,
            PassphraseError::TooShort | PassphraseError::TooWeak { .. }
        )
    }
}

/// Checks that a passphrase chosen for a new state is long and hard enough
/// to guess.
///
/// # Errors
/// [`PassphraseError::TooShort`] or [`PassphraseError::TooWeak`].
pub fn check_new_passphrase(passphrase: &str) -> Result<(), PassphraseError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(PassphraseError::TooShort);
    }
    let strength = zxcvbn::zxcvbn(passphrase, &["convene"]);
    if u8::from(strength.score()) >= MIN_SCORE {
        return Ok(());
    }
    let mut advice = vec!["this passphrase is too easy to guess".to_string()];
    if let Some(feedback) = strength.feedback() {
        let sentences = feedback
            .warning()
            .map(|w| w.to_string())
            .into_iter()
            .chain(feedback.suggestions().iter().map(|s| s.to_string()));
        advice.extend(sentences.map(|s| lowercase_first(s.trim_end_matches('.'))));
    }
    advice.push("a few unrelated words make a strong one".into());
    Err(PassphraseError::TooWeak {
        advice: advice.join("; "),
    })
}

/// `sentence` with its first letter in lower case, to go after a "; ".
fn lowercase_first(sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Stretches a passphrase into the store key (argon2id, 46 MiB, one pass).
pub(crate) fn derive(passphrase: &str, salt: &[u8]) -> Result<StoreKey, PassphraseError> {
    let params = argon2::Params::new(46 * 1024, 1, 1, Some(32)).map_err(PassphraseError::Derive)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(PassphraseError::Derive)?;
    Ok(StoreKey::from_bytes(*key))
}

/// A salt of an existing state and whether it waits aside (a change of
/// passphrase that was interrupted).
pub(crate) struct StoredSalt {
    pub(crate) salt: Vec<u8>,
    pub(crate) pending: bool,
}

/// Whether `state_dir` holds a salt: a state a passphrase was chosen for.
pub(crate) fn has_salt(state_dir: &Path) -> Result<bool, PassphraseError> {
    Ok(read_salt(&state_dir.join(SALT_FILE))?.is_some()
        || read_salt(&state_dir.join(NEXT_SALT_FILE))?.is_some())
}

/// The salts to try for an existing state: the current one, then one left
/// by a change of passphrase that was interrupted after the state switched.
pub(crate) fn salts(state_dir: &Path) -> Result<Vec<StoredSalt>, PassphraseError> {
    let mut salts = Vec::new();
    if let Some(salt) = read_salt(&state_dir.join(SALT_FILE))? {
        salts.push(StoredSalt {
            salt,
            pending: false,
        });
    }
    if let Some(salt) = read_salt(&state_dir.join(NEXT_SALT_FILE))? {
        salts.push(StoredSalt {
            salt,
            pending: true,
        });
    }
    Ok(salts)
}

/// The salt of a new state directory (created, this user's alone), made
/// and flushed if it has none yet.
pub(crate) fn salt_for_new_state(state_dir: &Path) -> Result<Vec<u8>, PassphraseError> {
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(state_dir)
        .map_err(|source| PassphraseError::SaltFile {
            action: "create",
            path: state_dir.to_path_buf(),
            source,
        })?;
    let path = state_dir.join(SALT_FILE);
    match read_salt(&path)? {
        Some(salt) => Ok(salt),
        None => write_salt(&path),
    }
}

/// A new salt for a change of passphrase, written aside first.
pub(crate) fn next_salt(state_dir: &Path) -> Result<Vec<u8>, PassphraseError> {
    write_salt(&state_dir.join(NEXT_SALT_FILE))
}

/// Makes the salt aside the current one (once the state opened under it).
pub(crate) fn promote_next_salt(state_dir: &Path) -> Result<(), PassphraseError> {
    let current = state_dir.join(SALT_FILE);
    std::fs::rename(state_dir.join(NEXT_SALT_FILE), &current)
        .and_then(|()| sync_parent(&current))
        .map_err(|source| PassphraseError::SaltFile {
            action: "rename",
            path: current,
            source,
        })
}

fn read_salt(path: &Path) -> Result<Option<Vec<u8>>, PassphraseError> {
    match std::fs::read(path) {
        Ok(salt) if salt.len() == SALT_LEN => Ok(Some(salt)),
        Ok(_) => Err(PassphraseError::SaltDamaged {
            path: path.to_path_buf(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PassphraseError::SaltFile {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a new salt, on disk (file and directory entry) before it is
/// used: a state encrypted under a salt that a crash lost could never be
/// opened again.
fn write_salt(path: &Path) -> Result<Vec<u8>, PassphraseError> {
    let mut salt = vec![0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| {
            file.write_all(&salt)?;
            file.sync_all()
        })
        .and_then(|()| sync_parent(path))
        .map_err(|source| PassphraseError::SaltFile {
            action: "write",
            path: path.to_path_buf(),
            source,
        })?;
    Ok(salt)
}

/// Flushes the directory entry of `path` (a new or renamed file).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        #[cfg(unix)]
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_guessable_passphrases_are_refused_with_advice() {
        assert!(matches!(
            check_new_passphrase("Tr0ub4!"),
            Err(PassphraseError::TooShort)
        ));
        let weak = check_new_passphrase("password123").unwrap_err().to_string();
        assert!(weak.contains("too easy to guess"), "{weak}");
        assert!(check_new_passphrase("aaaaaaaaaaaa").is_err());
        assert!(check_new_passphrase("convene2026").is_err());
        assert!(check_new_passphrase("a brand new passphrase").is_ok());
        assert!(check_new_passphrase("orbit lantern quietly seven").is_ok());
        // The one README.md suggests for its walkthrough.
        assert!(check_new_passphrase("walkthrough only: pick your own").is_ok());
    }

    #[test]
    fn a_damaged_salt_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SALT_FILE), b"short").unwrap();
        assert!(matches!(
            salts(dir.path()),
            Err(PassphraseError::SaltDamaged { .. })
        ));
        assert_eq!(std::fs::read(dir.path().join(SALT_FILE)).unwrap(), b"short");
    }
}
