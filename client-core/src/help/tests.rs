use convene_proto::content::{HelpOffer, HelpRequest, Introduction};
use convene_proto::vocabulary::{Region, Sector};

use super::*;
use crate::directory::{Person, WrittenProfile};
use crate::types::Role;

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 24 * 3600 * 1000;

fn wire(title: &str) -> HelpRequest {
    HelpRequest {
        request_id: bytes::Bytes::from_static(&[7; 16]),
        title: title.into(),
        text: "We need instructors".into(),
        topics: vec!["cyber skills".into()],
        sectors: vec!["education".into()],
        regions: vec!["TLC".into()],
        expires_at_ms: NOW + 14 * DAY,
        via_staff: false,
        id_nonce: bytes::Bytes::from_static(&[9; 16]),
        asker_salt: bytes::Bytes::new(),
    }
}

#[test]
fn a_request_within_its_bounds_reads_back_as_sent() {
    let body = HelpRequestBody::from_wire(&wire("Cyber teachers"), NOW).unwrap();
    assert_eq!(body.sectors, vec![Sector::Education]);
    assert_eq!(body.regions, vec![Region::NorthEast]);
    assert_eq!(body.to_wire(), wire("Cyber teachers"));
}

#[test]
fn requests_out_of_bounds_are_refused_with_the_reason() {
    let cases: Vec<(HelpRequest, &str)> = vec![
        (wire(""), "title"),
        (wire(&"x".repeat(MAX_TITLE_CHARS + 1)), "title"),
        (
            HelpRequest {
                text: "y".repeat(MAX_HELP_TEXT_CHARS + 1),
                ..wire("t")
            },
            "text",
        ),
        (
            HelpRequest {
                topics: (0..=MAX_REQUEST_TOPICS).map(|i| format!("t{i}")).collect(),
                ..wire("t")
            },
            "topics",
        ),
        (
            HelpRequest {
                topics: vec!["Not Normalised".into()],
                ..wire("t")
            },
            "topic",
        ),
        (
            HelpRequest {
                sectors: vec!["banking".into()],
                ..wire("t")
            },
            "sector",
        ),
        (
            HelpRequest {
                regions: vec!["TLC".into(), "TLC".into()],
                ..wire("t")
            },
            "twice",
        ),
        (
            HelpRequest {
                expires_at_ms: NOW + 120 * DAY,
                ..wire("t")
            },
            "90 days",
        ),
        (
            HelpRequest {
                request_id: bytes::Bytes::from_static(&[1; 15]),
                ..wire("t")
            },
            "16 bytes",
        ),
    ];
    for (request, reason) in cases {
        let err = HelpRequestBody::from_wire(&request, NOW).unwrap_err();
        assert!(err.contains(reason), "{err} should mention {reason}");
    }
}

#[test]
fn offers_and_introductions_hold_their_bounds() {
    let offer = |text: &str, from: &str| HelpOffer {
        request_id: bytes::Bytes::from_static(&[7; 16]),
        text: text.into(),
        forwarded_from: from.into(),
    };
    assert!(HelpOfferBody::from_wire(&offer("I can help", "")).is_ok());
    assert!(HelpOfferBody::from_wire(&offer("   ", "")).is_err());
    assert!(HelpOfferBody::from_wire(&offer(&"z".repeat(MAX_HELP_TEXT_CHARS + 1), "")).is_err());
    assert!(HelpOfferBody::from_wire(&offer("ok", "Not A User!")).is_err());
    let intro = |note: &str, who: &[&str]| Introduction {
        note: note.into(),
        introduced: who.iter().map(|w| w.to_string()).collect(),
    };
    assert!(IntroductionBody::from_wire(&intro("Talk about cyber", &["ana", "ben"])).is_ok());
    assert!(IntroductionBody::from_wire(&intro("n", &["ana"])).is_err());
    assert!(IntroductionBody::from_wire(&intro("n", &["ana", "ana"])).is_err());
    assert!(IntroductionBody::from_wire(&intro("n", &["a", "b", "c", "d"])).is_err());
    assert!(IntroductionBody::from_wire(&intro("", &["ana", "ben"])).is_err());
}

fn request(id: u8, posted_at_ms: u64, sectors: &[Sector], topics: &[&str]) -> Request {
    Request {
        id: RequestId([id; 16]),
        poster: Poster::Member("someone".into()),
        mine: false,
        asked_by: None,
        title: format!("request {id}"),
        text: String::new(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        sectors: sectors.to_vec(),
        regions: Vec::new(),
        posted_at_ms,
        expires_at_ms: NOW + DAY,
        closed_at_ms: None,
        offers: Vec::new(),
        posted: true,
    }
}

fn reader(sector: Sector, topics: &[&str]) -> Person {
    Person {
        user_id: "reader".into(),
        display_name: "Reader".into(),
        role: Role::Leader,
        sector: Some(sector),
        sector_text: String::new(),
        region: Some(Region::London),
        job_title: String::new(),
        organisation: String::new(),
        programme: String::new(),
        cohort: String::new(),
        profile: Some(WrittenProfile {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }),
        profile_sealed: false,
        suspended: false,
        refused: None,
    }
}

fn order(requests: Vec<Request>, reader: &Person, filter: RequestFilter) -> Vec<u8> {
    rank(requests, Some(reader), filter, NOW)
        .iter()
        .map(|r| r.id.0[0])
        .collect()
}

#[test]
fn requests_aimed_at_the_reader_come_first_then_the_newest() {
    let requests = vec![
        request(1, NOW - 3 * DAY, &[], &[]),
        request(2, NOW - 2 * DAY, &[Sector::Police], &[]),
        request(3, NOW - 4 * DAY, &[Sector::Education], &[]),
        request(4, NOW - DAY, &[], &["cyber skills"]),
        request(5, NOW - DAY, &[], &[]),
    ];
    let teacher = reader(Sector::Education, &["cyber skills"]);
    // Sector (4) beats one shared topic (3); the rest newest first, and
    // equal times by id.
    assert_eq!(
        order(requests.clone(), &teacher, RequestFilter::default()),
        vec![3, 4, 5, 2, 1]
    );
    let officer = reader(Sector::Police, &[]);
    assert_eq!(
        order(requests, &officer, RequestFilter::default()),
        vec![2, 4, 5, 1, 3]
    );
}

#[test]
fn closed_and_expired_requests_are_listed_only_when_asked_and_last() {
    let mut closed = request(1, NOW - DAY, &[Sector::Education], &[]);
    closed.closed_at_ms = Some(NOW - 1);
    let mut expired = request(2, NOW - DAY, &[Sector::Education], &[]);
    expired.expires_at_ms = NOW;
    let open = request(3, NOW - 2 * DAY, &[], &[]);
    let teacher = reader(Sector::Education, &[]);
    let all = vec![closed, expired, open];
    assert_eq!(
        order(all.clone(), &teacher, RequestFilter::default()),
        vec![3]
    );
    let with_closed = RequestFilter {
        include_closed: true,
        only_mine: false,
    };
    assert_eq!(order(all, &teacher, with_closed), vec![3, 1, 2]);
}

#[test]
fn a_request_id_prints_as_hex_and_debug_keeps_it_short() {
    let id = RequestId([0xab; 16]);
    assert_eq!(id.to_string(), "ab".repeat(16));
    assert_eq!(format!("{id:?}"), "RequestId(abababab)");
}

#[test]
fn a_request_id_belongs_to_the_poster_it_was_made_for() {
    let nonce = [3; 16];
    let body = HelpRequestBody::from_wire(
        &HelpRequest {
            request_id: bytes::Bytes::copy_from_slice(&RequestId::of_poster("ana", &nonce).0),
            id_nonce: bytes::Bytes::copy_from_slice(&nonce),
            ..wire("Venues")
        },
        NOW,
    )
    .unwrap();
    assert!(body.id_is_of("ana"));
    // Another member re-posting it under the same id is caught, and so is
    // a poster name that only shifts bytes between the name and the nonce.
    assert!(!body.id_is_of("ben"));
    assert!(!body.id_is_of("an"));
    assert_ne!(
        RequestId::of_poster("ana", &nonce),
        RequestId::of_poster("ana", &[4; 16])
    );
    let short = HelpRequest {
        id_nonce: bytes::Bytes::from_static(&[1; 15]),
        ..wire("Venues")
    };
    assert!(HelpRequestBody::from_wire(&short, NOW).is_err());
}

#[test]
fn a_request_asked_through_staff_is_bound_to_its_asker_and_posted_without_the_salt() {
    let salt = [5; 16];
    let nonce = RequestId::asked_through_nonce("hal", &salt);
    let asked = HelpRequestBody::from_wire(
        &HelpRequest {
            request_id: bytes::Bytes::copy_from_slice(&RequestId::of_poster("sam", &nonce).0),
            id_nonce: bytes::Bytes::copy_from_slice(&nonce),
            asker_salt: bytes::Bytes::copy_from_slice(&salt),
            via_staff: true,
            ..wire("Venues")
        },
        NOW,
    )
    .unwrap();
    assert!(asked.id_is_of("sam"));
    assert!(asked.is_asked_by("hal"));
    // Anyone else sending staff a copy is caught.
    assert!(!asked.is_asked_by("mal"));
    assert!(!asked.is_asked_by("ha"));
    // A copy of a request staff posted themselves has a random nonce and
    // no salt that derives it.
    let posted = asked.for_posting();
    assert_eq!(posted.asker_salt, None);
    assert!(!posted.is_asked_by("hal"));
    assert!(posted.to_wire().asker_salt.is_empty());
    assert_eq!(posted.request_id, asked.request_id);
    let bad_salt = HelpRequest {
        asker_salt: bytes::Bytes::from_static(&[1; 3]),
        ..wire("Venues")
    };
    assert!(HelpRequestBody::from_wire(&bad_salt, NOW).is_err());
}

#[test]
fn every_request_counts_against_the_window_closed_or_expired() {
    use crate::store::records::HelpRequestRecord;
    use prost::Message as _;
    let record = |posted_at_ms: u64, expires_at_ms: u64, closed_at_ms: u64| HelpRequestRecord {
        request: HelpRequest {
            expires_at_ms,
            ..wire("Venues")
        }
        .encode_to_vec(),
        poster: "ana".into(),
        posted_at_ms,
        closed_at_ms,
        ..Default::default()
    };
    let mut counts = RequestCounts::default();
    // Open; closed at once; posted already expired; and one from before
    // the window, which no longer counts.
    counts.add(&record(NOW - DAY, NOW + DAY, 0), NOW);
    counts.add(&record(NOW - DAY, NOW + DAY, NOW - DAY + 1), NOW);
    counts.add(&record(NOW - 1, NOW - 2, 0), NOW);
    counts.add(&record(NOW - 31 * DAY, NOW + DAY, 0), NOW);
    assert_eq!(counts, RequestCounts { open: 2, recent: 3 });
    let leader = RequestCounts::cap(Role::Leader);
    assert_eq!(counts.reached(leader, "ana"), None);

    // Asking and closing in a loop reaches the window's cap though no
    // more than one is ever open.
    let mut looping = RequestCounts::default();
    for i in 0..MAX_RECENT_REQUESTS as u64 {
        looping.add(&record(NOW - i, NOW + DAY, NOW - i + 1), NOW);
    }
    assert_eq!(looping.open, 0);
    let why = looping.reached(leader, "ana").unwrap();
    assert!(why.contains("in the last 30 days"), "{why}");
    assert_eq!(
        looping.reached(RequestCounts::cap(Role::Staff), "sam"),
        None
    );
}
