//! Cohort groups through the real relay with real clients: creation,
//! fan-out, ordering, duplicates.

use anyhow::Result;
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::RelayProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cohort_talks() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let names: Vec<String> = ["ana", "ben"].iter().map(|s| s.to_string()).collect();
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let group = staff.client.create_group("Cohort 2026", &names).await?;
    assert_eq!(group.users(), vec!["ana", "ben", "staff"]);
    for leader in &leaders {
        leader
            .wait_group(&group.id, |g| g.members.len() == 3)
            .await?;
    }
    leaders[0]
        .client
        .send_text(&group.id, "hello from ana")
        .await?;
    let seen = leaders[1].wait_history(&group.id, 1).await?;
    assert_eq!(seen[0].text, "hello from ana");
    assert_eq!(seen[0].sender, "ana");
    Ok(())
}
