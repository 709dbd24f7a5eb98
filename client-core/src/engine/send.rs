//! Sending a text: encrypted once at the group's current epoch, stored
//! with its intent so that a retry sends the very same bytes, encrypted
//! again only when the relay refuses it for its epoch (a reader who joined
//! at a newer epoch could not decrypt it), and kept in the history once
//! the relay has it.

use bytes::Bytes;
use convene_proto::relay::{request, response, ErrorCode, MessageKind, SendMessage};

use super::intents::{outcome_unknown, retry_delay, Attempt, Step};
use super::{Completed, Engine};
use crate::error::{ClientError, GaveUp};
use crate::events::Event;
use crate::store::records::{self, IntentKind, IntentRecord, MessageRecord, SendIntent};
use crate::transport::TransportError;
use crate::types::Message;

/// A message refused for its epoch while this device is not behind is
/// given up after this many tries.
const MAX_EPOCH_REFUSALS: u32 = 10;
/// How often a text waits for other members to commit this device's
/// pending removal.
const OWN_REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Engine {
    pub(super) async fn step_send(
        &mut self,
        mut intent: IntentRecord,
        mut send: SendIntent,
    ) -> Attempt {
        let group_id = intent.group()?;
        let record = match self.group_record(&group_id) {
            Ok(Some(record)) => record,
            Ok(None)
                if self
                    .store()
                    .get(&records::awaiting_key(&group_id))
                    .ok()
                    .flatten()
                    .is_some() =>
            {
                return Ok(Step::Wait)
            }
            Ok(None) => {
                return Err(Step::Failed(ClientError::UnknownGroup(
                    group_id.to_string(),
                )))
            }
            Err(err) => return Err(err.into()),
        };
        if !record.active {
            return Err(Step::Failed(ClientError::NotAMember));
        }
        if send.ciphertext.is_empty() {
            if send.silent && !self.repost_still_open(&send)? {
                // Closed since it was queued: a newcomer must not take it
                // as open after a close it could not place.
                return self.drop_intent(&intent);
            }
            self.encrypt_once(&mut intent, &mut send)?;
        }
        let request = request::Kind::SendMessage(SendMessage {
            group_id: Bytes::from(group_id.clone()),
            kind: MessageKind::Application as i32,
            submission_id: Bytes::from(send.submission_id.clone()),
            payload: Bytes::from(send.ciphertext.clone()),
        });
        match self.request(request).await {
            Ok(response::Result::MessageAccepted(accepted)) => {
                self.complete_send(intent, accepted.position)?;
                if let Some(mut record) = self.group_record(&group_id)? {
                    record.sent_through = record.sent_through.max(accepted.position);
                    self.store()
                        .put_record(records::group_key(&group_id), &record);
                }
                self.store().commit_durably()?;
                Ok(Step::Done)
            }
            Ok(_) => Err(Step::Failed(ClientError::Transport(
                TransportError::Protocol("unexpected response".into()),
            ))),
            Err(TransportError::Refused(refusal)) if refusal.code == ErrorCode::StaleEpoch => {
                self.stale_send(intent, send, record.epoch, refusal.current_epoch)
                    .await
            }
            Err(TransportError::Refused(refusal)) if refusal.code == ErrorCode::NotAMember => {
                Err(Step::Failed(ClientError::NotAMember))
            }
            // Perhaps stored: the same bytes and submission id go again.
            Err(TransportError::Refused(refusal)) if outcome_unknown(&refusal) => {
                Ok(Step::RetryAfter(retry_delay(&refusal)))
            }
            Err(TransportError::Refused(refusal)) => {
                Err(Step::Failed(ClientError::Refused(refusal)))
            }
            Err(_) => Ok(Step::Offline),
        }
    }

    /// Encrypts the text once, storing the ratchet step and the ciphertext
    /// together, so a retry sends the very same bytes. Stops early while
    /// the group's state cannot encrypt (proposals pending, or this
    /// device's own removal proposed).
    fn encrypt_once(
        &mut self,
        intent: &mut IntentRecord,
        send: &mut SendIntent,
    ) -> Result<(), Step> {
        let group_id = intent.group()?;
        let ciphertext = match super::load_group(&mut self.groups, &self.mls, &group_id)? {
            Some(group) if crate::mls::own_removal_pending(group) => {
                // Another member commits this device's removal; the text
                // fails then, or goes out if the removal never comes to
                // pass.
                return Err(Step::RetryAfter(OWN_REMOVAL_WAIT));
            }
            Some(group) if group.pending_proposals().next().is_some() => {
                // openmls encrypts nothing while proposals are pending.
                self.proposals_arrived.insert(group_id);
                self.outbox_dirty = true;
                return Err(Step::Retry);
            }
            Some(group) => self.mls.ops().encrypt(group, &send.content),
            None => {
                return Err(Step::Failed(ClientError::UnknownGroup(
                    group_id.to_string(),
                )))
            }
        };
        match ciphertext {
            Ok(ciphertext) => send.ciphertext = ciphertext,
            Err(err) => {
                self.store().rollback();
                self.groups.remove(&group_id);
                return Err(err.into());
            }
        }
        intent.kind = Some(IntentKind::Send(send.clone()));
        self.store()
            .put_record(records::intent_key(intent.id), intent);
        self.store().commit_durably()?;
        Ok(())
    }

    /// The relay refused the text's epoch: the group moved on before this
    /// device saw it, and a reader who joined at the new epoch could not
    /// decrypt these bytes. Encrypt again once the newer commits are
    /// processed.
    async fn stale_send(
        &mut self,
        mut intent: IntentRecord,
        mut send: SendIntent,
        own_epoch: u64,
        relay_epoch: u64,
    ) -> Attempt {
        let group_id = intent.group()?;
        send.ciphertext.clear();
        intent.kind = Some(IntentKind::Send(send));
        if relay_epoch <= own_epoch || self.disproved_epochs.contains(&group_id) {
            // Not behind (or the relay's word that it is was found false
            // before), yet refused: what left this device is not what it
            // encrypted, or the relay is not honest. Try a few more times.
            intent.attempts += 1;
            if intent.attempts >= MAX_EPOCH_REFUSALS {
                return Err(Step::Failed(ClientError::GaveUp(GaveUp::EpochRefused)));
            }
        }
        self.store()
            .put_record(records::intent_key(intent.id), &intent);
        self.store().commit_durably()?;
        if relay_epoch > own_epoch {
            self.check_behind(&group_id).await?;
        }
        self.awaiting_epoch.insert(group_id, relay_epoch);
        Ok(Step::Retry)
    }

    /// Stores this device's accepted message in the history and retires its
    /// intent (in the open operation). Idempotent.
    pub(super) fn complete_send(
        &mut self,
        intent: IntentRecord,
        position: u64,
    ) -> Result<Option<Message>, ClientError> {
        let group_id = intent.group()?;
        let Some(IntentKind::Send(mut send)) = intent.kind else {
            return Ok(None);
        };
        if send.silent {
            // The plaintext held keys: not kept once it has gone.
            zeroize::Zeroize::zeroize(&mut send.content);
            self.store().delete(records::intent_key(intent.id));
            self.resolve(intent.id, Ok(Completed { message: None }));
            return Ok(None);
        }
        let record = MessageRecord {
            group_id: intent.group_id.clone(),
            position,
            message_id: send.message_id.clone(),
            sender_user: self.mls.user_id().to_string(),
            sender_device: self.mls.key().public().to_vec(),
            sent_at_ms: intent.created_at_ms,
            received_at_ms: crate::now_ms(),
            text: std::mem::take(&mut send.text),
            own: true,
            lost: 0,
            kind: send.kind,
            request_id: send.request_id.clone(),
            passed_on_from: std::mem::take(&mut send.passed_on_from),
            request_title: self.title_for(
                crate::types::MessageKind::from_i32(send.kind),
                crate::help::RequestId::from_field(&send.request_id)
                    .ok()
                    .as_ref(),
            ),
        };
        self.after_own_help_sent(&intent.group_id, &send)?;
        let own_device = self.mls.key().public();
        self.store().put(
            records::seen_key(&intent.group_id, own_device.as_bytes(), &send.message_id),
            Vec::new(),
        );
        self.store()
            .put_record(records::history_key(&intent.group_id, position), &record);
        self.store().delete(records::intent_key(intent.id));
        let message = Message::from_record(group_id, record);
        self.emit(Event::MessageSent(message.clone()));
        self.resolve(
            intent.id,
            Ok(Completed {
                message: Some(message.clone()),
            }),
        );
        Ok(Some(message))
    }
}
