//! Case 9: a member removed and added back is back, whether its device saw
//! the removal or not, and reads what was said before it was removed.

use anyhow::{ensure, Context, Result};
use convene_client::Event;
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::InProcessRelay;

use super::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_and_added_back_is_back() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
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

/// Removed by staff from outside the group (their proposal, committed by
/// another member) while she was away, and added back: she never tries to
/// commit her own removal, nothing of it is left in her state, and she can
/// write as soon as she is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_by_a_manager_and_added_back_can_write() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let users = vec![ann.user.clone(), ben.user.clone()];
    let cohort = staff.client.create_group("Cohort", &users).await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    staff.client.leave_group(&cohort.id).await?;
    ben.wait_group(&cohort.id, |g| g.users().len() == 2).await?;
    let ann_only = &[ann.user.clone()][..];

    // Ben is away when staff remove her: she finds their proposal first
    // (and must not try to commit her own removal), and ben commits it when
    // he comes back. Staff wait for a member's commit, so in a task.
    let ben_stopped = ben.stop().await;
    let removing = tokio::spawn({
        let (staff, group, users) = (staff.client.clone(), cohort.id.clone(), ann_only.to_vec());
        async move { staff.remove_members(&group, &users).await }
    });
    let mut ann = ann;
    ann.client.wait_caught_up(convene_tests::PATIENCE).await?;
    // Time for the proposal to reach her; if it came later, she would
    // still be the first to see it.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let ben = ben_stopped.resume().await?;
    ann.wait_event(|e| {
        matches!(e, Event::RemovedFromGroup { group } if *group == cohort.id).then_some(())
    })
    .await?;
    tokio::time::timeout(convene_tests::PATIENCE, removing).await???;
    staff.client.add_members(&cohort.id, ann_only).await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    // Restarted, as the command line is for each command: the group is
    // loaded from her store, not kept from the Welcome.
    let ann = ann.stop().await.resume().await?;
    // Her old removal proposal must not come back with the group and hold
    // her text until someone else happens to commit.
    tokio::time::timeout(
        convene_tests::PATIENCE,
        ann.client.send_text(&cohort.id, "back, and writing"),
    )
    .await
    .context("her text waited behind a stale proposal")??;
    ben.hears(&cohort.id, &ann.user, "back, and writing")
        .await?;
    Ok(())
}
