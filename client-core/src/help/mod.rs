//! Asking the network for help: a leader's request posted in the network
//! channel, offers sent privately to whoever posted it, and its close;
//! and introductions, the note staff write when they put two or three
//! leaders in touch.
//!
//! This module has no I/O. It holds the bounds every client checks on
//! sending and on receiving ([`HelpRequestBody::from_wire`] and friends),
//! the typed request id, and the ranking that puts the requests a reader
//! can best answer first ([`rank`]). The engine receives and passes on
//! (`engine/help.rs`); the client asks, offers and closes
//! (`client/help.rs`).

mod rank;

pub use rank::{rank, RequestFilter};

use std::fmt;
use std::time::Duration;

use convene_proto::content::{HelpOffer, HelpRequest, Introduction};
use convene_proto::vocabulary::{Region, Sector};

use crate::directory::{normalise_topic, MAX_TOPIC_CHARS};
use crate::store::records::HelpRequestRecord;
use crate::types::Role;

/// Longest title of a request, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// Longest text of a request or an offer, in characters.
pub const MAX_HELP_TEXT_CHARS: usize = 4000;
/// Most topics a request lists.
pub const MAX_REQUEST_TOPICS: usize = 8;
/// Longest an asker may keep a request open.
pub const MAX_REQUEST_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long a request stays open unless the asker says otherwise.
pub const DEFAULT_REQUEST_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);
/// Longest note of an introduction, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;
/// How many leaders one introduction puts in touch: 2 or 3.
pub const INTRODUCED: std::ops::RangeInclusive<usize> = 2..=3;
/// Most offers kept under one request.
pub const MAX_OFFERS_KEPT: usize = 200;
/// Most offers kept under one request from one member, so that one member
/// cannot crowd out the others.
pub const MAX_OFFERS_PER_MEMBER: usize = 3;
/// Most open requests one leader may have posted (or asked through staff):
/// more are refused by every client.
pub const MAX_OPEN_REQUESTS: usize = 5;
/// Most open requests one staff member may have posted, for themselves
/// and for the leaders who ask through them.
pub const MAX_OPEN_REQUESTS_STAFF: usize = 50;
/// The window over which [`MAX_RECENT_REQUESTS`] counts requests.
pub const RECENT_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most requests one leader may post (or ask through staff) in
/// [`RECENT_WINDOW`], open, closed or expired: asking and closing in a loop,
/// or posting requests already expired, cannot flood the channel.
pub const MAX_RECENT_REQUESTS: usize = 20;
/// Most requests one staff member may post in [`RECENT_WINDOW`].
pub const MAX_RECENT_REQUESTS_STAFF: usize = 200;
/// A member's requests as counted against their caps: every client counts
/// them on receipt, and the asker's own client before sending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Neither closed nor expired.
    pub open: usize,
    /// Arrived within [`RECENT_WINDOW`] (or not posted yet), whatever
    /// became of them.
    pub recent: usize,
}

impl RequestCounts {
    /// The caps on one member of `role`: staff post for the leaders who
    /// ask through them too.
    pub fn cap(role: Role) -> RequestCounts {
        match role {
            Role::Staff => RequestCounts {
                open: MAX_OPEN_REQUESTS_STAFF,
                recent: MAX_RECENT_REQUESTS_STAFF,
            },
            _ => RequestCounts {
                open: MAX_OPEN_REQUESTS,
                recent: MAX_RECENT_REQUESTS,
            },
        }
    }

    /// Counts `held` at `now_ms`.
    pub fn add(&mut self, held: &HelpRequestRecord, now_ms: u64) {
        let since = now_ms.saturating_sub(RECENT_WINDOW.as_millis() as u64);
        // A close that is pending is not counted: every other client holds
        // the request open until the close reaches it.
        if held.closed_at_ms == 0 && held.expires_at_ms() > now_ms {
            self.open += 1;
        }
        if held.posted_at_ms == 0 || held.posted_at_ms > since {
            self.recent += 1;
        }
    }

    /// Why one more request from `who` is refused, if `self` has reached
    /// a bound of `cap`.
    pub fn reached(self, cap: RequestCounts, who: &str) -> Option<String> {
        if self.open >= cap.open {
            return Some(format!("{who} has {} open requests already", self.open));
        }
        (self.recent >= cap.recent).then(|| {
            format!(
                "{who} has posted {} requests in the last {} days",
                self.recent,
                RECENT_WINDOW.as_secs() / 86_400
            )
        })
    }
}

/// How far ahead of its receiver's clock a request's expiry may be, beyond
/// [`MAX_REQUEST_LIFETIME`], before it is refused (the sender's clock may
/// run ahead).
const EXPIRY_SLACK: Duration = Duration::from_secs(24 * 3600);

/// The id of a help request: 16 bytes derived from the member who posts
/// it and a nonce (see [`RequestId::of_poster`]), shown as hex (a prefix
/// of it is enough to name it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub [u8; 16]);

impl RequestId {
    /// The id of a request `poster` posts with `nonce`: the first 16 bytes
    /// of SHA-256("convene/help-request" || u32 BE length || poster ||
    /// nonce). Receivers check it, so a member cannot post under an id
    /// another member's request has, even one they saw.
    pub fn of_poster(poster: &str, nonce: &[u8; 16]) -> RequestId {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"convene/help-request")
            .chain_update((poster.len() as u32).to_be_bytes())
            .chain_update(poster.as_bytes())
            .chain_update(nonce)
            .finalize();
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        RequestId(id)
    }

    /// The id nonce of a request `asker` asks through staff with `salt`:
    /// the first 16 bytes of SHA-256("convene/ask-through" || u32 BE
    /// length || asker || salt). Only the asker and the staff member asked
    /// hold the salt, so the posted request does not name the asker, yet
    /// staff can tell that it is the sender's own.
    pub fn asked_through_nonce(asker: &str, salt: &[u8; 16]) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"convene/ask-through")
            .chain_update((asker.len() as u32).to_be_bytes())
            .chain_update(asker.as_bytes())
            .chain_update(salt)
            .finalize();
        let mut nonce = [0; 16];
        nonce.copy_from_slice(&digest[..16]);
        nonce
    }

    /// Reads a request id from a message field: exactly 16 bytes.
    pub fn from_field(bytes: &[u8]) -> Result<RequestId, String> {
        <[u8; 16]>::try_from(bytes)
            .map(RequestId)
            .map_err(|_| "a request id is 16 bytes".to_string())
    }

    /// The id in lowercase hex.
    pub fn to_hex(self) -> String {
        crate::hex(&self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex(&self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", crate::hex(&self.0[..4]))
    }
}

/// A help request as a client checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpRequestBody {
    /// Its id.
    pub request_id: RequestId,
    /// A short title.
    pub title: String,
    /// What is asked.
    pub text: String,
    /// Normalised topics.
    pub topics: Vec<String>,
    /// Whom it is for, first (empty: every sector).
    pub sectors: Vec<Sector>,
    /// Whom it is for, first (empty: every region).
    pub regions: Vec<Region>,
    /// When it stops being open, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Posted by staff for a leader whose name is not shown.
    pub via_staff: bool,
    /// The nonce the id is derived from.
    pub id_nonce: [u8; 16],
    /// Only in a request asked through staff, on its way to them: the
    /// asker's salt the nonce is derived from
    /// ([`RequestId::asked_through_nonce`]).
    pub asker_salt: Option<[u8; 16]>,
}

impl HelpRequestBody {
    /// Checks a request as it came in a message, against the receiver's
    /// clock `now_ms`.
    pub fn from_wire(wire: &HelpRequest, now_ms: u64) -> Result<HelpRequestBody, String> {
        let lifetime = (MAX_REQUEST_LIFETIME + EXPIRY_SLACK).as_millis() as u64;
        if wire.expires_at_ms > now_ms.saturating_add(lifetime) {
            return Err("a request open for longer than 90 days".into());
        }
        let sectors = wire
            .sectors
            .iter()
            .map(|code| Sector::from_code(code).ok_or("an unknown sector in its audience"))
            .collect::<Result<Vec<_>, _>>()?;
        let regions = wire
            .regions
            .iter()
            .map(|code| Region::from_code(code).ok_or("an unknown region in its audience"))
            .collect::<Result<Vec<_>, _>>()?;
        let body = HelpRequestBody {
            request_id: RequestId::from_field(&wire.request_id)?,
            title: wire.title.clone(),
            text: wire.text.clone(),
            topics: wire.topics.clone(),
            sectors,
            regions,
            expires_at_ms: wire.expires_at_ms,
            via_staff: wire.via_staff,
            id_nonce: <[u8; 16]>::try_from(wire.id_nonce.as_ref())
                .map_err(|_| "a request id nonce is 16 bytes".to_string())?,
            asker_salt: match wire.asker_salt.len() {
                0 => None,
                _ => Some(
                    <[u8; 16]>::try_from(wire.asker_salt.as_ref())
                        .map_err(|_| "an asker's salt is 16 bytes".to_string())?,
                ),
            },
        };
        body.check()?;
        Ok(body)
    }

    /// The request as it is sent.
    pub fn to_wire(&self) -> HelpRequest {
        HelpRequest {
            request_id: bytes::Bytes::copy_from_slice(&self.request_id.0),
            title: self.title.clone(),
            text: self.text.clone(),
            topics: self.topics.clone(),
            sectors: self.sectors.iter().map(|s| s.code().to_string()).collect(),
            regions: self.regions.iter().map(|r| r.code().to_string()).collect(),
            expires_at_ms: self.expires_at_ms,
            via_staff: self.via_staff,
            id_nonce: bytes::Bytes::copy_from_slice(&self.id_nonce),
            asker_salt: self
                .asker_salt
                .map(|salt| bytes::Bytes::copy_from_slice(&salt))
                .unwrap_or_default(),
        }
    }

    /// The request as it is posted in the network channel: without the
    /// asker's salt.
    pub fn for_posting(&self) -> HelpRequestBody {
        HelpRequestBody {
            asker_salt: None,
            ..self.clone()
        }
    }

    /// Whether its id is the one `poster` posting it would have.
    pub fn id_is_of(&self, poster: &str) -> bool {
        RequestId::of_poster(poster, &self.id_nonce) == self.request_id
    }

    /// Whether it was asked through staff by `asker`: its nonce is derived
    /// from `asker` and the salt it carries.
    pub fn is_asked_by(&self, asker: &str) -> bool {
        self.asker_salt
            .is_some_and(|salt| RequestId::asked_through_nonce(asker, &salt) == self.id_nonce)
    }

    /// Checks the bounds every client holds a request to, sent or
    /// received.
    pub fn check(&self) -> Result<(), String> {
        let title = self.title.chars().count();
        if title == 0 || title > MAX_TITLE_CHARS || self.title.trim().is_empty() {
            return Err(format!("a title has 1 to {MAX_TITLE_CHARS} characters"));
        }
        if self.text.chars().count() > MAX_HELP_TEXT_CHARS {
            return Err(format!(
                "a request's text has at most {MAX_HELP_TEXT_CHARS} characters"
            ));
        }
        if self.topics.len() > MAX_REQUEST_TOPICS {
            return Err(format!(
                "a request lists at most {MAX_REQUEST_TOPICS} topics"
            ));
        }
        for topic in &self.topics {
            if normalise_topic(topic).as_deref() != Some(topic.as_str())
                || topic.chars().count() > MAX_TOPIC_CHARS
            {
                return Err(format!(
                    "a topic is normalised and has at most {MAX_TOPIC_CHARS} characters"
                ));
            }
        }
        let distinct_sectors: std::collections::BTreeSet<_> = self.sectors.iter().collect();
        let distinct_regions: std::collections::BTreeSet<_> = self.regions.iter().collect();
        if distinct_sectors.len() != self.sectors.len()
            || distinct_regions.len() != self.regions.len()
        {
            return Err("an audience names a sector or region twice".into());
        }
        Ok(())
    }
}

/// An offer as a client checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpOfferBody {
    /// The request it answers.
    pub request_id: RequestId,
    /// What is offered.
    pub text: String,
    /// Who offered, when staff pass it on for a leader who asked through
    /// them.
    pub forwarded_from: Option<String>,
}

impl HelpOfferBody {
    /// Checks an offer as it came in a message.
    pub fn from_wire(wire: &HelpOffer) -> Result<HelpOfferBody, String> {
        check_offer_text(&wire.text)?;
        let forwarded_from = (!wire.forwarded_from.is_empty()).then(|| wire.forwarded_from.clone());
        if let Some(user) = &forwarded_from {
            if convene_proto::ids::check_user_id(user).is_err() {
                return Err("an offer passed on from an invalid user id".into());
            }
        }
        Ok(HelpOfferBody {
            request_id: RequestId::from_field(&wire.request_id)?,
            text: wire.text.clone(),
            forwarded_from,
        })
    }

    /// The offer as it is sent.
    pub fn to_wire(&self) -> HelpOffer {
        HelpOffer {
            request_id: bytes::Bytes::copy_from_slice(&self.request_id.0),
            text: self.text.clone(),
            forwarded_from: self.forwarded_from.clone().unwrap_or_default(),
        }
    }
}

/// Checks an offer's text: 1 to [`MAX_HELP_TEXT_CHARS`] characters.
pub fn check_offer_text(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_HELP_TEXT_CHARS || text.trim().is_empty() {
        return Err(format!(
            "an offer has 1 to {MAX_HELP_TEXT_CHARS} characters"
        ));
    }
    Ok(())
}

/// An introduction as a client checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntroductionBody {
    /// Why these leaders should talk.
    pub note: String,
    /// The user ids of the leaders introduced.
    pub introduced: Vec<String>,
}

impl IntroductionBody {
    /// Checks an introduction as it came in a message, or before it is
    /// sent.
    pub fn from_wire(wire: &Introduction) -> Result<IntroductionBody, String> {
        check_note(&wire.note)?;
        let mut distinct = wire.introduced.clone();
        distinct.sort();
        distinct.dedup();
        if !INTRODUCED.contains(&wire.introduced.len()) || distinct.len() != wire.introduced.len() {
            return Err("an introduction is of 2 or 3 different leaders".into());
        }
        if !wire
            .introduced
            .iter()
            .all(|u| convene_proto::ids::check_user_id(u).is_ok())
        {
            return Err("an introduction names an invalid user id".into());
        }
        Ok(IntroductionBody {
            note: wire.note.clone(),
            introduced: wire.introduced.clone(),
        })
    }
}

/// Checks an introduction's note: 1 to [`MAX_NOTE_CHARS`] characters.
pub fn check_note(note: &str) -> Result<(), String> {
    let chars = note.chars().count();
    if chars == 0 || chars > MAX_NOTE_CHARS || note.trim().is_empty() {
        return Err(format!(
            "an introduction's note has 1 to {MAX_NOTE_CHARS} characters"
        ));
    }
    Ok(())
}

/// Who posted a request, as its readers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poster {
    /// A member, by user id.
    Member(String),
    /// A staff member, for a leader whose name is not shown.
    ViaStaff {
        /// The staff member who posted it (offers go to them).
        staff: String,
    },
}

/// One offer, as the one who asked sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Who offered (for an offer passed on by staff, the one it came from).
    pub from: String,
    /// What they offer.
    pub text: String,
    /// When this device received it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// The staff member who passed it on, for a request asked through
    /// staff.
    pub passed_on_by: Option<String>,
}

/// A help request as this device shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its id.
    pub id: RequestId,
    /// Who posted it.
    pub poster: Poster,
    /// This user asked it (themselves, or through staff).
    pub mine: bool,
    /// On the device of the staff member a leader asked through: that
    /// leader (no-one else is told).
    pub asked_by: Option<String>,
    /// A short title.
    pub title: String,
    /// What is asked.
    pub text: String,
    /// What it is about.
    pub topics: Vec<String>,
    /// Whom it is for, first.
    pub sectors: Vec<Sector>,
    /// Whom it is for, first.
    pub regions: Vec<Region>,
    /// When it was posted (the sender's clock), ms since the Unix epoch.
    pub posted_at_ms: u64,
    /// When it stops being open.
    pub expires_at_ms: u64,
    /// When it was closed, if it was.
    pub closed_at_ms: Option<u64>,
    /// Offers received: held by the asker, and by the staff member who
    /// passed them on for a leader who asked through them.
    pub offers: Vec<Offer>,
    /// Posted in the network channel (false while a request asked through
    /// staff waits for them to post it).
    pub posted: bool,
}

impl Request {
    /// Open: neither closed nor past its expiry at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.closed_at_ms.is_none() && self.expires_at_ms > now_ms
    }
}

#[cfg(test)]
mod tests;
