//! What this device sends about help requests beyond its user's own
//! operations: a request posted for a leader who asked through this staff
//! member, offers passed on to them, open requests posted again for
//! members who join later, and what its own sends change once the relay
//! has them. The rules for what arrives are in `help.rs`.

use convene_proto::content::content;
use prost::Message as _;

use super::received::Shown;
use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::help::{HelpOfferBody, RequestId};
use crate::store::records::{self, HelpRequestRecord, SendIntent};
use crate::types::{GroupId, MessageKind};

impl Engine {
    /// Queues `body` for the network channel, or warns that this device
    /// cannot post there; whether it was queued.
    pub(super) fn post_in_network_channel(
        &mut self,
        body: content::Body,
        shown: &Shown,
    ) -> Result<bool, ClientError> {
        let Some(channel) = self.network_channel()? else {
            self.emit(Event::Warning {
                group: None,
                detail: "a leader asked the network through you, but this device is not in \
                         the network channel to post it"
                    .into(),
            });
            return Ok(false);
        };
        let channel = GroupId::from_field(&channel.group_id)?;
        self.stage_intent(super::intents::content_intent(
            &channel,
            body,
            Shown {
                kind: shown.kind,
                text: shown.text.clone(),
                request: shown.request,
                passed_on_from: shown.passed_on_from.clone(),
            },
        ))?;
        self.outbox_dirty = true;
        Ok(true)
    }

    /// Whether a close of `id` waits in the outbox for the network channel.
    pub(super) fn close_queued(&self, id: &RequestId) -> Result<bool, ClientError> {
        let Some(channel) = self.network_channel()? else {
            return Ok(false);
        };
        let channel = GroupId::from_field(&channel.group_id)?;
        Ok(self
            .queued_intent(&channel, |kind| {
                matches!(kind, records::IntentKind::Send(s)
                    if MessageKind::from_i32(s.kind) == MessageKind::HelpClose
                        && s.request_id == id.0)
            })?
            .is_some())
    }

    /// Passes an offer from `offerer` on to `asker`, who asked through
    /// this staff member.
    pub(super) fn pass_offer_on(
        &mut self,
        asker: &str,
        offerer: &str,
        offer: HelpOfferBody,
    ) -> Result<(), ClientError> {
        let Some(direct) = self.direct_with(asker)? else {
            self.emit(Event::Warning {
                group: None,
                detail: "an offer for a request asked through you could not be passed on: no \
                         direct channel with the leader who asked"
                    .into(),
            });
            return Ok(());
        };
        let passed = HelpOfferBody {
            forwarded_from: Some(offerer.to_string()),
            ..offer
        };
        let shown = Shown {
            kind: MessageKind::HelpOffer,
            text: passed.text.clone(),
            request: Some(passed.request_id),
            passed_on_from: Some(offerer.to_string()),
        };
        self.stage_intent(super::intents::content_intent(
            &direct,
            content::Body::HelpOffer(passed.to_wire()),
            shown,
        ))?;
        self.outbox_dirty = true;
        Ok(())
    }

    /// Members joined the network channel `channel`: posts again every
    /// open request this device posted, so that they see what was asked
    /// before they came (members who hold a request drop the copy).
    /// Silent: the poster's own history shows the request once.
    pub(super) fn repost_open_requests(&mut self, channel: &GroupId) -> Result<(), ClientError> {
        let now = crate::now_ms();
        let open: Vec<convene_proto::content::HelpRequest> = self
            .store()
            .scan::<HelpRequestRecord>(&records::help_request_prefix())
            .filter_map(Result::ok)
            .filter(|(_, held)| held.posted_here && held.closed_at_ms == 0)
            .filter(|(_, held)| held.expires_at_ms() > now)
            .filter_map(|(_, held)| {
                convene_proto::content::HelpRequest::decode(held.request.as_slice()).ok()
            })
            .collect();
        for request in open {
            // One copy waiting to go serves every newcomer since: many
            // adds while offline cost one post each.
            let waiting = self.queued_intent(channel, |kind| {
                matches!(kind, records::IntentKind::Send(s)
                    if s.silent && s.request_id == request.request_id.as_ref())
            })?;
            if waiting.is_some() {
                continue;
            }
            let id = RequestId::from_field(&request.request_id).ok();
            let mut intent = super::intents::content_intent(
                channel,
                content::Body::HelpRequest(request),
                Shown {
                    kind: MessageKind::HelpRequest,
                    text: String::new(),
                    request: id,
                    passed_on_from: None,
                },
            );
            if let Some(records::IntentKind::Send(send)) = intent.kind.as_mut() {
                send.silent = true;
            }
            self.stage_intent(intent)?;
            self.outbox_dirty = true;
        }
        Ok(())
    }

    /// Whether `send`, if it is a repost of a request (silent, naming
    /// one), is of a request still open; true for any other send.
    pub(super) fn repost_still_open(&self, send: &SendIntent) -> Result<bool, ClientError> {
        if MessageKind::from_i32(send.kind) != MessageKind::HelpRequest {
            return Ok(true);
        }
        let Ok(id) = RequestId::from_field(&send.request_id) else {
            return Ok(true);
        };
        Ok(self
            .help_record(&id)?
            .is_some_and(|held| held.closed_at_ms == 0 && held.expires_at_ms() > crate::now_ms()))
    }

    /// Keeps what this device's own help message changed, once the relay
    /// has it (in the operation that completes the send).
    pub(super) fn after_own_help_sent(
        &mut self,
        group_id: &[u8],
        send: &SendIntent,
    ) -> Result<(), ClientError> {
        let Ok(id) = RequestId::from_field(&send.request_id) else {
            return Ok(());
        };
        let network = GroupId::from_field(group_id).is_ok_and(|g| self.is_network_channel(&g));
        let mut held = self.help_record(&id)?.unwrap_or_default();
        match MessageKind::from_i32(send.kind) {
            MessageKind::HelpRequest => {
                let content = convene_proto::content::Content::decode(send.content.as_slice())
                    .map_err(|_| ClientError::DamagedState("a help request to send"))?;
                let Some(content::Body::HelpRequest(request)) = content.body else {
                    return Err(ClientError::DamagedState("a help request to send"));
                };
                if held.request.is_empty() {
                    held.request = request.encode_to_vec();
                }
                if network {
                    if held.poster.is_empty() {
                        held.posted_at_ms = crate::now_ms();
                    }
                    held.poster = self.mls.user_id().to_string();
                    held.posted_here = true;
                } else {
                    held.asked_through = self.direct_peer(group_id)?.unwrap_or_default();
                }
                held.mine = held.asked_by.is_empty();
            }
            MessageKind::HelpClose if held.closed_at_ms == 0 => {
                if network || !held.poster.is_empty() {
                    held.closed_at_ms = crate::now_ms();
                } else {
                    held.close_pending = true;
                }
            }
            _ => return Ok(()),
        }
        self.put_help_record(&id, &held);
        Ok(())
    }
}
