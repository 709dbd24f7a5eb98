//! Bad input on one connection: that connection gets errors or is closed;
//! everyone else carries on.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use convene_proto::relay::{envelope::Body, response, Envelope, ErrorCode};
use convene_tests::device::{bootstrap_staff, group_of, opaque};
use convene_tests::{InProcessRelay, TestDevice};

use convene_tests::raw::RawSocket;

async fn raw(relay: &InProcessRelay) -> RawSocket {
    let (socket, _) = tokio_tungstenite::connect_async(relay.url.as_str())
        .await
        .unwrap();
    socket
}

/// Reads until the relay closes; returns the error codes it sent and the
/// close code.
async fn drain(socket: &mut RawSocket) -> (Vec<i32>, Option<u16>) {
    let mut codes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, socket.next()).await {
        match message {
            Ok(Message::Binary(bytes)) => {
                if let Ok(Envelope {
                    body: Some(Body::Response(r)),
                    ..
                }) = convene_proto::decode_envelope(bytes)
                {
                    if let Some(response::Result::Error(e)) = r.result {
                        codes.push(e.code);
                    }
                }
            }
            Ok(Message::Close(frame)) => return (codes, frame.map(|f| u16::from(f.code))),
            Ok(_) => {}
            Err(_) => return (codes, None),
        }
    }
    (codes, None)
}

/// Two members exchanging messages while something else happens.
async fn conversation(relay: &InProcessRelay) -> (TestDevice, TestDevice) {
    let mut members = group_of(relay, &["ann", "bob"]).await.unwrap();
    let bob = members.pop().unwrap();
    (members.pop().unwrap(), bob)
}

async fn still_talking(ann: &TestDevice, bob: &mut TestDevice, rounds: usize) {
    for i in 0..rounds {
        let text = format!("still here {i}");
        ann.send(b"g", text.as_bytes()).await.unwrap();
        let got = bob.group_messages(1).await.unwrap();
        assert_eq!(opaque(&got[0].payload), text.as_bytes());
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_connection() {
    let relay = InProcessRelay::start_default().unwrap();
    let (ann, mut bob) = conversation(&relay).await;
    let mut attacker = raw(&relay).await;
    // 3 MiB: over the 2 MiB payload limit plus envelope room.
    let _ = attacker
        .send(Message::Binary(vec![0u8; 3 * 1024 * 1024].into()))
        .await;
    let (_, close) = drain(&mut attacker).await;
    assert_eq!(close, Some(1009), "closed as too big");
    still_talking(&ann, &mut bob, 3).await;
}

#[tokio::test]
async fn garbage_frames_get_errors_then_a_close_while_others_carry_on() {
    let relay = InProcessRelay::start_default().unwrap();
    let (ann, mut bob) = conversation(&relay).await;
    let mut attacker = raw(&relay).await;
    let attack = async {
        for i in 0..20u8 {
            let garbage: Vec<u8> = (0..64).map(|j| j ^ i.wrapping_mul(37)).collect();
            if attacker
                .send(Message::Binary(garbage.into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = attacker.send(Message::Text("hello?".into())).await;
        drain(&mut attacker).await
    };
    let (attack, ()) = tokio::join!(attack, still_talking(&ann, &mut bob, 5));
    let (codes, close) = attack;
    assert!(
        !codes.is_empty() && codes.iter().all(|&c| c == ErrorCode::Malformed as i32),
        "{codes:?}"
    );
    assert_eq!(close, Some(1008), "closed for breaking the protocol");
    still_talking(&ann, &mut bob, 2).await;
}

#[tokio::test]
async fn a_valid_envelope_of_another_version_is_refused() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut socket = raw(&relay).await;
    let mut envelope = Envelope::request(
        1,
        convene_proto::relay::request::Kind::Ping(Default::default()),
    );
    envelope.version = 7;
    socket
        .send(Message::Binary(convene_proto::encode_envelope(&envelope)))
        .await
        .unwrap();
    let (codes, close) = drain(&mut socket).await;
    assert_eq!(codes, [ErrorCode::UnsupportedVersion as i32]);
    assert_eq!(close, Some(1008));
}

#[tokio::test]
async fn requests_over_the_rate_limit_are_refused_with_a_retry_time() {
    let relay = InProcessRelay::start(convene_tests::RelayOptions {
        config_toml: "[limits]\nrequests_per_second = 5\nrequest_burst = 5\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let mut refused = None;
    for _ in 0..20 {
        if let Err(err) = staff
            .conn
            .request(convene_proto::relay::request::Kind::Ping(Default::default()))
            .await
        {
            refused = Some(err);
            break;
        }
    }
    let Some(convene_client::TransportError::Refused(refusal)) = refused else {
        panic!("the rate limit never applied: {refused:?}");
    };
    assert_eq!(refusal.code, ErrorCode::RateLimited);
    assert!(refusal.retry_after_ms > 0 && refusal.retry_after_ms <= 1000);
    tokio::time::sleep(Duration::from_millis(
        u64::from(refusal.retry_after_ms) + 50,
    ))
    .await;
    staff
        .conn
        .request(convene_proto::relay::request::Kind::Ping(Default::default()))
        .await
        .unwrap();
}

/// A relay that stops reading cannot hold a client for ever: a request
/// whose frame it never takes fails with a timeout once the socket's
/// buffers are full, instead of blocking the caller (and its shutdown).
#[tokio::test]
async fn a_relay_that_stops_reading_gets_a_timeout_not_a_hang() {
    use convene_client::{ConnectOptions, RelayConnection, TransportError};
    use convene_proto::relay::{request, Ping};
    use convene_tests::stub_relay::{start, Misbehaviour};

    let url = start(Misbehaviour::StopReading).await.unwrap();
    let options = ConnectOptions {
        request_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let conn = RelayConnection::connect(&url, &options).await.unwrap();
    let big = vec![0u8; 1 << 20];
    let flood = async {
        loop {
            match conn.send_raw(big.clone()).await {
                Ok(()) => continue,
                Err(err) => return err,
            }
        }
    };
    // Generous: the bound is what is tested, not the speed.
    let stalled = tokio::time::timeout(Duration::from_secs(120), flood)
        .await
        .expect("a write to a relay that stopped reading never returned");
    assert!(matches!(stalled, TransportError::Timeout), "{stalled:?}");
    let ping = tokio::time::timeout(
        Duration::from_secs(120),
        conn.request(request::Kind::Ping(Ping {})),
    )
    .await
    .expect("a request to a relay that stopped reading never returned");
    assert!(ping.is_err());
}

/// A relay that floods pushes no client acknowledged is cut off once the
/// client's queue is full (the client then reconnects and resumes), so its
/// memory stays bounded.
#[tokio::test]
async fn a_relay_flooding_pushes_fills_a_bounded_queue_and_is_cut_off() {
    use convene_client::transport::MAX_QUEUED_PUSHES;
    use convene_client::{ConnectOptions, RelayConnection};
    use convene_tests::stub_relay::{start, Misbehaviour};

    let url = start(Misbehaviour::FloodPushes(MAX_QUEUED_PUSHES + 100))
        .await
        .unwrap();
    let mut conn = RelayConnection::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(120), conn.closed()).await;
    assert!(closed.is_ok(), "the flooded connection stayed open");
    let mut queued = 0;
    while conn.next_push().await.is_some() {
        queued += 1;
    }
    assert_eq!(queued, MAX_QUEUED_PUSHES);
}
