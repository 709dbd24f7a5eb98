//! Enrolment through one-time invites against the real relay binary.

use std::time::Duration;

use convene_client::{ConnectOptions, RelayConnection};
use convene_proto::relay::{request, CreateInvite, ErrorCode, Role};
use convene_tests::device::{bootstrap_staff, enrol_leaders};
use convene_tests::{InProcessRelay, RelayProcess, TestDevice};

async fn try_enrol(url: &str, invite: &str, user_id: &str) -> Result<TestDevice, ErrorCode> {
    TestDevice::enrol(url, invite, user_id)
        .await
        .map_err(|err| {
            err.downcast_ref::<convene_client::TransportError>()
                .and_then(|e| e.refusal_code())
                .unwrap_or_else(|| panic!("expected a refusal, got {err:#}"))
        })
}

#[tokio::test]
async fn bootstrap_invite_enrols_the_first_staff_member_once() {
    let relay = InProcessRelay::start_default().unwrap();
    let invite = relay
        .bootstrap_invite
        .clone()
        .expect("an empty relay prints a bootstrap invite");
    let staff = TestDevice::enrol(&relay.url, &invite, "ops.lead")
        .await
        .unwrap();
    assert_eq!(staff.user_id, "ops.lead");
    // Staff may invite; the bootstrap invite is spent.
    staff.invite(Role::Leader).await.unwrap();
    assert_eq!(
        try_enrol(&relay.url, &invite, "intruder").await.err(),
        Some(ErrorCode::InviteUsed)
    );
}

#[tokio::test]
async fn reused_unknown_and_expired_invites_are_refused() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();

    let invite = staff.invite(Role::Leader).await.unwrap();
    TestDevice::enrol(&relay.url, &invite, "chief.constable")
        .await
        .unwrap();
    assert_eq!(
        try_enrol(&relay.url, &invite, "someone.else").await.err(),
        Some(ErrorCode::InviteUsed)
    );

    let unknown = convene_proto::invite::Invite {
        secret: convene_proto::invite::InviteSecret::generate(),
        authority_fingerprint: None,
        relay_url: None,
    }
    .to_code();
    assert_eq!(
        try_enrol(&relay.url, &unknown, "someone.else").await.err(),
        Some(ErrorCode::InviteUnknown)
    );
    assert_eq!(
        try_enrol(&relay.url, "not an invite", "someone.else")
            .await
            .err(),
        Some(ErrorCode::InviteUnknown)
    );

    let late = convene_proto::invite::Invite {
        secret: convene_proto::invite::InviteSecret::generate(),
        authority_fingerprint: None,
        relay_url: None,
    };
    let short = request::Kind::CreateInvite(CreateInvite {
        role: Role::Leader as i32,
        ttl_seconds: 1,
        invite_token: late.secret.relay_token().to_vec().into(),
        ..Default::default()
    });
    let convene_proto::relay::response::Result::InviteCreated(_) =
        staff.conn.request(short).await.unwrap()
    else {
        panic!("expected an invite");
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        try_enrol(&relay.url, &late.to_code(), "late.comer")
            .await
            .err(),
        Some(ErrorCode::InviteExpired)
    );
}

#[tokio::test]
async fn only_staff_create_invites_and_user_ids_are_unique() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["fire.chief"])
        .await
        .unwrap();
    let refused = leaders[0].invite(Role::Leader).await.unwrap_err();
    assert_eq!(refused.refusal_code(), Some(ErrorCode::Forbidden));

    let invite = staff.invite(Role::Leader).await.unwrap();
    assert_eq!(
        try_enrol(&relay.url, &invite, "fire.chief").await.err(),
        Some(ErrorCode::AlreadyExists)
    );
    // The refused attempt did not spend the invite.
    TestDevice::enrol(&relay.url, &invite, "nhs.head")
        .await
        .unwrap();
}

#[tokio::test]
async fn enrolled_devices_survive_a_restart() {
    let mut relay = RelayProcess::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let key = staff.vanish();
    relay.terminate(Duration::from_secs(10)).unwrap();
    relay.restart().unwrap();
    assert!(
        relay.bootstrap_invite.is_none(),
        "a relay with users prints no bootstrap invite"
    );
    let conn = RelayConnection::connect(&relay.url, &ConnectOptions::default())
        .await
        .unwrap();
    let authenticated = conn.authenticate(&key, None).await.unwrap();
    assert_eq!(authenticated.user_id, "staff");
    assert_eq!(authenticated.role, Role::Staff as i32);
}

/// The enrolment path is the invite's: a relay that answers "bootstrap"
/// for a staff invite (which names the organisation's authority) would have
/// the invitee make an authority of its own, trusting whatever the relay
/// chose. Refused, and the invite still works with an honest answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_claiming_a_staff_invite_is_the_bootstrap_one_is_refused() {
    use std::sync::Arc;

    use convene_client::trust::UserDetails;
    use convene_client::{ClientBuilder, TransportError};
    use convene_proto::relay::response;
    use convene_tests::app::{display_name, staff_app, store_key, App};
    use convene_tests::connectors::HookedConnector;

    let relay = InProcessRelay::start_default().unwrap();
    let staff = staff_app(&relay).await.unwrap();
    let invite = staff
        .client
        .invite(&UserDetails {
            user_id: "ana".into(),
            display_name: display_name("ana"),
            role: convene_client::Role::Leader,
            sector: String::new(),
            certified: Default::default(),
        })
        .await
        .unwrap();
    let lying = HookedConnector::answering(
        &relay.url,
        Arc::new(
            |sent: &request::Kind, answer: Result<_, TransportError>| match (sent, answer) {
                (request::Kind::GetInvite(_), Ok(response::Result::InviteDetails(mut details))) => {
                    details.bootstrap = true;
                    Ok(response::Result::InviteDetails(details))
                }
                (_, answer) => answer,
            },
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = ClientBuilder::new(dir.path().join("state"))
        .store_key(store_key("ana"))
        .relay_url(&relay.url)
        .connector(lying)
        .enrol(&invite.code, "ana", &display_name("ana"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "untrusted", "{refused}");

    // Nothing was spent: the invite still enrols ana through an honest relay.
    App::enrol(&relay.url, &invite.code, "ana").await.unwrap();
}

/// Clients sync their directory when told, so a new leader shows up in
/// searches (and is added to the network channel) within seconds.
#[tokio::test]
async fn every_connected_device_is_told_when_someone_enrols() {
    let relay = InProcessRelay::start_default().unwrap();
    let mut staff = bootstrap_staff(&relay).await.unwrap();
    enrol_leaders(&relay, &staff, &["fire.chief"])
        .await
        .unwrap();
    // Other pushes (the end of catching up) may come first.
    let mut pushes = Vec::new();
    while let Some(push) = staff.any_push_within(Duration::from_secs(10)).await {
        if matches!(push, convene_proto::relay::push::Kind::DirectoryNotice(_)) {
            return;
        }
        pushes.push(push);
    }
    panic!("no DirectoryNotice; pushes: {pushes:?}");
}
