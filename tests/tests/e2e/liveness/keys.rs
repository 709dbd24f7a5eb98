//! Case 4: keys expire and are renewed. With lifetimes shortened by
//! configuration (not by waiting), a group whose members' KeyPackages and
//! leaves have all passed their lifetime still admits a new member, a linked
//! device and a managing staff member, because every member renewed its
//! leaf; and the relay hands out only KeyPackages that have not expired.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use convene_client::trust::{claimed_identity, Authority, UserDetails};
use convene_client::{Event, GroupId, KeyLifecycle, Role, TransportError};
use convene_proto::mls_frame::read_key_package;
use convene_proto::relay::{
    request, response, ClaimKeyPackages, ErrorCode, GetUser, RenewCertificate,
};
use convene_proto::trust::Signed;
use convene_tests::app::{authority_of, display_name, leader_apps, raw_device, staff_app, App};
use convene_tests::InProcessRelay;
use prost::Message as _;

use super::names;

fn short() -> KeyLifecycle {
    KeyLifecycle {
        update_interval: Duration::from_secs(4),
        first_update_within: Duration::from_millis(500),
        key_package_lifetime: Duration::from_secs(6),
        key_package_rotation: Duration::from_secs(2),
        key_package_grace: Duration::from_secs(60),
        ..KeyLifecycle::default()
    }
}

/// Certificates issued for ten minutes, renewed once less than 9 min 55 s
/// of them remain, looked at twice a second.
fn renewing() -> KeyLifecycle {
    KeyLifecycle {
        certificate_validity: Duration::from_secs(600),
        certificate_renewal: Duration::from_secs(595),
        certificate_check: Duration::from_millis(500),
        ..KeyLifecycle::default()
    }
}

/// Waits until every app has renewed its own leaf in `group`.
async fn all_renewed(apps: &[&App], group: &GroupId) -> Result<()> {
    for app in apps {
        app.wait_group(group, |g| g.keys_renewed_at_ms.is_some())
            .await
            .with_context(|| format!("{} never renewed its leaf", app.user))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_past_every_key_lifetime_still_admits_members_devices_and_managers() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let eve = leaders.pop().context("three")?;
    let ben = leaders.pop().context("three")?;
    let ann = leaders.pop().context("three")?;
    let staff = staff.reopen_with_lifecycle(short()).await?;
    let mut ann = ann.reopen_with_lifecycle(short()).await?;
    let ben = ben.reopen_with_lifecycle(short()).await?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    all_renewed(&[&staff, &ann, &ben], &cohort.id).await?;
    // Renewed leaves change nobody's membership, and are not told as if.
    let told = ann.drain_events();
    ensure!(
        !told.iter().any(|e| matches!(
            e,
            Event::MembersChanged { added, removed, .. } if added.is_empty() && removed.is_empty()
        )),
        "leaf renewals were told as membership changes: {told:?}"
    );

    // Every KeyPackage the members were added with, and every leaf that
    // came from one, has expired by now.
    tokio::time::sleep(short().key_package_lifetime + Duration::from_secs(1)).await;
    let claimer = raw_device(&relay, &staff, "claimer", Role::Staff).await?;
    let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec![ann.user.clone()],
        device_keys: Vec::new(),
    });
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    match claimer.conn.request(claim).await? {
        response::Result::ClaimedKeyPackages(claimed) => {
            ensure!(!claimed.key_packages.is_empty(), "ann has no KeyPackage");
            for kp in claimed.key_packages {
                let leaf = read_key_package(&kp.key_package)?;
                ensure!(
                    leaf.lifetime.not_after_secs > now_s,
                    "an expired KeyPackage was handed out"
                );
            }
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }

    // A new member.
    let dan = leader_apps(&relay, &staff, &["dan".to_string()])
        .await?
        .pop()
        .context("dan")?
        .reopen_with_lifecycle(short())
        .await?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&dan.user))
        .await?;
    dan.wait_group(&cohort.id, |g| g.active).await?;
    // A linked device.
    let laptop = App::link(&relay.url, &ann)
        .await?
        .reopen_with_lifecycle(short())
        .await?;
    laptop.wait_group(&cohort.id, |g| g.active).await?;
    all_renewed(&[&staff, &ann, &ben, &dan, &laptop], &cohort.id).await?;
    // A manager who reads the group's GroupInfo from outside.
    staff.client.leave_group(&cohort.id).await?;
    let eve = eve.reopen_with_lifecycle(short()).await?;
    staff
        .client
        .add_members(&cohort.id, std::slice::from_ref(&eve.user))
        .await?;
    eve.wait_group(&cohort.id, |g| g.active).await?;

    eve.client.send_text(&cohort.id, "glad to join").await?;
    for app in [&ann, &ben, &dan, &laptop] {
        app.hears(&cohort.id, &eve.user, "glad to join").await?;
    }
    all_renewed(&[&ann, &ben, &dan, &laptop, &eve], &cohort.id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_near_its_end_is_renewed_with_nothing_asked_of_the_user() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay)
        .await?
        .reopen_with_lifecycle(renewing())
        .await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 2)).await?;
    let ben = leaders
        .pop()
        .context("two")?
        .reopen_with_lifecycle(renewing())
        .await?;
    let ann = leaders.pop().context("two")?;
    let issued_until = ann.client.certificate_valid_until_ms()?;
    let ann = ann.reopen_with_lifecycle(renewing()).await?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;

    // Staff's device renews it; Ann's device takes it up and renews its
    // leaf; Ben sees her leaf carry the renewed certificate.
    convene_tests::app::wait_until("ann's renewed certificate", || async {
        (ann.client.certificate_valid_until_ms().ok()? > issued_until).then_some(())
    })
    .await?;
    ben.wait_group(&cohort.id, |g| {
        g.members
            .iter()
            .any(|m| m.user_id == ann.user && m.certificate_valid_until_ms > issued_until)
    })
    .await?;
    let before = ben.client.safety_number(&ann.user).await?;
    ann.client.send_text(&cohort.id, "still me").await?;
    ben.hears(&cohort.id, &ann.user, "still me").await?;
    let after = ben.client.safety_number(&ann.user).await?;
    ensure!(before.number == after.number, "the safety number changed");
    Ok(())
}

/// The relay keeps a renewed certificate only when it extends the one it
/// holds: signed by the organisation's authority, for the same user, role
/// and (once one is certified directly) identity key, starting no more
/// than 15 minutes ahead of its clock and lasting at most five years. A
/// staff device cannot lock a user out or change who they are by renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_keeps_only_a_renewal_that_extends_the_certificate() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let clerk = raw_device(&relay, &staff, "clerk", Role::Staff).await?;
    let ann = leader_apps(&relay, &staff, &names("l", 1))
        .await?
        .pop()
        .context("one")?;
    let authority = authority_of(&staff.stop().await.state_dir)?;
    let user = match clerk
        .conn
        .request(request::Kind::GetUser(GetUser {
            user_id: ann.user.clone(),
        }))
        .await?
    {
        response::Result::User(user) => user,
        other => anyhow::bail!("not a user: {other:?}"),
    };
    let device = user.devices.first().context("ann's device")?;
    let (_, identity) = claimed_identity(&device.credential).context("ann's identity key")?;
    let details = UserDetails {
        user_id: ann.user.clone(),
        display_name: display_name(&ann.user),
        role: Role::Leader,
        sector: String::new(),
        certified: Default::default(),
    };
    let as_staff = UserDetails {
        role: Role::Staff,
        ..details.clone()
    };
    let someone_else = UserDetails {
        user_id: "someone".into(),
        ..details.clone()
    };
    // Three years: past the two the certificate was issued for.
    let (hour, year) = (3_600_000, 366 * 24 * 3_600_000);
    let longer = 3 * year;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let renew = |certificate: Signed| {
        clerk
            .conn
            .request(request::Kind::RenewCertificate(RenewCertificate {
                user_id: ann.user.clone(),
                user_certificate: certificate.encode_to_vec().into(),
                replaces: Default::default(),
            }))
    };
    let refused = [
        (
            "a changed role",
            authority.certify_user(&as_staff, identity, false, now - hour, longer),
        ),
        (
            "another user",
            authority.certify_user(&someone_else, identity, false, now - hour, longer),
        ),
        (
            "a start a day ahead",
            authority.certify_user(&details, identity, false, now + 24 * hour, longer),
        ),
        (
            "ten years",
            authority.certify_user(&details, identity, false, now - hour, 10 * year),
        ),
        (
            "another authority",
            Authority::generate().certify_user(&details, identity, false, now - hour, longer),
        ),
    ];
    for (what, certificate) in refused {
        match renew(certificate).await {
            Err(TransportError::Refused(r)) if r.code == ErrorCode::InvalidArgument => {}
            other => anyhow::bail!("a renewal with {what} was not refused: {other:?}"),
        }
    }
    let renewed =
        renew(authority.certify_user(&details, identity, false, now - hour, longer)).await?;
    ensure!(
        matches!(renewed, response::Result::CertificateRenewed(ref r) if r.expires_at_ms == now - hour + longer),
        "{renewed:?}"
    );
    // A certificate older than the one held (a replay, say, of one from
    // before staff re-certified the user) would undo what changed since.
    match renew(authority.certify_user(&details, identity, false, now - 2 * hour, longer)).await {
        Err(TransportError::Refused(r)) if r.message.contains("older") => {}
        other => anyhow::bail!("an older certificate was not refused: {other:?}"),
    }
    // One built on a certificate the relay no longer holds (another staff
    // device renewed or re-certified the user meanwhile) would undo that.
    let stale = request::Kind::RenewCertificate(RenewCertificate {
        user_id: ann.user.clone(),
        user_certificate: authority
            .certify_user(&details, identity, false, now, longer)
            .encode_to_vec()
            .into(),
        replaces: vec![0; 32].into(),
    });
    match clerk.conn.request(stale).await {
        Err(TransportError::Refused(r)) if r.message.contains("changed since") => {}
        other => anyhow::bail!("a renewal of a certificate since replaced was taken: {other:?}"),
    }
    // Now that the identity key is certified directly, it cannot change.
    match renew(authority.certify_user(&details, [7; 32], false, now - hour, longer)).await {
        Err(TransportError::Refused(r)) if r.code == ErrorCode::InvalidArgument => Ok(()),
        other => anyhow::bail!("a renewal for another identity key was not refused: {other:?}"),
    }
}
