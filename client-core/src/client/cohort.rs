//! A leader's cohort: the people they joined the programme with, each with
//! their profile, so that someone joining a cohort of 33 sees who they are.
//! Read from this device's groups and its verified directory; nothing is
//! asked of the relay.

use super::Client;
use crate::directory::{search, PeopleQuery, Person};
use crate::error::ClientError;
use crate::types::{GroupId, GroupKind};

/// One cohort of the reader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    /// The cohort group this device is in, or `None` for the cohort staff
    /// certified the reader in (programme and cohort) when no group of it
    /// is here.
    pub group: Option<GroupId>,
    /// The group's name, or "programme, cohort" as certified.
    pub name: String,
    /// Everyone in it but the reader, by name then user id: their
    /// directory entry, or only their certified name for a member the
    /// directory does not list yet.
    pub people: Vec<Person>,
}

impl Client {
    /// The reader's cohorts: each active cohort group this device is in,
    /// then, if staff certified a programme and cohort for the reader and
    /// no group is named the same, the people certified in the same one.
    pub fn cohorts(&self) -> Result<Vec<Cohort>, ClientError> {
        let index = self.directory()?;
        let own = self.user_id().to_string();
        let mut cohorts = Vec::new();
        for group in self.groups()? {
            if group.kind != GroupKind::Cohort || !group.active {
                continue;
            }
            let mut users: Vec<&str> = group
                .members
                .iter()
                .map(|m| m.user_id.as_str())
                .filter(|u| *u != own)
                .collect();
            users.sort();
            users.dedup();
            let people = users
                .into_iter()
                .map(|user| {
                    index.person(user).cloned().unwrap_or_else(|| {
                        let name = group.names.get(user).map_or("", String::as_str);
                        Person::unlisted(user, name)
                    })
                })
                .collect();
            cohorts.push(Cohort {
                group: Some(group.id.clone()),
                name: group.name.clone(),
                people: by_name(people),
            });
        }
        let Some(me) = index.person(&own) else {
            return Ok(cohorts);
        };
        if me.programme.is_empty() && me.cohort.is_empty() {
            return Ok(cohorts);
        }
        let name = [me.programme.as_str(), me.cohort.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        if cohorts.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
            return Ok(cohorts);
        }
        let query = PeopleQuery {
            programme: (!me.programme.is_empty()).then(|| me.programme.clone()),
            cohort: (!me.cohort.is_empty()).then(|| me.cohort.clone()),
            ..Default::default()
        };
        let people = search(&index, &query)
            .into_iter()
            .filter(|p| p.user_id != own)
            .cloned()
            .collect();
        cohorts.push(Cohort {
            group: None,
            name,
            people: by_name(people),
        });
        Ok(cohorts)
    }
}

fn by_name(mut people: Vec<Person>) -> Vec<Person> {
    people.sort_by(|a, b| {
        a.display_name
            .to_lowercase()
            .cmp(&b.display_name.to_lowercase())
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    people
}
