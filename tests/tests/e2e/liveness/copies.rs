//! Case 7: one device, one running copy. A copy of a device's state that
//! another copy has moved past is refused and told, and never splits the
//! device's deliveries; the copy to keep can take over.

use anyhow::{ensure, Context, Result};
use convene_client::{ClientError, ConnectionState, Event};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::InProcessRelay;

use super::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_run_beside_the_original_is_refused_and_the_original_goes_on() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;

    let stopped = ann.stop().await;
    let copy = stopped.copy_from(stopped.snapshot()?);
    let mut ann = stopped.resume().await?;
    let mut copy = copy.resume_refused_as_copy().await?;
    ensure!(copy.client.status().copied, "{:?}", copy.client.status());
    copy.wait_event(|e| matches!(e, Event::StateCopied).then_some(()))
        .await
        .or_else(|_| {
            // It may have come before the test listened; the status says it.
            copy.client
                .status()
                .copied
                .then_some(())
                .context("not told")
        })?;
    let refused = copy
        .client
        .send_text(&cohort.id, "from the copy")
        .await
        .err()
        .context("the copy sent")?;
    ensure!(matches!(refused, ClientError::StateCopied), "{refused:?}");

    // The original was never pushed off, and hears everything.
    ben.client.send_text(&cohort.id, "to the real ann").await?;
    ann.hears(&cohort.id, &ben.user, "to the real ann").await?;
    ensure!(
        !ann.drain_events()
            .iter()
            .any(|e| matches!(e, Event::ConnectionLost { .. })),
        "the copy pushed the original off"
    );
    ensure!(ann.client.status().state == ConnectionState::CaughtUp);
    ensure!(
        copy.client
            .history(&cohort.id, 10)?
            .iter()
            .all(|m| m.text != "to the real ann"),
        "the copy took a delivery"
    );
    Ok(())
}
