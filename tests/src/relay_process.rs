//! A `convene-server` process for one test.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::binaries::binary;

/// How to run the relay.
#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// Extra TOML for the configuration file (e.g. a `[limits]` table).
    pub config_toml: String,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The relay's log filter (`CONVENE_LOG`); debug when unset, so that a
    /// failing test shows everything.
    pub log_filter: Option<String>,
}

/// A running relay. Killed (SIGKILL) when dropped.
pub struct RelayProcess {
    child: Option<Child>,
    /// `ws://127.0.0.1:PORT` (or `wss://`).
    pub url: String,
    /// The bootstrap staff invite, when the relay printed one.
    pub bootstrap_invite: Option<String>,
    port: u16,
    options: RelayOptions,
    dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts a relay on a new, empty data directory.
    pub fn start(options: RelayOptions) -> Result<RelayProcess> {
        let dir = tempfile::tempdir()?;
        let mut relay = RelayProcess {
            child: None,
            url: String::new(),
            bootstrap_invite: None,
            port: 0,
            options,
            dir,
        };
        relay.spawn()?;
        Ok(relay)
    }

    /// Starts the relay with default options.
    pub fn start_default() -> Result<RelayProcess> {
        Self::start(RelayOptions::default())
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the relay logged (stderr, all runs), at debug level.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// Everything the relay printed on standard output (all runs).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.out")).unwrap_or_default()
    }

    /// The process id of the running relay.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<()> {
        let config_path = self.dir.path().join("relay.toml");
        let listen = format!("127.0.0.1:{}", self.port);
        let mut config = format!(
            "listen = \"{listen}\"\ndata_dir = \"{}\"\n",
            self.data_dir().display()
        );
        if let Some((cert, key)) = &self.options.tls {
            config.push_str(&format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        config.push_str(&self.options.config_toml);
        std::fs::write(&config_path, config)?;

        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("relay.log"))?;
        let mut child = Command::new(binary("convene-server"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env(
                "CONVENE_LOG",
                self.options.log_filter.as_deref().unwrap_or("debug"),
            )
            .env_remove("CONVENE_LISTEN")
            .env_remove("CONVENE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("cannot start convene-server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        self.child = Some(child);

        // Read the start-up lines on a thread; keep copying the rest to a
        // file so the pipe never fills.
        let out_path = self.dir.path().join("relay.out");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut copy = File::options()
                .create(true)
                .append(true)
                .open(out_path)
                .ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(file) = copy.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{line}");
                }
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        self.bootstrap_invite = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx
                .recv_timeout(left)
                .map_err(|_| anyhow!("the relay did not start; its log:\n{}", self.logs()))?;
            if let Some(code) = line.trim().strip_prefix("cvn2_") {
                self.bootstrap_invite = Some(format!("cvn2_{code}"));
            }
            if let Some(rest) = line.strip_prefix("Convene relay listening on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .ok_or_else(|| anyhow!("no url"))?;
                self.url = url.to_string();
                self.port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| anyhow!("no port in {url}"))?;
                return Ok(());
            }
        }
    }

    /// Kills the relay with SIGKILL and waits for it to die.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `patience` for the relay to exit.
    pub fn terminate(&mut self, patience: Duration) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("the relay is not running"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay did not exit within {patience:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the relay again on the same data directory and port.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the relay is still running");
        }
        self.spawn()
    }

    /// Opens the stopped relay's store directly, for inspection.
    pub fn open_store(&self) -> Result<convene_server::store::Store> {
        if self.child.is_some() {
            bail!("stop the relay before opening its store");
        }
        Ok(convene_server::store::Store::open(
            &self.data_dir(),
            convene_server::store::StoreOptions::default(),
        )?)
    }

    /// Rewrites the stopped relay's data directory as the relay released
    /// before issue 19 kept it: the same entries in a sled database in the
    /// data directory itself (the key layout did not change; only the id
    /// counter the fjall store adds is left out, as sled kept its own).
    pub fn rewrite_as_sled_release(&self) -> Result<()> {
        use convene_server::store::engine::{Batch, Engine as _, FjallEngine, SledEngine};
        if self.child.is_some() {
            bail!("stop the relay before rewriting its store");
        }
        let data_dir = self.data_dir();
        let fjall_dir = data_dir.join("fjall");
        // The guard the relay puts where sled kept its data.
        std::fs::remove_dir_all(data_dir.join("db"))?;
        {
            let fjall = FjallEngine::open(&fjall_dir, 8 << 20)?;
            let sled = SledEngine::open(&data_dir, 8 << 20)?;
            let id_counter = b"\x01next_id".as_slice();
            let mut batch = Batch::default();
            for entry in fjall.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded) {
                let (key, value) = entry?;
                if key != id_counter {
                    batch.insert(key, value);
                }
            }
            sled.apply(batch)?;
            sled.persist()?;
        }
        std::fs::remove_dir_all(&fjall_dir)?;
        Ok(())
    }

    /// Writes a self-signed certificate for 127.0.0.1 and localhost into
    /// `dir` and returns (cert, key).
    pub fn dev_certificate(dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        Ok(convene_server::tls::write_dev_certificate(&hosts, dir)?)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
