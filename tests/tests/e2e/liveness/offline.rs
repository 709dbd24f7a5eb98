//! Devices that are away while the network goes on without them.

use anyhow::{ensure, Result};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::InProcessRelay;

use super::names;

/// Case 3: after 30 groups the device's one-time KeyPackages are used up,
/// and its last-resort KeyPackage must still let everyone add it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_while_40_groups_are_created_joins_all_40() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().expect("two leaders");
    let ann = leaders.pop().expect("two leaders").stop().await;

    let members = vec![ann.user.clone(), ben.user.clone()];
    let mut groups = Vec::new();
    for i in 0..40 {
        let group = staff
            .client
            .create_group(&format!("Group {i}"), &members)
            .await?;
        ensure!(
            group.users().contains(&ann.user),
            "group {i} was made without ann: {:?}",
            group.users()
        );
        groups.push(group.id);
    }

    let ann = ann.resume().await?;
    for group in &groups {
        ann.wait_group(group, |g| g.active).await?;
    }
    // And the last of them works both ways.
    let last = groups.last().expect("40 groups");
    ann.client.send_text(last, "back from leave").await?;
    ben.hears(last, &ann.user, "back from leave").await?;
    Ok(())
}

/// Case 10: a linked device left in a drawer does not stop its groups; when
/// it comes back it is told what it missed and follows the group again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_away_for_long_holds_nobody_back_and_catches_up() -> Result<()> {
    use convene_client::Event;
    use convene_tests::app::App;
    use convene_tests::RelayOptions;

    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nmax_group_backlog = 20\n".into(),
        ..Default::default()
    })?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let cat = leaders.pop().expect("three");
    let ben = leaders.pop().expect("three");
    let ann = leaders.pop().expect("three");
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    let laptop = App::link(&relay.url, &ann).await?;
    laptop.wait_group(&cohort.id, |g| g.active).await?;
    let laptop = laptop.stop().await;

    // Far more than the log keeps, and a commit in the middle: every one
    // accepted.
    for i in 0..30 {
        ben.client
            .send_text(&cohort.id, &format!("before {i}"))
            .await?;
    }
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&cat.user))
        .await?;
    for i in 0..25 {
        ben.client
            .send_text(&cohort.id, &format!("after {i}"))
            .await?;
    }
    ann.hears(&cohort.id, &ben.user, "after 24").await?;

    let mut laptop = laptop.resume().await?;
    let dropped = laptop
        .wait_event(|e| match e {
            Event::EntriesDropped { group, count } if *group == cohort.id => Some(*count),
            _ => None,
        })
        .await?;
    ensure!(dropped >= 30, "only {dropped} reported lost");
    let missed = laptop
        .wait_event(|e| match e {
            Event::GroupRecovered { group, missed } if *group == cohort.id => Some(*missed),
            _ => None,
        })
        .await?;
    ben.client.send_text(&cohort.id, "you are back").await?;
    laptop.hears(&cohort.id, &ben.user, "you are back").await?;
    // The history shows where entries were lost, as many as were told.
    let history = laptop.client.history(&cohort.id, usize::MAX)?;
    let noted: u64 = history.iter().map(|m| m.lost).sum();
    ensure!(
        noted == dropped + missed,
        "{noted} entries noted lost in the history, {dropped} dropped and {missed} missed told"
    );
    let summary = laptop.client.group(&cohort.id)?.expect("the cohort");
    ensure!(summary.users().contains(&cat.user), "{summary:?}");
    Ok(())
}
