//! Help requests as they arrive, and what this device does about them: it
//! keeps every request posted in the network channel (and its close), the
//! offers made to its own, and, on a staff device that a leader asked
//! through, posts the request for them and passes each offer and the close
//! on, so that no-one else learns who asked.
//!
//! Who may send what, checked on receipt whatever the sender's client
//! did: a request in the network channel from any member (`via_staff` only
//! from staff); a request in a direct channel only to staff, from a leader,
//! asked through them; an offer only in a direct channel (`forwarded_from`
//! only from staff); a close in the network channel only from the one who
//! posted the request, or staff.

use convene_proto::content::{content, GroupKind as WireKind, HelpClose};
use convene_proto::direct::direct_group_id;
use prost::Message as _;

use super::received::{stored, Shown};
use super::Engine;
use crate::error::ClientError;
use crate::events::Event;
use crate::help::{
    HelpOfferBody, HelpRequestBody, RequestId, MAX_OFFERS_KEPT, MAX_OFFERS_PER_MEMBER,
    MAX_OPEN_REQUESTS, MAX_OPEN_REQUESTS_STAFF,
};
use crate::mls::{MemberDevice, MlsError};
use crate::store::records::{self, GroupRecord, HelpRequestRecord, OfferRecord, SendIntent};
use crate::types::{GroupId, MessageKind, Role};

/// How long a closed or expired request is kept before it is forgotten.
const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

fn refused(why: &str) -> MlsError {
    MlsError::PolicyViolation(why.to_string())
}

/// How many open requests one member may have posted: staff post for
/// leaders who ask through them.
fn open_cap(role: Role) -> usize {
    match role {
        Role::Staff => MAX_OPEN_REQUESTS_STAFF,
        _ => MAX_OPEN_REQUESTS,
    }
}

/// When the request `held` stops being open (0 if it does not decode).
fn expires_at(held: &HelpRequestRecord) -> u64 {
    convene_proto::content::HelpRequest::decode(held.request.as_slice())
        .map_or(0, |r| r.expires_at_ms)
}

impl Engine {
    fn help_record(&self, id: &RequestId) -> Result<Option<HelpRequestRecord>, ClientError> {
        Ok(self.store().get_record(&records::help_request_key(&id.0))?)
    }

    fn put_help_record(&mut self, id: &RequestId, record: &HelpRequestRecord) {
        self.store()
            .put_record(records::help_request_key(&id.0), record);
    }

    fn own_role(&self) -> Role {
        Role::from_wire(self.shared.identity.role)
    }

    /// The active direct channel of this user and `peer`, if there is one.
    fn direct_with(&self, peer: &str) -> Result<Option<GroupId>, ClientError> {
        let group_id = direct_group_id(self.mls.user_id(), peer);
        let record: Option<GroupRecord> =
            self.store().get_record(&records::group_key(&group_id))?;
        Ok(record.filter(|r| r.active).map(|_| group_id))
    }

    /// The other user of the direct channel `group_id`.
    fn direct_peer(&self, group_id: &[u8]) -> Result<Option<String>, ClientError> {
        let record: Option<GroupRecord> = self.store().get_record(&records::group_key(group_id))?;
        let own = self.mls.user_id();
        Ok(record
            .and_then(|r| convene_proto::content::GroupMeta::decode(r.meta.as_slice()).ok())
            .and_then(|meta| meta.direct_pair.into_iter().find(|u| u != own)))
    }

    pub(super) fn receive_help_request(
        &mut self,
        group_id: &GroupId,
        record: &GroupRecord,
        sender: &MemberDevice,
        role: Role,
        request: HelpRequestBody,
    ) -> Result<Option<Shown>, MlsError> {
        let id = request.request_id;
        let shown = Shown {
            kind: MessageKind::HelpRequest,
            text: request.title.clone(),
            request: Some(id),
            passed_on_from: None,
        };
        let own_user = self.mls.user_id().to_string();
        let mut held = self.help_record(&id).map_err(stored)?.unwrap_or_default();
        if record.kind == WireKind::Network as i32 && self.is_network_channel(group_id) {
            if request.via_staff && role != Role::Staff {
                return Err(refused("only staff post a request for someone else"));
            }
            if !request.id_is_of(&sender.user_id) {
                return Err(refused(
                    "a help request under an id that is not its poster's",
                ));
            }
            if !held.poster.is_empty() {
                if held.poster != sender.user_id {
                    return Err(refused("a help request under another member's request id"));
                }
                return Ok(None);
            }
            if held.mine && !(request.via_staff && role == Role::Staff) {
                return Err(refused("a help request under this user's own request id"));
            }
            let cap = open_cap(role);
            if self
                .open_requests(|r| r.poster == sender.user_id)
                .map_err(stored)?
                >= cap
            {
                return Err(MlsError::PolicyViolation(format!(
                    "{} has more than {cap} open requests",
                    sender.user_id
                )));
            }
            self.prune_help_records().map_err(stored)?;
            held.request = request.to_wire().encode_to_vec();
            held.poster = sender.user_id.clone();
            // Ranked by when it arrived: a sender's clock set ahead would
            // keep it on top.
            held.posted_at_ms = crate::now_ms();
            // Posted by this user's other device.
            held.mine |= sender.user_id == own_user && !request.via_staff;
            if held.close_pending {
                held.closed_at_ms = crate::now_ms();
            }
            self.put_help_record(&id, &held);
            return Ok(Some(shown));
        }
        if record.kind != WireKind::Direct as i32 || !request.via_staff {
            return Err(refused(
                "a help request outside the network channel, other than one asked through staff",
            ));
        }
        if !held.request.is_empty() {
            return Ok(None);
        }
        held.request = request.to_wire().encode_to_vec();
        if sender.user_id == own_user {
            // Asked through staff from this user's other device.
            held.mine = true;
            held.asked_through = self
                .direct_peer(group_id)
                .map_err(stored)?
                .unwrap_or_default();
            self.put_help_record(&id, &held);
            return Ok(Some(shown));
        }
        if self.own_role() != Role::Staff || role == Role::Staff {
            return Err(refused(
                "a request asked through staff reaches staff, from a leader",
            ));
        }
        if !request.id_is_of(&own_user) {
            return Err(refused(
                "a request asked through staff under an id that is not this staff member's",
            ));
        }
        let asked = self
            .open_requests(|r| r.asked_by == sender.user_id)
            .map_err(stored)?;
        if asked >= MAX_OPEN_REQUESTS {
            return Err(MlsError::PolicyViolation(format!(
                "{} asked for more than {MAX_OPEN_REQUESTS} open requests to be posted",
                sender.user_id
            )));
        }
        held.asked_by = sender.user_id.clone();
        self.put_help_record(&id, &held);
        // Every device of the staff member posts it: receivers keep the
        // first and drop the rest, so one device offline loses nothing.
        self.post_in_network_channel(content::Body::HelpRequest(request.to_wire()), &shown)
            .map_err(stored)?;
        Ok(Some(shown))
    }

    pub(super) fn receive_help_offer(
        &mut self,
        record: &GroupRecord,
        sender: &MemberDevice,
        role: Role,
        offer: HelpOfferBody,
    ) -> Result<Option<Shown>, MlsError> {
        if record.kind != WireKind::Direct as i32 {
            return Err(refused("an offer outside a direct channel"));
        }
        let id = offer.request_id;
        let shown = Shown {
            kind: MessageKind::HelpOffer,
            text: offer.text.clone(),
            request: Some(id),
            passed_on_from: offer.forwarded_from.clone(),
        };
        let held = self.help_record(&id).map_err(stored)?;
        if offer.forwarded_from.is_some()
            && (role != Role::Staff
                || !held
                    .as_ref()
                    .is_some_and(|h| h.mine && h.asked_through == sender.user_id))
        {
            return Err(refused(
                "an offer passed on by someone other than the staff member the request was \
                 asked through",
            ));
        }
        let Some(mut held) = held else {
            // About a request this device does not know: the conversation
            // shows it, nothing more.
            return Ok(Some(shown));
        };
        let from = offer
            .forwarded_from
            .clone()
            .unwrap_or_else(|| sender.user_id.clone());
        let open = held.closed_at_ms == 0 && !held.close_pending;
        if held.mine {
            let by_them = held.offers.iter().filter(|o| o.from == from).count();
            // Each device of the staff member passes an offer on: the same
            // offer twice is kept once.
            let again = held
                .offers
                .iter()
                .any(|o| o.from == from && o.text == offer.text);
            if !again && held.offers.len() < MAX_OFFERS_KEPT && by_them < MAX_OFFERS_PER_MEMBER {
                held.offers.push(OfferRecord {
                    from,
                    text: offer.text.clone(),
                    received_at_ms: crate::now_ms(),
                    passed_on_by: if offer.forwarded_from.is_some() {
                        sender.user_id.clone()
                    } else {
                        String::new()
                    },
                });
                self.put_help_record(&id, &held);
            }
        } else if !held.asked_by.is_empty() && offer.forwarded_from.is_none() && open {
            self.pass_offer_on(&held.asked_by.clone(), &sender.user_id, offer)
                .map_err(stored)?;
        }
        Ok(Some(shown))
    }

    /// How many requests this device holds that are open and `matches`.
    fn open_requests(
        &self,
        matches: impl Fn(&HelpRequestRecord) -> bool,
    ) -> Result<usize, ClientError> {
        let now = crate::now_ms();
        let mut count = 0;
        for item in self
            .store()
            .scan::<HelpRequestRecord>(&records::help_request_prefix())
        {
            let (_, held) = item?;
            if held.closed_at_ms == 0 && expires_at(&held) > now && matches(&held) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Forgets requests closed or expired more than [`FORGET_AFTER`] ago.
    fn prune_help_records(&mut self) -> Result<(), ClientError> {
        let before = crate::now_ms().saturating_sub(FORGET_AFTER.as_millis() as u64);
        let stale: Vec<Vec<u8>> = self
            .store()
            .scan::<HelpRequestRecord>(&records::help_request_prefix())
            .filter_map(Result::ok)
            .filter(|(_, held)| {
                let ended = match held.closed_at_ms {
                    0 => expires_at(held),
                    closed => closed,
                };
                ended < before
            })
            .map(|(key, _)| key)
            .collect();
        for key in stale {
            self.store().delete(key);
        }
        Ok(())
    }

    pub(super) fn receive_help_close(
        &mut self,
        group_id: &GroupId,
        record: &GroupRecord,
        sender: &MemberDevice,
        role: Role,
        id: RequestId,
    ) -> Result<Option<Shown>, MlsError> {
        let shown = Shown {
            kind: MessageKind::HelpClose,
            text: String::new(),
            request: Some(id),
            passed_on_from: None,
        };
        let Some(mut held) = self.help_record(&id).map_err(stored)? else {
            return Ok(None);
        };
        if record.kind == WireKind::Network as i32 && self.is_network_channel(group_id) {
            if held.poster != sender.user_id && role != Role::Staff {
                return Err(refused("a close of a request its sender did not post"));
            }
            if held.closed_at_ms == 0 {
                held.closed_at_ms = crate::now_ms();
                self.put_help_record(&id, &held);
            }
            return Ok(Some(shown));
        }
        if record.kind == WireKind::Direct as i32 && held.asked_by == sender.user_id {
            // The leader who asked through this staff member closes it.
            let close = content::Body::HelpClose(HelpClose {
                request_id: bytes::Bytes::copy_from_slice(&id.0),
            });
            self.post_in_network_channel(close, &shown)
                .map_err(stored)?;
            return Ok(Some(shown));
        }
        Err(refused("a close that is not its sender's to make"))
    }

    /// Queues `body` for the network channel, or warns that this device
    /// cannot post there.
    fn post_in_network_channel(
        &mut self,
        body: content::Body,
        shown: &Shown,
    ) -> Result<(), ClientError> {
        let Some(channel) = self.network_channel()? else {
            self.emit(Event::Warning {
                group: None,
                detail: "a leader asked the network through you, but this device is not in \
                         the network channel to post it"
                    .into(),
            });
            return Ok(());
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
        Ok(())
    }

    /// Passes an offer from `offerer` on to `asker`, who asked through
    /// this staff member.
    fn pass_offer_on(
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
            .filter(|(_, held)| expires_at(held) > now)
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
            .is_some_and(|held| held.closed_at_ms == 0 && expires_at(&held) > crate::now_ms()))
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
