//! Durability: what the relay acknowledged survives SIGKILL.

use std::collections::BTreeSet;
use std::sync::Arc;

use convene_client::DeviceKey;
use convene_proto::relay::{push, response};
use convene_tests::device::{bootstrap_staff, enrol_leaders, opaque, random_id};
use convene_tests::{RelayProcess, TestDevice};

/// Ann in group "g" at epoch 1 with Bob, whose device then goes away:
/// Ann's connection and Bob's key, to connect later.
async fn ann_and_absent_bob(relay: &RelayProcess) -> (TestDevice, DeviceKey) {
    let staff = bootstrap_staff(relay).await.unwrap();
    let mut members = enrol_leaders(relay, &staff, &["ann", "bob"]).await.unwrap();
    members[0].create_group(b"g").await.unwrap();
    let bob_device = members[1].device();
    members[0]
        .commit(b"g", 0, &[bob_device], &[])
        .await
        .unwrap();
    let bob_key = members.pop().unwrap().vanish();
    (members.pop().unwrap(), bob_key)
}

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill() {
    let mut relay = RelayProcess::start_default().unwrap();
    let (ann, bob_key) = ann_and_absent_bob(&relay).await;
    let ann = Arc::new(ann);

    // A burst of 400 pipelined sends; the relay is killed once 200 are
    // acknowledged, while the rest are in flight.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sends = Vec::new();
    for i in 0..400u32 {
        let ann = ann.clone();
        let acked_tx = acked_tx.clone();
        sends.push(tokio::spawn(async move {
            let request = TestDevice::message_request(b"g", 1, random_id(), &i.to_be_bytes());
            if let Ok(response::Result::MessageAccepted(_)) = ann.conn.request(request).await {
                let _ = acked_tx.send(i);
            }
        }));
    }
    drop(acked_tx);
    let mut acknowledged = BTreeSet::new();
    while acknowledged.len() < 200 {
        acknowledged.insert(
            acked_rx
                .recv()
                .await
                .expect("the relay acknowledged fewer than 200"),
        );
    }
    relay.kill().unwrap();
    for send in sends {
        let _ = send.await;
    }
    while let Ok(i) = acked_rx.try_recv() {
        acknowledged.insert(i);
    }

    relay.restart().unwrap();
    let mut bob = TestDevice::connect(&relay.url, bob_key).await.unwrap();
    let mut delivered = BTreeSet::new();
    for push in bob.catch_up().await.unwrap() {
        if let push::Kind::GroupMessage(m) = push {
            let bytes: [u8; 4] = opaque(&m.payload).try_into().unwrap();
            assert!(
                delivered.insert(u32::from_be_bytes(bytes)),
                "delivered twice after restart"
            );
        }
    }
    let lost: Vec<_> = acknowledged.difference(&delivered).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {lost:?}",
        lost.len()
    );
    eprintln!(
        "acknowledged {} of 400 before SIGKILL; delivered {}",
        acknowledged.len(),
        delivered.len()
    );
}

/// A message resubmitted after the relay restarted (its answer lost with
/// the connection) is answered with its first position and stored once:
/// the relay finds it in the group log, with no record written for it.
#[tokio::test]
async fn a_message_resubmitted_after_a_restart_is_stored_once() {
    let mut relay = RelayProcess::start_default().unwrap();
    let (ann, bob_key) = ann_and_absent_bob(&relay).await;

    let id = random_id();
    let first = match ann
        .conn
        .request(TestDevice::message_request(b"g", 1, id.clone(), b"once"))
        .await
        .unwrap()
    {
        response::Result::MessageAccepted(accepted) => accepted,
        other => panic!("not accepted: {other:?}"),
    };
    ann.send(b"g", b"after").await.unwrap();
    relay.kill().unwrap();
    relay.restart().unwrap();

    let ann = ann.reconnect(&relay.url).await.unwrap();
    let again = match ann
        .conn
        .request(TestDevice::message_request(b"g", 1, id, b"once"))
        .await
        .unwrap()
    {
        response::Result::MessageAccepted(accepted) => accepted,
        other => panic!("not accepted: {other:?}"),
    };
    assert_eq!(again.position, first.position);
    let mut bob = TestDevice::connect(&relay.url, bob_key).await.unwrap();
    let payloads: Vec<Vec<u8>> = bob
        .catch_up()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|push| match push {
            push::Kind::GroupMessage(m) => Some(opaque(&m.payload).to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, vec![b"once".to_vec(), b"after".to_vec()]);
}
