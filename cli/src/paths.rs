//! Where a device's state lives when `--state-dir` does not say, and the
//! relay it remembers.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// `$XDG_DATA_HOME/convene`, or `~/.local/share/convene` (the XDG base
/// directory default).
pub fn default_state_dir() -> Result<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        let data = PathBuf::from(data);
        // The specification says relative values are to be ignored.
        if data.is_absolute() {
            return Ok(data.join("convene"));
        }
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/convene")),
        None => bail!("cannot tell where to keep this device's state: set --state-dir or HOME"),
    }
}

/// The file in a state directory that names the device's relay, in the
/// clear: `convene ping` reads it without the passphrase. (The URL is no
/// secret; the directory is its user's alone.)
const RELAY_FILE: &str = "relay";

/// Remembers the relay a device enrolled with.
pub fn remember_relay(state_dir: &Path, url: &str) -> Result<()> {
    let path = state_dir.join(RELAY_FILE);
    std::fs::write(&path, format!("{url}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The relay a device in `state_dir` enrolled with, if it is known.
pub fn remembered_relay(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join(RELAY_FILE)).ok()?;
    let url = text.trim();
    (!url.is_empty()).then(|| url.to_string())
}
