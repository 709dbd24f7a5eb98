//! The passphrase that unlocks a device's local state, and the key derived
//! from it.
//!
//! The passphrase comes from `--passphrase-command` (a program that prints
//! it, such as a password manager), the `CONVENE_PASSPHRASE` environment
//! variable, or a prompt on the terminal; never from the command line,
//! where other users of the machine could read it. It is stretched with
//! argon2id under a random salt kept in the state directory, so a stolen
//! state directory must be attacked one slow guess at a time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use convene_client::StoreKey;
use rand::RngCore;
use zeroize::Zeroizing;

/// Environment variable holding the passphrase.
pub const ENV: &str = "CONVENE_PASSPHRASE";
/// Environment variable holding the new passphrase for `convene passphrase`.
pub const NEW_ENV: &str = "CONVENE_NEW_PASSPHRASE";
const SALT_FILE: &str = "passphrase.salt";
/// Where a new salt waits while the state is re-encrypted.
const NEXT_SALT_FILE: &str = "passphrase.salt.next";
const SALT_LEN: usize = 16;

/// Where the passphrase comes from.
pub struct Source {
    /// `--passphrase-command`.
    pub command: Option<String>,
}

impl Source {
    /// Reads the current passphrase.
    pub fn read(&self, prompt: &str) -> Result<Zeroizing<String>> {
        if let Some(command) = &self.command {
            return run_command(command);
        }
        read_env_or_prompt(ENV, prompt)
    }

    /// Reads the passphrase for a new state: asked twice at a prompt, so
    /// that a typing slip does not lock the state for good.
    pub fn choose(&self) -> Result<Zeroizing<String>> {
        if self.command.is_some() || std::env::var(ENV).is_ok() {
            return check_new(self.read("")?);
        }
        prompt_twice(ENV, "Choose a passphrase for this device's state: ")
    }
}

fn read_env_or_prompt(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(var) {
        return Ok(Zeroizing::new(value));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "this device's state is locked by a passphrase: set {var}, use \
             --passphrase-command, or run in a terminal to be asked"
        );
    }
    let passphrase =
        Zeroizing::new(rpassword::prompt_password(prompt).context("cannot read the passphrase")?);
    Ok(passphrase)
}

/// Reads a new passphrase: from `CONVENE_NEW_PASSPHRASE`, or asked twice.
pub fn read_new() -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(NEW_ENV) {
        return check_new(Zeroizing::new(value));
    }
    prompt_twice(NEW_ENV, "New passphrase: ")
}

/// Asks for a new passphrase twice (the terminal hides what is typed).
fn prompt_twice(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    let first = read_env_or_prompt(var, prompt)?;
    let second = read_env_or_prompt(var, "The same passphrase again: ")?;
    if *first != *second {
        bail!("the two passphrases differ");
    }
    check_new(first)
}

/// Fewest characters a new passphrase may have.
const MIN_CHARS: usize = 8;
/// Weakest a new passphrase may be, as zxcvbn scores it: 3 means about
/// 10^10 guesses (each guess costs an attacker an argon2id run).
const MIN_SCORE: u8 = 3;

fn check_new(passphrase: Zeroizing<String>) -> Result<Zeroizing<String>> {
    if passphrase.chars().count() < MIN_CHARS {
        bail!("a passphrase has at least {MIN_CHARS} characters");
    }
    let strength = zxcvbn::zxcvbn(&passphrase, &["convene"]);
    if u8::from(strength.score()) < MIN_SCORE {
        let mut advice = vec!["this passphrase is too easy to guess".to_string()];
        if let Some(feedback) = strength.feedback() {
            let sentences = feedback
                .warning()
                .map(|w| w.to_string())
                .into_iter()
                .chain(feedback.suggestions().iter().map(|s| s.to_string()));
            advice.extend(sentences.map(|s| s.trim_end_matches('.').to_lowercase()));
        }
        advice.push("a few unrelated words make a strong one".into());
        bail!("{}", advice.join("; "));
    }
    Ok(passphrase)
}

fn run_command(command: &str) -> Result<Zeroizing<String>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .context("cannot run the passphrase command")?;
    if !out.status.success() {
        bail!("the passphrase command failed ({})", out.status);
    }
    let text = Zeroizing::new(
        String::from_utf8(out.stdout).context("the passphrase command printed non-UTF-8")?,
    );
    Ok(Zeroizing::new(
        text.strip_suffix('\n').unwrap_or(&text).to_string(),
    ))
}

/// Stretches a passphrase into the store key (argon2id, 46 MiB, one pass:
/// OWASP's recommended setting).
pub fn derive(passphrase: &str, salt: &[u8]) -> Result<StoreKey> {
    let params = argon2::Params::new(46 * 1024, 1, 1, Some(32))
        .map_err(|err| anyhow::anyhow!("argon2 parameters: {err}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|err| anyhow::anyhow!("cannot derive the key: {err}"))?;
    Ok(StoreKey::from_bytes(*key))
}

fn salt_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

fn read_salt(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(salt) if salt.len() == SALT_LEN => Ok(Some(salt)),
        Ok(_) => bail!("{} is damaged", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a new salt, on disk (file and directory entry) before it is
/// used: a state encrypted under a salt that a crash lost could never be
/// opened again.
fn write_salt(path: &Path) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut salt = vec![0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let context = || format!("cannot write {}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(context)?;
    file.write_all(&salt).with_context(context)?;
    file.sync_all().with_context(context)?;
    sync_parent(path).with_context(context)?;
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

/// The salt of this state directory, made for a new one.
pub fn salt_for_new_state(state_dir: &Path) -> Result<Vec<u8>> {
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    // The state directory is this user's alone.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    match read_salt(&salt_path(state_dir, SALT_FILE))? {
        Some(salt) => Ok(salt),
        None => write_salt(&salt_path(state_dir, SALT_FILE)),
    }
}

/// The salts to try for an existing state: the current one, then one left
/// by a change of passphrase that was interrupted after the state switched.
pub fn salts(state_dir: &Path) -> Result<Vec<(Vec<u8>, bool)>> {
    let mut salts = Vec::new();
    if let Some(salt) = read_salt(&salt_path(state_dir, SALT_FILE))? {
        salts.push((salt, false));
    }
    if let Some(salt) = read_salt(&salt_path(state_dir, NEXT_SALT_FILE))? {
        salts.push((salt, true));
    }
    Ok(salts)
}

/// Makes the pending salt the current one (after it opened the state).
pub fn promote_next_salt(state_dir: &Path) -> Result<()> {
    let current = salt_path(state_dir, SALT_FILE);
    std::fs::rename(salt_path(state_dir, NEXT_SALT_FILE), &current)
        .and_then(|()| sync_parent(&current))
        .context("cannot store the new passphrase's salt")
}

/// A new salt for a change of passphrase, written aside first.
pub fn next_salt(state_dir: &Path) -> Result<Vec<u8>> {
    write_salt(&salt_path(state_dir, NEXT_SALT_FILE))
}

#[cfg(test)]
mod strength_tests {
    use super::*;

    fn check(passphrase: &str) -> Result<Zeroizing<String>> {
        check_new(Zeroizing::new(passphrase.to_string()))
    }

    #[test]
    fn short_or_guessable_passphrases_are_refused_with_advice() {
        assert!(check("Tr0ub4!").is_err());
        let weak = check("password123").unwrap_err().to_string();
        assert!(weak.contains("too easy to guess"), "{weak}");
        assert!(check("aaaaaaaaaaaa").is_err());
        assert!(check("convene2026").is_err());
        assert!(check("a brand new passphrase").is_ok());
        assert!(check("orbit lantern quietly seven").is_ok());
        // The one README.md suggests for its walkthrough.
        assert!(check("walkthrough only: pick your own").is_ok());
    }
}
