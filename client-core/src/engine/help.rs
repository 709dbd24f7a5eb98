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
    HelpOfferBody, HelpRequestBody, RequestCounts, RequestId, MAX_OFFERS_KEPT,
    MAX_OFFERS_PER_MEMBER,
};
use crate::mls::{MemberDevice, MlsError};
use crate::store::records::{self, GroupRecord, HelpRequestRecord, OfferRecord};
use crate::types::{GroupId, MessageKind, Role};

/// How long a closed or expired request is kept before it is forgotten.
const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

fn refused(why: &str) -> MlsError {
    MlsError::PolicyViolation(why.to_string())
}

/// How many requests `store` holds that `matches`, open and recent: the
/// counts every client holds a poster to, on receipt and (on the poster's
/// own device) before sending. One pass over every request held: at most
/// [`crate::help::MAX_RECENT_REQUESTS`] per member are kept for
/// [`FORGET_AFTER`].
pub(crate) fn count_requests(
    store: &crate::store::LocalStore,
    matches: impl Fn(&HelpRequestRecord) -> bool,
) -> Result<RequestCounts, ClientError> {
    let now = crate::now_ms();
    let mut counts = RequestCounts::default();
    for item in store.scan::<HelpRequestRecord>(&records::help_request_prefix()) {
        let (_, held) = item?;
        if matches(&held) {
            counts.add(&held, now);
        }
    }
    Ok(counts)
}

impl Engine {
    pub(super) fn help_record(
        &self,
        id: &RequestId,
    ) -> Result<Option<HelpRequestRecord>, ClientError> {
        Ok(self.store().get_record(&records::help_request_key(&id.0))?)
    }

    pub(super) fn put_help_record(&mut self, id: &RequestId, record: &HelpRequestRecord) {
        self.store()
            .put_record(records::help_request_key(&id.0), record);
    }

    fn own_role(&self) -> Role {
        Role::from_wire(self.shared.identity.role)
    }

    /// The active direct channel of this user and `peer`, if there is one.
    pub(super) fn direct_with(&self, peer: &str) -> Result<Option<GroupId>, ClientError> {
        let group_id = direct_group_id(self.mls.user_id(), peer);
        let record: Option<GroupRecord> =
            self.store().get_record(&records::group_key(&group_id))?;
        Ok(record.filter(|r| r.active).map(|_| group_id))
    }

    /// The other user of the direct channel `group_id`.
    pub(super) fn direct_peer(&self, group_id: &[u8]) -> Result<Option<String>, ClientError> {
        let record: Option<GroupRecord> = self.store().get_record(&records::group_key(group_id))?;
        let own = self.mls.user_id();
        Ok(record
            .and_then(|r| convene_proto::content::GroupMeta::decode(r.meta.as_slice()).ok())
            .and_then(|meta| meta.direct_pair.into_iter().find(|u| u != own)))
    }

    /// For an offer or a close, the title of the request `id` as this
    /// device holds it; empty otherwise.
    pub(super) fn title_for(&self, kind: MessageKind, id: Option<&RequestId>) -> String {
        if !matches!(kind, MessageKind::HelpOffer | MessageKind::HelpClose) {
            return String::new();
        }
        id.and_then(|id| self.help_record(id).ok().flatten())
            .and_then(|held| {
                convene_proto::content::HelpRequest::decode(held.request.as_slice()).ok()
            })
            .map(|request| request.title)
            .unwrap_or_default()
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
            if request.asker_salt.is_some() {
                return Err(refused(
                    "a help request posted with the salt that would tell who asked it",
                ));
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
            let counts = self
                .count_requests(|r| r.poster == sender.user_id)
                .map_err(stored)?;
            if let Some(why) = counts.reached(RequestCounts::cap(role), &sender.user_id) {
                return Err(MlsError::PolicyViolation(why));
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
            // Another device of this staff member posted it before the
            // leader's request reached this one: this device too passes
            // offers on and takes the close, so one device going away
            // loses nothing.
            if held.poster == own_user
                && held.asked_by.is_empty()
                && !held.mine
                && role != Role::Staff
                && request.is_asked_by(&sender.user_id)
            {
                held.asked_by = sender.user_id.clone();
                self.put_help_record(&id, &held);
            }
            return Ok(None);
        }
        // Bound to its asker: without this, a member could send staff a
        // copy of a request someone else posted and have offers to it
        // passed on to them.
        if !request.is_asked_by(&sender.user_id) {
            return Err(refused(
                "a request asked through staff under an id not derived from its sender",
            ));
        }
        held.request = request.for_posting().to_wire().encode_to_vec();
        held.posted_at_ms = crate::now_ms();
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
            .count_requests(|r| r.asked_by == sender.user_id)
            .map_err(stored)?;
        if let Some(why) = asked.reached(RequestCounts::cap(Role::Leader), &sender.user_id) {
            return Err(MlsError::PolicyViolation(why));
        }
        // Every receiver holds this staff member to the staff caps: past
        // them, a post would be refused by all, so it waits and staff are
        // told.
        let posting = self
            .count_requests(|r| {
                r.poster == own_user || (!r.asked_by.is_empty() && r.poster.is_empty())
            })
            .map_err(stored)?;
        if let Some(why) = posting.reached(RequestCounts::cap(Role::Staff), "you") {
            self.emit(Event::Warning {
                group: Some(group_id.clone()),
                detail: format!(
                    "{} asked you to post a request for them; it is not posted: {why}, the \
                     most every client accepts (close some with `convene ask close`)",
                    sender.user_id
                ),
            });
            return Ok(Some(shown));
        }
        self.prune_help_records().map_err(stored)?;
        held.asked_by = sender.user_id.clone();
        self.put_help_record(&id, &held);
        // Every device of the staff member posts it: receivers keep the
        // first and drop the rest, so one device offline loses nothing.
        self.post_in_network_channel(
            content::Body::HelpRequest(request.for_posting().to_wire()),
            &shown,
        )
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
        let passing_on = !held.mine && !held.asked_by.is_empty() && open;
        if !held.mine && !passing_on {
            return Ok(Some(shown));
        }
        // The asker keeps each offer; the staff member who posted for them
        // keeps the offers passed on, so that the same bounds hold before
        // anything reaches the asker.
        let by_them = held.offers.iter().filter(|o| o.from == from).count();
        // Each device of the staff member passes an offer on: the same
        // offer twice is kept once.
        let again = held
            .offers
            .iter()
            .any(|o| o.from == from && o.text == offer.text);
        if again || held.offers.len() >= MAX_OFFERS_KEPT || by_them >= MAX_OFFERS_PER_MEMBER {
            return Ok(Some(shown));
        }
        held.offers.push(OfferRecord {
            from,
            text: offer.text.clone(),
            received_at_ms: crate::now_ms(),
            passed_on_by: match (&offer.forwarded_from, passing_on) {
                (Some(_), _) => sender.user_id.clone(),
                (None, true) => self.mls.user_id().to_string(),
                (None, false) => String::new(),
            },
        });
        self.put_help_record(&id, &held);
        if passing_on && offer.forwarded_from.is_none() {
            self.pass_offer_on(&held.asked_by.clone(), &sender.user_id, offer)
                .map_err(stored)?;
        }
        Ok(Some(shown))
    }

    fn count_requests(
        &self,
        matches: impl Fn(&HelpRequestRecord) -> bool,
    ) -> Result<RequestCounts, ClientError> {
        count_requests(self.store(), matches)
    }

    /// Forgets requests closed or expired more than [`FORGET_AFTER`] ago
    /// (and that arrived before then, so that [`crate::help::RECENT_WINDOW`] still
    /// counts them).
    fn prune_help_records(&mut self) -> Result<(), ClientError> {
        let before = crate::now_ms().saturating_sub(FORGET_AFTER.as_millis() as u64);
        let stale: Vec<Vec<u8>> = self
            .store()
            .scan::<HelpRequestRecord>(&records::help_request_prefix())
            .filter_map(Result::ok)
            .filter(|(_, held)| {
                let ended = match held.closed_at_ms {
                    0 => held.expires_at_ms(),
                    closed => closed,
                };
                ended.max(held.posted_at_ms) < before
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
            // Closed already (by another of the poster's or staff's
            // devices, or sent again): nothing to show, so that closes
            // sent over and over fill nobody's history.
            if held.closed_at_ms != 0 {
                return Ok(None);
            }
            held.closed_at_ms = crate::now_ms();
            self.put_help_record(&id, &held);
            return Ok(Some(shown));
        }
        if record.kind == WireKind::Direct as i32 && held.asked_by == sender.user_id {
            // Passed on once while it waits or once it is done: a leader
            // sending the close again cannot make this device post in the
            // network channel over and over. One that never went out (this
            // device was not in the channel, or the send was given up) is
            // queued again.
            if held.closed_at_ms != 0
                || (held.close_pending && self.close_queued(&id).map_err(stored)?)
            {
                return Ok(None);
            }
            let again = held.close_pending;
            // The leader who asked through this staff member closes it.
            let close = content::Body::HelpClose(HelpClose {
                request_id: bytes::Bytes::copy_from_slice(&id.0),
            });
            if self
                .post_in_network_channel(close, &shown)
                .map_err(stored)?
            {
                held.close_pending = true;
                self.put_help_record(&id, &held);
            }
            return Ok((!again).then_some(shown));
        }
        Err(refused("a close that is not its sender's to make"))
    }
}
