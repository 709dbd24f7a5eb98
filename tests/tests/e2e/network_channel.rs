//! The network channel through the real relay binary: staff create it
//! once, their device keeps it in step with enrolment and suspension with
//! no-one's help, staff post announcements, and ordinary chat from others
//! is refused by every member while it is off.

use anyhow::{ensure, Context, Result};
use convene_client::{ClientError, Event, GroupId, Role};
use convene_tests::app::{invited_apps, staff_app, App};
use convene_tests::RelayProcess;

use super::liveness::names;

/// Leaders in the channel besides staff: with staff, 61 members.
const LEADERS: usize = 60;

async fn in_channel(app: &App, channel: &GroupId) -> Result<()> {
    app.wait_group(channel, |g| g.active).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_leader_is_in_the_network_channel_without_staff_action_and_a_suspended_one_leaves(
) -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = invited_apps(&relay, &staff, &names("n", LEADERS), Role::Leader).await?;
    let network = staff.client.create_network_channel("Network").await?;
    ensure!(network.id == staff.client.network_channel_id());
    for leader in &leaders {
        in_channel(leader, &network.id).await?;
    }
    let summary = staff.client.network_channel()?.context("the channel")?;
    ensure!(
        summary.users().len() == LEADERS + 1,
        "{} members",
        summary.users().len()
    );

    // Enrolled after the channel exists: added by staff's device when the
    // relay says the directory changed; nobody asks.
    let late = invited_apps(&relay, &staff, &["late".to_string()], Role::Leader)
        .await?
        .pop()
        .context("one")?;
    in_channel(&late, &network.id).await?;

    // Staff announce; everyone, the newcomer included, reads it.
    staff
        .client
        .send_text(&network.id, "Welcome to the network")
        .await?;
    late.hears(&network.id, &staff.user, "Welcome to the network")
        .await?;
    leaders[LEADERS - 1]
        .hears(&network.id, &staff.user, "Welcome to the network")
        .await?;

    // Suspended: gone from the channel for everyone.
    staff.client.suspend_user("n1").await?;
    let witness = &leaders[1];
    witness
        .wait_group(&network.id, |g| !g.users().iter().any(|u| u == "n1"))
        .await?;
    // The removed leader held the network key: nothing new is sealed with
    // it, and the fresh key a staff device makes reaches the others, so
    // that they can still write their profiles.
    let draft = convene_client::directory::ProfileDraft {
        bio: Some("written after a removal".into()),
        ..Default::default()
    };
    super::directory::write_profile(witness, &draft).await?;
    // Sixty clients: each stopped before its state directory goes.
    for app in leaders.into_iter().chain([late, staff]) {
        app.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_chat_from_a_leader_is_refused_by_their_client_and_by_every_member() -> Result<()>
{
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = invited_apps(&relay, &staff, &names("c", 2), Role::Leader).await?;
    let network = staff.client.create_network_channel("Network").await?;
    for leader in &leaders {
        in_channel(leader, &network.id).await?;
    }
    let mallory = leaders.pop().context("two")?;
    let mut reader = leaders.pop().context("two")?;

    let refused = reader
        .client
        .send_text(&network.id, "anyone for coffee?")
        .await;
    ensure!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );

    // A tampered client sends it anyway: members refuse it.
    let mallory = mallory.reopen_misbehaving().await?;
    mallory
        .client
        .send_text(&network.id, "chat past the policy")
        .await?;
    let why = reader
        .wait_event(|e| match e {
            Event::Untrusted {
                group: Some(group),
                detail,
            }
            | Event::Warning {
                group: Some(group),
                detail,
            } if *group == network.id => Some(detail.clone()),
            _ => None,
        })
        .await?;
    ensure!(why.contains("chat is off"), "{why}");
    staff.client.send_text(&network.id, "announcement").await?;
    reader
        .hears(&network.id, &staff.user, "announcement")
        .await?;
    ensure!(
        !reader
            .client
            .history(&network.id, 100)?
            .iter()
            .any(|m| m.text == "chat past the policy"),
        "the refused text is in the history"
    );
    Ok(())
}

/// The channel's id follows from the authority key, so a leader could
/// register it before staff create the channel and pass a group of their
/// own off as it: the relay lets only staff register it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_staff_register_the_network_channels_id() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let invite = staff
        .client
        .invite(&convene_client::trust::UserDetails {
            user_id: "mallory".into(),
            display_name: "Mallory".into(),
            role: Role::Leader,
            sector: String::new(),
            certified: Default::default(),
        })
        .await?;
    let mallory = convene_tests::TestDevice::enrol(&relay.url, &invite.code, "mallory").await?;
    let channel = staff.client.network_channel_id();
    let refused = mallory
        .create_group(channel.as_bytes())
        .await
        .expect_err("a leader registered the network channel's id");
    ensure!(
        refused.refusal_code() == Some(convene_proto::relay::ErrorCode::Forbidden),
        "{refused}"
    );
    mallory.create_group(b"any-other-group!").await?;
    // Staff still create the channel.
    staff.client.create_network_channel("Network").await?;
    Ok(())
}

/// Staff turn chat on for everyone and off again; each member's client
/// follows the channel's policy from the commit, and a leader cannot turn
/// it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_turn_chat_on_and_off_and_every_member_follows() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = invited_apps(&relay, &staff, &names("c", 2), Role::Leader).await?;
    let network = staff.client.create_network_channel("Network").await?;
    for leader in &leaders {
        in_channel(leader, &network.id).await?;
    }
    let reader = leaders.pop().context("two")?;
    let writer = leaders.pop().context("two")?;
    let refused = writer.client.set_network_chat(true).await;
    ensure!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    staff.client.set_network_chat(true).await?;
    chat_is(&writer, true).await?;
    chat_is(&reader, true).await?;
    writer
        .client
        .send_text(&network.id, "anyone for coffee?")
        .await?;
    reader
        .hears(&network.id, &writer.user, "anyone for coffee?")
        .await?;

    staff.client.set_network_chat(false).await?;
    chat_is(&writer, false).await?;
    let refused = writer.client.send_text(&network.id, "and tea?").await;
    ensure!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    Ok(())
}

/// Waits until `app` sees chat in the network channel `on`.
async fn chat_is(app: &convene_tests::app::App, on: bool) -> Result<()> {
    convene_tests::app::wait_until(&format!("{} to see chat {on}", app.user), || async {
        (app.client.network_chat().ok().flatten() == Some(on)).then_some(())
    })
    .await
}
