//! Asking the network for help, as the app sees it: post a request (or
//! ask through staff without your name shown), list the open ones with
//! those you can best answer first, offer help privately, and close your
//! own. The rules every client holds others to are in `engine/help.rs`.

use std::time::Duration;

use convene_proto::content::{content, HelpClose, HelpRequest};
use convene_proto::vocabulary::{Region, Sector};
use prost::Message as _;

use super::Client;
use crate::directory::normalise_topic;
use crate::engine::{content_intent, count_requests, Shown};
use crate::error::ClientError;
use crate::help::{
    check_offer_text, rank, HelpOfferBody, HelpRequestBody, Offer, Poster, Request, RequestCounts,
    RequestFilter, RequestId, DEFAULT_REQUEST_LIFETIME, MAX_REQUEST_LIFETIME,
};
use crate::store::records::{self, HelpRequestRecord};
use crate::types::{Message, MessageKind, Role};

/// A help request to post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AskDraft {
    /// A short title: 1 to [`crate::help::MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// What is asked: at most [`crate::help::MAX_HELP_TEXT_CHARS`].
    pub text: String,
    /// Topics as typed (normalised before sending).
    pub topics: Vec<String>,
    /// Whom it is for, first (empty: every sector).
    pub sectors: Vec<Sector>,
    /// Whom it is for, first (empty: every region).
    pub regions: Vec<Region>,
    /// How long it stays open: [`DEFAULT_REQUEST_LIFETIME`] if `None`, at
    /// most [`MAX_REQUEST_LIFETIME`].
    pub lifetime: Option<Duration>,
    /// Ask through this staff member, without your name shown to anyone
    /// else.
    pub through_staff: Option<String>,
}

impl Client {
    /// Posts a help request in the network channel, or sends it to the
    /// staff member `draft.through_staff` names, who posts it without the
    /// asker's name. Returns it as this device now shows it.
    ///
    /// Errors: `InvalidArgument` for a bound broken (the field named),
    /// `Forbidden` outside the network channel, `UnknownUser` for a
    /// `through_staff` who is not staff.
    pub async fn ask(&self, draft: AskDraft) -> Result<Request, ClientError> {
        let lifetime = draft.lifetime.unwrap_or(DEFAULT_REQUEST_LIFETIME);
        if lifetime < Duration::from_secs(60) || lifetime > MAX_REQUEST_LIFETIME {
            return Err(ClientError::InvalidArgument(
                "a request stays open for 1 minute to 90 days".into(),
            ));
        }
        let mut topics: Vec<String> = Vec::new();
        for topic in draft.topics.iter().filter_map(|t| normalise_topic(t)) {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let mut sectors = draft.sectors.clone();
        sectors.sort();
        sectors.dedup();
        let mut regions = draft.regions.clone();
        regions.sort();
        regions.dedup();
        // Asked through staff, the nonce binds the request to its asker,
        // so that staff post and pass on only what a leader asked for
        // themselves (see `HelpRequest.asker_salt`).
        let asker_salt = draft
            .through_staff
            .as_ref()
            .map(|_| crate::random_bytes::<16>());
        let id_nonce = match &asker_salt {
            Some(salt) => RequestId::asked_through_nonce(self.user_id(), salt),
            None => crate::random_bytes::<16>(),
        };
        let poster = draft
            .through_staff
            .clone()
            .unwrap_or_else(|| self.user_id().to_string());
        let body = HelpRequestBody {
            request_id: RequestId::of_poster(&poster, &id_nonce),
            id_nonce,
            asker_salt,
            title: draft.title.trim().to_string(),
            text: draft.text.trim().to_string(),
            topics,
            sectors,
            regions,
            // To the hour, so that the request carries no exact time of
            // the asker's clock into a repost by staff.
            expires_at_ms: to_the_hour(crate::now_ms().saturating_add(lifetime.as_millis() as u64)),
            via_staff: draft.through_staff.is_some(),
        };
        body.check().map_err(ClientError::InvalidArgument)?;
        self.check_in_network_channel()?;
        // The bounds every receiver holds the poster to, checked here
        // first so that the asker is told rather than refused by others.
        let mine = count_requests(self.store(), |held| held.mine || held.posted_here)?;
        if let Some(why) = mine.reached(RequestCounts::cap(self.identity().role), "you") {
            return Err(ClientError::InvalidArgument(format!(
                "{why}, the most one person may: close one first \
                 (`convene ask close <request>`) or wait"
            )));
        }
        let shown = Shown {
            kind: MessageKind::HelpRequest,
            text: body.title.clone(),
            request: Some(body.request_id),
            passed_on_from: None,
        };
        let wire = content::Body::HelpRequest(body.to_wire());
        let group = match &draft.through_staff {
            Some(staff) => {
                self.check_is_staff(staff)?;
                self.open_direct(staff).await?
            }
            None => self.network_channel_id(),
        };
        self.submit(content_intent(&group, wire, shown)).await?;
        self.request(&body.request_id)?
            .ok_or(ClientError::DamagedState("the request was not kept"))
    }

    /// The requests this device knows, those `self` can best answer first
    /// (see [`crate::help::rank`]).
    pub fn requests(&self, filter: RequestFilter) -> Result<Vec<Request>, ClientError> {
        let requests = self
            .store()
            .scan::<HelpRequestRecord>(&records::help_request_prefix())
            .filter_map(|item| match item {
                Ok((_, record)) => request_from_record(&record).map(Ok),
                Err(err) => Some(Err(err)),
            })
            .filter(|r| r.as_ref().map_or(true, |r| r.posted || r.mine))
            .collect::<Result<Vec<_>, _>>()?;
        let reader = self.person(self.user_id())?;
        Ok(rank(requests, reader.as_ref(), filter, crate::now_ms()))
    }

    /// One request, by id.
    pub fn request(&self, id: &RequestId) -> Result<Option<Request>, ClientError> {
        let record: Option<HelpRequestRecord> = self
            .store()
            .get_committed_record(&records::help_request_key(&id.0))?;
        Ok(record.as_ref().and_then(request_from_record))
    }

    /// The request whose id starts with `prefix` (hex, at least 4
    /// characters), among those this device knows.
    ///
    /// Errors: `InvalidArgument` when none or several match.
    pub fn find_request(&self, prefix: &str) -> Result<Request, ClientError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ClientError::InvalidArgument(
                "a request is named by its id or the first 4 or more hex digits of it".into(),
            ));
        }
        let all = self.requests(RequestFilter {
            include_closed: true,
            only_mine: false,
        })?;
        let mut matching = all
            .into_iter()
            .filter(|r| r.id.to_hex().starts_with(&prefix));
        match (matching.next(), matching.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => Err(ClientError::InvalidArgument(format!(
                "no request {prefix} (`convene requests --all` lists them)"
            ))),
            (Some(_), Some(_)) => Err(ClientError::InvalidArgument(format!(
                "more than one request starts with {prefix}: give more of its id"
            ))),
        }
    }

    /// Offers help privately: to the asker in your direct channel, or to
    /// the staff member who posted it for someone, who passes it on.
    ///
    /// Errors: `InvalidArgument` for an empty or too long text, or a
    /// closed, expired or own request.
    pub async fn offer(&self, request: &RequestId, text: &str) -> Result<Message, ClientError> {
        let text = text.trim();
        check_offer_text(text).map_err(ClientError::InvalidArgument)?;
        let held = self
            .request(request)?
            .filter(|r| r.posted)
            .ok_or_else(|| ClientError::InvalidArgument(format!("no request {request}")))?;
        if held.mine {
            return Err(ClientError::InvalidArgument(
                "this is your own request".into(),
            ));
        }
        if !held.is_open(crate::now_ms()) {
            return Err(ClientError::InvalidArgument(
                "the request is closed or expired".into(),
            ));
        }
        let to = match &held.poster {
            Poster::Member(user) | Poster::ViaStaff { staff: user } => user.clone(),
        };
        let offer = HelpOfferBody {
            request_id: *request,
            text: text.to_string(),
            forwarded_from: None,
        };
        let shown = Shown {
            kind: MessageKind::HelpOffer,
            text: offer.text.clone(),
            request: Some(*request),
            passed_on_from: None,
        };
        let group = self.open_direct(&to).await?;
        let completed = self
            .submit(content_intent(
                &group,
                content::Body::HelpOffer(offer.to_wire()),
                shown,
            ))
            .await?;
        completed
            .message
            .ok_or(ClientError::DamagedState("the offer was not stored"))
    }

    /// Closes a request: your own (through the staff member you asked
    /// through, if you did), or, for staff, any posted one. Every client
    /// then shows it closed.
    pub async fn close_request(&self, request: &RequestId) -> Result<Request, ClientError> {
        let record: HelpRequestRecord = self
            .store()
            .get_committed_record(&records::help_request_key(&request.0))?
            .ok_or_else(|| ClientError::InvalidArgument(format!("no request {request}")))?;
        // Closed already; a close still pending (sent through staff, or
        // passed on by staff) may be sent again: the one who passes it on
        // posts it once.
        if record.closed_at_ms != 0 {
            return self
                .request(request)?
                .ok_or(ClientError::DamagedState("the request was not kept"));
        }
        let staff = self.identity().role == Role::Staff;
        let group = if record.mine && !record.asked_through.is_empty() {
            self.open_direct(&record.asked_through).await?
        } else if record.mine
            || (staff && !record.poster.is_empty())
            || self.inner.shared.skip_local_policy
        {
            self.check_in_network_channel()?;
            self.network_channel_id()
        } else {
            return Err(ClientError::Forbidden(
                "only the one who asked (or staff) closes a request".into(),
            ));
        };
        let close = content::Body::HelpClose(HelpClose {
            request_id: bytes::Bytes::copy_from_slice(&request.0),
        });
        let shown = Shown {
            kind: MessageKind::HelpClose,
            text: String::new(),
            request: Some(*request),
            passed_on_from: None,
        };
        self.submit(content_intent(&group, close, shown)).await?;
        self.request(request)?
            .ok_or(ClientError::DamagedState("the request was not kept"))
    }

    fn check_in_network_channel(&self) -> Result<(), ClientError> {
        match self.network_channel()? {
            Some(channel) if channel.active => Ok(()),
            _ => Err(ClientError::Forbidden(
                "this device is not in the network channel yet (staff add every leader to it)"
                    .into(),
            )),
        }
    }

    fn check_is_staff(&self, user: &str) -> Result<(), ClientError> {
        match self.person(user)? {
            Some(person) if person.role == Role::Staff && !person.suspended => Ok(()),
            Some(_) => Err(ClientError::InvalidArgument(format!(
                "{user} is not staff: ask through a member of staff"
            ))),
            None => Err(ClientError::UnknownUser(user.to_string())),
        }
    }
}

/// `ms` rounded up to the next whole hour.
fn to_the_hour(ms: u64) -> u64 {
    const HOUR_MS: u64 = 3_600_000;
    ms.div_ceil(HOUR_MS).saturating_mul(HOUR_MS)
}

/// A stored request as it is shown; `None` for one that does not decode
/// (kept, but not shown).
fn request_from_record(record: &HelpRequestRecord) -> Option<Request> {
    let wire = HelpRequest::decode(record.request.as_slice()).ok()?;
    let id = RequestId::from_field(&wire.request_id).ok()?;
    let poster = if wire.via_staff {
        Poster::ViaStaff {
            staff: if record.poster.is_empty() {
                record.asked_through.clone()
            } else {
                record.poster.clone()
            },
        }
    } else {
        Poster::Member(record.poster.clone())
    };
    Some(Request {
        id,
        poster,
        mine: record.mine,
        asked_by: (!record.asked_by.is_empty()).then(|| record.asked_by.clone()),
        title: wire.title,
        text: wire.text,
        topics: wire.topics,
        sectors: wire
            .sectors
            .iter()
            .filter_map(|c| Sector::from_code(c))
            .collect(),
        regions: wire
            .regions
            .iter()
            .filter_map(|c| Region::from_code(c))
            .collect(),
        posted_at_ms: record.posted_at_ms,
        expires_at_ms: wire.expires_at_ms,
        closed_at_ms: (record.closed_at_ms != 0).then_some(record.closed_at_ms),
        offers: record
            .offers
            .iter()
            .map(|o| Offer {
                from: o.from.clone(),
                text: o.text.clone(),
                received_at_ms: o.received_at_ms,
                passed_on_by: (!o.passed_on_by.is_empty()).then(|| o.passed_on_by.clone()),
            })
            .collect(),
        posted: !record.poster.is_empty(),
    })
}
