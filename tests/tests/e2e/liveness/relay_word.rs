//! A stall that the relay's word alone caused does not outlast it: a
//! relay that claims an entry is for a later epoch makes every member stop
//! following the group, and nobody is left to re-add anyone; once the
//! relay says the group is where they are, they follow it again.

use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use convene_client::Event;
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::connectors::TwistedConnector;
use convene_tests::InProcessRelay;

use super::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_stalled_by_a_relays_forged_epoch_follow_the_group_again() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let carl = leaders.pop().context("three")?;
    let ben = leaders.pop().context("three")?;
    let ann = leaders.pop().context("three")?;
    let (connector, forge_ann) = TwistedConnector::forging_epochs(&relay.url);
    let mut ann = ann.reopen_with(connector).await?;
    let (connector, forge_ben) = TwistedConnector::forging_epochs(&relay.url);
    let mut ben = ben.reopen_with(connector).await?;
    let users = vec![ann.user.clone(), ben.user.clone(), carl.user.clone()];
    let cohort = staff.client.create_group("Cohort", &users).await?;
    staff.client.leave_group(&cohort.id).await?;
    for app in [&ann, &ben, &carl] {
        app.wait_group(&cohort.id, |g| g.active && g.users().len() == 3)
            .await?;
    }

    // Carl's text reaches ann and ben claimed as an epoch far ahead; then
    // carl goes away, so no member who follows the group is left online.
    forge_ann.store(1, Ordering::SeqCst);
    forge_ben.store(1, Ordering::SeqCst);
    carl.client
        .send_text(&cohort.id, "before carl goes")
        .await?;
    let _carl = carl.stop().await;
    for app in [&mut ann, &mut ben] {
        app.wait_event(|e| match e {
            Event::GroupStalled { group, .. } if *group == cohort.id => Some(()),
            _ => None,
        })
        .await?;
    }

    // The relay says the group is where they are: both follow it again,
    // the forged entry is a loss notice, and they hear each other.
    for app in [&mut ann, &mut ben] {
        app.wait_event(|e| match e {
            Event::GroupRecovered { group, missed } if *group == cohort.id => Some(*missed),
            _ => None,
        })
        .await?;
    }
    ann.client.send_text(&cohort.id, "still here").await?;
    ben.hears(&cohort.id, &ann.user, "still here").await?;
    let history = ann.client.history(&cohort.id, 10)?;
    anyhow::ensure!(
        history.iter().any(|m| m.lost > 0),
        "no notice where the forged entry was: {history:?}"
    );
    Ok(())
}
