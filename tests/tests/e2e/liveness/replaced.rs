//! A device whose place in a group another member replaced without its
//! asking (a tampered client re-adding it with a KeyPackage of its own,
//! made to rejoin that group, whose key it no longer holds) is not fooled
//! into thinking it was removed: it says it cannot follow the group, asks
//! to be re-added, and is back.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use convene_client::trust::TrustAnchor;
use convene_client::{DeviceKey, Event};
use convene_proto::relay::{request, response, SubmitCommit};
use convene_tests::app::{authority_of, continuity_of, device_key_of, leader_apps, staff_app};
use convene_tests::tampered::with_ops;
use convene_tests::{InProcessRelay, TestDevice};

use super::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_put_back_in_its_place_without_asking_asks_again_and_is_back() -> Result<()> {
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
    let epoch = ben
        .wait_group(&cohort.id, |g| g.active && g.members.len() == 3)
        .await?
        .epoch;
    let staff = staff.stop().await;
    let anchor = TrustAnchor::new(authority_of(&staff.state_dir)?.public());
    let staff = staff.resume().await?;

    // A KeyPackage of ann's, made to rejoin the cohort; its key was never
    // kept.
    let ann_stopped = ann.stop().await;
    let ann_device = device_key_of(&ann_stopped.state_dir, "l1")?.public();
    let key_package = with_ops(&ann_stopped.state_dir, "l1", anchor.clone(), false, |ops| {
        let made = ops.rejoin_key_package(&cohort.id, epoch)?;
        made.one_time.into_iter().next().context("one KeyPackage")
    })?;
    let mut ann = ann_stopped.resume().await?;

    // Ben's client, tampered with, puts her back in her place with it.
    let ben_stopped = ben.stop().await;
    let bundle = with_ops(&ben_stopped.state_dir, "l2", anchor, false, |ops| {
        let mut group = ops.load(&cohort.id)?.context("ben's cohort")?;
        let key_package = ops.parse_key_package(&key_package, "l1", &ann_device)?;
        Ok(ops.readd(&mut group, &ann_device, key_package)?)
    })?;
    let ben_device: DeviceKey = device_key_of(&ben_stopped.state_dir, "l2")?;
    let tampered = TestDevice::connect_continuing(
        &relay.url,
        ben_device,
        continuity_of(&ben_stopped.state_dir, "l2")?,
    )
    .await?;
    let submit = request::Kind::SubmitCommit(SubmitCommit {
        group_id: Bytes::from(cohort.id.clone()),
        epoch,
        submission_id: convene_tests::device::random_id(),
        commit: Bytes::from(bundle.commit),
        welcome: Bytes::from(bundle.welcome),
        ratchet_tree: Bytes::new(),
        group_info: Bytes::from(bundle.group_info),
        added_devices: vec![Bytes::copy_from_slice(ann_device.as_bytes())],
        removed_devices: vec![Bytes::copy_from_slice(ann_device.as_bytes())],
    });
    match tampered.conn.request(submit).await? {
        response::Result::CommitAccepted(_) => {}
        other => bail!("the re-add was not accepted: {other:?}"),
    }

    // She is told she cannot follow the group, never that she was removed,
    // and staff's device re-adds her when she asks.
    ann.wait_event(|e| match e {
        Event::RemovedFromGroup { group } if *group == cohort.id => Some(Err(())),
        Event::GroupStalled { group, .. } if *group == cohort.id => Some(Ok(())),
        _ => None,
    })
    .await?
    .map_err(|()| anyhow::anyhow!("ann was told she was removed"))?;
    ann.wait_group(&cohort.id, |g| g.active && g.stalled.is_none())
        .await?;
    staff.client.send_text(&cohort.id, "you are back").await?;
    ann.hears(&cohort.id, &staff.user, "you are back").await?;
    Ok(())
}
