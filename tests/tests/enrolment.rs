//! Enrolment through one-time invites against the real relay binary.

use std::time::Duration;

use convene_client::{ConnectOptions, RelayConnection};
use convene_proto::relay::{request, CreateInvite, ErrorCode, Role};
use convene_tests::device::{bootstrap_staff, enrol_leaders};
use convene_tests::{RelayProcess, TestDevice};

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
    let relay = RelayProcess::start_default().unwrap();
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
    let relay = RelayProcess::start_default().unwrap();
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
    let relay = RelayProcess::start_default().unwrap();
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
