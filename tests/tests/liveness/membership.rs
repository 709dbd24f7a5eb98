//! Case 9: a member removed and added back is back, whether its device saw
//! the removal or not, and reads what was said before it was removed.

use anyhow::{ensure, Context, Result};
use convene_client::Event;
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::RelayProcess;

use crate::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_and_added_back_is_back() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let mut ann = leaders.pop().context("two")?;
    let users = vec![ann.user.clone(), ben.user.clone()];
    let cohort = staff.client.create_group("Cohort", &users).await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    let ann_only = &[ann.user.clone()][..];

    // Online: she sees herself removed, then added again.
    staff.client.remove_members(&cohort.id, ann_only).await?;
    ann.wait_event(|e| {
        matches!(e, Event::RemovedFromGroup { group } if *group == cohort.id).then_some(())
    })
    .await?;
    staff.client.add_members(&cohort.id, ann_only).await?;
    let back = ann.wait_group(&cohort.id, |g| g.active).await?;
    ensure!(back.stalled.is_none(), "{back:?}");
    ben.client.send_text(&cohort.id, "welcome back").await?;
    ann.hears(&cohort.id, &ben.user, "welcome back").await?;
    ann.client.send_text(&cohort.id, "glad to be back").await?;
    ben.hears(&cohort.id, &ann.user, "glad to be back").await?;

    // Offline: what was said before she was removed is still hers to
    // read, though the Welcome that adds her back may come first.
    let stopped = ann.stop().await;
    ben.client
        .send_text(&cohort.id, "while you were away")
        .await?;
    staff.client.remove_members(&cohort.id, ann_only).await?;
    staff.client.add_members(&cohort.id, ann_only).await?;
    let ann = stopped.resume().await?;
    let staff_epoch = staff.client.group(&cohort.id)?.context("cohort")?.epoch;
    let back = ann
        .wait_group(&cohort.id, |g| g.active && g.epoch == staff_epoch)
        .await?;
    ensure!(back.stalled.is_none(), "{back:?}");
    ann.hears(&cohort.id, &ben.user, "while you were away")
        .await?;
    ben.client.send_text(&cohort.id, "and again").await?;
    ann.hears(&cohort.id, &ben.user, "and again").await?;
    ann.client.send_text(&cohort.id, "still here").await?;
    ben.hears(&cohort.id, &ann.user, "still here").await?;
    Ok(())
}
