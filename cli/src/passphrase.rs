//! Where the passphrase that unlocks this device's state comes from:
//! `--passphrase-command` (a program that prints it, such as a password
//! manager), the `CONVENE_PASSPHRASE` environment variable, or a prompt on
//! the terminal; never the command line, where other users of the machine
//! could read it. What is done with it (argon2id, salts, a crash-safe
//! change) is client-core's ([`convene_client::store::passphrase`]).

use std::process::Command;

use anyhow::{bail, Context, Result};
use convene_client::store::check_new_passphrase;
use convene_client::store::passphrase::MIN_PASSPHRASE_CHARS;
use zeroize::Zeroizing;

/// Environment variable holding the passphrase.
pub const ENV: &str = "CONVENE_PASSPHRASE";
/// Environment variable holding the new passphrase for `convene passphrase`.
pub const NEW_ENV: &str = "CONVENE_NEW_PASSPHRASE";

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
            return self.read("");
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
        return Ok(Zeroizing::new(value));
    }
    prompt_twice(NEW_ENV, "New passphrase: ")
}

/// How many times a new passphrase is asked for before giving up.
const NEW_ATTEMPTS: u32 = 3;

/// Asks for a new passphrase twice (the terminal hides what is typed),
/// saying the rule first. One that would be refused is refused before it is
/// typed again, and a slip (refused, or the two differ) is asked again.
/// From `var`, it is read once and checked.
fn prompt_twice(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(var) {
        check_new_passphrase(&value).map_err(convene_client::ClientError::from)?;
        return Ok(Zeroizing::new(value));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("a new passphrase is needed: set {var}, or run in a terminal to be asked");
    }
    crate::output::note(&format!(
        "the passphrase has at least {MIN_PASSPHRASE_CHARS} characters and must be hard to \
         guess; a few unrelated words make a strong one"
    ));
    for attempt in 1..=NEW_ATTEMPTS {
        let last = attempt == NEW_ATTEMPTS;
        let first = read_env_or_prompt(var, prompt)?;
        if let Err(err) = check_new_passphrase(&first) {
            if last {
                return Err(convene_client::ClientError::from(err).into());
            }
            crate::output::note(&format!("{err}; try another"));
            continue;
        }
        let second = read_env_or_prompt(var, "The same passphrase again: ")?;
        if *first == *second {
            return Ok(first);
        }
        if last {
            bail!("the two passphrases differ");
        }
        crate::output::note("the two passphrases differ; once more");
    }
    bail!("no passphrase was chosen")
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
