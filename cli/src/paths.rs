//! Where a device's state lives when `--state-dir` does not say.

use std::path::PathBuf;

use anyhow::{bail, Result};

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
