//! The shapes of asking the network: a help request as `requests`,
//! `requests show`, `ask` and `ask close` give it.

use convene_client::help::{Poster, Request};
use serde::{Deserialize, Serialize};

/// A help request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestShape {
    /// Its id, hex (a prefix of 4 or more digits names it).
    pub id: String,
    pub title: String,
    pub text: String,
    pub topics: Vec<String>,
    /// Whom it is for, first: sector codes (empty: every sector).
    pub sectors: Vec<String>,
    /// Whom it is for, first: ITL1 region codes (empty: every region).
    pub regions: Vec<String>,
    /// Who posted it (for one asked through staff, the staff member), or
    /// `null` while it waits to be posted.
    pub poster: Option<String>,
    /// How people are shown the poster: their name, or "a leader, through
    /// <staff name>" for one asked through staff.
    pub poster_shown: String,
    /// Asked through staff, without the asker's name.
    pub via_staff: bool,
    /// You asked it.
    pub mine: bool,
    /// On the device of the staff member a leader asked through: that
    /// leader; `null` everywhere else.
    pub asked_by: Option<String>,
    pub posted_at_ms: u64,
    pub expires_at_ms: u64,
    /// When it was closed, or `null`.
    pub closed_at_ms: Option<u64>,
    /// Neither closed nor expired.
    pub open: bool,
    /// The offers it received (held by the asker, and by the staff member
    /// who passed them on for a leader who asked through them), oldest
    /// first.
    pub offers: Vec<OfferShape>,
}

/// One offer under a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferShape {
    /// Who offered (user id).
    pub from: String,
    /// How people are shown them.
    pub from_shown: String,
    pub text: String,
    pub received_at_ms: u64,
    /// The staff member who passed it on, or `null`.
    pub passed_on_by: Option<String>,
}

impl RequestShape {
    /// `request`, with people shown by `name` (their certified name and
    /// id, or the id alone).
    pub fn new(request: &Request, now_ms: u64, name: &dyn Fn(&str) -> String) -> RequestShape {
        let (poster, poster_shown, via_staff) = match &request.poster {
            Poster::Member(user) if user.is_empty() => (None, String::new(), false),
            Poster::Member(user) => (Some(user.clone()), name(user), false),
            Poster::ViaStaff { staff } => (
                (request.posted && !staff.is_empty()).then(|| staff.clone()),
                format!("a leader, through {}", name(staff)),
                true,
            ),
        };
        RequestShape {
            id: request.id.to_hex(),
            title: request.title.clone(),
            text: request.text.clone(),
            topics: request.topics.clone(),
            sectors: request.sectors.iter().map(|s| s.code().into()).collect(),
            regions: request.regions.iter().map(|r| r.code().into()).collect(),
            poster,
            poster_shown,
            via_staff,
            mine: request.mine,
            asked_by: request.asked_by.clone(),
            posted_at_ms: request.posted_at_ms,
            expires_at_ms: request.expires_at_ms,
            closed_at_ms: request.closed_at_ms,
            open: request.is_open(now_ms),
            offers: request
                .offers
                .iter()
                .map(|offer| OfferShape {
                    from: offer.from.clone(),
                    from_shown: name(&offer.from),
                    text: offer.text.clone(),
                    received_at_ms: offer.received_at_ms,
                    passed_on_by: offer.passed_on_by.clone(),
                })
                .collect(),
        }
    }
}
