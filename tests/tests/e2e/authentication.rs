//! Device authentication: ed25519 over a fresh, relay-bound nonce.

use std::time::Duration;

use bytes::Bytes;
use convene_client::{ConnectOptions, DeviceKey, RelayConnection};
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{request, Authenticate, ErrorCode, GetUser, Ping};
use convene_tests::device::bootstrap_staff;
use convene_tests::{InProcessRelay, RelayOptions, RelayProcess};

async fn connect(relay: &InProcessRelay) -> RelayConnection {
    RelayConnection::connect(&relay.url, &ConnectOptions::default())
        .await
        .unwrap()
}

/// Sends `Authenticate` with an arbitrary key and signature.
async fn authenticate_raw(
    conn: &RelayConnection,
    device: [u8; 32],
    signature: [u8; 64],
) -> Option<ErrorCode> {
    let request = request::Kind::Authenticate(Authenticate {
        device_key: Bytes::copy_from_slice(&device),
        signature: Bytes::copy_from_slice(&signature),
        ..Default::default()
    });
    conn.request(request)
        .await
        .err()
        .map(|e| e.refusal_code().expect("a refusal"))
}

#[tokio::test]
async fn forged_and_replayed_signatures_are_refused() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let device = staff.device();
    let key = staff.vanish();

    // An unknown device, correctly signed.
    let stranger = DeviceKey::generate();
    let conn = connect(&relay).await;
    let err = conn.authenticate(&stranger, None).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some(ErrorCode::AuthenticationFailed));

    // The enrolled device's key, signed by another key.
    let conn = connect(&relay).await;
    let forged =
        stranger.sign_challenge(AuthPurpose::Authenticate, &conn.relay_id(), &conn.nonce());
    assert_eq!(
        authenticate_raw(&conn, device, forged).await,
        Some(ErrorCode::AuthenticationFailed)
    );

    // A signature over another connection's nonce (a replay).
    let first = connect(&relay).await;
    let captured = key.sign_challenge(AuthPurpose::Authenticate, &first.relay_id(), &first.nonce());
    first.authenticate(&key, None).await.unwrap();
    let second = connect(&relay).await;
    assert_eq!(
        authenticate_raw(&second, device, captured).await,
        Some(ErrorCode::AuthenticationFailed)
    );

    // A signature over a nonce the relay never sent.
    let conn = connect(&relay).await;
    let other_nonce = key.sign_challenge(AuthPurpose::Authenticate, &conn.relay_id(), &[7; 32]);
    assert_eq!(
        authenticate_raw(&conn, device, other_nonce).await,
        Some(ErrorCode::AuthenticationFailed)
    );

    // A signature for another purpose (enrolment) over the right nonce.
    let conn = connect(&relay).await;
    let enrol_sig = key.sign_challenge(AuthPurpose::Enrol, &conn.relay_id(), &conn.nonce());
    assert_eq!(
        authenticate_raw(&conn, device, enrol_sig).await,
        Some(ErrorCode::AuthenticationFailed)
    );

    // A signature bound to another relay's identity.
    let conn = connect(&relay).await;
    let other_relay = key.sign_challenge(AuthPurpose::Authenticate, &[9; 16], &conn.nonce());
    assert_eq!(
        authenticate_raw(&conn, device, other_relay).await,
        Some(ErrorCode::AuthenticationFailed)
    );

    // And the genuine article works.
    let conn = connect(&relay).await;
    conn.authenticate(&key, Some(conn.relay_id()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pinned_relay_identity_is_enforced_by_the_client() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let key = staff.vanish();
    let conn = connect(&relay).await;
    let err = conn.authenticate(&key, Some([0; 16])).await.unwrap_err();
    assert!(
        matches!(err, convene_client::TransportError::WrongRelay),
        "{err}"
    );
}

#[tokio::test]
async fn requests_before_authentication_are_refused() {
    let relay = InProcessRelay::start_default().unwrap();
    let conn = connect(&relay).await;
    conn.request(request::Kind::Ping(Ping {})).await.unwrap();
    let err = conn
        .request(request::Kind::GetUser(GetUser {
            user_id: "staff".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(ErrorCode::NotAuthenticated));
}

#[tokio::test]
async fn silent_and_persistent_failures_are_disconnected() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nauth_timeout_ms = 500\n".into(),
        ..Default::default()
    })
    .unwrap();

    // Never authenticates: closed with the auth-timeout code.
    let silent = connect(&relay).await;
    let code = tokio::time::timeout(Duration::from_secs(10), silent.closed())
        .await
        .unwrap();
    assert_eq!(code, Some(4001));

    // Fails three times: closed with the auth-failed code.
    let persistent = connect(&relay).await;
    for _ in 0..3 {
        let _ = authenticate_raw(&persistent, [1; 32], [2; 64]).await;
    }
    let code = tokio::time::timeout(Duration::from_secs(10), persistent.closed())
        .await
        .unwrap();
    assert_eq!(code, Some(4002));
}

#[tokio::test]
async fn a_connections_log_lines_say_whose_it_is() {
    let relay = RelayProcess::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let device = convene_proto::ids::hex_prefix(staff.device());
    staff
        .invite(convene_proto::relay::Role::Leader)
        .await
        .unwrap();
    // The relay logs "device connected" inside the connection's span once
    // the device has authenticated; lines are written as they happen.
    let logs = relay.logs();
    let connected: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("device connected"))
        .collect();
    assert!(!connected.is_empty(), "no connection was logged: {logs}");
    for line in connected {
        assert!(
            line.contains("connection{")
                && line.contains("peer=127.0.0.1:")
                && line.contains("staff")
                && line.contains(&device),
            "a connection's line does not say whose it is: {line}"
        );
    }
}
