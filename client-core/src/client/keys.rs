//! Renewing this device's keys on demand (see [`crate::lifecycle`] for
//! what happens on its own), and taking over from a copy of this device.

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

impl Client {
    /// Makes this copy of the device the one the relay accepts, after it
    /// was refused as a copy ([`crate::Event::StateCopied`]): for a backup
    /// restored onto a new device while the old one is gone. Any other copy
    /// is refused from then on. Groups the other copy went on in are
    /// rejoined (even at the same epoch: its ratchets would use keys again),
    /// and the user is told what could not be recovered
    /// ([`crate::Event::GroupRecovered`]). If the other copy may be in
    /// someone else's hands, re-link this device instead and remove the old
    /// one. Returns once the next connection is under way.
    pub async fn take_over(&self) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::TakeOver { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)
    }
}
