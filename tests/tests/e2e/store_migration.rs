//! A relay started on a data directory the sled release wrote moves it to
//! fjall and carries on: the people, the cohort and a message a member had
//! not fetched yet are all still there. (`server/src/store/migrate_tests.rs`
//! checks the same on a directory written by that release's binary.)

use std::time::Duration;

use anyhow::{ensure, Result};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::RelayProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_on_a_sled_directory_moves_it_and_delivers_what_it_held() -> Result<()> {
    let mut relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let names: Vec<String> = ["ana", "ben"].map(String::from).into();
    let mut leaders = leader_apps(&relay, &staff, &names).await?;
    let group = staff.client.create_group("Cohort 2026", &names).await?;
    for leader in &leaders {
        leader
            .wait_group(&group.id, |g| g.members.len() == 3)
            .await?;
    }
    let ben = leaders.pop().expect("ben").stop().await;
    let ana = leaders.pop().expect("ana");
    ana.client
        .send_text(&group.id, "Written before the move")
        .await?;
    let ana = ana.stop().await;
    let staff = staff.stop().await;

    relay.terminate(Duration::from_secs(30))?;
    relay.rewrite_as_sled_release()?;
    ensure!(relay.data_dir().join("db").is_file(), "a sled directory");
    relay.restart()?;

    let ben = ben.resume().await?;
    ben.hears(&group.id, "ana", "Written before the move")
        .await?;
    let ana = ana.resume().await?;
    ana.client.send_text(&group.id, "Written after it").await?;
    ben.hears(&group.id, "ana", "Written after it").await?;
    let staff = staff.resume().await?;
    staff.hears(&group.id, "ana", "Written after it").await?;

    let data_dir = relay.data_dir();
    ensure!(data_dir.join("fjall").is_dir(), "the store moved to fjall");
    ensure!(!data_dir.join("conf").exists(), "sled's conf is left");
    ensure!(
        data_dir.join("db").is_dir(),
        "sled's db is left, or no guard"
    );
    ensure!(
        relay
            .logs()
            .contains("the data directory now uses the relay's current engine"),
        "the move is logged"
    );
    Ok(())
}
