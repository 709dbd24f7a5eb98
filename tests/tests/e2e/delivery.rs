//! Store and forward: backlog in order after reconnecting, pushes while
//! connected, receipts for the sender, and deletion once everyone acked.

use std::time::Duration;

use bytes::Bytes;
use convene_client::TransportError;
use convene_proto::ids::GroupId;
use convene_proto::relay::{push, request, response, ErrorCode, MessageKind, SendMessage};
use convene_tests::device::{group_of, opaque};
use convene_tests::{InProcessRelay, RelayProcess, TestDevice};

#[tokio::test]
async fn an_offline_device_gets_its_backlog_in_order_and_acked_entries_are_deleted() {
    let mut relay = RelayProcess::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob", "cat"]).await.unwrap();
    let cat = members.pop().unwrap().vanish();

    let texts = ["first", "second", "third"];
    for text in texts {
        members[0].send(b"g", text.as_bytes()).await.unwrap();
    }
    // bob is online and gets them as they come.
    let live = members[1].group_messages(3).await.unwrap();
    assert_eq!(
        live.iter().map(|m| opaque(&m.payload)).collect::<Vec<_>>(),
        texts.map(str::as_bytes)
    );

    // cat reconnects and gets the three in order, then CaughtUp.
    let mut cat = TestDevice::connect(&relay.url, cat).await.unwrap();
    let backlog = cat.catch_up().await.unwrap();
    let messages: Vec<_> = backlog
        .iter()
        .filter_map(|p| match p {
            push::Kind::GroupMessage(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages
            .iter()
            .map(|m| opaque(&m.payload))
            .collect::<Vec<_>>(),
        texts.map(str::as_bytes)
    );
    assert!(messages.windows(2).all(|w| w[0].position < w[1].position));
    assert!(messages
        .iter()
        .all(|m| m.kind == MessageKind::Application as i32
            && m.sender_device.as_ref() == members[0].device()));

    // Until cat acknowledges, the entries stay; the sender's own receipts
    // must be acknowledged too.
    for receipt in members[0].settle().await.unwrap() {
        assert!(
            matches!(receipt, push::Kind::Receipt(_)),
            "the sender gets receipts, not copies: {receipt:?}"
        );
    }
    for message in &messages {
        cat.ack_group(b"g", message.position).await.unwrap();
    }
    relay.terminate(Duration::from_secs(10)).unwrap();
    let store = relay.open_store().unwrap();
    assert_eq!(
        store
            .stored_log_entries(&GroupId::from_field(b"g").unwrap())
            .unwrap(),
        0,
        "acknowledged entries are deleted"
    );
}

#[tokio::test]
async fn unacknowledged_entries_are_redelivered_and_kept() {
    let mut relay = RelayProcess::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    members[0].send(b"g", b"hello").await.unwrap();
    let bob = members.pop().unwrap();
    // bob reads without acknowledging, then drops off.
    let mut bob = bob;
    let first = loop {
        if let push::Kind::GroupMessage(m) = bob.push().await.unwrap() {
            break m;
        }
    };
    let mut bob = TestDevice::connect(&relay.url, bob.vanish()).await.unwrap();
    let again = bob.group_messages(1).await.unwrap();
    assert_eq!(
        (again[0].position, &again[0].payload),
        (first.position, &first.payload)
    );
    members[0].settle().await.unwrap();
    relay.terminate(Duration::from_secs(10)).unwrap();
    let store = relay.open_store().unwrap();
    assert_eq!(
        store
            .stored_log_entries(&GroupId::from_field(b"g").unwrap())
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_slow_acknowledger_is_sent_a_bounded_window() {
    let relay = InProcessRelay::start(convene_tests::RelayOptions {
        config_toml: "[limits]\npush_window = 4\n".into(),
        ..Default::default()
    })
    .unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    for i in 0..10 {
        members[0]
            .send(b"g", format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    // Without acknowledgements, bob gets exactly the window.
    let mut unacked = Vec::new();
    while let Some(push) = members[1].push_within(Duration::from_millis(500)).await {
        if let push::Kind::GroupMessage(m) = push {
            unacked.push(m);
        }
    }
    assert_eq!(unacked.len(), 4);
    // Acknowledging opens the window again.
    let last = unacked.last().unwrap().position;
    members[1].ack_group(b"g", last).await.unwrap();
    let rest = members[1].group_messages(6).await.unwrap();
    assert_eq!(rest.first().unwrap().position, last + 1);
}

/// One stream the device has not acknowledged never holds back another
/// (the window is per stream): case 1 of the liveness issue, at the relay.
#[tokio::test]
async fn a_stream_left_unacknowledged_does_not_hold_back_another() {
    let relay = InProcessRelay::start(convene_tests::RelayOptions {
        config_toml: "[limits]\npush_window = 4\n".into(),
        ..Default::default()
    })
    .unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    let bob = members[1].device();
    members[0].create_group(b"h").await.unwrap();
    members[0].commit(b"h", 0, &[bob], &[]).await.unwrap();
    members[1].settle().await.unwrap();

    // Bob holds group g's entries without acknowledging them...
    for i in 0..10 {
        members[0]
            .send(b"g", format!("g{i}").as_bytes())
            .await
            .unwrap();
    }
    let mut held = 0;
    while let Some(push) = members[1].push_within(Duration::from_millis(300)).await {
        if matches!(push, push::Kind::GroupMessage(_)) {
            held += 1;
        }
    }
    assert_eq!(held, 4, "the window of g");
    // ...and group h still reaches him.
    members[0].send(b"h", b"still here").await.unwrap();
    let message = loop {
        match members[1].push().await.unwrap() {
            push::Kind::GroupMessage(m) => break m,
            _ => continue,
        }
    };
    assert_eq!(
        (message.group_id.as_ref(), opaque(&message.payload)),
        (&b"h"[..], &b"still here"[..])
    );
}

/// Case 10 of the liveness issue at the relay: a device that never comes
/// back does not stop the group; when it does come back it is told what it
/// missed.
#[tokio::test]
async fn a_device_away_past_the_log_bound_is_told_what_it_missed() {
    let relay = InProcessRelay::start(convene_tests::RelayOptions {
        config_toml: "[limits]\nmax_group_backlog = 20\n".into(),
        ..Default::default()
    })
    .unwrap();
    let mut members = group_of(&relay, &["ann", "bob", "cat"]).await.unwrap();
    let cat = members.pop().unwrap().vanish();
    for i in 0..30 {
        members[0]
            .send(b"g", format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    members[1].group_messages(30).await.unwrap();

    let mut cat = TestDevice::connect(&relay.url, cat).await.unwrap();
    let pushes = cat.catch_up().await.unwrap();
    let gap = pushes
        .iter()
        .find_map(|p| match p {
            push::Kind::StreamGap(gap) => Some(gap.clone()),
            _ => None,
        })
        .expect("a StreamGap");
    // Cat had the commit at 1; 2..=11 went (31 entries, 20 kept).
    assert_eq!((gap.after, gap.through, gap.epoch), (1, 11, 1));
    let positions: Vec<u64> = pushes
        .iter()
        .filter_map(|p| match p {
            push::Kind::GroupMessage(m) => Some(m.position),
            _ => None,
        })
        .collect();
    assert_eq!(positions, (12..=31).collect::<Vec<_>>());
}

/// Asks group "g" to re-add `device` with `key_package`.
async fn ask_to_rejoin(
    device: &TestDevice,
    key_package: Vec<u8>,
) -> Result<response::Result, TransportError> {
    device
        .conn
        .request(request::Kind::SendMessage(SendMessage {
            group_id: Bytes::from_static(b"g"),
            kind: MessageKind::Rejoin as i32,
            submission_id: convene_tests::device::random_id(),
            payload: key_package.into(),
        }))
        .await
}

/// A KeyPackage `key` made to rejoin group "g" (its chain is not checked by
/// the relay, only whose key signed it and its lifetime).
fn rejoin_key_package(key: &convene_client::DeviceKey) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store =
        convene_client::store::LocalStore::open(dir.path(), &convene_client::StoreKey::generate())
            .unwrap();
    let crypto = openmls_rust_crypto::RustCrypto::default();
    let ops = convene_client::mls::MlsOps::new(
        &crypto,
        &store,
        key,
        "someone",
        b"a chain the relay does not read",
        convene_client::trust::TrustAnchor::new([0; 32]),
    );
    let made = ops
        .rejoin_key_package(&GroupId::from_field(b"g").unwrap(), 0)
        .unwrap();
    made.one_time.into_iter().next().unwrap()
}

/// A request to be re-added costs every member a commit: the relay takes
/// one per device and group every `REJOIN_SPACING` (10 s), and only with
/// the sender's own KeyPackage, so no device can make a group churn or have
/// another device re-added.
#[tokio::test]
async fn rejoin_requests_carry_the_senders_key_package_and_are_spaced() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    let refusal = |result: Result<response::Result, TransportError>| match result {
        Err(TransportError::Refused(r)) => Some(r),
        _ => None,
    };
    let bobs = rejoin_key_package(&members[1].key);
    let r = refusal(ask_to_rejoin(&members[0], bobs).await).expect("bob's KeyPackage from ann");
    assert_eq!(r.code, ErrorCode::InvalidArgument);

    let anns = rejoin_key_package(&members[0].key);
    ask_to_rejoin(&members[0], anns.clone()).await.unwrap();
    let heard = members[1].group_messages(1).await.unwrap();
    assert_eq!(heard[0].kind, MessageKind::Rejoin as i32);
    let r = refusal(ask_to_rejoin(&members[0], anns).await).expect("a second request at once");
    assert_eq!(r.code, ErrorCode::RateLimited);
    assert!((1..=10_000).contains(&r.retry_after_ms), "{r:?}");
    // Bob may still ask for himself.
    ask_to_rejoin(&members[1], rejoin_key_package(&members[1].key))
        .await
        .unwrap();
}

/// A device that fetched its removal and was added back later, on the same
/// connection, is sent nothing from its absence: the next entry it gets is
/// the first after its return (RFC 9420 section 12.4: a removed member gets
/// the removing commit and nothing of the epochs it was not in).
#[tokio::test]
async fn a_device_added_back_after_it_left_is_sent_nothing_from_its_absence() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    let bob = members[1].device();
    members[0].commit(b"g", 1, &[], &[bob]).await.unwrap();
    // bob gets his removal and acknowledges it; the relay writes
    // acknowledgements at each group's turn, at least once every 2 s, and
    // then forgets him as a follower of the group.
    members[1].settle().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let absent = members[0].send(b"g", b"while bob was away").await.unwrap();
    let back = members[0].commit(b"g", 2, &[bob], &[]).await.unwrap();
    let after = members[0].send(b"g", b"welcome back").await.unwrap();

    let first = loop {
        match members[1].push().await.unwrap() {
            push::Kind::GroupMessage(m) if m.group_id.as_ref() == b"g" => break m,
            push::Kind::Receipt(r) if r.group_id.as_ref() == b"g" => {
                panic!("bob was sent a receipt at {}", r.position)
            }
            _ => continue,
        }
    };
    assert_ne!(first.position, absent, "sent what was said in his absence");
    assert!(back.position < after);
    assert_eq!(
        (first.position, opaque(&first.payload)),
        (after, &b"welcome back"[..])
    );
}
