//! What a member's decrypted application message becomes on this device:
//! checked against the policy of the group it came in (which kinds each
//! kind of group carries, and from whom), kept once in the history, and
//! handed to the module of its kind (network keys, help requests).

use convene_proto::content::GroupKind as WireKind;
use convene_proto::relay::GroupMessage;

use super::network::network_chat;
use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::help::RequestId;
use crate::mls::content::{read_content, ContentBody};
use crate::mls::{MemberDevice, MlsError};
use crate::store::records::{self, GroupRecord, MessageRecord};
use crate::types::{GroupId, Message, MessageKind, Role};

/// What the history keeps of a message people read.
pub(crate) struct Shown {
    /// Its kind.
    pub(crate) kind: MessageKind,
    /// Its words.
    pub(crate) text: String,
    /// The help request it is about.
    pub(crate) request: Option<RequestId>,
    /// For an offer passed on by staff: who made it.
    pub(crate) passed_on_from: Option<String>,
}

impl Shown {
    fn text(text: String) -> Shown {
        Shown {
            kind: MessageKind::Text,
            text,
            request: None,
            passed_on_from: None,
        }
    }
}

/// Who sent a decrypted application message, and in which epoch.
pub(super) struct Received<'a> {
    /// The member device that sent it.
    pub(super) sender: &'a MemberDevice,
    /// The sender's role, as their certificate gives it.
    pub(super) role: Role,
    /// The epoch it was sent in.
    pub(super) epoch: u64,
}

/// A store failure while taking in a message.
pub(super) fn stored(err: impl Into<ClientError>) -> MlsError {
    MlsError::Operation(crate::mls::OperationError::new(err.into()))
}

impl Engine {
    pub(super) fn store_received(
        &mut self,
        group_id: &GroupId,
        record: &GroupRecord,
        message: &GroupMessage,
        received: Received<'_>,
        plaintext: &[u8],
    ) -> Result<(), MlsError> {
        let Received {
            sender,
            role,
            epoch,
        } = received;
        let content = read_content(plaintext)?;
        let seen = records::seen_key(group_id, sender.device.as_bytes(), &content.message_id);
        if self.store().get(&seen).map_err(stored)?.is_some() {
            return Ok(());
        }
        let network = record.kind == WireKind::Network as i32;
        let shown = match content.body {
            ContentBody::NetworkKeys(keys) if network && self.is_network_channel(group_id) => {
                return self.take_network_keys(&sender.user_id, role, record.epoch, &keys);
            }
            ContentBody::NetworkKeys(_) => {
                return Err(MlsError::PolicyViolation(
                    "network keys outside the network channel".into(),
                ))
            }
            ContentBody::Text(_)
                if network && role != Role::Staff && !network_chat(record, epoch) =>
            {
                return Err(MlsError::PolicyViolation(format!(
                    "{} posted ordinary text in the network channel, where only staff post \
                     announcements while chat is off",
                    sender.user_id
                )))
            }
            ContentBody::Text(text) => Some(Shown::text(text)),
            ContentBody::HelpRequest(request) => {
                self.receive_help_request(group_id, record, sender, role, request)?
            }
            ContentBody::HelpOffer(offer) => {
                self.receive_help_offer(record, sender, role, offer)?
            }
            ContentBody::HelpClose(request) => {
                self.receive_help_close(group_id, record, sender, role, request)?
            }
            ContentBody::Introduction(introduction) => {
                if record.kind != WireKind::Introduction as i32 || role != Role::Staff {
                    return Err(MlsError::PolicyViolation(
                        "an introduction outside an introduction group, or not from staff".into(),
                    ));
                }
                Some(Shown {
                    kind: MessageKind::Introduction,
                    text: introduction.note,
                    request: None,
                    passed_on_from: None,
                })
            }
        };
        self.store().put(seen, Vec::new());
        let Some(shown) = shown else {
            return Ok(());
        };
        let stored_message = MessageRecord {
            group_id: record.group_id.clone(),
            position: message.position,
            message_id: content.message_id.to_vec(),
            sender_user: sender.user_id.clone(),
            sender_device: sender.device.to_vec(),
            sent_at_ms: content.sent_at_ms,
            received_at_ms: crate::now_ms(),
            text: shown.text,
            own: false,
            lost: 0,
            kind: shown.kind.to_i32(),
            request_id: shown.request.map(|r| r.0.to_vec()).unwrap_or_default(),
            passed_on_from: shown.passed_on_from.unwrap_or_default(),
            request_title: self.title_for(shown.kind, shown.request.as_ref()),
        };
        self.store().put_record(
            records::history_key(&record.group_id, message.position),
            &stored_message,
        );
        self.emit(Event::MessageReceived(Message::from_record(
            group_id.clone(),
            stored_message,
        )));
        Ok(())
    }
}
