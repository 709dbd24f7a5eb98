//! Staff who run a cohort without reading it: the staff member who created
//! the cohort leaves it, then adds and removes leaders as the group's MLS
//! external sender. The members commit each change after checking it, see
//! who manages the group, and the staff member never again holds the
//! group's keys.

use anyhow::{ensure, Context, Result};
use convene_client::ClientError;
use convene_tests::app::{leader_apps, staff_app, App};
use convene_tests::InProcessRelay;

fn users(list: &[&str]) -> Vec<String> {
    list.iter().map(|u| u.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_outside_a_cohort_add_and_remove_leaders_but_cannot_read_it() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &users(&["ann", "ben", "cat"])).await?;
    let [ann, ben, cat] = <[App; 3]>::try_from(leaders)
        .ok()
        .context("three leaders")?;
    let staff_device = staff.device();

    let cohort = staff
        .client
        .create_group("Cohort 2027", &users(&["ann", "ben"]))
        .await?;
    for app in [&ann, &ben] {
        let seen = app
            .wait_group(&cohort.id, |g| g.users() == users(&["ann", "ben", "staff"]))
            .await?;
        ensure!(
            seen.managers == users(&["staff"]),
            "{} sees managers {:?}",
            app.user,
            seen.managers
        );
    }

    // Staff leave: their device forgets the group's keys, and a member
    // commits its removal.
    staff.client.leave_group(&cohort.id).await?;
    for app in [&ann, &ben] {
        app.wait_group(&cohort.id, |g| {
            g.users() == users(&["ann", "ben"])
                && g.members.iter().all(|m| m.device != staff_device)
        })
        .await?;
    }
    let outside = staff.client.group(&cohort.id)?.context("staff's view")?;
    ensure!(outside.managing && !outside.active, "{outside:?}");

    // From outside, staff add cat; a member commits it and cat joins.
    staff
        .client
        .add_members(&cohort.id, &users(&["cat"]))
        .await?;
    for app in [&ann, &ben, &cat] {
        let seen = app
            .wait_group(&cohort.id, |g| g.users() == users(&["ann", "ben", "cat"]))
            .await?;
        ensure!(seen.managers == users(&["staff"]), "{:?}", seen.managers);
    }
    let outside = staff.client.group(&cohort.id)?.context("staff's view")?;
    ensure!(
        outside.users() == users(&["ann", "ben", "cat"]),
        "staff see {:?}",
        outside.users()
    );
    ann.client.send_text(&cohort.id, "welcome, cat").await?;
    for app in [&ben, &cat] {
        app.hears(&cohort.id, "ann", "welcome, cat").await?;
    }

    // From outside, staff remove ben; the others go on without him.
    staff
        .client
        .remove_members(&cohort.id, &users(&["ben"]))
        .await?;
    for app in [&ann, &cat] {
        app.wait_group(&cohort.id, |g| g.users() == users(&["ann", "cat"]))
            .await?;
    }
    ben.wait_group(&cohort.id, |g| !g.active).await?;
    // Removing someone who is not in it is refused, not done silently.
    staff
        .wait_group(&cohort.id, |g| !g.users().contains(&"ben".to_string()))
        .await?;
    for absent in ["ben", "zed"] {
        let refused = staff
            .client
            .remove_members(&cohort.id, &users(&[absent]))
            .await;
        ensure!(
            matches!(refused, Err(ClientError::InvalidArgument(_))),
            "removing {absent}: {refused:?}"
        );
    }
    cat.client.send_text(&cohort.id, "just us now").await?;
    ann.hears(&cohort.id, "cat", "just us now").await?;
    let (a, c) = (
        ann.client.group(&cohort.id)?.context("ann's view")?,
        cat.client.group(&cohort.id)?.context("cat's view")?,
    );
    ensure!(
        a.epoch == c.epoch && a.epoch_authenticator == c.epoch_authenticator,
        "the members disagree on the group's state"
    );
    ensure!(
        !ben.client
            .history(&cohort.id, 100)?
            .iter()
            .any(|m| m.text == "just us now"),
        "a removed leader heard a later message"
    );

    // Staff ran the cohort without ever reading it.
    ensure!(
        staff.client.history(&cohort.id, 100)?.is_empty(),
        "the staff member's device holds cohort messages"
    );
    let err = staff
        .client
        .send_text(&cohort.id, "can I still write?")
        .await
        .err()
        .context("staff outside the cohort could send to it")?;
    ensure!(
        matches!(err, convene_client::ClientError::NotAMember),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_manager_can_leave_and_keep_managing() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &users(&["ann"])).await?;
    let ann = leaders.into_iter().next().context("one leader")?;
    let cohort = staff
        .client
        .create_group("Cohort", &users(&["ann"]))
        .await?;
    ann.wait_group(&cohort.id, |g| g.users().len() == 2).await?;
    let err = ann
        .client
        .leave_group(&cohort.id)
        .await
        .err()
        .context("a leader left as a manager")?;
    ensure!(
        matches!(err, convene_client::ClientError::Forbidden(_)),
        "{err:?}"
    );
    Ok(())
}

/// Staff who left a cohort to manage it still remove a leader they
/// suspend: the manager's client proposes the removal as soon as it learns
/// of the suspension (leaders may not remove each other), and a member
/// commits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_leader_leaves_a_managed_cohort() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &users(&["ann", "ben", "cat"])).await?;
    let [ann, ben, cat] = <[App; 3]>::try_from(leaders)
        .ok()
        .context("three leaders")?;
    let cohort = staff
        .client
        .create_group("Cohort 2027", &users(&["ann", "ben", "cat"]))
        .await?;
    staff.client.leave_group(&cohort.id).await?;
    for app in [&ann, &ben, &cat] {
        app.wait_group(&cohort.id, |g| g.users() == users(&["ann", "ben", "cat"]))
            .await?;
    }

    staff.client.suspend_user("cat").await?;
    for app in [&ann, &ben] {
        app.wait_group(&cohort.id, |g| g.users() == users(&["ann", "ben"]))
            .await?;
    }
    ann.client.send_text(&cohort.id, "without cat").await?;
    ben.hears(&cohort.id, "ann", "without cat").await?;
    ensure!(
        !cat.client
            .history(&cohort.id, 100)?
            .iter()
            .any(|m| m.text == "without cat"),
        "a suspended leader heard a later message"
    );
    Ok(())
}
