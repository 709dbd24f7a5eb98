//! What a state directory held before a device was set up in it, so that a
//! setup that fails (an invite refused, the relay out of reach) leaves the
//! directory as it was: a retry, with another passphrase even, starts from
//! the beginning, and nothing the directory held before is touched.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// The state directory before setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Before {
    /// There was no directory.
    Absent,
    /// The names directly in it.
    Entries(HashSet<OsString>),
}

/// How often removing what setup made is tried: the store's own threads
/// may still be closing its files for a moment.
const ATTEMPTS: u32 = 20;

impl Before {
    /// What `dir` holds now. A directory that cannot be read counts as
    /// holding everything: nothing in it will be removed.
    pub(crate) fn of(dir: &Path) -> Before {
        match std::fs::read_dir(dir) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Before::Absent,
            Err(_) => Before::Entries(HashSet::from([OsString::from("*")])),
            Ok(entries) => Before::Entries(
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name())
                    .collect(),
            ),
        }
    }

    /// Removes what was made in `dir` since: the directory itself if it was
    /// not there, else the entries that were not. Best effort; what cannot
    /// be removed is logged.
    pub(crate) fn restore(&self, dir: &Path) {
        for attempt in 1..=ATTEMPTS {
            match self.remove_new(dir) {
                Ok(()) => return,
                Err(err) if attempt == ATTEMPTS => {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        dir = %dir.display(),
                        "cannot remove what a failed setup left in the state directory"
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn remove_new(&self, dir: &Path) -> std::io::Result<()> {
        match self {
            Before::Absent => match std::fs::remove_dir_all(dir) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Before::Entries(before) => {
                let entries = match std::fs::read_dir(dir) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    other => other?,
                };
                for entry in entries {
                    let entry = entry?;
                    if before.contains(&entry.file_name()) {
                        continue;
                    }
                    if entry.file_type()?.is_dir() {
                        std::fs::remove_dir_all(entry.path())?;
                    } else {
                        std::fs::remove_file(entry.path())?;
                    }
                }
                Ok(())
            }
        }
    }
}
