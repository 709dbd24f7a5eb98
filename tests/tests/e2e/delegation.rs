//! Staff delegations end to end: a second staff member invites and
//! certifies under a delegation from the authority; a revoked delegation's
//! users are refused unless the authority renewed them; the relay stores
//! only revocations and delegations the authority signed.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use convene_client::trust::{Authority, UserDetails};
use convene_client::{ClientError, Role};
use convene_proto::relay::{request, response};
use convene_tests::app::{display_name, invited_apps, leader_apps, raw_device, staff_app, App};
use convene_tests::{InProcessRelay, TestDevice};

fn details(user: &str, role: Role) -> UserDetails {
    UserDetails {
        user_id: user.into(),
        display_name: display_name(user),
        role,
        sector: String::new(),
        certified: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_staff_member_invites_under_delegation_and_a_revoked_one_is_refused() -> Result<()>
{
    let relay = InProcessRelay::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let [ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let [kim] =
        <[App; 1]>::try_from(invited_apps(&relay, &staff, &["kim".into()], Role::Staff).await?)
            .ok()
            .context("a second staff member")?;

    // Without a delegation kim cannot certify anyone.
    let refused = kim.client.invite(&details("lee", Role::Leader)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );

    staff.client.delegate("kim", false).await?;
    // Leaders only: not staff.
    let refused = kim.client.invite(&details("pat", Role::Staff)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let invite = kim.client.invite(&details("lee", Role::Leader)).await?;
    let lee = App::enrol(&relay.url, &invite.code, "lee").await?;

    // Every client accepts lee: staff add lee to a cohort with ann, and the
    // two hear each other.
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "lee".into()])
        .await?;
    for app in [&ann, &lee] {
        app.wait_group(&cohort.id, |g| g.users() == ["ann", "lee", "staff"])
            .await?;
    }
    lee.client.send_text(&cohort.id, "hello from lee").await?;
    ann.hears(&cohort.id, "lee", "hello from lee").await?;

    // An invite kim made before the delegation is revoked is refused after.
    let before = kim.client.invite(&details("leo", Role::Leader)).await?;
    staff.client.revoke_delegation("kim").await?;
    let refused = kim.client.invite(&details("lia", Role::Leader)).await.err();
    ensure!(
        matches!(refused, Some(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let _leo = App::enrol(&relay.url, &before.code, "leo").await?;
    let refused = staff
        .client
        .add_members(&cohort.id, &["leo".into()])
        .await
        .err();
    ensure!(
        refused.is_some(),
        "a user certified under a revoked delegation was added"
    );
    let why = staff
        .wait_event(|e| match e {
            convene_client::Event::Untrusted { detail, .. } if detail.contains("leo") => {
                Some(detail.clone())
            }
            _ => None,
        })
        .await?;
    ensure!(why.contains("revoked"), "{why}");
    let seen = ann.client.group(&cohort.id)?.context("ann's view")?;
    ensure!(
        !seen.members.iter().any(|m| m.user_id == "leo"),
        "ann sees leo in the cohort"
    );
    // lee, certified under the revoked delegation and not renewed by the
    // authority yet, is no one the organisation vouches for now: staff
    // remove lee from the cohort.
    for app in [&ann, &lee] {
        app.wait_group(&cohort.id, |g| {
            !g.users().iter().any(|u| u == "lee") || !g.active
        })
        .await?;
    }
    Ok(())
}

/// A cohort of ann and lee, where lee was invited by kim, a second staff
/// member, under the authority's delegation.
struct DelegatedCohort {
    _relay: InProcessRelay,
    staff: App,
    ann: App,
    lee: App,
    /// A leader's raw device, to read the relay's records.
    observer: TestDevice,
    cohort: convene_client::GroupId,
    /// When lee's certificate, as kim signed it, ends.
    delegated_until: u64,
}

async fn delegated_cohort() -> Result<DelegatedCohort> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let [ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let [kim] =
        <[App; 1]>::try_from(invited_apps(&relay, &staff, &["kim".into()], Role::Staff).await?)
            .ok()
            .context("a second staff member")?;
    let observer = raw_device(&relay, &staff, "obs", Role::Leader).await?;
    staff.client.delegate("kim", false).await?;
    let invite = kim.client.invite(&details("lee", Role::Leader)).await?;
    let lee = App::enrol(&relay.url, &invite.code, "lee").await?;
    let delegated_until = lee.client.certificate_valid_until_ms()?;
    let cohort = staff
        .client
        .create_group("Cohort", &["ann".into(), "lee".into()])
        .await?;
    for app in [&ann, &lee] {
        app.wait_group(&cohort.id, |g| g.users() == ["ann", "lee", "staff"])
            .await?;
    }
    Ok(DelegatedCohort {
        _relay: relay,
        staff,
        ann,
        lee,
        observer,
        cohort: cohort.id,
        delegated_until,
    })
}

/// Certificates looked at every 300 ms instead of hourly.
fn often() -> convene_client::KeyLifecycle {
    convene_client::KeyLifecycle {
        certificate_check: std::time::Duration::from_millis(300),
        ..Default::default()
    }
}

impl DelegatedCohort {
    /// Waits until lee's device has taken up the authority's certificate
    /// and renewed its leaf, as ann sees it.
    async fn lee_renewed_as_ann_sees(&self) -> Result<()> {
        let lee = self.lee.client.clone();
        let delegated_until = self.delegated_until;
        convene_tests::app::wait_until("lee to take up the authority's certificate", || {
            let until = lee.certificate_valid_until_ms();
            async move { until.ok().filter(|until| *until > delegated_until) }
        })
        .await?;
        let lee_until = self.lee.client.certificate_valid_until_ms()?;
        self.ann
            .wait_group(&self.cohort, |g| {
                g.members
                    .iter()
                    .any(|m| m.user_id == "lee" && m.certificate_valid_until_ms == lee_until)
            })
            .await?;
        Ok(())
    }

    /// Revokes kim's delegation and waits until ann holds the revocation.
    async fn revoke_kims_delegation(&mut self) -> Result<()> {
        self.staff.client.revoke_delegation("kim").await?;
        self.ann
            .wait_event(|e| match e {
                convene_client::Event::DelegationRevoked { user_id } if user_id == "kim" => {
                    Some(())
                }
                _ => None,
            })
            .await
    }

    /// lee writes, and ann hears it.
    async fn lee_is_heard(&self) -> Result<()> {
        self.lee
            .client
            .send_text(&self.cohort, "still here")
            .await?;
        self.ann.hears(&self.cohort, "lee", "still here").await
    }
}

/// The authority's device renews, with its own signature, every certificate
/// a staff member signed under a delegation as soon as it sees one: the
/// users a delegate certified stay when the delegation is later revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_a_delegate_certified_stay_once_the_authority_renewed_them() -> Result<()> {
    let mut world = delegated_cohort().await?;
    // The authority's device renews lee's certificate; lee's device takes
    // it up and renews its leaf, which ann sees.
    world.staff = world.staff.reopen_with_lifecycle(often()).await?;
    world.lee = world.lee.reopen_with_lifecycle(often()).await?;
    world.lee_renewed_as_ann_sees().await?;
    world.revoke_kims_delegation().await?;
    world.lee_is_heard().await
}

/// The authority renewed a delegate's user on the relay, but the user's
/// device had not taken the renewal up when the delegation was revoked:
/// the user stays (staff see the renewal before removing anyone), and the
/// device takes the renewal up at once and goes on being heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_user_stays_when_the_delegation_is_revoked_before_their_device_caught_up(
) -> Result<()> {
    use convene_proto::relay::GetUser;

    let mut world = delegated_cohort().await?;
    // Only the authority's device looks often: it renews lee on the relay,
    // and lee's device (hourly) does not notice yet.
    world.staff = world.staff.reopen_with_lifecycle(often()).await?;
    let observer = &world.observer;
    convene_tests::app::wait_until("the authority to renew lee", || {
        let asked = observer.conn.request(request::Kind::GetUser(GetUser {
            user_id: "lee".into(),
        }));
        async move {
            match asked.await {
                Ok(response::Result::User(user)) if !user.certified_by_delegate => Some(()),
                _ => None,
            }
        }
    })
    .await?;
    ensure!(world.lee.client.certificate_valid_until_ms()? == world.delegated_until);
    world.revoke_kims_delegation().await?;
    world.lee_renewed_as_ann_sees().await?;
    world.lee_is_heard().await
}

/// The relay acts on what the authority signed, not on a staff device's
/// word: a revocation or a delegation that the authority did not sign, or
/// that says something else than the request, is refused, and an older
/// delegation cannot replace a newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_revocations_and_delegations_the_authority_did_not_sign() -> Result<()> {
    use convene_proto::relay::{Delegate, ErrorCode, Revoke};
    use prost::Message as _;

    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let [ann] = <[App; 1]>::try_from(leader_apps(&relay, &staff, &["ann".into()]).await?)
        .ok()
        .context("one leader")?;
    let [kim] =
        <[App; 1]>::try_from(invited_apps(&relay, &staff, &["kim".into()], Role::Staff).await?)
            .ok()
            .context("a second staff member")?;
    let rogue = raw_device(&relay, &staff, "rogue", Role::Staff).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let refused = |result: Result<response::Result, convene_client::TransportError>| {
        result.err().and_then(|e| e.refusal_code()) == Some(ErrorCode::InvalidArgument)
    };

    // A suspension signed by another key, and a real device revocation
    // presented as a suspension: both refused, and ann stays.
    let forged = Authority::generate().revoke("ann", None, now);
    let suspend = |revocation: Vec<u8>| {
        request::Kind::Revoke(Revoke {
            revocation: revocation.into(),
            user_id: "ann".into(),
            device_key: Bytes::new(),
            delegation_only: false,
        })
    };
    ensure!(refused(
        rogue.conn.request(suspend(forged.encode_to_vec())).await
    ));
    let staff = staff.stop().await;
    let authority = convene_tests::app::authority_of(&staff.state_dir)?;
    let device_only = authority.revoke("ann", Some(ann.device().as_slice().try_into()?), now);
    ensure!(refused(
        rogue
            .conn
            .request(suspend(device_only.encode_to_vec()))
            .await
    ));
    ensure!(ann.client.devices().await?.len() == 1, "ann was cut off");

    // A delegation the authority did not sign, and one older than the one
    // kept: refused.
    let delegate = |delegation: Vec<u8>| {
        request::Kind::Delegate(Delegate {
            user_id: "kim".into(),
            delegation: delegation.into(),
        })
    };
    let kim_key = [7; 32];
    let forged = Authority::generate().delegate("kim", kim_key, true, now, 1_000_000);
    ensure!(refused(
        rogue.conn.request(delegate(forged.encode_to_vec())).await
    ));
    let newer = authority.delegate("kim", kim_key, false, now, 1_000_000);
    let older = authority.delegate("kim", kim_key, true, now - 1_000, 1_000_000);
    rogue.conn.request(delegate(newer.encode_to_vec())).await?;
    ensure!(refused(
        rogue.conn.request(delegate(older.encode_to_vec())).await
    ));
    drop(kim);
    Ok(())
}
