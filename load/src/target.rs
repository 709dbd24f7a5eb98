//! The process under load: the real relay binary, or the baseline (this
//! same binary, run as `convene-load baseline-serve`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use super::stats;
use convene_tests::relay_process::{RelayOptions, RelayProcess};

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Relay,
    Baseline,
}

/// Limits for a benchmark relay: the per-device request rate is raised,
/// since one generator device stands for many busy people; every other
/// bound, durability and authentication stay as shipped.
const BENCH_LIMITS: &str = "[limits]\nrequests_per_second = 1000000\nrequest_burst = 1000000\n";

/// A running server under test.
pub struct Target {
    pub kind: Kind,
    pub url: String,
    pub pid: u32,
    /// The relay's bootstrap invite (the baseline accepts any).
    pub bootstrap_invite: String,
    data_dir: Option<PathBuf>,
    relay: Option<RelayProcess>,
    baseline: Option<Child>,
}

impl Target {
    /// Starts a fresh server of `kind` on a loopback port.
    pub fn start(kind: Kind) -> Result<Target> {
        match kind {
            Kind::Relay => {
                let relay = RelayProcess::start(RelayOptions {
                    config_toml: BENCH_LIMITS.to_string(),
                    log_filter: Some("warn".into()),
                    ..Default::default()
                })?;
                Ok(Target {
                    kind,
                    url: relay.url.clone(),
                    pid: relay.pid().ok_or_else(|| anyhow!("the relay has no pid"))?,
                    bootstrap_invite: relay
                        .bootstrap_invite
                        .clone()
                        .ok_or_else(|| anyhow!("the relay printed no bootstrap invite"))?,
                    data_dir: Some(relay.data_dir()),
                    relay: Some(relay),
                    baseline: None,
                })
            }
            Kind::Baseline => {
                let exe = std::env::current_exe().context("cannot find this executable")?;
                let mut child = Command::new(exe)
                    .arg("baseline-serve")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .context("cannot start the baseline")?;
                let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                let url = line
                    .trim()
                    .strip_prefix("baseline listening on ")
                    .ok_or_else(|| anyhow!("the baseline did not start: {line:?}"))?
                    .to_string();
                Ok(Target {
                    kind,
                    url,
                    pid: child.id(),
                    bootstrap_invite: convene_proto::invite::Invite {
                        secret: convene_proto::invite::InviteSecret::generate(),
                        authority_fingerprint: None,
                        relay_url: None,
                    }
                    .to_code(),
                    data_dir: None,
                    relay: None,
                    baseline: Some(child),
                })
            }
        }
    }

    /// Stops the server and starts it again (the relay on the same data
    /// directory and port), so that memory measured next starts clean.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(relay) = self.relay.as_mut() {
            relay.terminate(std::time::Duration::from_secs(30))?;
            relay.restart()?;
            self.pid = relay.pid().ok_or_else(|| anyhow!("the relay has no pid"))?;
            return Ok(());
        }
        let fresh = Target::start(self.kind)?;
        if let Some(mut child) = self.baseline.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        *self = fresh;
        Ok(())
    }

    /// CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        stats::cpu_seconds(self.pid)
    }

    /// The server's resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        stats::memory(self.pid, "VmRSS")
    }

    /// The server's peak resident memory, in bytes.
    pub fn peak_rss(&self) -> u64 {
        stats::memory(self.pid, "VmHWM")
    }

    /// Bytes its store occupies on disk (`None` for the baseline).
    pub fn disk(&self) -> Option<u64> {
        self.data_dir.as_deref().map(stats::disk_usage)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        drop(self.relay.take());
        if let Some(mut child) = self.baseline.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
