//! Which requests a reader sees first: those they can best answer.
//!
//! A request scores for a reader when its audience names the reader's
//! sector (4) and region (2), and for each of its topics the reader lists
//! in their profile (3 each). An audience left empty matches everyone but
//! scores nothing, so a request aimed at the reader comes before one aimed
//! at all. Ties go to the newer request, then to the lower id, so the list
//! is the same every time it is shown.

use crate::directory::Person;

use super::Request;

/// Which requests to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Closed and expired ones too (after the open ones).
    pub include_closed: bool,
    /// Only the reader's own.
    pub only_mine: bool,
}

/// The requests to show `reader` (as the directory knows them, if it
/// does), best match first, at `now_ms`.
pub fn rank(
    requests: Vec<Request>,
    reader: Option<&Person>,
    filter: RequestFilter,
    now_ms: u64,
) -> Vec<Request> {
    let mut shown: Vec<(bool, u32, Request)> = requests
        .into_iter()
        .filter(|r| !filter.only_mine || r.mine)
        .filter(|r| filter.include_closed || r.is_open(now_ms))
        .map(|r| (r.is_open(now_ms), score(&r, reader), r))
        .collect();
    shown.sort_by(|(open_a, score_a, a), (open_b, score_b, b)| {
        open_b
            .cmp(open_a)
            .then(score_b.cmp(score_a))
            .then(b.posted_at_ms.cmp(&a.posted_at_ms))
            .then(a.id.cmp(&b.id))
    });
    shown.into_iter().map(|(_, _, r)| r).collect()
}

/// How well `request` fits `reader`; 0 for an unknown reader.
pub(super) fn score(request: &Request, reader: Option<&Person>) -> u32 {
    let Some(reader) = reader else {
        return 0;
    };
    let mut score = 0;
    if reader.sector.is_some_and(|s| request.sectors.contains(&s)) {
        score += 4;
    }
    if reader.region.is_some_and(|r| request.regions.contains(&r)) {
        score += 2;
    }
    if let Some(profile) = &reader.profile {
        let shared = request
            .topics
            .iter()
            .filter(|t| profile.topics.contains(t))
            .count();
        score += 3 * shared as u32;
    }
    score
}
