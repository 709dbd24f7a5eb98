//! Help requests in people's words: one entry per request in `requests`,
//! the whole request with its offers in `requests show`, `ask` and `ask
//! close`. Every field came from a member and goes through [`safe`].

use convene_proto::vocabulary::{Region, Sector};

use super::{safe, time};
use crate::shapes::RequestShape;

/// A request as `requests` lists it.
pub fn request_entry(request: &RequestShape) -> String {
    let mut lines = vec![format!(
        "[{}] {}  ({})",
        short_id(&request.id),
        safe(&request.title),
        state(request)
    )];
    lines.push(format!("  {}", about(request)));
    if let Some(leader) = &request.asked_by {
        lines.push(format!(
            "  asked through you by {} (no-one else is told; offers go on to them)",
            safe(leader)
        ));
    }
    if request.mine {
        lines.extend(offer_lines(request));
    }
    lines.join("\n")
}

/// A whole request, with its text and offers.
pub fn request_text(request: &RequestShape) -> String {
    let mut lines = vec![
        format!("{}  ({})", safe(&request.title), state(request)),
        format!("  {}", about(request)),
        format!("  id {}", request.id),
    ];
    if let Some(leader) = &request.asked_by {
        lines.push(format!(
            "  asked through you by {} (no-one else is told; offers go on to them)",
            safe(leader)
        ));
    }
    if !request.text.is_empty() {
        lines.push(String::new());
        lines.extend(safe(&request.text).lines().map(|l| format!("  {l}")));
    }
    // The asker holds the offers, and so does the staff member who passed
    // them on for a leader who asked through them.
    if request.mine || request.asked_by.is_some() {
        lines.push(String::new());
        lines.extend(offer_lines(request));
    } else if request.open {
        lines.push(String::new());
        lines.push(format!(
            "  Offer help privately: convene offer {} \"...\"",
            short_id(&request.id)
        ));
    }
    lines.join("\n")
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn state(request: &RequestShape) -> String {
    match request.closed_at_ms {
        Some(at) => format!("closed {}", time(at)),
        None if !request.open => format!("expired {}", time(request.expires_at_ms)),
        None if request.poster.is_none() => "waiting for staff to post it".into(),
        None => format!("open until {}", time(request.expires_at_ms)),
    }
}

/// Who asked, when, about what, and for whom.
fn about(request: &RequestShape) -> String {
    let who = if request.mine && !request.via_staff {
        "asked by you".to_string()
    } else if request.mine {
        format!("asked by you, shown as {}", safe(&request.poster_shown))
    } else {
        format!("asked by {}", safe(&request.poster_shown))
    };
    let mut parts = vec![match request.posted_at_ms {
        0 => who,
        at => format!("{who} {}", time(at)),
    }];
    if !request.topics.is_empty() {
        let topics: Vec<_> = request
            .topics
            .iter()
            .map(|t| safe(t).into_owned())
            .collect();
        parts.push(format!("topics: {}", topics.join(", ")));
    }
    let audience: Vec<&str> = request
        .sectors
        .iter()
        .filter_map(|c| Sector::from_code(c).map(Sector::name))
        .chain(
            request
                .regions
                .iter()
                .filter_map(|c| Region::from_code(c).map(Region::name)),
        )
        .collect();
    if !audience.is_empty() {
        parts.push(format!("for: {}", audience.join(", ")));
    }
    parts.join(" · ")
}

fn offer_lines(request: &RequestShape) -> Vec<String> {
    if request.offers.is_empty() {
        return vec!["  no offers yet".into()];
    }
    let mut lines = vec![match request.offers.len() {
        1 => "  1 offer:".to_string(),
        n => format!("  {n} offers:"),
    }];
    for offer in &request.offers {
        let through = offer
            .passed_on_by
            .as_deref()
            .map(|staff| format!(" (passed on by {})", safe(staff)))
            .unwrap_or_default();
        lines.push(format!(
            "    {}{through}: {}",
            safe(&offer.from_shown),
            safe(&offer.text)
        ));
    }
    lines
}
