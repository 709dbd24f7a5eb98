//! Searching a directory of the network's full size (1,200 profiles), as
//! `convene people` does on every call, next to a baseline in the same run:
//! a plain case-insensitive substring scan over the same fields, which is
//! what the search costs beyond reading every entry once (it adds accent
//! folding, typo tolerance and ranking). Prints the latency of each query
//! (p50 and p99 over many runs) and building the index.
//!
//! ```sh
//! cargo bench -p convene-client-core --bench directory
//! ```

use std::time::{Duration, Instant};

use convene_client::directory::{search, PeopleQuery, Person, SearchIndex, WrittenProfile};
use convene_client::Role;
use convene_proto::vocabulary::{Region, Sector};

const PEOPLE: usize = 1_200;

const FIRST: [&str; 20] = [
    "Ana", "Ben", "Cara", "Dev", "Eve", "Fin", "Gil", "Hal", "Ivy", "Jon", "Kim", "Lee", "Mo",
    "Nia", "Omar", "Pat", "Quinn", "Rhys", "Sofia", "Zoë",
];
const LAST: [&str; 20] = [
    "Okafor",
    "Hale",
    "Lewis",
    "Patel",
    "Brown",
    "Campbell",
    "Jones",
    "Reid",
    "Chen",
    "Wood",
    "Evans",
    "Scott",
    "Farah",
    "Ní Bhriain",
    "Shah",
    "Murphy",
    "Davies",
    "Owen",
    "Silva",
    "Kerr",
];
const TOPICS: [&str; 16] = [
    "cyber skills",
    "workforce",
    "estates",
    "knife crime",
    "pandemic",
    "blood supply",
    "community safety",
    "housing",
    "digital",
    "finance",
    "procurement",
    "climate",
    "mental health",
    "recruitment",
    "partnerships",
    "inspection",
];
const ORGS: [&str; 8] = [
    "Fire and Rescue Service",
    "Police",
    "NHS Trust",
    "College",
    "County Council",
    "Health Board",
    "Ministry",
    "Housing Association",
];

fn person(n: usize) -> Person {
    let sector = Sector::ALL[n % Sector::ALL.len()];
    let region = Region::ALL[(n / 3) % Region::ALL.len()];
    let topics = vec![
        TOPICS[n % TOPICS.len()].to_string(),
        TOPICS[(n * 7 + 3) % TOPICS.len()].to_string(),
    ];
    Person {
        user_id: format!("user{n}"),
        display_name: format!("{} {}", FIRST[n % 20], LAST[(n / 20) % 20]),
        role: Role::Leader,
        sector: Some(sector),
        sector_text: String::new(),
        region: Some(region),
        job_title: "Chief Executive".into(),
        organisation: format!("{} {}", region.name(), ORGS[n % ORGS.len()]),
        programme: format!("CEO programme {}", 2020 + n % 7),
        cohort: format!("cohort {}", n % 3 + 1),
        profile: Some(WrittenProfile {
            revision: 1,
            topics,
            working_on: format!("work item {n} on {}", TOPICS[(n * 5) % TOPICS.len()]),
            bio: "Twenty years in public service, most of them in operations.".into(),
            contact: "here".into(),
            written_at_ms: 0,
        }),
        profile_sealed: false,
        suspended: false,
        refused: None,
    }
}

/// The baseline: every person whose fields contain every query word, as a
/// lowercase substring, in directory order.
fn substring_scan<'a>(people: &'a [Person], text: &str) -> Vec<&'a Person> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    people
        .iter()
        .filter(|p| {
            let mut fields = format!(
                "{} {} {} {}",
                p.display_name, p.user_id, p.organisation, p.job_title
            );
            if let Some(profile) = &p.profile {
                fields.push(' ');
                fields.push_str(&profile.topics.join(" "));
                fields.push(' ');
                fields.push_str(&profile.working_on);
                fields.push(' ');
                fields.push_str(&profile.bio);
            }
            let fields = fields.to_lowercase();
            words.iter().all(|w| fields.contains(w.as_str()))
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn timed(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        found = std::hint::black_box(f());
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), found)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 50 } else { 500 };
    let people: Vec<Person> = (0..PEOPLE).map(person).collect();
    let (build, _, _) = timed(if quick { 5 } else { 30 }, || {
        SearchIndex::new(people.clone()).len()
    });
    let index = SearchIndex::new(people.clone());
    println!(
        "Directory of {PEOPLE} profiles; index built in {} us (p50).",
        us(build)
    );
    println!();
    println!(
        "| query | results | search p50 / p99 (us) | substring scan p50 / p99 (us) | ratio (p50) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let queries: [(&str, PeopleQuery); 5] = [
        ("a name", text("Sofia Silva")),
        ("a misspelt name", text("Sofai Silva")),
        ("a topic, free text", text("cyber skills")),
        ("an organisation word", text("college")),
        (
            "sector and region filters, no text",
            PeopleQuery {
                sector: Some(Sector::FireAndRescue),
                region: Some(Region::NorthEast),
                ..Default::default()
            },
        ),
    ];
    for (name, query) in &queries {
        let (p50, p99, found) = timed(runs, || search(&index, query).len());
        let (b50, b99, _) = timed(runs, || substring_scan(&people, &query.text).len());
        println!(
            "| {name} | {found} | {} / {} | {} / {} | {:.1}x |",
            us(p50),
            us(p99),
            us(b50),
            us(b99),
            p50.as_secs_f64() / b50.as_secs_f64().max(1e-12)
        );
    }
}

fn text(text: &str) -> PeopleQuery {
    PeopleQuery {
        text: text.into(),
        ..Default::default()
    }
}
