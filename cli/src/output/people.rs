//! The directory in people's words: one person per entry in `people`, a
//! whole profile in `people show` and `profile show`. Every field came from
//! a user or from staff and goes through [`safe`].

use super::{safe, time};
use crate::shapes::{CohortShape, PersonShape, ProfileShape};

/// A person as `people` lists them: who, what they do and where, and what
/// they can help with.
pub fn person_entry(person: &PersonShape) -> String {
    let mut first = format!("{} ({})", safe(&person.display_name), safe(&person.user_id));
    if person.suspended {
        first.push_str(" [suspended]");
    }
    let mut lines = vec![first];
    let role = role_line(person);
    if !role.is_empty() {
        lines.push(format!("  {role}"));
    }
    if let Some(topics) = topics(person) {
        lines.push(format!("  helps with: {topics}"));
    }
    lines.join("\n")
}

/// A person's whole profile.
pub fn person_text(person: &PersonShape) -> String {
    let mut lines = vec![format!(
        "{} ({}), {}{}",
        safe(&person.display_name),
        safe(&person.user_id),
        safe(&person.role),
        if person.suspended { ", suspended" } else { "" }
    )];
    let role = role_line(person);
    if !role.is_empty() {
        lines.push(format!("  {role}"));
    }
    let programme = [person.programme.as_str(), person.cohort.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| safe(p).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if !programme.is_empty() {
        lines.push(format!("  Programme: {programme}"));
    }
    match &person.profile {
        None => lines.push("  (no profile written yet)".into()),
        Some(profile) => {
            if let Some(topics) = topics(person) {
                lines.push(format!("  Helps with: {topics}"));
            }
            for (label, text) in [
                ("Working on", &profile.working_on),
                ("Bio", &profile.bio),
                ("Contact", &profile.contact),
            ] {
                if !text.is_empty() {
                    lines.push(format!("  {label}: {}", safe(text)));
                }
            }
            lines.push(format!(
                "  Profile version {}, written {}",
                profile.version,
                time(profile.written_at_ms)
            ));
        }
    }
    if let Some(why) = &person.refused {
        lines.push(format!(
            "  note: the relay's newest entry for them was refused ({}); this is the last one \
             that verified",
            safe(why)
        ));
    }
    lines.join("\n")
}

/// `profile show` and `profile set`: the user's own profile and the topics
/// others list most.
pub fn profile_text(profile: &ProfileShape) -> String {
    let mut text = match &profile.person {
        Some(person) => person_text(person),
        None => "Your directory entry has not reached this device yet; try again once it is \
                 online."
            .into(),
    };
    if !profile.suggested_topics.is_empty() {
        let topics = profile
            .suggested_topics
            .iter()
            .map(|t| format!("{} ({})", safe(&t.topic), t.people))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!("\nTopics others list most: {topics}"));
    }
    text
}

/// "Chief Fire Officer, Rivershire FRS · Fire and rescue · Wales".
fn role_line(person: &PersonShape) -> String {
    let job = [person.job_title.as_str(), person.organisation.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| safe(p).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    [
        job,
        safe(&person.sector_name).into_owned(),
        safe(&person.region_name).into_owned(),
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join(" · ")
}

fn topics(person: &PersonShape) -> Option<String> {
    let topics = &person.profile.as_ref()?.topics;
    (!topics.is_empty()).then(|| {
        topics
            .iter()
            .map(|t| safe(t).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// A cohort: its name, then each of its people as `people` lists them.
pub fn cohort_text(cohort: &CohortShape) -> String {
    let mut lines = vec![match cohort.people.len() {
        1 => format!("{}: you and 1 other", safe(&cohort.name)),
        n => format!("{}: you and {n} others", safe(&cohort.name)),
    }];
    for person in &cohort.people {
        lines.extend(person_entry(person).lines().map(|l| format!("  {l}")));
    }
    lines.join("\n")
}
