//! Only ciphertext reaches the relay: after a conversation whose texts and
//! group name carry a unique marker, neither the marker nor any text is
//! anywhere in the relay's data directory, its logs or its output.

use std::path::Path;

use anyhow::Result;
use convene_tests::app::{leader_apps, staff_app, App};
use convene_tests::RelayProcess;

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
