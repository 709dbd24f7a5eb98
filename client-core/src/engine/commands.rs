//! What the app asks of the engine, and how each request is answered.
//!
//! The app's handles send [`Command`]s over a bounded channel; the engine
//! takes them one at a time between pushes and timers, so that a command
//! never runs beside the processing of what the relay sent.

use convene_proto::relay::{request, response};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Completed, Engine};
use crate::error::ClientError;
use crate::store::records::IntentRecord;

/// A request from the app to the engine.
pub(crate) enum Command {
    /// Persist this intent, then carry it out.
    Submit {
        intent: IntentRecord,
        reply: oneshot::Sender<Result<Completed, ClientError>>,
    },
    /// Persist this intent and answer at once; it is carried out when it
    /// can be (a member's own removal, which another member commits).
    Queue {
        intent: IntentRecord,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Send a request to the relay (invites, the directory).
    Relay {
        request: request::Kind,
        reply: oneshot::Sender<Result<response::Result, ClientError>>,
    },
    /// The next connection takes over from another copy of this device.
    TakeOver { reply: oneshot::Sender<()> },
    /// Renew every key now (a suspected compromise).
    RenewKeys {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Re-certify a user with what staff changed (a device holding the
    /// authority key).
    Recertify {
        user_id: String,
        change: crate::trust::CertifiedChange,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Sync the directory now.
    SyncDirectory {
        reply: oneshot::Sender<Result<crate::directory::DirectorySync, ClientError>>,
    },
    /// Stop.
    Shutdown { reply: oneshot::Sender<()> },
}

impl Engine {
    pub(super) async fn on_command(&mut self, command: Command) {
        match command {
            Command::Submit { reply, .. } if self.shut_out().is_some() => {
                let _ = reply.send(Err(self.shut_out().unwrap_or(ClientError::Stopped)));
            }
            Command::Submit { intent, reply } => match self.persist_intent(intent) {
                Ok(id) => {
                    self.waiters.insert(id, reply);
                    self.outbox_dirty = true;
                    self.run_outbox().await;
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::Queue { reply, .. } if self.shut_out().is_some() => {
                let _ = reply.send(Err(self.shut_out().unwrap_or(ClientError::Stopped)));
            }
            Command::Queue { intent, reply } => match self.persist_intent(intent) {
                Ok(_) => {
                    let _ = reply.send(Ok(()));
                    self.outbox_dirty = true;
                    self.run_outbox().await;
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::Relay { request, reply } => {
                let result = match self.request(request).await {
                    Ok(result) => Ok(result),
                    Err(err) => Err(err.into()),
                };
                let _ = reply.send(result);
            }
            Command::TakeOver { reply } => {
                self.take_over = true;
                self.relay.retry_now();
                self.shared
                    .status
                    .send_modify(|status| status.copied = false);
                let _ = reply.send(());
            }
            Command::RenewKeys { reply } => {
                let renewed = self.renew_all_keys();
                if renewed.is_ok() {
                    self.lifecycle_at = Instant::now();
                }
                let _ = reply.send(renewed);
            }
            Command::Recertify {
                user_id,
                change,
                reply,
            } => {
                let _ = reply.send(self.recertify(&user_id, &change).await);
            }
            Command::SyncDirectory { reply } => {
                let _ = reply.send(self.sync_directory().await);
            }
            Command::Shutdown { .. } => {}
        }
    }
}
