//! The engine's session with the relay: connecting and authenticating
//! (with the continuity tokens that tell this device's state from a copy of
//! it), comparing clocks, sending requests, and noticing when the
//! connection is gone.

use convene_proto::ids::CONTINUITY_LEN;
use convene_proto::relay::{request, response, ErrorCode};
use tokio::time::Instant;

use super::acks::PendingAcks;
use super::relay_state::{Online, RelayState};
use super::status::ConnectionProblem;
use super::{ConnectionState, Engine};
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{self, ContinuityRecord, GroupRecord};
use crate::transport::{authenticate_continuing, Continuity, TransportError};
use crate::types::GroupId;

impl Engine {
    /// Connects and authenticates, or schedules the next attempt.
    pub(super) async fn connect(&mut self) {
        let continuity = match self.next_continuity() {
            Ok(continuity) => continuity,
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot store the continuity token; not connecting"
                );
                if self.relay.failed() {
                    self.emit(Event::ConnectionLost {
                        reason: ConnectionProblem::LocalFailure,
                    });
                    self.publish();
                }
                return;
            }
        };
        let attempt = async {
            let (conn, pushes) = self.connector.connect().await?;
            let relay_id = self.shared.identity.relay_id.as_slice().try_into().ok();
            let authenticated =
                authenticate_continuing(conn.as_ref(), self.mls.key(), relay_id, &continuity)
                    .await?;
            Ok::<_, TransportError>((conn, pushes, authenticated))
        };
        match attempt.await {
            Ok((conn, pushes, authenticated)) => {
                // Whether a take-over's check of the groups is still to be
                // finished (this one's, or one cut short before).
                let check_pending = match self.confirm_continuity(&continuity) {
                    Ok(pending) => pending,
                    Err(err) => {
                        // The relay moved on to the pending token, which
                        // the next authentication names too: nothing is
                        // lost.
                        tracing::warn!(
                            error = &err as &dyn std::error::Error,
                            "cannot record the continuity token"
                        );
                        continuity.take_over
                    }
                };
                // Asked once: the relay has accepted this copy now.
                self.take_over = false;
                let (backoff, restored) = match &self.relay {
                    RelayState::Offline(offline) => (offline.backoff, offline.told_lost),
                    _ => (super::relay_state::MIN_BACKOFF, false),
                };
                self.relay = RelayState::Online(Online {
                    conn,
                    pushes,
                    caught_up: false,
                    last_activity: Instant::now(),
                    since_ms: crate::now_ms(),
                    backoff,
                });
                self.shared.status.send_modify(|status| {
                    status.state = ConnectionState::Connected;
                    status.failed_attempts = 0;
                    status.last_error = None;
                    status.copied = false;
                });
                if restored {
                    self.emit(Event::ConnectionRestored);
                    self.publish();
                }
                self.check_clock(authenticated.relay_time_ms);
                let stock = authenticated.key_package_stock.unwrap_or_default();
                self.replenish_key_packages(stock.one_time, stock.last_resort)
                    .await;
                if let Err(err) = self.sync_revocations().await {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "cannot read the revocations"
                    );
                }
                if check_pending {
                    self.check_groups_after_take_over().await;
                }
            }
            Err(err) => self.connect_failed(err),
        }
    }

    fn connect_failed(&mut self, err: TransportError) {
        tracing::debug!(
            error = &err as &dyn std::error::Error,
            "cannot connect to the relay"
        );
        let refused = |code| matches!(&err, TransportError::Refused(r) if r.code == code);
        let (revoked, copied) = (refused(ErrorCode::Revoked), refused(ErrorCode::StateCopied));
        if matches!(err, TransportError::WrongRelay) {
            tracing::error!(
                "the relay presents another identity than at enrolment; not connecting"
            );
        }
        self.shared.status.send_modify(|status| {
            status.state = ConnectionState::Offline;
            status.failed_attempts += 1;
            status.last_error = Some(ConnectionProblem::Transport(err.clone()));
            status.revoked = revoked;
            status.copied = copied;
        });
        if copied {
            // Trying again changes nothing: the user must choose between
            // the copies (re-link, or take over with `Client::take_over`).
            tracing::warn!(
                "this device's state is a copy another copy has moved past; not reconnecting"
            );
            self.relay.shut_out();
            self.emit(Event::StateCopied);
            self.publish();
            return;
        }
        if self.relay.failed() {
            self.emit(Event::ConnectionLost {
                reason: ConnectionProblem::Transport(err.clone()),
            });
            self.publish();
        }
        if let TransportError::Refused(refusal) = &err {
            if refusal.code == ErrorCode::Revoked {
                self.refused_as_revoked(&refusal.revocation);
            }
        }
    }

    /// The continuity tokens for the next authentication: the confirmed
    /// one, and a pending one stored durably before it is sent.
    fn next_continuity(&mut self) -> Result<Continuity, ClientError> {
        let mut record: ContinuityRecord = self
            .store()
            .get_record(&records::continuity_key())?
            .unwrap_or_default();
        if record.pending.is_empty() {
            record.pending = crate::random_bytes::<CONTINUITY_LEN>().to_vec();
            self.store().put_record(records::continuity_key(), &record);
            self.store().commit_durably()?;
        }
        Ok(Continuity {
            previous: record.confirmed,
            next: record.pending,
            take_over: self.take_over,
        })
    }

    /// Records the token the relay confirmed; returns whether a
    /// take-over's check of the groups is still to be finished.
    fn confirm_continuity(&mut self, sent: &Continuity) -> Result<bool, ClientError> {
        let before: ContinuityRecord = self
            .store()
            .get_record(&records::continuity_key())?
            .unwrap_or_default();
        let record = ContinuityRecord {
            confirmed: sent.next.clone(),
            pending: Vec::new(),
            // Kept until every group was checked, across connections and
            // restarts.
            check_after_take_over: sent.take_over || before.check_after_take_over,
        };
        self.store().put_record(records::continuity_key(), &record);
        self.store().commit_durably()?;
        Ok(record.check_after_take_over)
    }

    /// After taking over from another copy, this device's state may be
    /// older than what the relay delivered it: every group whose entries
    /// it lost that way is rejoined. Once every group was checked, the
    /// check is done for good; a group that could not be (the connection
    /// went) is checked again after the next authentication.
    async fn check_groups_after_take_over(&mut self) {
        let groups: Vec<GroupId> = match self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(groups) => groups
                .into_iter()
                .filter(GroupRecord::following)
                .filter_map(|g| g.group().ok())
                .collect(),
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot read the groups"
                );
                return;
            }
        };
        let mut all_checked = true;
        for group_id in groups {
            if let Err(err) = self.check_lost_entries(&group_id).await {
                all_checked = false;
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "cannot check a group after taking over"
                );
            }
        }
        if all_checked {
            let done = self
                .store()
                .get_record::<ContinuityRecord>(&records::continuity_key())
                .map(|record| {
                    let mut record = record.unwrap_or_default();
                    record.check_after_take_over = false;
                    self.store().put_record(records::continuity_key(), &record);
                })
                .map_err(ClientError::from)
                .and_then(|()| Ok(self.store().commit_durably()?));
            if let Err(err) = done {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "cannot record that the groups were checked"
                );
            }
        }
    }

    /// Compares this device's clock with the relay's, and says so when it
    /// is off by more than certificates tolerate.
    pub(super) fn check_clock(&mut self, relay_time_ms: u64) {
        if relay_time_ms == 0 {
            return;
        }
        let local = self.mls.anchor().now_ms();
        let offset_ms = (i128::from(local) - i128::from(relay_time_ms))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        self.shared
            .status
            .send_modify(|status| status.clock_offset_ms = offset_ms);
        if offset_ms.unsigned_abs() > crate::trust::CLOCK_LEEWAY_MS {
            tracing::warn!(offset_ms, "this device's clock is far from the relay's");
            self.emit(Event::ClockSkew { offset_ms });
            self.publish();
        }
    }

    /// Forgets the connection; pending operations wait for the next one.
    pub(super) fn disconnected(&mut self, reason: ConnectionProblem) {
        if self.relay.online().is_none() {
            return;
        }
        self.relay.failed();
        self.acks = PendingAcks::default();
        self.awaiting_epoch.clear();
        self.shared.status.send_modify(|status| {
            status.state = ConnectionState::Offline;
            status.last_error = Some(reason.clone());
        });
        self.emit(Event::ConnectionLost { reason });
        self.publish();
    }

    /// Sends a request on the current connection. A transport failure ends
    /// the connection (the engine reconnects).
    pub(super) async fn request(
        &mut self,
        kind: request::Kind,
    ) -> Result<response::Result, TransportError> {
        let Some(online) = self.relay.online_mut() else {
            return Err(TransportError::Closed {
                code: None,
                reason: "not connected".into(),
            });
        };
        online.last_activity = Instant::now();
        let conn = online.conn.clone();
        let result = conn.request(kind).await;
        if let Err(err) = &result {
            if !matches!(err, TransportError::Refused(_)) {
                self.disconnected(ConnectionProblem::Transport(err.clone()));
            }
        }
        result
    }
}
