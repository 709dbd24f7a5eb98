//! Searching the directory: free text over names, organisations, titles,
//! topics and what people wrote, tolerant of accents, case and typos
//! (Damerau-Levenshtein distance from `strsim`), filtered by sector,
//! region, topic, programme and cohort, ranked and stable.
//!
//! Every word of the query must match some word of a person (a whole
//! word, the start of one, or one within a small edit distance); a person's
//! score adds, for each query word, the best match's quality times the
//! weight of the field it matched in (a name counts most, a bio least).
//! Ties are broken by name, then user id, so the same query over the same
//! directory always lists the same people in the same order.

use std::collections::HashMap;

use convene_proto::vocabulary::{Region, Sector};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::{normalise_topic, Person};

/// What to look for. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeopleQuery {
    /// Free text: names, user ids, organisations, titles, topics, what
    /// people work on, bios.
    pub text: String,
    /// Only people of this sector.
    pub sector: Option<Sector>,
    /// Only people of this region.
    pub region: Option<Region>,
    /// Only people who list a topic with every word of this one ("cyber"
    /// finds "cyber skills"; accents, case and spacing ignored).
    pub topic: Option<String>,
    /// Only people whose programme has every word of this one ("CEO
    /// programme" finds "CEO programme 2026"; accents, case and spacing
    /// ignored).
    pub programme: Option<String>,
    /// Only people whose cohort has every word of this one ("2" finds
    /// "cohort 2").
    pub cohort: Option<String>,
    /// Also list suspended people (shown as such).
    pub include_suspended: bool,
}

/// How much a match in each field counts.
#[derive(Debug, Clone, Copy)]
enum Field {
    Name,
    UserId,
    Organisation,
    Title,
    Topic,
    Vocabulary,
    Programme,
    WorkingOn,
    Bio,
}

impl Field {
    fn weight(self) -> u8 {
        match self {
            Field::Name => 10,
            Field::UserId => 9,
            Field::Organisation => 6,
            Field::Title | Field::Topic => 5,
            Field::Vocabulary => 4,
            Field::Programme => 3,
            Field::WorkingOn => 2,
            Field::Bio => 1,
        }
    }
}

/// The directory prepared for searching: every person's words, folded,
/// with the people and fields each word appears in.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    people: Vec<Person>,
    /// Folded word -> (person, field weight), best weight per person.
    words: HashMap<String, Vec<(u32, u8)>>,
    /// Folded name of each person, for ordering ties.
    sort_names: Vec<String>,
}

impl SearchIndex {
    /// Indexes `people`.
    pub fn new(people: Vec<Person>) -> SearchIndex {
        let mut words: HashMap<String, Vec<(u32, u8)>> = HashMap::new();
        let mut sort_names = Vec::with_capacity(people.len());
        for (index, person) in people.iter().enumerate() {
            let index = index as u32;
            let mut best: HashMap<String, u8> = HashMap::new();
            let mut add = |text: &str, field: Field| {
                for word in fold_words(text) {
                    let weight = best.entry(word).or_insert(0);
                    *weight = (*weight).max(field.weight());
                }
            };
            add(&person.display_name, Field::Name);
            add(&person.user_id, Field::UserId);
            add(&person.organisation, Field::Organisation);
            add(&person.job_title, Field::Title);
            add(&person.programme, Field::Programme);
            add(&person.cohort, Field::Programme);
            add(&person.sector_text, Field::Vocabulary);
            if let Some(sector) = person.sector {
                add(sector.name(), Field::Vocabulary);
            }
            if let Some(region) = person.region {
                add(region.name(), Field::Vocabulary);
            }
            if let Some(profile) = &person.profile {
                for topic in &profile.topics {
                    add(topic, Field::Topic);
                }
                add(&profile.working_on, Field::WorkingOn);
                add(&profile.bio, Field::Bio);
            }
            for (word, weight) in best {
                words.entry(word).or_default().push((index, weight));
            }
            sort_names.push(fold_words(&person.display_name).join(" "));
        }
        SearchIndex {
            people,
            words,
            sort_names,
        }
    }

    /// How many people are indexed.
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// Whether no-one is indexed.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// The person with this user id.
    pub fn person(&self, user_id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.user_id == user_id)
    }

    /// The topics people list, most listed first (ties alphabetically),
    /// with how many list each: suggestions for writing a profile.
    pub fn topic_counts(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for person in self.people.iter().filter(|p| !p.suspended) {
            for topic in person.profile.iter().flat_map(|p| &p.topics) {
                *counts.entry(topic.as_str()).or_default() += 1;
            }
        }
        let mut counts: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    }
}

/// The people matching `query`, best first.
pub fn search<'a>(index: &'a SearchIndex, query: &PeopleQuery) -> Vec<&'a Person> {
    let terms = fold_words(&query.text);
    let mut scores: Vec<Option<u32>> = index
        .people
        .iter()
        .map(|person| passes_filters(person, query).then_some(0))
        .collect();
    for term in &terms {
        let mut best = vec![0u32; index.people.len()];
        for (word, postings) in &index.words {
            let quality = match_quality(term, word);
            if quality == 0 {
                continue;
            }
            for &(person, weight) in postings {
                let slot = &mut best[person as usize];
                *slot = (*slot).max(quality * u32::from(weight));
            }
        }
        for (score, best) in scores.iter_mut().zip(best) {
            *score = match (*score, best) {
                (Some(total), found) if found > 0 => Some(total + found),
                _ => None,
            };
        }
    }
    let mut found: Vec<(u32, usize)> = scores
        .into_iter()
        .enumerate()
        .filter_map(|(i, score)| score.map(|s| (s, i)))
        .collect();
    found.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| index.sort_names[a.1].cmp(&index.sort_names[b.1]))
            .then_with(|| index.people[a.1].user_id.cmp(&index.people[b.1].user_id))
    });
    found.into_iter().map(|(_, i)| &index.people[i]).collect()
}

/// Whether every word of `wanted` is a word of `have` (accents, case and
/// punctuation ignored): "CEO programme" is of "CEO programme 2026", "2"
/// of "cohort 2", "cyber" of "cyber skills".
fn has_words(wanted: &str, have: &str) -> bool {
    let have = fold_words(have);
    let wanted = fold_words(wanted);
    !wanted.is_empty() && wanted.iter().all(|w| have.contains(w))
}

fn passes_filters(person: &Person, query: &PeopleQuery) -> bool {
    let same =
        |wanted: &Option<String>, have: &str| wanted.as_deref().is_none_or(|w| has_words(w, have));
    (query.include_suspended || !person.suspended)
        && query.sector.is_none_or(|s| person.sector == Some(s))
        && query.region.is_none_or(|r| person.region == Some(r))
        && same(&query.programme, &person.programme)
        && same(&query.cohort, &person.cohort)
        && query
            .topic
            .as_deref()
            .and_then(normalise_topic)
            .is_none_or(|topic| {
                person
                    .profile
                    .as_ref()
                    .is_some_and(|p| p.topics.iter().any(|t| has_words(&topic, t)))
            })
}

/// How well query word `term` matches a person's `word`: 10 for the same
/// word, 8 for its start (two letters or more), 6 or 4 for one or two
/// edits (words of 4 or 8 letters and more), 0 for no match.
fn match_quality(term: &str, word: &str) -> u32 {
    if term == word {
        return 10;
    }
    let term_len = term.chars().count();
    if term_len >= 2 && word.starts_with(term) {
        return 8;
    }
    let allowed = match term_len {
        0..=3 => return 0,
        4..=7 => 1,
        _ => 2,
    };
    let word_len = word.chars().count();
    if word_len.abs_diff(term_len) > allowed {
        return 0;
    }
    match strsim::damerau_levenshtein(term, word) {
        1 => 6,
        2 if allowed >= 2 => 4,
        _ => 0,
    }
}

/// The words of `text` as they are compared: decomposed, accents dropped,
/// lower case, split at anything not a letter or digit.
pub(crate) fn fold_words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::WrittenProfile;
    use crate::types::Role;

    fn person(user_id: &str, name: &str, org: &str, topics: &[&str]) -> Person {
        Person {
            user_id: user_id.into(),
            display_name: name.into(),
            role: Role::Leader,
            sector: Some(Sector::Police),
            sector_text: String::new(),
            region: Some(Region::London),
            job_title: "Chief executive".into(),
            organisation: org.into(),
            programme: "CEO programme 2026".into(),
            cohort: "cohort 2".into(),
            profile: Some(WrittenProfile {
                revision: 1,
                topics: topics.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            }),
            profile_sealed: false,
            suspended: false,
            refused: None,
        }
    }

    fn ids(index: &SearchIndex, query: &PeopleQuery) -> Vec<String> {
        search(index, query)
            .into_iter()
            .map(|p| p.user_id.clone())
            .collect()
    }

    fn text(text: &str) -> PeopleQuery {
        PeopleQuery {
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn accents_case_and_one_typo_still_find_the_person() {
        let index = SearchIndex::new(vec![
            person("zoe", "Zoë Ó Briain", "Met Police", &[]),
            person("ana", "Ana Okafor", "NHS Blood", &[]),
        ]);
        assert_eq!(ids(&index, &text("zoe o briain")), ["zoe"]);
        assert_eq!(ids(&index, &text("Okafro")), ["ana"]);
        assert_eq!(ids(&index, &text("oka")), ["ana"]);
        assert!(ids(&index, &text("xyz")).is_empty());
    }

    #[test]
    fn every_word_must_match_and_names_rank_above_bios() {
        let mut bio = person("ben", "Ben Hale", "Fire", &[]);
        bio.profile.as_mut().unwrap().bio = "I worked with cyber teams".into();
        let index = SearchIndex::new(vec![
            bio,
            person("cyd", "Cyd Cyber", "Army", &[]),
            person("dee", "Dee Mann", "College", &["cyber skills"]),
        ]);
        assert_eq!(ids(&index, &text("cyber")), ["cyd", "dee", "ben"]);
        assert_eq!(ids(&index, &text("cyber college")), ["dee"]);
    }

    #[test]
    fn ties_are_ordered_by_name_then_user_id() {
        let index = SearchIndex::new(vec![
            person("b2", "Sam Smith", "X", &[]),
            person("a1", "Ann Smith", "X", &[]),
            person("b1", "Sam Smith", "X", &[]),
        ]);
        assert_eq!(ids(&index, &text("smith")), ["a1", "b1", "b2"]);
        assert_eq!(ids(&index, &text("")), ["a1", "b1", "b2"]);
    }

    #[test]
    fn filters_and_suspension() {
        let mut fire = person("f", "Fay", "Fire", &["estates"]);
        fire.sector = Some(Sector::FireAndRescue);
        fire.region = Some(Region::Wales);
        let mut gone = person("g", "Gus", "Fire", &["estates"]);
        gone.suspended = true;
        let index = SearchIndex::new(vec![fire, gone, person("p", "Pat", "Police", &[])]);
        let by_sector = PeopleQuery {
            sector: Some(Sector::FireAndRescue),
            ..Default::default()
        };
        assert_eq!(ids(&index, &by_sector), ["f"]);
        let by_topic = PeopleQuery {
            topic: Some(" Estates ".into()),
            ..Default::default()
        };
        assert_eq!(ids(&index, &by_topic), ["f"]);
        let with_suspended = PeopleQuery {
            include_suspended: true,
            ..by_topic
        };
        assert_eq!(ids(&index, &with_suspended), ["f", "g"]);
        let by_region = PeopleQuery {
            region: Some(Region::London),
            cohort: Some("Cohort  2".into()),
            ..Default::default()
        };
        assert_eq!(ids(&index, &by_region), ["p"]);
        assert_eq!(index.topic_counts(), [("estates".to_string(), 1)]);
    }

    #[test]
    fn a_filter_finds_people_by_the_words_it_names() {
        let mut ana = person("ana", "Ana Okafor", "NHS", &["cyber skills"]);
        ana.cohort = "cohort 12".into();
        let ben = person("ben", "Ben Hale", "Fire", &["cybersecurity"]);
        let index = SearchIndex::new(vec![ana, ben]);
        let ids = |query: PeopleQuery| -> Vec<String> {
            search(&index, &query)
                .iter()
                .map(|p| p.user_id.clone())
                .collect()
        };
        let by_topic = PeopleQuery {
            topic: Some("Cyber".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_topic), ["ana"]);
        let by_programme = PeopleQuery {
            programme: Some("ceo Programme".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_programme), ["ana", "ben"]);
        let by_cohort = PeopleQuery {
            cohort: Some("2".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_cohort), ["ben"]);
    }
}
