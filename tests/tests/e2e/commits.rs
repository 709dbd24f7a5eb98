//! The per-epoch commit gate: exactly one commit per (group, epoch).

use convene_proto::relay::{push, request, response, ErrorCode, GetGroup};
use convene_tests::device::{bootstrap_staff, enrol_leaders, group_of, random_id};
use convene_tests::{InProcessRelay, TestDevice};

async fn epoch(device: &TestDevice, group: &[u8]) -> u64 {
    let request = request::Kind::GetGroup(GetGroup {
        group_id: bytes::Bytes::copy_from_slice(group),
    });
    match device.conn.request(request).await.unwrap() {
        response::Result::GroupState(state) => state.epoch,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn two_commits_on_one_epoch_one_wins_the_other_learns_the_epoch() {
    let relay = InProcessRelay::start_default().unwrap();
    let members = group_of(&relay, &["ann", "bob", "cat"]).await.unwrap();
    let first = members[1].commit(b"g", 1, &[], &[]).await.unwrap();
    assert_eq!(first.epoch, 2);
    let second = members[2].commit(b"g", 1, &[], &[]).await.unwrap_err();
    let convene_client::TransportError::Refused(refusal) = second else {
        panic!("expected a refusal, got {second}");
    };
    assert_eq!(refusal.code, ErrorCode::StaleEpoch);
    assert_eq!(refusal.current_epoch, 2);
    assert_eq!(epoch(&members[0], b"g").await, 2);
}

#[tokio::test]
async fn simultaneous_commits_accept_exactly_one_and_only_its_welcome() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let mut members = enrol_leaders(&relay, &staff, &["ann", "bob", "cat", "dan", "eve"])
        .await
        .unwrap();
    members[0].create_group(b"g").await.unwrap();
    let (bob, cat) = (members[1].device(), members[2].device());
    members[0].commit(b"g", 0, &[bob, cat], &[]).await.unwrap();
    for member in &mut members {
        member.settle().await.unwrap();
    }
    // bob adds dan while cat adds eve, both on epoch 1.
    let (dan, eve) = ([members[3].device()], [members[4].device()]);
    let (by_bob, by_cat) = tokio::join!(
        members[1].commit(b"g", 1, &dan, &[]),
        members[2].commit(b"g", 1, &eve, &[])
    );
    assert!(
        by_bob.is_ok() != by_cat.is_ok(),
        "exactly one commit must win: {by_bob:?} {by_cat:?}"
    );
    let (winner_joiner, loser_joiner) = if by_bob.is_ok() { (3, 4) } else { (4, 3) };
    match members[winner_joiner].push().await.unwrap() {
        push::Kind::InboxMessage(welcome) => {
            assert_eq!((welcome.epoch, welcome.group_id.as_ref()), (2, &b"g"[..]))
        }
        other => panic!("expected the Welcome, got {other:?}"),
    }
    let nothing = members[loser_joiner]
        .push_within(std::time::Duration::from_millis(500))
        .await;
    assert!(
        nothing.is_none(),
        "the losing commit's Welcome was delivered: {nothing:?}"
    );
    assert_eq!(epoch(&members[0], b"g").await, 2);
}

#[tokio::test]
async fn a_commit_resubmitted_after_a_lost_response_is_applied_once() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob"]).await.unwrap();
    let ann = members.remove(0);
    let submission = random_id();
    // The request reaches the relay; the response is lost with the connection.
    let request = TestDevice::commit_request(b"g", 1, submission.clone(), &[], &[]);
    ann.conn.send_only(request.clone()).await.unwrap();
    // bob sees the commit land before ann reconnects.
    let seen = members[0].group_messages(1).await.unwrap();
    assert_eq!(seen[0].epoch, 1);
    let mut ann = ann.reconnect(&relay.url).await.unwrap();

    // ann's own stream carries the receipt of its commit.
    let backlog = ann.catch_up().await.unwrap();
    let receipt = backlog
        .iter()
        .find_map(|p| match p {
            push::Kind::Receipt(r) if r.submission_id == submission => Some(r.clone()),
            _ => None,
        })
        .expect("a receipt for the accepted commit");
    assert_eq!(
        receipt.epoch, 1,
        "the receipt names the epoch the commit was built on"
    );

    // Resubmitting answers the first outcome and changes nothing.
    let response::Result::CommitAccepted(again) = ann.conn.request(request).await.unwrap() else {
        panic!("expected the first outcome");
    };
    assert_eq!((again.epoch, again.position), (2, receipt.position));
    assert_eq!(epoch(&ann, b"g").await, 2);
    assert!(members[0]
        .push_within(std::time::Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn only_members_may_post_and_removed_members_stop_receiving() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut members = group_of(&relay, &["ann", "bob", "cat"]).await.unwrap();
    let cat = members[2].device();
    let removal = members[0].commit(b"g", 1, &[], &[cat]).await.unwrap();
    members[0].send(b"g", b"after removal").await.unwrap();
    // cat gets the commit that removes it, and nothing after.
    let got = members[2].group_messages(1).await.unwrap();
    assert_eq!(got[0].position, removal.position);
    assert!(members[2]
        .push_within(std::time::Duration::from_millis(500))
        .await
        .is_none());
    let refused = members[2].send(b"g", b"still here?").await.unwrap_err();
    assert_eq!(refused.refusal_code(), Some(ErrorCode::NotAMember));
    // bob gets both.
    assert_eq!(members[1].group_messages(2).await.unwrap().len(), 2);
}
