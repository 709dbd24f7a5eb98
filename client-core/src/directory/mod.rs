//! The directory of the network's people: each user's certified profile
//! (what staff vouch for in their certificate) and written profile (what
//! they say about themselves, signed with their identity key), verified on
//! arrival and kept on this device, so that finding a peer is a local
//! search that neither waits for the relay nor tells it what was looked for.
//!
//! This module has no I/O: [`verify`] turns what the relay served into a
//! record or a refusal, [`search`] ranks records for a query, and
//! [`ProfileDraft`] checks and normalises what a user writes. The engine
//! syncs (`engine/directory.rs`); the client reads (`client/directory.rs`).

mod network_key;
mod search;
mod verify;

pub use network_key::{key_id, NetworkKeyEntry, NetworkKeyRing, KEY_ID_LEN, MAX_NETWORK_KEYS};
pub use search::{search, PeopleQuery, SearchIndex};
pub(crate) use verify::relay_certificate;
pub use verify::verify_user;

use convene_proto::trust::{Profile, ProfileText};
use convene_proto::vocabulary::{Region, Sector};

use crate::store::records::DirectoryRecord;
use crate::types::Role;

/// What one sync of the directory did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectorySync {
    /// Users the relay lists.
    pub listed: usize,
    /// Users fetched again because their entry changed, and verified.
    pub updated: usize,
    /// Of those, users part of whose new entry was refused (the last good
    /// one is kept).
    pub refused: usize,
    /// Users fetched of whom nothing verified (not listed here).
    pub unverified: usize,
}

/// Most topics a profile lists.
pub const MAX_TOPICS: usize = 12;
/// Longest topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 40;
/// Longest "working on", in characters.
pub const MAX_WORKING_ON_CHARS: usize = 500;
/// Longest bio, in characters.
pub const MAX_BIO_CHARS: usize = 1000;
/// Longest contact preference, in characters.
pub const MAX_CONTACT_CHARS: usize = 200;

/// A person as the directory shows them. Every text field came from the
/// user or from staff: show it through the app's safe-text path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their user id.
    pub user_id: String,
    /// Their certified name.
    pub display_name: String,
    /// Leader or staff, as certified.
    pub role: Role,
    /// Their sector, if certified with a known code.
    pub sector: Option<Sector>,
    /// The sector's text as certified when it is not a known code (from a
    /// certificate of version 1, or a newer vocabulary); empty otherwise.
    pub sector_text: String,
    /// Their ITL1 region, if certified.
    pub region: Option<Region>,
    /// Certified job title; may be empty.
    pub job_title: String,
    /// Certified organisation; may be empty.
    pub organisation: String,
    /// Certified programme; may be empty.
    pub programme: String,
    /// Certified cohort; may be empty.
    pub cohort: String,
    /// What they wrote, if they did and this device holds the network key
    /// it is sealed with.
    pub profile: Option<WrittenProfile>,
    /// They wrote a profile this device cannot read yet: it waits for the
    /// network key, which comes with membership of the network channel.
    pub profile_sealed: bool,
    /// Staff suspended them (a signed revocation this device holds).
    pub suspended: bool,
    /// Why the relay's newest entry for them was refused (this shows the
    /// last good one), if it was.
    pub refused: Option<String>,
}

/// The part of a profile a user writes about themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WrittenProfile {
    /// The profile's version number; each change raises it.
    pub revision: u64,
    /// What they can help with: normalised topics.
    pub topics: Vec<String>,
    /// What they are working on.
    pub working_on: String,
    /// A short biography.
    pub bio: String,
    /// How they prefer to be contacted.
    pub contact: String,
    /// When they wrote it, ms since the Unix epoch.
    pub written_at_ms: u64,
}

impl Person {
    /// Someone this device knows only as a group member (their name from
    /// their certificate in the group), not from the directory.
    pub(crate) fn unlisted(user_id: &str, display_name: &str) -> Person {
        Person {
            user_id: user_id.to_string(),
            display_name: display_name.to_string(),
            role: Role::Leader,
            sector: None,
            sector_text: String::new(),
            region: None,
            job_title: String::new(),
            organisation: String::new(),
            programme: String::new(),
            cohort: String::new(),
            profile: None,
            profile_sealed: false,
            suspended: false,
            refused: None,
        }
    }

    pub(crate) fn from_record(
        record: &DirectoryRecord,
        suspended: bool,
        keys: &NetworkKeyRing,
    ) -> Person {
        let sector = Sector::from_code(&record.sector);
        let profile = written_profile(record, keys);
        Person {
            user_id: record.user_id.clone(),
            display_name: record.display_name.clone(),
            role: Role::from_wire(record.role),
            sector,
            sector_text: if sector.is_none() {
                record.sector.clone()
            } else {
                String::new()
            },
            region: Region::from_code(&record.region),
            job_title: record.job_title.clone(),
            organisation: record.organisation.clone(),
            programme: record.programme.clone(),
            cohort: record.cohort.clone(),
            profile_sealed: record.profile_revision > 0 && profile.is_none(),
            profile,
            suspended,
            refused: (!record.refused.is_empty()).then(|| record.refused.clone()),
        }
    }
}

/// The profile text of `record` opened with the key it was sealed with,
/// if this device holds it and the text is within bounds.
fn written_profile(record: &DirectoryRecord, keys: &NetworkKeyRing) -> Option<WrittenProfile> {
    if record.profile_revision == 0 {
        return None;
    }
    let key = keys.find(&record.profile_key_id)?;
    let text = network_key::open(
        key,
        &record.user_id,
        record.profile_revision,
        &record.profile_sealed,
    )?;
    check_text(&text).ok()?;
    Some(WrittenProfile {
        revision: record.profile_revision,
        topics: text.topics,
        working_on: text.working_on,
        bio: text.bio,
        contact: text.contact,
        written_at_ms: record.profile_written_at_ms,
    })
}

/// What a user writes about themselves, before it is checked, normalised
/// and signed. `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileDraft {
    /// What they can help with (normalised: see [`normalise_topic`]).
    pub topics: Option<Vec<String>>,
    /// What they are working on.
    pub working_on: Option<String>,
    /// A short biography.
    pub bio: Option<String>,
    /// How they prefer to be contacted.
    pub contact: Option<String>,
}

impl ProfileDraft {
    /// The text `current` becomes with this draft applied; an error names
    /// the field that is out of bounds.
    pub(crate) fn apply(&self, current: Option<&WrittenProfile>) -> Result<ProfileText, String> {
        let base = current.cloned().unwrap_or_default();
        let topics = match &self.topics {
            Some(typed) => normalise_topics(typed),
            None => base.topics,
        };
        let pick = |new: &Option<String>, old: String| {
            new.as_deref().map_or(old, |t| t.trim().to_string())
        };
        let text = ProfileText {
            topics,
            working_on: pick(&self.working_on, base.working_on),
            bio: pick(&self.bio, base.bio),
            contact: pick(&self.contact, base.contact),
        };
        check_text(&text)?;
        Ok(text)
    }
}

/// `text` as `user_id`'s profile of `revision`, sealed under the network
/// key `key` (the identity key signs it next).
pub(crate) fn sealed_profile(
    user_id: &str,
    revision: u64,
    text: &ProfileText,
    key: &[u8],
    now_ms: u64,
) -> Result<Profile, String> {
    let sealed = network_key::seal(key, user_id, revision, text)
        .ok_or_else(|| "the profile could not be sealed".to_string())?;
    if sealed.len() > network_key::MAX_SEALED_PROFILE_BYTES {
        return Err("the profile is too long".into());
    }
    Ok(Profile {
        version: 1,
        user_id: user_id.to_string(),
        revision,
        written_at_ms: now_ms,
        key_id: key_id(key).to_vec(),
        sealed,
    })
}

/// A topic as it is kept and compared: lower case, trimmed, inner runs of
/// spaces as one. `None` if nothing is left.
pub fn normalise_topic(topic: &str) -> Option<String> {
    let folded = topic
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!folded.is_empty()).then_some(folded)
}

fn normalise_topics(typed: &[String]) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for topic in typed.iter().filter_map(|t| normalise_topic(t)) {
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    topics
}

/// Checks a profile text's bounds and characters (what a client refuses
/// to sign, and refuses to show from another).
pub(crate) fn check_text(profile: &ProfileText) -> Result<(), String> {
    if profile.topics.len() > MAX_TOPICS {
        return Err(format!("at most {MAX_TOPICS} topics"));
    }
    for topic in &profile.topics {
        if normalise_topic(topic).as_deref() != Some(topic.as_str()) {
            return Err("a topic is not normalised".into());
        }
        if topic.chars().count() > MAX_TOPIC_CHARS {
            return Err(format!(
                "a topic is longer than {MAX_TOPIC_CHARS} characters"
            ));
        }
    }
    let mut distinct = profile.topics.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != profile.topics.len() {
        return Err("a topic is listed twice".into());
    }
    for (field, text, max) in [
        ("working on", &profile.working_on, MAX_WORKING_ON_CHARS),
        ("bio", &profile.bio, MAX_BIO_CHARS),
        ("contact", &profile.contact, MAX_CONTACT_CHARS),
    ] {
        if text.chars().count() > max {
            return Err(format!("the {field} is longer than {max} characters"));
        }
    }
    let all_text =
        profile
            .topics
            .iter()
            .chain([&profile.working_on, &profile.bio, &profile.contact]);
    for text in all_text {
        // Line breaks are allowed in the longer texts; nothing else hidden.
        if text
            .chars()
            .any(|c| c != '\n' && convene_proto::text::is_hidden(c))
        {
            return Err("a control, direction or invisible character".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_normalised_and_distinct() {
        let draft = ProfileDraft {
            topics: Some(vec![
                "  Cyber   Skills ".into(),
                "cyber skills".into(),
                "Workforce".into(),
                " ".into(),
            ]),
            ..Default::default()
        };
        let profile = draft.apply(None).unwrap();
        assert_eq!(profile.topics, ["cyber skills", "workforce"]);
    }

    #[test]
    fn a_draft_keeps_what_it_does_not_change() {
        let current = WrittenProfile {
            revision: 4,
            topics: vec!["estates".into()],
            bio: "Fire chief".into(),
            ..Default::default()
        };
        let draft = ProfileDraft {
            working_on: Some("Keeping stations open".into()),
            ..Default::default()
        };
        let profile = draft.apply(Some(&current)).unwrap();
        assert_eq!(profile.topics, ["estates"]);
        assert_eq!(profile.bio, "Fire chief");
        assert_eq!(profile.working_on, "Keeping stations open");
    }

    #[test]
    fn out_of_bounds_profiles_are_refused_with_the_field() {
        let long = ProfileDraft {
            bio: Some("x".repeat(MAX_BIO_CHARS + 1)),
            ..Default::default()
        };
        assert!(long.apply(None).unwrap_err().contains("bio"));
        let many = ProfileDraft {
            topics: Some((0..=MAX_TOPICS).map(|i| format!("t{i}")).collect()),
            ..Default::default()
        };
        assert!(many.apply(None).is_err());
        let hidden = ProfileDraft {
            contact: Some("call me\u{202e}".into()),
            ..Default::default()
        };
        assert!(hidden.apply(None).is_err());
    }
}
