//! Renewing this device's keys on demand (see [`crate::lifecycle`] for
//! what happens on its own).

use tokio::sync::oneshot;

use super::Client;
use crate::engine::Command;
use crate::error::ClientError;

impl Client {
    /// Renews every key this device holds, as soon as it is online: its
    /// leaf in every group (an update commit each, RFC 9420 section 12.4)
    /// and its whole KeyPackage stock on the relay. For when the device or
    /// its storage may have been exposed; the client also does it by
    /// itself on a schedule and after one of its user's devices is removed.
    /// Returns once the renewal is recorded, not once it is done.
    pub async fn renew_keys(&self) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::RenewKeys { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }
}
