//! One-to-one channels: exactly one per pair of users, however they open it.

use anyhow::Result;
use convene_client::GroupKind;
use convene_tests::app::{leader_apps, staff_app, App};
use convene_tests::InProcessRelay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_opening_a_direct_channel_at_once_share_one() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["chief.constable".to_string(), "fire.chief".to_string()];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");

    // Both send their first message to the other at the same moment.
    let (a, b) = tokio::join!(
        ana.client.send_direct(&ben.user, "hello from ana"),
        ben.client.send_direct(&ana.user, "hello from ben"),
    );
    let (a, b) = (a?, b?);
    assert_eq!(a.group, b.group, "both messages went to one channel");

    for (app, other) in [(&ana, &ben), (&ben, &ana)] {
        let history = app.wait_history(&a.group, 2).await?;
        let mut texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
        texts.sort();
        assert_eq!(texts, ["hello from ana", "hello from ben"], "{}", app.user);
        let channel = app.client.direct_channel(&other.user)?;
        assert_eq!(channel.as_ref(), Some(&a.group));
        let directs: Vec<_> = app
            .client
            .groups()?
            .into_iter()
            .filter(|g| g.kind == GroupKind::Direct)
            .collect();
        assert_eq!(directs.len(), 1, "{}: {directs:?}", app.user);
        assert_eq!(directs[0].name, other.user);
        assert_eq!(directs[0].users().len(), 2);
    }
    let (x, y) = (
        ana.client.group(&a.group)?.expect("ana's view"),
        ben.client.group(&a.group)?.expect("ben's view"),
    );
    assert_eq!(x.epoch_authenticator, y.epoch_authenticator);

    // Opening it again finds the same channel.
    assert_eq!(ana.client.open_direct(&ben.user).await?, a.group);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_to_an_unknown_user_is_refused_clearly() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let err = staff
        .client
        .send_direct("nobody", "hello")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_user", "{err}");
    assert!(staff.client.groups()?.is_empty());
    Ok(())
}

/// Both users open their channel at once, many times over, with random
/// delays injected into each side's requests: it always converges on one
/// channel with both first messages delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_channel_opened_from_both_sides_converges_whatever_the_timing() -> Result<()> {
    use convene_client::transport::BoxFuture;
    use convene_proto::relay::request;
    use convene_tests::connectors::{HookedConnector, RequestHook};
    use rand::Rng;
    use std::sync::Arc;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let delays: RequestHook = Arc::new(|kind: request::Kind| {
        Box::pin(async move {
            if matches!(
                kind,
                request::Kind::CreateGroup(_)
                    | request::Kind::GetGroup(_)
                    | request::Kind::ClaimKeyPackages(_)
                    | request::Kind::SubmitCommit(_)
                    | request::Kind::SendMessage(_)
            ) {
                let ms = rand::thread_rng().gen_range(0..80);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            kind
        }) as BoxFuture<'static, request::Kind>
    });
    for round in 0..12 {
        let names = vec![format!("a{round}"), format!("b{round}")];
        let leaders = leader_apps(&relay, &staff, &names).await?;
        let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
        let ana = ana
            .reopen_with(HookedConnector::hooked(&relay.url, delays.clone()))
            .await?;
        let ben = ben
            .reopen_with(HookedConnector::hooked(&relay.url, delays.clone()))
            .await?;
        let (a, b) = tokio::join!(
            ana.client.send_direct(&ben.user, "first from ana"),
            ben.client.send_direct(&ana.user, "first from ben"),
        );
        let (a, b) = (a?, b?);
        assert_eq!(a.group, b.group, "round {round}: two channels");
        ana.hears(&a.group, &ben.user, "first from ben").await?;
        ben.hears(&a.group, &ana.user, "first from ana").await?;
    }
    Ok(())
}

/// A direct channel's id is a public function of its two users; a third
/// user who registers it first must not keep them from talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_user_cannot_squat_a_direct_channels_id() -> Result<()> {
    use bytes::Bytes;
    use convene_client::{direct_group_id, Role};
    use convene_proto::relay::{request, CreateGroup, ErrorCode};
    use convene_tests::app::raw_device;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["ana".to_string(), "ben".to_string()];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let squatter = raw_device(&relay, &staff, "sam", Role::Leader).await?;

    let id = direct_group_id("ana", "ben");
    let pairs: [Vec<String>; 3] = [
        Vec::new(),
        vec!["ana".into(), "ben".into()],
        vec!["ana".into(), "sam".into()],
    ];
    for direct_pair in pairs {
        let squat = request::Kind::CreateGroup(CreateGroup {
            group_id: Bytes::from(id.clone()),
            direct_pair: direct_pair.clone(),
        });
        match squatter.conn.request(squat).await {
            Err(convene_client::TransportError::Refused(r)) => {
                assert_eq!(r.code, ErrorCode::Forbidden, "{direct_pair:?}: {r}")
            }
            other => panic!("squatting with {direct_pair:?} was not refused: {other:?}"),
        }
    }

    let sent = ana.client.send_direct("ben", "only for you").await?;
    assert_eq!(sent.group, id);
    ben.hears(&sent.group, "ana", "only for you").await?;
    Ok(())
}

/// A member cannot make a group of its own stand in for a direct channel:
/// a Welcome into a "direct channel" whose id is not its pair's is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_channel_away_from_its_pairs_id_is_refused() -> Result<()> {
    use bytes::Bytes;
    use convene_client::trust::TrustAnchor;
    use convene_client::Event;
    use convene_proto::content::{GroupKind as WireKind, GroupMeta, MembershipPolicy};
    use convene_proto::relay::{request, response, ClaimKeyPackages, SubmitCommit};
    use convene_tests::app::{authority_of, continuity_of, device_key_of};
    use convene_tests::tampered::with_ops;
    use convene_tests::TestDevice;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["ana".to_string(), "sam".to_string()];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [mut ana, sam] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    let anchor = TrustAnchor::new(authority_of(&staff.stop().await.state_dir)?.public());

    // Sam's tampered client makes a "direct channel" with ana at an id of
    // its choosing, and invites her.
    let sam = sam.stop().await;
    let sam_device = device_key_of(&sam.state_dir, "sam")?;
    let conn = TestDevice::connect_continuing(
        &relay.url,
        sam_device,
        continuity_of(&sam.state_dir, "sam")?,
    )
    .await?;
    let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec!["ana".into()],
        device_keys: Vec::new(),
    });
    let claimed = match conn.conn.request(claim).await? {
        response::Result::ClaimedKeyPackages(c) => c.key_packages,
        other => anyhow::bail!("no KeyPackage: {other:?}"),
    };
    let ana_kp = claimed.first().expect("one KeyPackage").clone();
    let group_id = convene_proto::ids::GroupId::from_field(b"not-the-pairs-id")?;
    let meta = GroupMeta {
        version: 1,
        kind: WireKind::Direct as i32,
        direct_pair: vec!["ana".into(), "sam".into()],
        membership: MembershipPolicy::Pair as i32,
        ..Default::default()
    };
    conn.create_group(&group_id).await?;
    let bundle = with_ops(&sam.state_dir, "sam", anchor, true, |ops| {
        let mut group = ops.create_group(&group_id, &meta, false)?;
        let device: [u8; 32] = ana_kp.device_key.as_ref().try_into()?;
        let kp = ops.parse_key_package(&ana_kp.key_package, "ana", &device)?;
        let bundle = ops.add(&mut group, &[kp])?;
        ops.merge_pending(&mut group)?;
        Ok(bundle)
    })?;
    let submit = request::Kind::SubmitCommit(SubmitCommit {
        group_id: Bytes::from(group_id.clone()),
        epoch: 0,
        submission_id: convene_tests::device::random_id(),
        commit: Bytes::from(bundle.commit),
        welcome: Bytes::from(bundle.welcome),
        ratchet_tree: Bytes::new(),
        group_info: Bytes::from(bundle.group_info),
        added_devices: vec![ana_kp.device_key.clone()],
        removed_devices: Vec::new(),
    });
    conn.conn.request(submit).await?;

    let detail = ana
        .wait_event(|e| match e {
            Event::Untrusted {
                group: Some(g),
                detail,
            } if *g == group_id => Some(detail.clone()),
            _ => None,
        })
        .await?;
    assert!(detail.contains("not its pair's"), "{detail}");
    assert_eq!(ana.client.direct_channel("sam")?, None);
    Ok(())
}

/// A direct channel whose first add failed (the other user could not be
/// added then) is repaired before the next text, not used with one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_channel_whose_first_add_failed_is_repaired_before_use() -> Result<()> {
    use convene_client::TransportError;
    use convene_proto::relay::{request, response, ClaimedKeyPackages};
    use convene_tests::connectors::HookedConnector;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let names = vec!["ana".to_string(), "ben".to_string()];
    let leaders = leader_apps(&relay, &staff, &names).await?;
    let [ana, ben] = <[App; 2]>::try_from(leaders).ok().expect("two leaders");
    // The first claim of ben's KeyPackages finds none.
    let failed = Arc::new(AtomicBool::new(false));
    let respond = {
        let failed = failed.clone();
        Arc::new(
            move |sent: &request::Kind, answer: Result<_, TransportError>| match sent {
                request::Kind::ClaimKeyPackages(_) if !failed.swap(true, Ordering::SeqCst) => {
                    Ok(response::Result::ClaimedKeyPackages(ClaimedKeyPackages {
                        key_packages: Vec::new(),
                        unavailable_devices: Vec::new(),
                    }))
                }
                _ => answer,
            },
        )
    };
    let ana = ana
        .reopen_with(HookedConnector::answering(&relay.url, respond))
        .await?;
    let first = ana.client.send_direct("ben", "first try").await;
    assert!(first.is_err(), "sent with nobody to read it: {first:?}");
    assert!(failed.load(Ordering::SeqCst));

    let sent = ana.client.send_direct("ben", "second try").await?;
    ben.hears(&sent.group, "ana", "second try").await?;
    Ok(())
}
