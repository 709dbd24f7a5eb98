//! The relay running inside the test process, for tests that neither kill
//! nor restart it and never read what it prints: the same library code as
//! the `convene-server` binary (`Relay::open`, `server::run`), without a
//! process to spawn or a binary to build first.
//!
//! It runs on a runtime of its own, on its own thread, so that a test's
//! runtime (often single-threaded) can block without stopping the relay,
//! and so that dropping it from inside an async test is allowed.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use convene_server::config::Config;
use convene_server::relay::Relay;
use tokio::sync::oneshot;

use crate::relay_process::RelayOptions;

/// How long dropping the relay waits for its orderly shutdown: the relay's
/// own grace for closing connections (5 s), and a little more.
const STOP_PATIENCE: Duration = Duration::from_secs(7);

/// A relay served from this process on an ephemeral port of 127.0.0.1, on
/// a new data directory. Stopped (connections closed with code 1001, the
/// store flushed) when dropped.
pub struct InProcessRelay {
    /// `ws://127.0.0.1:PORT` (or `wss://`).
    pub url: String,
    /// The bootstrap staff invite of the new relay.
    pub bootstrap_invite: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl InProcessRelay {
    /// Starts a relay with `options` (its `log_filter` does not apply: no
    /// subscriber is installed, and nothing is logged to read).
    pub fn start(options: RelayOptions) -> Result<InProcessRelay> {
        let dir = tempfile::tempdir()?;
        let config = config(&dir, &options)?;
        let acceptor = match &config.tls {
            Some(tls) => Some(convene_server::tls::acceptor(&tls.cert, &tls.key)?),
            None => None,
        };
        let scheme = if acceptor.is_some() { "wss" } else { "ws" };
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, start) = std::sync::mpsc::channel::<Result<(String, Option<String>)>>();
        // Everything runs on the relay's thread: a test's runtime may not
        // block on another one.
        let thread = std::thread::Builder::new()
            .name("in-process relay".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(err.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let opened = async {
                        let listener = tokio::net::TcpListener::bind(config.listen).await?;
                        let url = format!("{scheme}://{}", listener.local_addr()?);
                        let relay = Relay::open(config)?;
                        let invite = relay
                            .bootstrap_invite(&url)?
                            .map(|(invite, _)| invite.to_code());
                        anyhow::Ok((url, invite, relay, listener))
                    };
                    let (relay, listener) = match opened.await {
                        Ok((url, invite, relay, listener)) => {
                            let _ = started.send(Ok((url, invite)));
                            (relay, listener)
                        }
                        Err(err) => {
                            let _ = started.send(Err(err));
                            return;
                        }
                    };
                    convene_server::server::run(Arc::clone(&relay), listener, acceptor, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
            })
            .context("cannot start the relay's thread")?;
        let (url, invite) = start
            .recv()
            .map_err(|_| anyhow!("the in-process relay's thread ended before it started"))??;
        Ok(InProcessRelay {
            url,
            bootstrap_invite: invite,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        })
    }

    /// Starts the relay with default options.
    pub fn start_default() -> Result<InProcessRelay> {
        Self::start(RelayOptions::default())
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// The configuration the relay process would read for `options`.
fn config(dir: &tempfile::TempDir, options: &RelayOptions) -> Result<Config> {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
        dir.path().join("data").display()
    );
    if let Some((cert, key)) = &options.tls {
        text.push_str(&format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    text.push_str(&options.config_toml);
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text)?;
    let config = Config::from_file(&path)?;
    config.validate().map_err(|err| anyhow!("{err}"))?;
    Ok(config)
}

impl Drop for InProcessRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait for the store to be flushed before its directory goes; a
        // relay that does not stop in time is left to end with the process.
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + STOP_PATIENCE;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
