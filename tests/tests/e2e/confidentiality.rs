//! Only ciphertext reaches the relay: after a conversation whose texts and
//! group name carry a unique marker, neither the marker nor any text is
//! anywhere in the relay's data directory, its logs or its output.

use std::path::Path;

use anyhow::Result;
use convene_tests::app::{leader_apps, staff_app, App};
use convene_tests::{InProcessRelay, RelayProcess};

/// Every file under `dir`, read as bytes.
fn files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files(&path)?);
        } else {
            found.push((path.display().to_string(), std::fs::read(&path)?));
        }
    }
    Ok(found)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_text_or_marker_reaches_the_relay_data_or_logs() -> Result<()> {
    let marker = format!("MARKER{}", convene_client::hex(&rand::random::<[u8; 8]>()));
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["ana".to_string(), "ben".to_string(), "cara".to_string()];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [ana, ben, cara] = <[App; 3]>::try_from(leaders).ok().expect("three leaders");

    let group = staff
        .client
        .create_group(&format!("Cohort {marker}"), &names)
        .await?;
    for app in [&ana, &ben, &cara] {
        app.wait_group(&group.id, |g| g.members.len() == 4).await?;
    }
    let mut texts = Vec::new();
    for (n, app) in [&ana, &ben, &cara, &ana, &staff].into_iter().enumerate() {
        let text = format!("confidential {n} {marker} from {}", app.user);
        app.client.send_text(&group.id, &text).await?;
        texts.push(text);
    }
    let direct = format!("a private word {marker} for ben");
    ana.client.send_direct("ben", &direct).await?;
    texts.push(direct);
    cara.wait_history(&group.id, 5).await?;
    let channel = ben.client.open_direct("ana").await?;
    ben.wait_history(&channel, 1).await?;

    // What a leader writes in their profile is sealed with the network key,
    // which the relay never holds; so is a staff announcement.
    let network = staff.client.create_network_channel("Network").await?;
    let bio = format!("a bio {marker}");
    let draft = convene_client::directory::ProfileDraft {
        topics: Some(vec![format!("topic{marker}")]),
        working_on: Some(format!("working on {marker}")),
        bio: Some(bio.clone()),
        contact: Some(format!("contact {marker}")),
    };
    super::directory::write_profile(&ana, &draft).await?;
    texts.push(bio);
    let announcement = format!("an announcement {marker}");
    staff.client.send_text(&network.id, &announcement).await?;
    ben.hears(&network.id, &staff.user, &announcement).await?;
    texts.push(announcement);
    ben.client.sync_directory().await?;
    let seen = ben.client.person("ana")?.and_then(|p| p.profile);
    assert!(
        seen.is_some_and(|p| p.bio.contains(&marker)),
        "ben reads ana's profile"
    );

    // A help request, an offer and a request asked through staff travel
    // only inside MLS.
    let request = convene_client::AskDraft {
        title: format!("a request {marker}"),
        text: format!("what is asked {marker}"),
        topics: vec![format!("need{marker}")],
        ..Default::default()
    };
    let asked = ana.client.ask(request).await?;
    let cara_sees = || async {
        cara.client
            .request(&asked.id)
            .ok()
            .flatten()
            .filter(|r| r.posted)
    };
    convene_tests::app::wait_until("cara to see the request", cara_sees).await?;
    let offer = format!("an offer {marker}");
    cara.client.offer(&asked.id, &offer).await?;
    texts.push(offer);
    let through_staff = convene_client::AskDraft {
        title: format!("asked through staff {marker}"),
        through_staff: Some(staff.user.clone()),
        ..Default::default()
    };
    let anonymous = ben.client.ask(through_staff).await?;
    convene_tests::app::wait_until("cara to see the request asked through staff", || async {
        cara.client
            .request(&anonymous.id)
            .ok()
            .flatten()
            .filter(|r| r.posted)
    })
    .await?;
    convene_tests::app::wait_until("ana to hold the offer", || async {
        ana.client
            .request(&asked.id)
            .ok()
            .flatten()
            .filter(|r| !r.offers.is_empty())
    })
    .await?;

    // Stop everything, so that the relay's files are complete on disk.
    for app in [staff, ana, ben, cara] {
        app.stop().await;
    }
    let mut relay = relay;
    relay.terminate(std::time::Duration::from_secs(10))?;

    let mut places = files(&relay.data_dir())?;
    places.push(("relay log".into(), relay.logs().into_bytes()));
    places.push(("relay output".into(), relay.output().into_bytes()));
    assert!(places.iter().map(|(_, b)| b.len()).sum::<usize>() > 0);
    for (place, bytes) in &places {
        assert!(
            !contains(bytes, marker.as_bytes()),
            "the marker is in {place}"
        );
        for text in &texts {
            assert!(!contains(bytes, text.as_bytes()), "a text is in {place}");
        }
    }

    // The search itself works: a file holding the marker is found.
    let control = tempfile::tempdir()?;
    std::fs::write(control.path().join("control"), format!("xx{marker}yy"))?;
    assert!(files(control.path())?
        .iter()
        .any(|(_, b)| contains(b, marker.as_bytes())));
    Ok(())
}

/// Copies every file under `from` into `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_state_directory_reveals_no_text_name_or_key() -> Result<()> {
    use convene_client::store::records::{identity_key, IdentityRecord};
    use convene_client::store::LocalStore;

    let marker = format!("MARKER{}", convene_client::hex(&rand::random::<[u8; 8]>()));
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec![
        format!("ana.{}", &marker[6..14]),
        format!("ben.{}", &marker[6..14]),
    ];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [mut ana, mut ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let group_name = format!("Cohort {marker}");
    let group = staff.client.create_group(&group_name, &names).await?;
    ana.wait_group(&group.id, |g| g.members.len() == 3).await?;
    ben.wait_group(&group.id, |g| g.members.len() == 3).await?;
    let said = format!("cohort text {marker}");
    staff.client.send_text(&group.id, &said).await?;
    let whispered = format!("direct text {marker}");
    ana.client.send_direct(&ben.user, &whispered).await?;
    ana.received_messages(1).await?;
    ben.received_messages(2).await?;

    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("a cohort text".into(), said.into_bytes()),
        ("a direct text".into(), whispered.into_bytes()),
        ("the group name".into(), group_name.into_bytes()),
        ("the marker".into(), marker.clone().into_bytes()),
    ];
    for name in &names {
        needles.push((format!("the user id {name}"), name.clone().into_bytes()));
        needles.push((
            format!("the display name of {name}"),
            convene_tests::app::display_name(name).into_bytes(),
        ));
    }
    let copies = tempfile::tempdir()?;
    for app in [staff, ana, ben] {
        let user = app.user.clone();
        let stopped = app.stop().await;
        let copy = copies.path().join(&user);
        copy_dir(&stopped.state_dir, &copy)?;
        // The keys this device holds, read with its store key.
        let store = LocalStore::open(&copy, &convene_tests::app::store_key(&user))?;
        let identity: IdentityRecord = store
            .get_committed_record(&identity_key())?
            .expect("an identity");
        drop(store);
        for (what, secret) in [
            ("device key", identity.device_secret),
            ("identity key", identity.identity_secret),
            ("authority key", identity.authority_secret),
        ] {
            if !secret.is_empty() {
                needles.push((format!("{user}'s {what}"), secret));
            }
        }
    }
    let mut checked = 0;
    for (path, bytes) in files(copies.path())? {
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "{what} is readable in {path}");
        }
        checked += bytes.len();
    }
    assert!(checked > 0, "nothing was copied");
    assert!(needles.len() >= 12, "{} needles", needles.len());
    Ok(())
}
