//! Staff suspend a user: the relay cuts their device off at once and
//! refuses it from then on, and the members who may change each of the
//! user's groups remove them.

use anyhow::{ensure, Context, Result};
use convene_client::{ClientError, ConnectionState, Event, RelayConnection};
use convene_proto::relay::ErrorCode;
use convene_tests::app::{leader_apps, staff_app, wait_until, App};
use convene_tests::InProcessRelay;

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("l{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_user_is_cut_off_and_removed_from_their_groups() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names(3)).await?;
    let [mut l1, l2, mut l3] = <[App; 3]>::try_from(leaders).ok().expect("three leaders");
    let cohort = staff.client.create_group("Cohort", &names(3)).await?;
    for leader in [&l1, &l2, &l3] {
        leader
            .wait_group(&cohort.id, |g| g.members.len() == 4)
            .await?;
    }
    let direct = l1.client.open_direct("l3").await?;
    l1.client.send_direct("l3", "before").await?;
    l3.received_messages(1).await?;

    // A leader holds no authority key.
    let refused = l1.client.suspend_user("l3").await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );

    staff.client.suspend_user("l3").await?;

    // l3's connection is closed and it cannot come back.
    let status = l3.client.clone();
    wait_until("l3 to be cut off", || {
        let status = status.status();
        async move { (status.state == ConnectionState::Offline).then_some(()) }
    })
    .await?;
    drop(status);
    let stopped = l3.stop().await;
    let key = convene_tests::app::device_key_of(&stopped.state_dir, "l3")?;
    let conn = RelayConnection::connect(&relay.url, &Default::default()).await?;
    let err = conn
        .authenticate(&key, None)
        .await
        .err()
        .context("l3 got back in")?;
    ensure!(err.refusal_code() == Some(ErrorCode::Revoked), "{err:?}");

    // Staff remove l3 from the cohort; l1 removes l3 from their channel.
    for app in [&staff, &l1, &l2] {
        app.wait_group(&cohort.id, |g| !g.members.iter().any(|m| m.user_id == "l3"))
            .await?;
    }
    l1.wait_group(&direct, |g| g.members.iter().all(|m| m.user_id == "l1"))
        .await?;
    let told = l1
        .wait_event(|e| match e {
            Event::Revoked { user_id, .. } => Some(user_id.clone()),
            _ => None,
        })
        .await?;
    ensure!(told == "l3");

    // The cohort goes on without l3, and nobody can add l3 back.
    staff.client.send_text(&cohort.id, "after").await?;
    let heard = l2.wait_history(&cohort.id, 1).await?;
    ensure!(heard.last().is_some_and(|m| m.text == "after"), "{heard:?}");
    let again = staff
        .client
        .add_members(&cohort.id, &["l3".to_string()])
        .await
        .err();
    ensure!(again.is_some(), "a suspended user was added back");
    Ok(())
}
