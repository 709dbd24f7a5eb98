//! Quotas on what one device or user may make the relay hold or do for
//! others (groups, inbox entries, proposals from outside), alone and all
//! at once, while bystanders keep talking.

use bytes::Bytes;
use convene_proto::relay::{request, ErrorCode};
use convene_tests::bystander::Bystanders;
use convene_tests::{InProcessRelay, RelayOptions, RelayProcess, TestDevice};
use std::time::{Duration, Instant};

use super::{attacker_key, relay, LIMITS};

/// A device creates a bounded number of groups an hour (each can carry
/// junk Welcomes to others): past it, `CreateGroup` is refused with a
/// retry time; other devices create theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_creating_groups_without_pause_is_rate_limited() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\ngroups_per_device = 3\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = convene_tests::device::bootstrap_staff(&relay)
        .await
        .unwrap();
    let leaders = convene_tests::device::enrol_leaders(&relay, &staff, &["mallory", "ann"])
        .await
        .unwrap();
    for i in 0..3u8 {
        leaders[0].create_group(&[b'm', i]).await.unwrap();
    }
    match leaders[0].create_group(b"m3").await {
        Err(convene_client::TransportError::Refused(r)) => {
            assert_eq!(r.code, ErrorCode::RateLimited, "{r}");
            assert!(r.retry_after_ms > 0);
        }
        other => panic!("a fourth group in the hour was created: {other:?}"),
    }
    leaders[1].create_group(b"ann's").await.unwrap();
}

/// One device adding an offline user to group after group (each with a
/// junk Welcome) gets `rate_limited` past its share of her inbox, and
/// staff can still add her: the inbox is not full for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_cannot_fill_a_devices_inbox() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nmax_inbox = 10\nmax_inbox_per_sender = 3\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = convene_tests::device::bootstrap_staff(&relay)
        .await
        .unwrap();
    let leaders = convene_tests::device::enrol_leaders(&relay, &staff, &["mallory", "ann"])
        .await
        .unwrap();
    let (mallory, ann) = (&leaders[0], leaders[1].device());
    for i in 0..3u8 {
        mallory.create_group(&[b'm', i]).await.unwrap();
        mallory.commit(&[b'm', i], 0, &[ann], &[]).await.unwrap();
    }
    mallory.create_group(b"m3").await.unwrap();
    match mallory.commit(b"m3", 0, &[ann], &[]).await {
        Err(convene_client::TransportError::Refused(r)) => {
            assert_eq!(r.code, ErrorCode::RateLimited, "{r}");
            assert!(r.retry_after_ms > 0);
        }
        other => panic!("a fourth Welcome from one sender was kept: {other:?}"),
    }
    staff.create_group(b"cohort").await.unwrap();
    staff.commit(b"cohort", 0, &[ann], &[]).await.unwrap();
}

/// A staff device's proposals reach groups as their manager from outside,
/// so they are bounded per device: past `outside_proposals_per_device` an
/// hour they are refused with a retry time, and other staff go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_device_proposing_without_pause_is_rate_limited() {
    use convene_proto::mls_frame::{frame_private_message, ContentType};
    use convene_proto::relay::{MessageKind, SendMessage};

    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\noutside_proposals_per_device = 3\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = convene_tests::device::bootstrap_staff(&relay)
        .await
        .unwrap();
    staff.create_group(b"cohort").await.unwrap();
    let propose = || {
        request::Kind::SendMessage(SendMessage {
            group_id: Bytes::from_static(b"cohort"),
            kind: MessageKind::Proposal as i32,
            submission_id: convene_tests::device::random_id(),
            payload: Bytes::from(frame_private_message(
                b"cohort",
                0,
                ContentType::Proposal,
                b"remove someone",
            )),
        })
    };
    for _ in 0..3 {
        staff.conn.request(propose()).await.unwrap();
    }
    match staff.conn.request(propose()).await {
        Err(convene_client::TransportError::Refused(r)) => {
            assert_eq!(r.code, ErrorCode::RateLimited, "{r}");
            assert!(r.retry_after_ms > 0);
        }
        other => panic!("a fourth proposal in the hour was kept: {other:?}"),
    }
}

/// Every per-device quota hit at once by one raw attacker (a leader) and
/// one hostile staff device, while two bystanders keep talking: each gets
/// `rate_limited`, and the bystanders' delivery goes on. Prints the
/// bystanders' latency beside a quiet relay's in the same run (no speed is
/// asserted; docs/RELIABILITY.md collects the figures).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hit_together_leave_other_users_latency_alone() {
    use convene_proto::mls_frame::{frame_private_message, ContentType};
    use convene_proto::relay::{BeginBlob, ClaimKeyPackages, MessageKind, SendMessage};

    let quiet = relay();
    let baseline = Bystanders::start(&quiet).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = baseline.stop().await.unwrap();

    // The same kind of relay as the quiet one, so that the figures compare.
    let relay = RelayProcess::start(RelayOptions {
        config_toml: format!(
            "{LIMITS}key_package_claims_per_claimer = 20\ngroups_per_device = 20\n\
             max_inbox_per_sender = 5\nblob_bytes_per_user = 1000000\n\
             outside_proposals_per_device = 20\n"
        ),
        log_filter: Some("info".into()),
        ..Default::default()
    })
    .unwrap();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let key = attacker_key(&relay, &bystanders.staff).await;
    let mallory = TestDevice::connect(&relay.url, key).await.unwrap();
    let victim = convene_tests::device::enrol_leaders(&relay, &bystanders.staff, &["vic"])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .vanish()
        .public()
        .0;
    fn limited<T>(result: Result<T, convene_client::TransportError>) -> bool {
        matches!(
            result.err().and_then(|e| e.refusal_code()),
            Some(ErrorCode::RateLimited)
        )
    }
    let (mut claims, mut groups, mut inbox, mut blobs, mut proposals) = (0, 0, 0, 0, 0);
    let started = Instant::now();
    for round in 0..40u32 {
        let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
            user_ids: vec!["vic".into()],
            device_keys: Vec::new(),
        });
        claims += u32::from(limited(mallory.conn.request(claim).await));
        let group = format!("junk-{round}").into_bytes();
        match mallory.create_group(&group).await {
            Ok(()) => {
                inbox += u32::from(limited(
                    mallory.commit(&group, 0, &[victim], &[]).await.map(|_| ()),
                ))
            }
            Err(err) => groups += u32::from(limited(Err::<(), _>(err))),
        }
        let begin = request::Kind::BeginBlob(BeginBlob { size: 400_000 });
        blobs += u32::from(limited(mallory.conn.request(begin).await));
        let propose = request::Kind::SendMessage(SendMessage {
            group_id: Bytes::from_static(convene_tests::bystander::GROUP),
            kind: MessageKind::Proposal as i32,
            submission_id: convene_tests::device::random_id(),
            payload: Bytes::from(frame_private_message(
                convene_tests::bystander::GROUP,
                1,
                ContentType::Proposal,
                b"junk proposal",
            )),
        });
        proposals += u32::from(limited(bystanders.staff.conn.request(propose).await));
    }
    // Then the attacker keeps at it for two seconds, refused each time,
    // while the bystanders talk.
    while started.elapsed() < Duration::from_secs(2) {
        let group = convene_tests::device::random_id();
        let _ = mallory.create_group(&group).await;
        let begin = request::Kind::BeginBlob(BeginBlob { size: 400_000 });
        let _ = mallory.conn.request(begin).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let attack = started.elapsed();
    let latency = bystanders.stop().await.unwrap();
    for (quota, refused) in [
        ("claims", claims),
        ("groups", groups),
        ("inbox", inbox),
        ("blobs", blobs),
        ("proposals", proposals),
    ] {
        assert!(refused > 0, "the {quota} quota never refused the attacker");
    }
    eprintln!(
        "quotas hit in {attack:?} (rate_limited: claims {claims}, groups {groups}, inbox \
         {inbox}, blobs {blobs}, proposals {proposals}); bystanders under attack: {latency}; \
         quiet relay: {baseline}; p99 ratio {:.2}",
        latency.p99_ms / baseline.p99_ms
    );
}
