//! The shapes of the directory: a person as `people` lists them and
//! `people show` / `profile show` show them.

use convene_client::directory::Person;
use serde::{Deserialize, Serialize};

/// A person of the directory. Sector and region come as their codes and
/// their names (docs/DIRECTORY.md); empty where not certified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonShape {
    pub user_id: String,
    pub display_name: String,
    /// `leader` or `staff`.
    pub role: String,
    pub job_title: String,
    pub organisation: String,
    /// The sector's code, e.g. `fire-rescue`.
    pub sector: String,
    /// The sector's name, e.g. "Fire and rescue".
    pub sector_name: String,
    /// The ITL1 region's ONS code, e.g. `TLI`.
    pub region: String,
    /// The region's name, e.g. "London".
    pub region_name: String,
    pub programme: String,
    pub cohort: String,
    /// What they wrote; `null` if they have not.
    pub profile: Option<WrittenShape>,
    /// Staff suspended them.
    pub suspended: bool,
    /// Why the relay's newest entry for them was refused (the last good one
    /// is shown), or `null`.
    pub refused: Option<String>,
}

/// The part of a profile its user writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenShape {
    /// Its version number.
    pub version: u64,
    pub topics: Vec<String>,
    pub working_on: String,
    pub bio: String,
    pub contact: String,
    /// When it was written, ms since the Unix epoch.
    pub written_at_ms: u64,
}

impl From<&Person> for PersonShape {
    fn from(person: &Person) -> PersonShape {
        PersonShape {
            user_id: person.user_id.clone(),
            display_name: person.display_name.clone(),
            role: person.role.as_str().to_string(),
            job_title: person.job_title.clone(),
            organisation: person.organisation.clone(),
            sector: person
                .sector
                .map_or_else(|| person.sector_text.clone(), |s| s.code().to_string()),
            sector_name: person
                .sector
                .map_or_else(|| person.sector_text.clone(), |s| s.name().to_string()),
            region: person
                .region
                .map(|r| r.code().to_string())
                .unwrap_or_default(),
            region_name: person
                .region
                .map(|r| r.name().to_string())
                .unwrap_or_default(),
            programme: person.programme.clone(),
            cohort: person.cohort.clone(),
            profile: person.profile.as_ref().map(|p| WrittenShape {
                version: p.revision,
                topics: p.topics.clone(),
                working_on: p.working_on.clone(),
                bio: p.bio.clone(),
                contact: p.contact.clone(),
                written_at_ms: p.written_at_ms,
            }),
            suspended: person.suspended,
            refused: person.refused.clone(),
        }
    }
}

/// `profile show` and `profile set`: the user's own entry, and the topics
/// others list most, as suggestions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileShape {
    /// `null` until this device has synced its own entry.
    pub person: Option<PersonShape>,
    /// The most listed topics, most first, with how many list each.
    pub suggested_topics: Vec<TopicCount>,
}

/// A topic and how many people list it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicCount {
    pub topic: String,
    pub people: usize,
}

/// One of the reader's cohorts (`cohort`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CohortShape {
    /// Its group's id, or `null` for the cohort staff certified the reader
    /// in when no group of it is on this device.
    pub group: Option<String>,
    /// The group's name, or "programme, cohort".
    pub name: String,
    /// Everyone in it but the reader, by name.
    pub people: Vec<PersonShape>,
}

impl From<&convene_client::Cohort> for CohortShape {
    fn from(cohort: &convene_client::Cohort) -> CohortShape {
        CohortShape {
            group: cohort.group.as_ref().map(ToString::to_string),
            name: cohort.name.clone(),
            people: cohort.people.iter().map(PersonShape::from).collect(),
        }
    }
}
