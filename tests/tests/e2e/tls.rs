//! TLS 1.3: a relay with a certificate, clients that pin it.

use convene_client::{ConnectOptions, RelayConnection, TransportError, TrustRoots};
use convene_tests::{InProcessRelay, RelayOptions, RelayProcess, TestDevice};

#[tokio::test]
async fn clients_reach_a_tls_relay_only_through_its_pinned_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = RelayProcess::dev_certificate(certs.path()).unwrap();
    let relay = InProcessRelay::start(RelayOptions {
        tls: Some((cert.clone(), key)),
        ..Default::default()
    })
    .unwrap();
    assert!(relay.url.starts_with("wss://"), "{}", relay.url);

    let pinned = ConnectOptions {
        trust: TrustRoots::pinned_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        ..Default::default()
    };
    let conn = RelayConnection::connect(&relay.url, &pinned).await.unwrap();
    let key = convene_client::DeviceKey::generate();
    let invite = relay.bootstrap_invite.clone().unwrap();
    let request = convene_client::transport::EnrolRequest {
        invite_token: convene_tests::device::invite_token(&invite),
        user_id: "staff".into(),
        display_name: "Staff".into(),
        ..Default::default()
    };
    let authenticated = conn.enrol(&key, &request).await.unwrap();
    assert_eq!(authenticated.user_id, "staff");

    // The public roots do not vouch for a self-signed certificate.
    let err = RelayConnection::connect(&relay.url, &ConnectOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Tls(_)), "{err}");

    // Plain websockets to a TLS port fail too.
    let plain = relay.url.replacen("wss://", "ws://", 1);
    assert!(TestDevice::connect(&plain, key).await.is_err());
}
