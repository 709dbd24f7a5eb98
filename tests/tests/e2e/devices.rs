//! A user with two devices: linking the second with a code shown on both,
//! both devices hearing everything in every group, and the user removing
//! the second (lost) device, which is then cut off and hears nothing more.

use anyhow::{ensure, Context, Result};
use convene_client::{ClientBuilder, ClientError, ConnectionState, Event, RelayConnection};
use convene_proto::relay::ErrorCode;
use convene_tests::app::{leader_apps, staff_app, store_key, wait_until, App};
use convene_tests::InProcessRelay;

/// A relay, staff, and leader ann in a cohort staff made.
async fn ann_in_a_cohort() -> Result<(InProcessRelay, App, App, convene_client::GroupSummary)> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let [ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let cohort = staff.client.create_group("Cohort", &["ann".into()]).await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    Ok((relay, staff, ann, cohort))
}

/// Whether `app` was told that ann's devices in `group` changed by
/// `(added, removed)`, and not that ann joined or left.
async fn told_of_anns_devices(
    app: &mut App,
    group: &convene_client::GroupId,
    (added, removed): (usize, usize),
) -> Result<()> {
    let mut told = Vec::new();
    let deadline = tokio::time::Instant::now() + convene_tests::PATIENCE;
    loop {
        told.extend(app.drain_events());
        let seen = told.iter().any(|e| {
            matches!(e, Event::MemberDevicesChanged { group: g, user_id, added: a, removed: r }
                if g == group && user_id == "ann" && (*a, *r) == (added, removed))
        });
        if seen {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the change of ann's devices was not told: {told:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ensure!(
        !told
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { added, removed, .. }
            if added.iter().chain(removed).any(|u| u == "ann"))),
        "a device change was told as ann joining or leaving: {told:?}"
    );
    Ok(())
}

fn device_count(group: &convene_client::GroupSummary, user: &str) -> usize {
    group.members.iter().filter(|m| m.user_id == user).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_both_receive_and_a_removed_one_is_cut_off() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &["ann".into(), "ben".into()]).await?;
    let [ann, mut ben] = <[App; 2]>::try_from(leaders).ok().context("two leaders")?;
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "ben".into()])
        .await?;
    ann.wait_group(&cohort.id, |g| g.members.len() == 3).await?;
    let direct = ann.client.open_direct("ben").await?;
    ann.client
        .send_direct("ben", "before the second device")
        .await?;
    ben.received_messages(1).await?;

    let ann2 = App::link(&relay.url, &ann).await?;
    ensure!(ann2.client.identity().user_id == "ann");
    ensure!(ann.client.devices().await?.len() == 2);
    for group in [&cohort.id, &direct] {
        for app in [&ann, &ben, &ann2] {
            app.wait_group(group, |g| device_count(g, "ann") == 2)
                .await?;
        }
    }
    told_of_anns_devices(&mut ben, &cohort.id, (1, 0)).await?;

    // Whatever is sent reaches both of ann's devices, in both groups.
    ben.client.send_text(&cohort.id, "to the cohort").await?;
    ben.client.send_direct("ann", "to ann alone").await?;
    for app in [&ann, &ann2] {
        app.hears(&cohort.id, "ben", "to the cohort").await?;
        app.hears(&direct, "ben", "to ann alone").await?;
    }
    ann2.client
        .send_text(&cohort.id, "from ann's second device")
        .await?;
    for app in [&ann, &ben, &staff] {
        app.hears(&cohort.id, "ann", "from ann's second device")
            .await?;
    }

    // Ann loses the second device and removes it from the first.
    let lost = ann2.device();
    ann.client.remove_device(&lost).await?;
    let cut = ann2.client.clone();
    wait_until("the removed device to be cut off", || {
        let status = cut.status();
        async move { (status.state == ConnectionState::Offline && status.revoked).then_some(()) }
    })
    .await?;
    drop(cut);
    for group in [&cohort.id, &direct] {
        for app in [&ann, &ben] {
            app.wait_group(group, |g| g.members.iter().all(|m| m.device != lost))
                .await?;
        }
    }
    staff
        .wait_group(&cohort.id, |g| device_count(g, "ann") == 1)
        .await?;
    told_of_anns_devices(&mut ben, &cohort.id, (0, 1)).await?;
    ben.client.send_text(&cohort.id, "after the loss").await?;
    ann.hears(&cohort.id, "ben", "after the loss").await?;
    let lost_history = ann2.client.history(&cohort.id, 100)?;
    ensure!(
        !lost_history.iter().any(|m| m.text == "after the loss"),
        "the removed device received a later message"
    );

    // The relay refuses the removed device from then on.
    let stopped = ann2.stop().await;
    let key = convene_tests::app::device_key_of(&stopped.state_dir, "ann")?;
    let conn = RelayConnection::connect(&relay.url, &Default::default()).await?;
    let err = conn
        .authenticate(&key, None)
        .await
        .err()
        .context("back in")?;
    ensure!(err.refusal_code() == Some(ErrorCode::Revoked), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_approved_only_with_the_code_the_new_device_shows() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let dir = tempfile::tempdir()?;
    let pending = ClientBuilder::new(dir.path())
        .store_key(store_key("staff"))
        .relay_url(&relay.url)
        .request_link("staff")
        .await?;
    let listed = staff.client.link_requests().await?;
    ensure!(listed.len() == 1 && pending.code().starts_with(&listed[0].code_start));

    let wrong = if pending.code().starts_with('1') {
        "2222 2222 2222"
    } else {
        "1111 1111 1111"
    };
    let refused = staff.client.approve_link(wrong).await.err();
    ensure!(
        matches!(refused, Some(ClientError::InvalidArgument(_))),
        "{refused:?}"
    );
    ensure!(staff.client.devices().await?.len() == 1);

    // A leader cannot approve a link for someone else's account: it sees
    // only its own user's requests.
    let leaders = leader_apps(&relay, &staff, &["ann".into()]).await?;
    ensure!(leaders[0].client.link_requests().await?.is_empty());
    let code = pending.code().to_string();
    let refused = leaders[0].client.approve_link(&code).await.err();
    ensure!(refused.is_some(), "a leader approved staff's device");

    // The right code links it; a staff device receives the authority too.
    let (approved, linked) = tokio::join!(
        staff.client.approve_link(&code),
        pending.wait_for_approval(convene_tests::PATIENCE)
    );
    ensure!(approved? == linked?.device);
    let second = App::open(&relay.url, dir.path().to_path_buf(), "staff").await?;
    let invite = second
        .client
        .invite(&convene_client::trust::UserDetails {
            user_id: "cat".into(),
            display_name: "Cat".into(),
            role: convene_client::Role::Leader,
            sector: String::new(),
            certified: Default::default(),
        })
        .await?;
    ensure!(invite.code.starts_with("cvn2_"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_revoking_one_device_leaves_the_users_other_device_in_place() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &["ann".into(), "ben".into()]).await?;
    let [ann, ben] = <[App; 2]>::try_from(leaders).ok().context("two leaders")?;
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "ben".into()])
        .await?;
    let direct = ben.client.open_direct("ann").await?;
    ben.client.send_direct("ann", "hello").await?;
    ann.hears(&direct, "ben", "hello").await?;
    let ann2 = App::link(&relay.url, &ann).await?;
    let lost = ann2.device();
    for group in [&cohort.id, &direct] {
        ben.wait_group(group, |g| device_count(g, "ann") == 2)
            .await?;
    }

    staff
        .client
        .revoke_device("ann", lost.as_slice().try_into()?)
        .await?;
    let cut = ann2.client.clone();
    wait_until("the revoked device to be cut off", || {
        let status = cut.status();
        async move { status.revoked.then_some(()) }
    })
    .await?;
    // The revoked device says so and shows its groups closed.
    wait_until("the revoked device to close its groups", || {
        let groups = cut.groups();
        async move { groups.ok().filter(|g| g.iter().all(|g| !g.active)) }
    })
    .await?;
    // Staff take the device out of the cohort, the pair out of their
    // channel; ann's other device stays in both.
    for group in [&cohort.id, &direct] {
        ben.wait_group(group, |g| {
            g.members.iter().all(|m| m.device != lost) && device_count(g, "ann") == 1
        })
        .await?;
    }
    ben.client.send_text(&cohort.id, "still here?").await?;
    ben.client.send_direct("ann", "and here?").await?;
    ann.hears(&cohort.id, "ben", "still here?").await?;
    ann.hears(&direct, "ben", "and here?").await?;
    ensure!(!ann2
        .client
        .history(&cohort.id, 100)?
        .iter()
        .any(|m| m.text == "still here?"));
    Ok(())
}

/// A relay holds everything a link request carries. Answering the new
/// device with an approval of its own making (an authority it chose, a
/// user certified by it) must not make the new device trust it, even when
/// the user's real device approved the request with the right code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_approval_forged_by_the_relay_is_refused() -> Result<()> {
    use std::sync::{Arc, Mutex};

    use convene_client::trust::{Authority, UserDetails};
    use convene_client::TransportError;
    use convene_proto::relay::{request, response, LinkStatus};
    use convene_proto::trust::LinkBundle;
    use convene_tests::connectors::HookedConnector;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &["ann".into()]).await?;
    let ann = &leaders[0];
    let seen = Arc::new(Mutex::new(None));
    let forging = HookedConnector::answering(&relay.url, {
        let seen = seen.clone();
        Arc::new(
            move |sent: &request::Kind, answer: Result<response::Result, TransportError>| match (
                sent, answer,
            ) {
                (request::Kind::RequestLink(asked), answer) => {
                    *seen.lock().unwrap() = Some(asked.clone());
                    answer
                }
                (request::Kind::GetLink(_), Ok(response::Result::LinkStatus(status)))
                    if status.approved =>
                {
                    let asked = seen.lock().unwrap().clone().unwrap();
                    Ok(response::Result::LinkStatus(forged_approval(
                        &asked, status,
                    )))
                }
                (_, answer) => answer,
            },
        )
    });
    let dir = tempfile::tempdir()?;
    let pending = ClientBuilder::new(dir.path())
        .store_key(store_key("ann"))
        .relay_url(&relay.url)
        .connector(forging)
        .request_link("ann")
        .await?;
    let code = pending.code().to_string();
    let (_, linked) = tokio::join!(
        ann.client.approve_link(&code),
        pending.wait_for_approval(convene_tests::PATIENCE)
    );
    let refused = linked.err().context("the forged approval was accepted")?;
    ensure!(refused.code() == "untrusted", "{refused}");
    return Ok(());

    /// What a relay can make from the request alone: a bundle naming an
    /// authority of its own, sealed as the protocol seals it, with a guess
    /// at the code's secret digits.
    fn forged_approval(asked: &convene_proto::relay::RequestLink, real: LinkStatus) -> LinkStatus {
        let authority = Authority::generate();
        let device: [u8; 32] = asked.device_key.as_ref().try_into().unwrap();
        let details = UserDetails {
            user_id: "ann".into(),
            display_name: "Ann (the relay's)".into(),
            role: convene_client::Role::Leader,
            sector: String::new(),
            certified: Default::default(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (identity, credential) =
            authority.issue_direct_chain(&details, device.into(), now, 86_400_000);
        let bundle = LinkBundle {
            version: 1,
            authority_key: authority.public().to_vec(),
            identity_secret: identity.to_secret_bytes().to_vec(),
            credential,
            authority_secret: Vec::new(),
        };
        let guess = convene_client::link::LinkCode::parse("0000 0000 0000").unwrap();
        let answer =
            convene_client::link::answer("ann", &device, &asked.pake_message, &guess, &bundle)
                .unwrap();
        LinkStatus {
            sealed: answer.sealed.into(),
            pake_message: answer.pake_message.into(),
            ..real
        }
    }
}

/// A linked device that is lost and removed can never acknowledge
/// anything: the groups of its user must not fill up because of it. With a
/// log bound of 20, 21 messages after the removal are all accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_holds_no_group_back() -> Result<()> {
    use convene_tests::RelayOptions;

    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nmax_group_backlog = 20\n".into(),
        ..Default::default()
    })?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &["ann".into(), "ben".into()]).await?;
    let [ann, ben] = <[App; 2]>::try_from(leaders).ok().context("two leaders")?;
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "ben".into()])
        .await?;
    let ann2 = App::link(&relay.url, &ann).await?;
    for app in [&ann, &ben] {
        app.wait_group(&cohort.id, |g| device_count(g, "ann") == 2)
            .await?;
    }
    let lost = ann2.device();
    ann2.client.shutdown().await;
    ann.client.remove_device(&lost).await?;
    for i in 0..21 {
        ben.client
            .send_text(&cohort.id, &format!("message {i}"))
            .await
            .with_context(|| format!("message {i} was not accepted"))?;
    }
    ann.hears(&cohort.id, "ben", "message 20").await?;
    Ok(())
}

/// A relay that says "revoked" without a revocation the authority signed
/// cannot make a device give up for good: it keeps its groups and tries
/// again later (only a verified revocation closes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relays_word_alone_does_not_close_a_devices_groups() -> Result<()> {
    use std::sync::Arc;

    use convene_client::{RelayRefusal, TransportError};
    use convene_proto::relay::{request, response};
    use convene_tests::connectors::HookedConnector;

    let (relay, _staff, ann, cohort) = ann_in_a_cohort().await?;
    let stopped = ann.stop().await;
    let lying = HookedConnector::answering(
        &relay.url,
        Arc::new(
            |sent: &request::Kind, answer: Result<response::Result, TransportError>| match sent {
                request::Kind::Authenticate(_) => Err(TransportError::Refused(RelayRefusal {
                    code: ErrorCode::Revoked,
                    message: "revoked".into(),
                    current_epoch: 0,
                    retry_after_ms: 0,
                    revocation: Vec::new(),
                })),
                _ => answer,
            },
        ),
    );
    let client = ClientBuilder::new(&stopped.state_dir)
        .store_key(store_key("ann"))
        .relay_url(&relay.url)
        .connector(lying)
        .open()
        .await?;
    let refused = client.clone();
    wait_until("the relay's refusal", || {
        let status = refused.status();
        async move { status.revoked.then_some(()) }
    })
    .await?;
    let group = client.group(&cohort.id)?.context("ann's cohort")?;
    ensure!(group.active, "the relay's word alone closed the group");
    client.shutdown().await;
    Ok(())
}

/// A code typed wrong on the approving device (right request, wrong secret
/// digits): the new device refuses the approval, the approving device
/// finds out and takes the device back, and nothing of the user's waits
/// for a device that will never come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_link_code_links_nothing_and_blocks_nothing() -> Result<()> {
    let (relay, staff, ann, cohort) = ann_in_a_cohort().await?;
    let dir = tempfile::tempdir()?;
    let pending = ClientBuilder::new(dir.path())
        .store_key(store_key("ann"))
        .relay_url(&relay.url)
        .request_link("ann")
        .await?;
    let code = pending.code();
    let secret = &code[5..];
    let wrong_secret = if secret.starts_with('0') {
        "1111 1111"
    } else {
        "0000 0000"
    };
    let mistyped = format!("{} {wrong_secret}", &code[..4]);
    let (approved, linked) = tokio::join!(
        ann.client.approve_link(&mistyped),
        pending.wait_for_approval(convene_tests::PATIENCE)
    );
    ensure!(
        matches!(approved, Err(ClientError::InvalidArgument(_))),
        "{approved:?}"
    );
    let refused = linked
        .err()
        .context("the new device took a mistyped approval")?;
    ensure!(refused.code() == "untrusted", "{refused}");
    ensure!(
        ann.client.devices().await?.len() == 1,
        "a device was left linked"
    );
    ann.client.send_text(&cohort.id, "nothing waits").await?;
    staff.hears(&cohort.id, "ann", "nothing waits").await?;
    Ok(())
}

/// When a device last connected is its own user's to know (`convene
/// devices` shows it); the relay tells no-one else, to whom it would say
/// when the user is online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_device_was_last_seen_is_told_to_its_own_user_only() -> Result<()> {
    use convene_proto::relay::{request, response, GetUser};
    let relay = InProcessRelay::start_default()?;
    let staff = convene_tests::device::bootstrap_staff(&relay).await?;
    let leaders = convene_tests::device::enrol_leaders(&relay, &staff, &["ann", "ben"]).await?;
    let [ann, ben] = <[_; 2]>::try_from(leaders).ok().context("two leaders")?;
    let last_seen = async |asking: &convene_tests::device::TestDevice| -> Result<u64> {
        let answer = asking
            .conn
            .request(request::Kind::GetUser(GetUser {
                user_id: "ann".into(),
            }))
            .await?;
        let response::Result::User(user) = answer else {
            anyhow::bail!("not a user: {answer:?}");
        };
        user.devices
            .first()
            .map(|d| d.last_seen_ms)
            .context("ann has no device")
    };
    let before = convene_proto::now_ms();
    ensure!(
        last_seen(&ann).await? > 0,
        "ann is not told when her device was seen"
    );
    ensure!(last_seen(&ann).await? <= before + 60_000);
    ensure!(
        last_seen(&ben).await? == 0,
        "ben is told when ann was online"
    );
    ensure!(
        last_seen(&staff).await? == 0,
        "staff are told when ann was online"
    );
    Ok(())
}
