//! What every command needs to open this device's client: the state
//! directory, the relay, the passphrase and the patience. A command runs
//! inside [`Session::with_client`], which shuts the client down whatever
//! the command's outcome, so no path leaves the engine running.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use convene_client::{Client, ClientBuilder, ClientError};

use crate::passphrase;

/// How much of the relay a command needs before it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Open {
    /// Only what is stored on this device.
    Stored,
    /// Caught up with the relay if it can be reached; otherwise what is
    /// stored, with a note saying so.
    Synced,
    /// Caught up with the relay, or the command fails.
    Connected,
}

/// What every command needs to open the device.
pub(crate) struct Session {
    pub(crate) state_dir: PathBuf,
    pub(crate) relay: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    pub(crate) passphrase: passphrase::Source,
}

impl Session {
    pub(crate) fn builder(&self) -> ClientBuilder {
        let builder = ClientBuilder::new(&self.state_dir);
        match &self.relay {
            Some(url) => builder.relay_url(url),
            None => builder,
        }
    }

    /// Opens the device as `open` says, runs `command` with it, and shuts
    /// the client down before returning the command's outcome.
    pub(crate) async fn with_client<T>(
        &self,
        open: Open,
        command: impl AsyncFnOnce(&Client) -> Result<T>,
    ) -> Result<T> {
        let client = self.open().await?;
        let result = async {
            match open {
                Open::Stored => {}
                Open::Synced => {
                    let caught_up = crate::waiting::while_waiting(
                        !self.json,
                        "catching up with the relay",
                        client.wait_caught_up(self.timeout),
                    );
                    if let Err(err) = caught_up.await {
                        crate::output::note(&format!(
                            "showing what this device has stored ({err})"
                        ));
                    }
                }
                Open::Connected => {
                    crate::waiting::while_waiting(
                        !self.json,
                        "connecting to the relay and catching up",
                        client.wait_caught_up(self.timeout),
                    )
                    .await?
                }
            }
            command(&client).await
        }
        .await;
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
    async fn open(&self) -> Result<Client> {
        let builder = self.unlock().await?;
        self.enrolled(builder.open().await)
    }

    /// Waits for an operation, at most the timeout. An operation that does
    /// not finish in time stays in the device's outbox.
    pub(crate) async fn within<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T> {
        let waited = crate::waiting::while_waiting(
            !self.json,
            "waiting for the relay to confirm",
            tokio::time::timeout(self.timeout, operation),
        );
        match waited.await {
            Ok(result) => Ok(result?),
            Err(_) => bail!(
                "not confirmed within {} s; the operation is kept on this device and completes the next time convene connects",
                self.timeout.as_secs()
            ),
        }
    }
}
