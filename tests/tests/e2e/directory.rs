//! The directory through the real relay binary: staff certify leaders
//! with their profile, leaders write theirs, and any member finds the
//! right peer by sector, region, topic, a misspelt name or free text,
//! with the same people in the same order every time.

use anyhow::{ensure, Context, Result};
use convene_client::directory::{PeopleQuery, ProfileDraft};
use convene_client::trust::{CertifiedFields, UserDetails};
use convene_client::{ClientError, Role};
use convene_proto::vocabulary::{Region, Sector};
use convene_tests::app::{staff_app, wait_until, App};
use convene_tests::RelayProcess;

/// One leader of the test network: id, name, title, organisation, sector,
/// region, topics, what they work on.
type Leader = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Sector,
    Region,
    &'static [&'static str],
    &'static str,
);

/// Twelve leaders across four sectors and four regions.
const NETWORK: [Leader; 12] = [
    (
        "ana",
        "Ana Okafor",
        "Chief Executive",
        "NHS Blood and Transplant",
        Sector::NhsAndHealth,
        Region::London,
        &["blood supply", "estates"],
        "finding venues for blood donation",
    ),
    (
        "ben",
        "Ben Hale",
        "Chief Fire Officer",
        "Tyne and Wear Fire and Rescue",
        Sector::FireAndRescue,
        Region::NorthEast,
        &["estates", "community safety"],
        "opening fire stations to partners",
    ),
    (
        "cat",
        "Cat Morgan",
        "Chief Constable",
        "South Wales Police",
        Sector::Police,
        Region::Wales,
        &["knife crime", "cyber"],
        "",
    ),
    (
        "dev",
        "Dev Patel",
        "Principal",
        "Glasgow Kelvin College",
        Sector::Education,
        Region::Scotland,
        &["cyber skills", "workforce"],
        "a cyber course with no-one to teach it",
    ),
    (
        "eve",
        "Eve Brown",
        "Commissioner",
        "Metropolitan Police",
        Sector::Police,
        Region::London,
        &["knife crime"],
        "",
    ),
    (
        "fin",
        "Fin Campbell",
        "Chief Officer",
        "Scottish Fire and Rescue",
        Sector::FireAndRescue,
        Region::Scotland,
        &["estates"],
        "",
    ),
    (
        "gil",
        "Gil Jones",
        "Chief Executive",
        "Cardiff and Vale Health Board",
        Sector::NhsAndHealth,
        Region::Wales,
        &["workforce"],
        "",
    ),
    (
        "hal",
        "Hal Reid",
        "Principal",
        "Newcastle College",
        Sector::Education,
        Region::NorthEast,
        &["cyber skills"],
        "",
    ),
    (
        "ivy",
        "Ivy Chen",
        "Chief Executive",
        "Barts Health",
        Sector::NhsAndHealth,
        Region::London,
        &["pandemic"],
        "",
    ),
    (
        "jon",
        "Jon Wood",
        "Chief Constable",
        "Northumbria Police",
        Sector::Police,
        Region::NorthEast,
        &["community safety"],
        "",
    ),
    (
        "kim",
        "Kim Evans",
        "Commissioner",
        "London Fire Brigade",
        Sector::FireAndRescue,
        Region::London,
        &["community safety"],
        "",
    ),
    (
        "lee",
        "Lee Scott",
        "Principal",
        "Coleg Caerdydd",
        Sector::Education,
        Region::Wales,
        &["workforce"],
        "",
    ),
];

/// Staff create the network channel and invite each leader with their
/// certified profile; each enrols, is added to the channel by staff's
/// device on its own, and writes their profile (sealed with the network
/// key the channel hands out).
pub async fn network(relay: &RelayProcess, staff: &App) -> Result<Vec<App>> {
    staff.client.create_network_channel("Network").await?;
    let mut apps = Vec::new();
    for &(id, name, title, organisation, sector, region, ..) in &NETWORK {
        let invite = staff
            .client
            .invite(&UserDetails {
                user_id: id.into(),
                display_name: name.into(),
                role: Role::Leader,
                sector: sector.code().into(),
                certified: CertifiedFields {
                    job_title: title.into(),
                    organisation: organisation.into(),
                    region: region.code().into(),
                    programme: "CEO programme 2026".into(),
                    cohort: "cohort 2".into(),
                },
            })
            .await?;
        let app = App::enrol(&relay.url, &invite.code, id).await?;
        app.client.wait_caught_up(convene_tests::PATIENCE).await?;
        apps.push(app);
    }
    for (app, &(.., topics, working_on)) in apps.iter().zip(&NETWORK) {
        let draft = ProfileDraft {
            topics: Some(topics.iter().map(|t| t.to_string()).collect()),
            working_on: Some(working_on.into()),
            ..Default::default()
        };
        write_profile(app, &draft).await?;
    }
    Ok(apps)
}

/// Writes `app`'s profile once it holds the network key (which comes with
/// the network channel, once staff's device has added it).
pub async fn write_profile(app: &App, draft: &ProfileDraft) -> Result<()> {
    wait_until(&format!("{} to write a profile", app.user), || async {
        match app.client.set_profile(draft).await {
            Ok(_) => Some(()),
            Err(ClientError::Forbidden(_)) => None,
            Err(err) => panic!("{}: {err}", app.user),
        }
    })
    .await
}

fn found(app: &App, query: &PeopleQuery) -> Result<Vec<String>> {
    Ok(app
        .client
        .people(query)?
        .into_iter()
        .map(|p| p.user_id)
        .collect())
}

fn text(text: &str) -> PeopleQuery {
    PeopleQuery {
        text: text.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_by_sector_region_topic_misspelt_name_and_free_text_find_exactly_the_right_people(
) -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let apps = network(&relay, &staff).await?;
    let reader = apps.last().context("twelve leaders")?;
    let synced = reader.client.sync_directory().await?;
    ensure!(synced.listed == 13, "{synced:?}");
    ensure!(synced.refused == 0, "{synced:?}");

    let cases: Vec<(PeopleQuery, &[&str])> = vec![
        (
            PeopleQuery {
                sector: Some(Sector::Police),
                ..Default::default()
            },
            &["cat", "eve", "jon"],
        ),
        (
            PeopleQuery {
                region: Some(Region::London),
                ..Default::default()
            },
            &["ana", "eve", "ivy", "kim"],
        ),
        (
            PeopleQuery {
                topic: Some("Estates".into()),
                ..Default::default()
            },
            &["ana", "ben", "fin"],
        ),
        (
            PeopleQuery {
                sector: Some(Sector::FireAndRescue),
                region: Some(Region::London),
                ..Default::default()
            },
            &["kim"],
        ),
        // A misspelt name.
        (text("Okafro"), &["ana"]),
        // Topics rank above what people work on; ties go by name.
        (text("cyber"), &["cat", "dev", "hal"]),
        (text("cyber college"), &["dev", "hal"]),
        // Organisation, title and sector all match "fire"; each person
        // counts once, at their best.
        (text("fire"), &["ben", "fin", "kim"]),
        (text("blood donation"), &["ana"]),
        (text("nobody like this"), &[]),
    ];
    for (query, expected) in &cases {
        let got = found(reader, query)?;
        ensure!(
            got == *expected,
            "{query:?}: {got:?}, expected {expected:?}"
        );
        // Stable: the same again.
        ensure!(found(reader, query)? == got, "{query:?} changed order");
    }

    let ana = reader.client.person("ana")?.context("ana is listed")?;
    ensure!(ana.job_title == "Chief Executive" && ana.cohort == "cohort 2");
    let profile = ana.profile.context("ana wrote a profile")?;
    ensure!(profile.topics == ["blood supply", "estates"] && profile.revision == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_reaches_others_and_a_suspended_leader_is_hidden() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let apps = network(&relay, &staff).await?;
    let (ana, reader) = (&apps[0], &apps[1]);
    write_profile(
        ana,
        &ProfileDraft {
            bio: Some("Twenty years in blood and transplant".into()),
            ..Default::default()
        },
    )
    .await?;
    reader.client.sync_directory().await?;
    let seen = reader.client.person("ana")?.context("ana")?;
    let profile = seen.profile.context("a profile")?;
    ensure!(profile.revision == 2, "{profile:?}");
    ensure!(
        profile.topics == ["blood supply", "estates"],
        "kept: {profile:?}"
    );
    ensure!(profile.bio == "Twenty years in blood and transplant");

    staff.client.suspend_user("jon").await?;
    let police = PeopleQuery {
        sector: Some(Sector::Police),
        ..Default::default()
    };
    wait_until("jon to be hidden", || async {
        (found(reader, &police).ok()? == ["cat", "eve"]).then_some(())
    })
    .await?;
    let all = PeopleQuery {
        include_suspended: true,
        ..police
    };
    ensure!(found(reader, &all)? == ["cat", "eve", "jon"]);
    ensure!(reader.client.person("jon")?.context("jon")?.suspended);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_sees_their_cohort_with_each_members_profile() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let apps = network(&relay, &staff).await?;
    let members: Vec<String> = ["ana", "ben", "dev"].map(String::from).to_vec();
    let group = staff.client.create_group("Cohort 2", &members).await?;
    let ana = &apps[0];
    ana.wait_group(&group.id, |g| g.members.len() == 4).await?;
    ana.client.sync_directory().await?;

    let cohorts = ana.client.cohorts()?;
    ensure!(cohorts.len() == 2, "{cohorts:?}");
    // The group: its other members, by name, with what they wrote.
    ensure!(cohorts[0].group.as_ref() == Some(&group.id));
    let people: Vec<&str> = cohorts[0]
        .people
        .iter()
        .map(|p| p.user_id.as_str())
        .collect();
    ensure!(people == ["ben", "dev", "staff"], "{people:?}");
    let ben = &cohorts[0].people[0];
    ensure!(ben.job_title == "Chief Fire Officer");
    ensure!(ben
        .profile
        .as_ref()
        .is_some_and(|p| p.working_on == "opening fire stations to partners"));
    // The cohort staff certified: all eleven others of "cohort 2".
    ensure!(cohorts[1].group.is_none());
    ensure!(cohorts[1].name == "CEO programme 2026, cohort 2");
    ensure!(
        cohorts[1].people.len() == 11,
        "{:?}",
        cohorts[1].people.len()
    );
    ensure!(cohorts[1].people.iter().all(|p| p.user_id != "ana"));
    Ok(())
}

/// Staff change what they certify about a leader (a new post, a move):
/// everyone's directory shows it from their next sync, the leader's own
/// device takes the new certificate up on its own, and nobody else can
/// re-certify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_re_certify_a_leader_and_everyone_sees_the_change() -> Result<()> {
    use convene_client::trust::CertifiedChange;
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["ana".to_string(), "ben".to_string()];
    let leaders = convene_tests::app::leader_apps(&relay, &staff, &names).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().context("two leaders")?;
    let valid_until = ana.client.certificate_valid_until_ms()?;

    let moved = CertifiedChange {
        job_title: Some("Chief Executive".into()),
        organisation: Some("Northshire County Council".into()),
        region: Some(Region::NorthWest.code().into()),
        ..Default::default()
    };
    let refused = ben.client.recertify("ana", &moved).await;
    ensure!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let bad = CertifiedChange {
        region: Some("atlantis".into()),
        ..Default::default()
    };
    let refused = staff.client.recertify("ana", &bad).await;
    ensure!(
        matches!(&refused, Err(ClientError::InvalidArgument(why)) if why.contains("region")),
        "{refused:?}"
    );

    let shown = staff.client.recertify("ana", &moved).await?;
    ensure!(shown.job_title == "Chief Executive", "{shown:?}");
    ben.client.sync_directory().await?;
    let seen = ben.client.person("ana")?.context("ana")?;
    ensure!(
        seen.job_title == "Chief Executive"
            && seen.organisation == "Northshire County Council"
            && seen.region == Some(Region::NorthWest)
            && seen.display_name == shown.display_name,
        "{seen:?}"
    );

    // Ana's device takes it up at its next certificate check.
    let ana = ana
        .reopen_with_lifecycle(convene_client::KeyLifecycle {
            certificate_check: std::time::Duration::from_millis(300),
            ..Default::default()
        })
        .await?;
    wait_until("ana to take up the new certificate", || async {
        ana.client
            .certificate_valid_until_ms()
            .ok()
            .filter(|until| *until > valid_until)
    })
    .await?;
    Ok(())
}
