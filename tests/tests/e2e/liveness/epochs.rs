//! Epoch discipline at the Delivery Service (RFC 9750, section 5.2): a
//! message is accepted at the group's current epoch or refused, never
//! stored for a reader who cannot decrypt it.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::connectors::TwistedConnector;
use convene_tests::InProcessRelay;

use super::names;

/// Case 2: a member who has not yet processed an add encrypts at the old
/// epoch. The relay refuses it; the sender catches up, encrypts again, and
/// the new member reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_before_an_add_reaches_the_new_member() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let cat = leaders.pop().context("three leaders")?;
    let ben = leaders.pop().context("three leaders")?;
    let (connector, gate) = TwistedConnector::gated(&relay.url);
    let ann = leaders
        .pop()
        .context("three leaders")?
        .reopen_with(connector)
        .await?;
    let cohort = vec![ann.user.clone(), ben.user.clone()];
    let group = staff.client.create_group("Cohort", &cohort).await?;
    ann.wait_group(&group.id, |g| g.active).await?;

    // Ann hears nothing more for now: she will not see the add.
    gate.close();
    staff
        .client
        .add_members(&group.id, std::slice::from_ref(&cat.user))
        .await?;
    let joined = cat.wait_group(&group.id, |g| g.active).await?;
    let behind = ann.client.group(&group.id)?.context("ann's group")?;
    ensure!(behind.epoch < joined.epoch, "ann already saw the add");

    let text = "written before I saw cat join";
    let sending = {
        let client = ann.client.clone();
        let group = group.id.clone();
        tokio::spawn(async move { client.send_text(&group, text).await })
    };
    // Refused at the old epoch, the message waits for the newer commit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        !sending.is_finished(),
        "a message encrypted at an old epoch was accepted"
    );
    gate.open();
    sending.await??;
    cat.hears(&group.id, &ann.user, text).await?;
    ben.hears(&group.id, &ann.user, text).await?;
    Ok(())
}
