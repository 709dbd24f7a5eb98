//! The outbox: operations persisted before anything about them is sent.
//!
//! An intent describes a goal ("bob and carol are in this group", "this
//! text is in that conversation"), not a sequence of calls, so carrying it
//! out again after a crash or a lost response is safe: each step first looks
//! at what is already true. Intents of one group run in order; a group whose
//! intent must wait (for a Welcome, or to catch up after a conflict) holds
//! back its later intents but not other groups'.

use convene_proto::ids::DevicePublicKey;
use std::collections::HashSet;

use tracing::Instrument;

use bytes::Bytes;
use convene_proto::relay::{ErrorCode, SubmitCommit};
use prost::Message as _;

use super::commit::Change;
use super::received::Shown;
use super::{Completed, Engine};
use crate::error::ClientError;
use crate::events::Event;
use crate::store::records::{self, IntentKind, IntentRecord, SendIntent};
use crate::types::{GroupId, GroupSummary, MessageId, MessageKind};

/// What one attempt at an intent came to.
pub(super) enum Step {
    /// Done; the intent is gone from the outbox and its answer queued.
    Done,
    /// Given up; the caller removes the intent.
    Failed(ClientError),
    /// Waiting for something the relay will push (a Welcome).
    Wait,
    /// Try again after processing what the relay pushed (a conflict).
    Retry,
    /// Try again after this long (waiting for another device).
    RetryAfter(std::time::Duration),
    /// Try again after this long, letting the group's later intents go
    /// first (an intent waiting for its turn, not for the group).
    Later(std::time::Duration),
    /// The connection dropped; try again after reconnecting.
    Offline,
}

/// One attempt at an intent: `Ok` when it ran to its end, `Err` when it
/// stopped early; either way, the [`Step`] it came to. `?` on any error of
/// the client's stops it with [`Step::Failed`].
pub(super) type Attempt = Result<Step, Step>;

impl From<ClientError> for Step {
    fn from(err: ClientError) -> Step {
        Step::Failed(err)
    }
}

impl From<crate::store::StoreError> for Step {
    fn from(err: crate::store::StoreError) -> Step {
        Step::Failed(err.into())
    }
}

impl From<crate::mls::MlsError> for Step {
    fn from(err: crate::mls::MlsError) -> Step {
        Step::Failed(err.into())
    }
}

/// How long after a conflict the outbox is run again at the latest.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

impl Engine {
    /// Stores a new intent durably and returns its id.
    pub(super) fn persist_intent(&mut self, intent: IntentRecord) -> Result<u64, ClientError> {
        let id = self.stage_intent(intent)?;
        self.store().commit_durably()?;
        Ok(id)
    }

    /// Writes a new intent in the open operation and returns its id.
    pub(super) fn stage_intent(&mut self, mut intent: IntentRecord) -> Result<u64, ClientError> {
        let counter = self.store().get(&records::intent_counter_key())?;
        let id = counter
            .and_then(|raw| raw.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
            + 1;
        intent.id = id;
        intent.created_at_ms = crate::now_ms();
        self.store()
            .put(records::intent_counter_key(), id.to_be_bytes().to_vec());
        self.store().put_record(records::intent_key(id), &intent);
        Ok(id)
    }

    /// The first intent of a group whose kind `matches`, committed or in
    /// the open operation.
    pub(super) fn queued_intent(
        &self,
        group_id: &GroupId,
        matches: impl Fn(&IntentKind) -> bool,
    ) -> Result<Option<IntentRecord>, ClientError> {
        for item in self.store().scan::<IntentRecord>(&records::outbox_prefix()) {
            let (key, _) = item?;
            // The open operation may have changed or deleted it.
            let Some(intent) = self.store().get_record::<IntentRecord>(&key)? else {
                continue;
            };
            if intent.group_id == *group_id && intent.kind.as_ref().is_some_and(&matches) {
                return Ok(Some(intent));
            }
        }
        Ok(None)
    }

    /// Runs every intent that can make progress now.
    pub(super) async fn run_outbox(&mut self) {
        self.queue_proposal_commits();
        if !self.relay.caught_up() || !self.outbox_dirty {
            return;
        }
        self.outbox_dirty = false;
        let mut intents: Vec<IntentRecord> = match self
            .store()
            .scan(&records::outbox_prefix())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(intents) => intents.into_iter().map(|(_, intent)| intent).collect(),
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot read the outbox"
                );
                return;
            }
        };
        // A rejoin request comes first in its group (nothing else can be
        // done there before the device is back), then pending proposals
        // (nothing can be sent or committed before they are committed).
        intents.sort_by_key(|i| match i.kind {
            Some(IntentKind::Rejoin(_)) => 0,
            Some(IntentKind::CommitProposals(_)) => 1,
            _ => 2,
        });
        let mut held_back: HashSet<GroupId> = HashSet::new();
        for intent in intents {
            let rejoin = matches!(intent.kind, Some(IntentKind::Rejoin(_)));
            let group_id = match intent.group() {
                Ok(group_id) => group_id,
                Err(err) => {
                    tracing::error!(
                        error = &err as &dyn std::error::Error,
                        id = intent.id,
                        "an outbox intent names no valid group; left as it is"
                    );
                    continue;
                }
            };
            // A rejoin is what a device that cannot follow its group does,
            // however far behind the relay says it is: the commits it
            // waits for may never come.
            if held_back.contains(&group_id)
                || (!rejoin && (self.cannot_act_in(&group_id) || self.behind_relay(&group_id)))
            {
                held_back.insert(group_id);
                continue;
            }
            let id = intent.id;
            let message_id = match &intent.kind {
                Some(IntentKind::Send(send)) => Some(MessageId(send.message_id.clone())),
                _ => None,
            };
            let span = tracing::debug_span!(
                "intent",
                id,
                kind = intent.kind.as_ref().map_or("none", IntentKind::name),
                group = %convene_proto::ids::hex_prefix(&group_id[..]),
            );
            let step = self.step(intent).instrument(span).await;
            match step.unwrap_or_else(|stopped| stopped) {
                Step::Done => {}
                Step::Failed(err) => self.fail_intent(id, &group_id, message_id, err),
                Step::Wait => {
                    held_back.insert(group_id);
                }
                Step::Retry => {
                    held_back.insert(group_id);
                    self.outbox_dirty = true;
                    self.retry_at = Some(tokio::time::Instant::now() + RETRY_DELAY);
                }
                Step::RetryAfter(delay) => {
                    held_back.insert(group_id);
                    self.retry_after(delay);
                }
                Step::Later(delay) => self.retry_after(delay),
                Step::Offline => return,
            }
            self.publish();
        }
    }

    /// Runs the outbox again after `delay` at the latest.
    fn retry_after(&mut self, delay: std::time::Duration) {
        let at = tokio::time::Instant::now() + delay;
        self.retry_at = Some(self.retry_at.map_or(at, |earlier| earlier.min(at)));
    }

    /// The device is in the group at the relay but cannot follow it until
    /// it is re-added: its other operations there wait.
    fn cannot_act_in(&self, group_id: &GroupId) -> bool {
        matches!(self.group_record(group_id), Ok(Some(r)) if r.active && !r.following())
    }

    /// The relay said the group is at a later epoch than this device has
    /// processed: its commits are on their way, and a change built now
    /// would be refused again.
    fn behind_relay(&mut self, group_id: &GroupId) -> bool {
        let Some(&epoch) = self.awaiting_epoch.get(group_id) else {
            return false;
        };
        match self.group_record(group_id) {
            Ok(Some(record)) if record.active && record.epoch < epoch => true,
            _ => {
                self.awaiting_epoch.remove(group_id);
                false
            }
        }
    }

    async fn step(&mut self, intent: IntentRecord) -> Attempt {
        match intent.kind.clone() {
            Some(IntentKind::Send(send)) => self.step_send(intent, send).await,
            Some(IntentKind::Create(create)) => self.step_create(intent, create).await,
            Some(IntentKind::Add(add)) => {
                let missing = self.missing_users(&intent.group()?, &add.user_ids)?;
                if missing.is_empty() {
                    return self.drop_intent(&intent);
                }
                self.commit_step(intent, Change::Add(missing)).await
            }
            Some(IntentKind::Remove(remove)) => {
                let devices = self.devices_of(&intent.group()?, &remove.user_ids)?;
                if devices.is_empty() {
                    return self.drop_intent(&intent);
                }
                self.commit_step(intent, Change::Remove(devices)).await
            }
            Some(IntentKind::AddDevices(devices)) => {
                self.step_own_devices(intent, devices, true).await
            }
            Some(IntentKind::RemoveDevices(devices)) => {
                self.step_own_devices(intent, devices, false).await
            }
            Some(IntentKind::Manage(manage)) => self.step_manage(intent, manage).await,
            Some(IntentKind::CommitProposals(_)) => self.step_commit_proposals(intent).await,
            Some(IntentKind::Rejoin(_)) => self.step_rejoin(intent).await,
            Some(IntentKind::Readd(readd)) => self.step_readd(intent, readd).await,
            Some(IntentKind::Update(_)) => self.step_update(intent).await,
            Some(IntentKind::Leave(leave)) => self.step_leave(intent, leave).await,
            Some(IntentKind::NetworkPolicy(policy)) => {
                self.step_network_policy(intent, policy).await
            }
            None => Err(Step::Failed(ClientError::InvalidArgument(
                "an empty intent".into(),
            ))),
        }
    }

    /// An intent with nothing left to do.
    pub(super) fn drop_intent(&mut self, intent: &IntentRecord) -> Attempt {
        self.store().delete(records::intent_key(intent.id));
        self.store().commit_durably()?;
        if let Some(IntentKind::Create(_)) = intent.kind {
            self.emit_group_created(&intent.group()?);
        }
        self.resolve(intent.id, Ok(Completed { message: None }));
        Ok(Step::Done)
    }

    pub(super) fn emit_group_created(&mut self, group_id: &GroupId) {
        if let Ok(Some(record)) = self.group_record(group_id) {
            if let Ok(summary) = GroupSummary::from_record(&record, self.mls.user_id()) {
                self.emit(Event::GroupCreated(summary));
            }
        }
    }

    /// The intent that submitted this id, if it is still in the outbox.
    pub(super) fn intent_for_submission(
        &self,
        submission_id: &[u8],
    ) -> Result<Option<IntentRecord>, ClientError> {
        for item in self.store().scan::<IntentRecord>(&records::outbox_prefix()) {
            let (_, intent) = item?;
            let matches = match &intent.kind {
                Some(IntentKind::Send(send)) => send.submission_id == submission_id,
                _ => SubmitCommit::decode(intent.pending_commit.as_slice()).is_ok_and(|c| {
                    !intent.pending_commit.is_empty() && c.submission_id.as_ref() == submission_id
                }),
            };
            if matches {
                return Ok(Some(intent));
            }
        }
        Ok(None)
    }

    /// Gives an intent up: removes it and tells the app.
    fn fail_intent(
        &mut self,
        id: u64,
        group_id: &GroupId,
        message: Option<MessageId>,
        err: ClientError,
    ) {
        tracing::info!(
            error = &err as &dyn std::error::Error,
            "an operation was given up"
        );
        self.store().rollback();
        // The cached group may hold changes that were just rolled back.
        self.groups.remove(group_id);
        self.store().delete(records::intent_key(id));
        if let Err(store_err) = self.store().commit_durably() {
            tracing::error!(
                error = &store_err as &dyn std::error::Error,
                "cannot remove a failed operation from the outbox"
            );
        }
        self.emit(Event::DeliveryFailed {
            group: group_id.clone(),
            message,
            reason: crate::error::with_causes(&err),
        });
        self.resolve(id, Err(err));
    }

    /// Answers the app's call for an intent (once its effects are durable);
    /// a later answer for the same intent replaces an earlier one.
    pub(super) fn resolve(&mut self, id: u64, result: Result<Completed, ClientError>) {
        self.resolved.retain(|(queued, _)| *queued != id);
        self.resolved.push((id, result));
    }

    /// Users among `wanted` with no device in the group (this user aside).
    pub(super) fn missing_users(
        &self,
        group_id: &GroupId,
        wanted: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let record = self
            .group_record(group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))?;
        let own = self.mls.user_id();
        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|u| u.as_str() != own && !record.members.iter().any(|m| &m.user_id == *u))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        Ok(missing)
    }

    /// The devices of these users in the group.
    fn devices_of(
        &self,
        group_id: &GroupId,
        users: &[String],
    ) -> Result<Vec<DevicePublicKey>, ClientError> {
        let record = self
            .group_record(group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))?;
        if !record.active {
            return Err(ClientError::NotAMember);
        }
        Ok(record
            .members
            .iter()
            .filter(|m| users.contains(&m.user_id))
            .filter_map(|m| DevicePublicKey::try_from(m.device.as_slice()).ok())
            .collect())
    }
}

/// Whether a refusal leaves the request's outcome unknown or only delayed
/// (the relay failed inside, is stopping, or is busy): the same submission
/// must go again, since a resubmission gets the first outcome if there was
/// one. Every other refusal is definite (a full queue too: nothing was
/// stored).
pub(super) fn outcome_unknown(refusal: &crate::transport::RelayRefusal) -> bool {
    matches!(
        refusal.code,
        ErrorCode::Internal
            | ErrorCode::ShuttingDown
            | ErrorCode::RateLimited
            | ErrorCode::Unspecified
    )
}

/// The longest wait before resubmitting, whatever the relay asks.
const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

/// How long to wait before resubmitting after such a refusal.
pub(super) fn retry_delay(refusal: &crate::transport::RelayRefusal) -> std::time::Duration {
    match refusal.code {
        ErrorCode::RateLimited => {
            std::time::Duration::from_millis(u64::from(refusal.retry_after_ms).max(100))
                .min(MAX_RETRY_DELAY)
        }
        _ => std::time::Duration::from_secs(1),
    }
}

/// An intent to send `text`, ready to persist.
pub(crate) fn send_intent(group_id: &GroupId, text: &str) -> IntentRecord {
    use convene_proto::content::{content, Text};
    content_intent(
        group_id,
        content::Body::Text(Text {
            text: text.to_string(),
        }),
        Shown {
            kind: MessageKind::Text,
            text: text.to_string(),
            request: None,
            passed_on_from: None,
        },
    )
}

/// An intent to send a message of any kind people read, `shown` as the
/// history will keep it, ready to persist.
pub(crate) fn content_intent(
    group_id: &GroupId,
    body: convene_proto::content::content::Body,
    shown: Shown,
) -> IntentRecord {
    use convene_proto::content::Content;
    let message_id = crate::random_bytes::<16>().to_vec();
    let content = Content {
        message_id: Bytes::from(message_id.clone()),
        sent_at_ms: crate::now_ms(),
        body: Some(body),
    };
    IntentRecord {
        group_id: group_id.to_vec(),
        kind: Some(IntentKind::Send(SendIntent {
            message_id,
            content: content.encode_to_vec(),
            submission_id: crate::random_bytes::<16>().to_vec(),
            ciphertext: Vec::new(),
            text: shown.text,
            silent: false,
            kind: shown.kind.to_i32(),
            request_id: shown.request.map(|r| r.0.to_vec()).unwrap_or_default(),
            passed_on_from: shown.passed_on_from.unwrap_or_default(),
        })),
        ..Default::default()
    }
}

/// An intent to post the network keys `keys` (each with the epoch it was
/// made in) in the network channel `group_id`, ready to persist.
pub(crate) fn network_keys_intent(
    group_id: &GroupId,
    keys: &[(Vec<u8>, u64)],
    removal_epoch: u64,
) -> IntentRecord {
    use convene_proto::content::{content, Content, NetworkKey, NetworkKeys};
    let message_id = crate::random_bytes::<16>().to_vec();
    let content = zeroize::Zeroizing::new(
        Content {
            message_id: Bytes::from(message_id.clone()),
            sent_at_ms: crate::now_ms(),
            body: Some(content::Body::NetworkKeys(NetworkKeys {
                keys: keys
                    .iter()
                    .map(|(key, epoch)| NetworkKey {
                        key: Bytes::copy_from_slice(key),
                        epoch: *epoch,
                    })
                    .collect(),
                removal_epoch,
            })),
        }
        .encode_to_vec(),
    );
    IntentRecord {
        group_id: group_id.to_vec(),
        kind: Some(IntentKind::Send(SendIntent {
            message_id,
            content: content.to_vec(),
            submission_id: crate::random_bytes::<16>().to_vec(),
            ciphertext: Vec::new(),
            text: String::new(),
            silent: true,
            ..Default::default()
        })),
        ..Default::default()
    }
}
