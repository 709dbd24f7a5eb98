//! Case 1: one entry a device cannot process never stops anything. One test
//! per way of reaching it; each also checks that another group on the same
//! device goes on delivering.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use convene_client::{Event, GroupId, Role};
use convene_tests::app::{leader_apps, raw_device, staff_app, App};
use convene_tests::InProcessRelay;

use super::names;

/// Staff's message in `group` reaches `app`; prints how long it took.
pub async fn still_delivers(staff: &App, app: &App, group: &GroupId, what: &str) -> Result<()> {
    delivers(staff, app, group, what).await
}

/// `sender`'s message in `group` reaches `app`; prints how long it took.
pub async fn delivers(sender: &App, app: &App, group: &GroupId, what: &str) -> Result<()> {
    let text = format!("still delivering ({what})");
    let started = Instant::now();
    sender.client.send_text(group, &text).await?;
    app.hears(group, &sender.user, &text).await?;
    eprintln!(
        "{what}: another group delivered to {} in {:?}",
        app.user,
        started.elapsed()
    );
    Ok(())
}

/// Waits for `GroupStalled` in `group`; returns its reason.
pub async fn stalled(app: &mut App, group: &GroupId) -> Result<String> {
    app.wait_event(|e| match e {
        Event::GroupStalled { group: g, reason } if g == group => Some(reason.clone()),
        _ => None,
    })
    .await
}

/// Waits for `GroupRecovered` in `group`; returns how many entries it missed.
pub async fn recovered(app: &mut App, group: &GroupId) -> Result<u64> {
    app.wait_event(|e| match e {
        Event::GroupRecovered { group: g, missed } if g == group => Some(*missed),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_restored_from_a_copy_one_commit_behind_rejoins() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let cat = leaders.pop().context("three")?;
    let ben = leaders.pop().context("three")?;
    let ann = leaders.pop().context("three")?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    let other = staff
        .client
        .create_group("Other", std::slice::from_ref(&ann.user))
        .await?;
    ann.wait_group(&other.id, |g| g.active).await?;

    let stopped = ann.stop().await;
    let backup = stopped.snapshot()?;
    let ann = stopped.resume().await?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&cat.user))
        .await?;
    ann.wait_group(&cohort.id, |g| g.users().contains(&cat.user))
        .await?;
    let stopped = ann.stop().await;
    stopped.restore(&backup)?;
    // The relay knows this state is older than the device's last
    // connection (case 7); the user says it is the copy to keep.
    let mut ann = stopped.resume_refused_as_copy().await?;
    let behind = ann.client.group(&cohort.id)?.context("the cohort")?;
    ensure!(
        !behind.users().contains(&cat.user),
        "the backup is not behind"
    );
    ann.client.take_over().await?;
    ann.client.wait_caught_up(convene_tests::PATIENCE).await?;

    // The commit it missed is not sent again: the device cannot follow the
    // cohort and asks to rejoin.
    ben.client.send_text(&cohort.id, "after cat joined").await?;
    let reason = stalled(&mut ann, &cohort.id).await?;
    eprintln!("stalled: {reason}");
    still_delivers(&staff, &ann, &other.id, "restored copy").await?;
    let missed = recovered(&mut ann, &cohort.id).await?;
    ensure!(
        missed >= 1,
        "the message ann could not read was not counted"
    );
    let history = ann.client.history(&cohort.id, usize::MAX)?;
    let noted: u64 = history.iter().map(|m| m.lost).sum();
    ensure!(
        noted >= missed,
        "{missed} missed, {noted} noted in the history"
    );
    let summary = ann.client.group(&cohort.id)?.context("the cohort")?;
    ensure!(summary.stalled.is_none() && summary.users().contains(&cat.user));

    ben.client.send_text(&cohort.id, "welcome back").await?;
    ann.hears(&cohort.id, &ben.user, "welcome back").await?;
    ann.client.send_text(&cohort.id, "I am back").await?;
    cat.hears(&cohort.id, &ann.user, "I am back").await?;
    Ok(())
}

/// A backup restored after the device went on sending: its ratchets are
/// behind what it already used, so what it sends in the same epoch would
/// reuse keys its group has consumed and could never be read. Taking over
/// with it rejoins such a group before it sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_restored_after_the_device_sent_rejoins_before_it_sends() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("r", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    ben.wait_group(&cohort.id, |g| g.active).await?;

    let stopped = ann.stop().await;
    let backup = stopped.snapshot()?;
    let ann = stopped.resume().await?;
    ann.client
        .send_text(&cohort.id, "sent after the backup")
        .await?;
    // Stopped at once: whether the relay holds this send as acknowledged
    // by the device or delivers it to the restored copy as its own, the
    // copy must find out.
    let ann_user = ann.user.clone();
    let stopped = ann.stop().await;
    ben.hears(&cohort.id, &ann_user, "sent after the backup")
        .await?;
    stopped.restore(&backup)?;
    let mut ann = stopped.resume_refused_as_copy().await?;
    ann.client.take_over().await?;
    ann.client.wait_caught_up(convene_tests::PATIENCE).await?;

    // The same epoch, but not the same ratchets: the group is rejoined
    // (ben is online to re-add ann), and what ann says then is read.
    recovered(&mut ann, &cohort.id).await?;
    ann.client
        .send_text(&cohort.id, "from the restored copy")
        .await?;
    ben.hears(&cohort.id, &ann.user, "from the restored copy")
        .await?;
    Ok(())
}

/// A hostile device registers a group, commits the victim in with a junk
/// Welcome and floods it: the victim keeps hearing its other groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_welcome_and_a_flood_from_a_hostile_group_stop_nothing() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 1)).await?;
    let mut ann = leaders.pop().context("one")?;
    let other = staff
        .client
        .create_group("Other", std::slice::from_ref(&ann.user))
        .await?;
    ann.wait_group(&other.id, |g| g.active).await?;

    let mallory = raw_device(&relay, &staff, "mallory", Role::Leader).await?;
    let hostile = b"hostile-group-id".to_vec();
    mallory.create_group(&hostile).await?;
    let victim: [u8; 32] = ann.device().as_slice().try_into()?;
    mallory.commit(&hostile, 0, &[victim], &[]).await?;
    for i in 0..300 {
        mallory
            .send(&hostile, format!("junk {i}").as_bytes())
            .await?;
    }
    let group = GroupId::try_from(hostile)?;
    stalled(&mut ann, &group).await?;
    still_delivers(&staff, &ann, &other.id, "hostile flood").await?;
    ensure!(
        ann.client
            .group(&group)?
            .is_none_or(|g| !g.active || g.stalled.is_some()),
        "a group from a junk Welcome is shown as if it were fine"
    );
    Ok(())
}

/// Rewrites the epoch in the clear framing of a message.
fn with_epoch(payload: &bytes::Bytes, shift: u64) -> bytes::Bytes {
    let Ok(header) = convene_proto::mls_frame::read_message_header(payload) else {
        return payload.clone();
    };
    let at = header.group_id.as_ptr() as usize - payload.as_ptr() as usize + header.group_id.len();
    let mut forged = payload.to_vec();
    forged[at..at + 8].copy_from_slice(&(header.epoch + shift).to_be_bytes());
    forged.into()
}

/// A member forging the (unauthenticated) epoch in a message's framing:
/// the relay refuses it, and the group goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_a_forged_epoch_is_refused_and_the_group_goes_on() -> Result<()> {
    use convene_proto::relay::{request, MessageKind};
    use convene_tests::connectors::HookedConnector;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    let other = staff
        .client
        .create_group("Other", std::slice::from_ref(&ann.user))
        .await?;
    ann.wait_group(&other.id, |g| g.active).await?;
    ben.wait_group(&cohort.id, |g| g.active).await?;

    let forged = Arc::new(AtomicBool::new(false));
    let hook = {
        let forged = forged.clone();
        Arc::new(move |kind: request::Kind| {
            let forged = forged.clone();
            Box::pin(async move {
                match kind {
                    request::Kind::SendMessage(mut send)
                        if send.kind == MessageKind::Application as i32
                            && !forged.swap(true, Ordering::SeqCst) =>
                    {
                        send.payload = with_epoch(&send.payload, 3);
                        request::Kind::SendMessage(send)
                    }
                    other => other,
                }
            }) as convene_client::transport::BoxFuture<'static, request::Kind>
        })
    };
    let ben = ben
        .reopen_with(HookedConnector::hooked(&relay.url, hook))
        .await?;
    ben.client
        .send_text(&cohort.id, "forged, then honest")
        .await?;
    ensure!(forged.load(Ordering::SeqCst), "nothing was forged");
    ann.hears(&cohort.id, &ben.user, "forged, then honest")
        .await?;
    still_delivers(&staff, &ann, &other.id, "forged epoch").await?;
    Ok(())
}

/// A member whose clock was far behind when a commit arrived refuses it
/// and falls out of step; the rest of its groups go on, and once its clock
/// is right it rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_clock_was_behind_at_a_commit_rejoins_once_it_is_right() -> Result<()> {
    const HOUR_MS: i64 = 3600 * 1000;
    let relay = InProcessRelay::start_default()?;
    // Ann and Ben are certified by a staff clock three hours slow, so their
    // certificates are old enough for a device two hours slow; staff's own
    // and Dan's, issued now, are not.
    let staff = staff_app(&relay)
        .await?
        .reopen_with_clock(-3 * HOUR_MS)
        .await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let staff = staff.reopen_with_clock(0).await?;
    let ben = leaders.pop().context("two")?;
    let ann = leaders.pop().context("two")?;
    let both = vec![ann.user.clone(), ben.user.clone()];
    let cohort = staff.client.create_group("Cohort", &both).await?;
    let other = staff.client.create_group("Other", &both).await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    ann.wait_group(&other.id, |g| g.active).await?;

    let mut ann = ann.reopen_with_clock(-2 * HOUR_MS).await?;
    let dan = leader_apps(&relay, &staff, &["dan".to_string()])
        .await?
        .pop()
        .context("dan")?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&dan.user))
        .await?;
    let reason = stalled(&mut ann, &cohort.id).await?;
    eprintln!("stalled: {reason}");
    delivers(&ben, &ann, &other.id, "clock behind").await?;

    let mut ann = ann.reopen_with_clock(0).await?;
    recovered(&mut ann, &cohort.id).await?;
    dan.client.send_text(&cohort.id, "hello from dan").await?;
    ann.hears(&cohort.id, &dan.user, "hello from dan").await?;
    Ok(())
}

/// A Welcome that arrives after the private key of the KeyPackage it used
/// was deleted cannot be opened: the device asks to be added again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_whose_key_package_key_is_gone_ends_in_a_rejoin() -> Result<()> {
    use convene_client::KeyLifecycle;
    use convene_tests::connectors::TwistedConnector;
    use std::time::Duration;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 1)).await?;
    let ann = leaders.pop().context("one")?;
    let other = staff
        .client
        .create_group("Other", std::slice::from_ref(&ann.user))
        .await?;
    ann.wait_group(&other.id, |g| g.active).await?;
    // KeyPackages that live three seconds, whose keys are forgotten as
    // soon as they expire.
    let fleeting = KeyLifecycle {
        key_package_lifetime: Duration::from_secs(3),
        key_package_rotation: Duration::from_secs(1),
        key_package_grace: Duration::ZERO,
        ..KeyLifecycle::default()
    };
    let (connector, gate) = TwistedConnector::gated(&relay.url);
    let mut ann = ann
        .reopen_configured(|b| Ok(b.connector(connector).key_lifecycle(fleeting)?))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The Welcome waits at the gate while the KeyPackage it used expires
    // and its key is forgotten.
    gate.close();
    let cohort = staff
        .client
        .create_group("Cohort", std::slice::from_ref(&ann.user))
        .await?;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    gate.open();
    let reason = stalled(&mut ann, &cohort.id).await?;
    eprintln!("stalled: {reason}");
    still_delivers(&staff, &ann, &other.id, "key package gone").await?;
    ann.wait_group(&cohort.id, |g| g.active && g.stalled.is_none())
        .await?;
    staff
        .client
        .send_text(&cohort.id, "welcome at last")
        .await?;
    ann.hears(&cohort.id, &staff.user, "welcome at last")
        .await?;
    Ok(())
}
