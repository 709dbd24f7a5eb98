//! What every command needs to reach this device's client: the state
//! directory, the relay, the passphrase and the patience. A call goes to
//! the daemon when one serves the state directory, and otherwise runs
//! inside [`Session::with_client`], which shuts the client down whatever
//! the outcome, so no path leaves the engine running.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use convene_client::{Client, ClientBuilder, ClientError};
use serde_json::Value;

use crate::call::Call;
use crate::daemon::rpc::DaemonError;
use crate::daemon::Daemon;
use crate::execute::{execute, not_confirmed, Ops};
use crate::passphrase;

/// How long a call through the daemon may take beyond its waits: the
/// daemon bounds each of a call's waits for the relay (at most three, as
/// `devices` and `devices remove` make) by its timeout, and its answer
/// follows. A caller that gave up sooner could lose an invite code the
/// daemon had made.
const DAEMON_GRACE: Duration = Duration::from_secs(5);
/// The most waits for the relay one call makes.
const WAITS_PER_CALL: u32 = 4;

/// What every command needs to open the device.
pub(crate) struct Session {
    pub(crate) state_dir: PathBuf,
    pub(crate) relay: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    pub(crate) passphrase: passphrase::Source,
}

/// Notes for people, on standard error.
fn note(text: &str) {
    crate::output::note(text);
}

impl Session {
    pub(crate) fn builder(&self) -> ClientBuilder {
        let builder = ClientBuilder::new(&self.state_dir);
        match &self.relay {
            Some(url) => builder.relay_url(url),
            None => builder,
        }
    }

    /// How calls run in this process.
    pub(crate) fn ops(&self) -> Ops<'static> {
        Ops {
            timeout: self.timeout,
            progress: !self.json,
            notes: &note,
        }
    }

    /// Runs `call` through the daemon if one serves this state directory,
    /// or in this process, and prints its answer.
    pub(crate) async fn run_call(&self, call: Call) -> Result<()> {
        let value = match Daemon::connect(&self.state_dir).await {
            Some(daemon) => self.through_daemon(daemon, &call).await?,
            None => {
                self.with_client(async |client| execute(&self.ops(), client, &call).await)
                    .await?
            }
        };
        let printed =
            crate::output::print(self.json, &value, || crate::output::render(&call, &value));
        match call {
            Call::Invite { .. } => crate::output::must_be_read(printed, "invite code"),
            _ => printed,
        }
    }

    async fn through_daemon(&self, mut daemon: Daemon, call: &Call) -> Result<Value> {
        let answered = crate::waiting::while_waiting(
            !self.json,
            "waiting for the daemon and the relay",
            tokio::time::timeout(
                self.timeout
                    .saturating_mul(WAITS_PER_CALL)
                    .saturating_add(DAEMON_GRACE),
                daemon.call(call, note),
            ),
        );
        match answered.await {
            Ok(answer) => answer,
            Err(_) => Err(not_confirmed(self.timeout)),
        }
    }

    /// Fails when a daemon serves this state directory: for commands that
    /// need the state to themselves.
    pub(crate) async fn no_daemon(&self, what: &'static str) -> Result<()> {
        match Daemon::connect(&self.state_dir).await {
            Some(_) => Err(DaemonError::Running {
                socket: crate::daemon::socket_path(&self.state_dir)
                    .display()
                    .to_string(),
                what,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Opens the device (without waiting for the relay), runs `command`
    /// with it, and shuts the client down before returning the command's
    /// outcome.
    pub(crate) async fn with_client<T>(
        &self,
        command: impl AsyncFnOnce(&Client) -> Result<T>,
    ) -> Result<T> {
        let client = self.open().await?;
        let result = command(&client).await;
        client.shutdown().await;
        result
    }

    fn not_enrolled(&self) -> anyhow::Error {
        anyhow::Error::new(ClientError::NotEnrolled).context(self.state_dir.display().to_string())
    }

    /// A builder holding the key this device's passphrase unlocks.
    pub(crate) async fn unlock(&self) -> Result<ClientBuilder> {
        let builder = self.builder();
        // Nothing to unlock: say so before asking for a passphrase.
        if !builder.has_passphrase()? {
            return Err(self.not_enrolled());
        }
        let secret = self
            .passphrase
            .read("Passphrase of this device's Convene state: ")?;
        self.enrolled(builder.passphrase(&secret).await)
    }

    /// `result`, with "not enrolled" saying which directory and what to do.
    fn enrolled<T>(&self, result: Result<T, ClientError>) -> Result<T> {
        match result {
            Err(ClientError::NotEnrolled) => Err(self.not_enrolled()),
            other => Ok(other?),
        }
    }

    /// Opens the device without waiting for the relay.
    pub(crate) async fn open(&self) -> Result<Client> {
        let builder = self.unlock().await?;
        self.enrolled(builder.open().await)
    }
}
