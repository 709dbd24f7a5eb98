//! The organisation's chain of trust, end to end through the real relay:
//! what a compromised relay or a tampered client tries, and how every
//! honest client refuses it.

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use convene_client::mls::MlsOps;
use convene_client::store::LocalStore;
use convene_client::trust::{Authority, TrustAnchor, UserDetails};
use convene_client::{ClientError, Event, Role};
use convene_proto::relay::{request, response, ClaimKeyPackages, UploadKeyPackages};
use convene_tests::app::{display_name, invited_apps, leader_apps, raw_device, staff_app, App};
use convene_tests::{RelayProcess, TestDevice};
use openmls_rust_crypto::RustCrypto;

/// Puts `key_package` in `device`'s stock on the relay.
async fn stock(device: &TestDevice, key_package: Vec<u8>) -> Result<()> {
    let upload = request::Kind::UploadKeyPackages(UploadKeyPackages {
        one_time: vec![Bytes::from(key_package)],
        last_resort: Bytes::new(),
        replace_one_time: false,
    });
    device.conn.request(upload).await?;
    Ok(())
}

/// Waits for an `Untrusted` event and returns its detail.
async fn untrusted(app: &mut App) -> Result<String> {
    app.wait_event(|e| match e {
        Event::Untrusted { detail, .. } => Some(detail.clone()),
        _ => None,
    })
    .await
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certified_outside_the_authority_is_refused() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("l", 1)).await?;
    let group = staff
        .client
        .create_group("Cohort", &[leaders[0].user.clone()])
        .await?;

    // "mallory" exists on the relay, but her KeyPackage carries a chain
    // from an authority of the relay's own making.
    let mallory = raw_device(&relay, &staff, "mallory", Role::Leader).await?;
    let dir = tempfile::tempdir()?;
    let store = LocalStore::open(dir.path(), &convene_client::StoreKey::generate())?;
    let fake = Authority::generate();
    let details = UserDetails {
        user_id: "mallory".into(),
        display_name: "Mallory".into(),
        role: Role::Staff,
        sector: String::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let (_, chain) = fake.issue_direct_chain(&details, mallory.device(), now - 1000, 3_600_000);
    let crypto = RustCrypto::default();
    let ops = MlsOps::new(
        &crypto,
        &store,
        &mallory.key,
        "mallory",
        &chain,
        TrustAnchor::new(fake.public()),
    );
    let (mut forged, _) = ops.key_packages(1, false)?;
    stock(&mallory, forged.remove(0)).await?;

    let err = staff
        .client
        .add_members(&group.id, &["mallory".to_string()])
        .await
        .err()
        .context("adding a device outside the chain succeeded")?;
    ensure!(matches!(err, ClientError::NoDeviceToAdd { .. }), "{err:?}");
    let detail = untrusted(&mut staff).await?;
    ensure!(detail.contains("mallory"), "{detail}");
    let summary = staff.client.group(&group.id)?.context("group")?;
    ensure!(
        !summary.members.iter().any(|m| m.user_id == "mallory"),
        "mallory was added"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_package_swapped_for_another_users_is_refused() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("l", 1)).await?;
    let group = staff.client.create_group("Cohort", &[]).await?;

    // "ben" on the relay hands out a genuine KeyPackage of l1's, as a
    // relay swapping KeyPackages would.
    let ben = raw_device(&relay, &staff, "ben", Role::Leader).await?;
    let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec![leaders[0].user.clone()],
        device_keys: Vec::new(),
    });
    let genuine = match ben.conn.request(claim).await? {
        response::Result::ClaimedKeyPackages(claimed) if claimed.key_packages.len() == 1 => {
            claimed.key_packages[0].key_package.to_vec()
        }
        other => bail!("unexpected answer {other:?}"),
    };
    stock(&ben, genuine).await?;

    let err = staff
        .client
        .add_members(&group.id, &["ben".to_string()])
        .await
        .err()
        .context("adding with a swapped KeyPackage succeeded")?;
    ensure!(matches!(err, ClientError::NoDeviceToAdd { .. }), "{err:?}");
    let detail = untrusted(&mut staff).await?;
    ensure!(detail.contains("belongs to l1"), "{detail}");
    let summary = staff.client.group(&group.id)?.context("group")?;
    ensure!(summary.members.len() == 1, "{:?}", summary.members);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_adding_to_a_cohort_is_refused_by_every_member() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let mut staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &names("l", 4)).await?;
    let outsider = leaders.pop().context("four leaders")?;
    let cohort: Vec<String> = leaders.iter().map(|l| l.user.clone()).collect();
    let group = staff.client.create_group("Cohort", &cohort).await?;
    let elsewhere = staff.client.create_group("Elsewhere", &cohort).await?;
    for leader in &leaders {
        leader
            .wait_group(&group.id, |g| g.members.len() == 4)
            .await?;
        leader.wait_group(&elsewhere.id, |g| g.active).await?;
    }

    // The leader's own client would refuse; a tampered one does not.
    let refused = leaders[1]
        .client
        .add_members(&group.id, std::slice::from_ref(&outsider.user))
        .await
        .err()
        .context("an honest leader's client added to a cohort")?;
    ensure!(matches!(refused, ClientError::Forbidden(_)), "{refused:?}");
    let rogue = leaders.remove(0).reopen_misbehaving().await?;
    rogue
        .client
        .add_members(&group.id, std::slice::from_ref(&outsider.user))
        .await?;

    // Every honest member refuses the commit and stays where it was.
    let before = staff.client.group(&group.id)?.context("group")?;
    ensure!(untrusted(&mut staff).await?.contains("not staff"));
    for leader in &mut leaders {
        ensure!(untrusted(leader).await?.contains("not staff"));
    }
    // The outsider cannot tell a leader's commit of a manager's proposal
    // from a rogue one (it does not see the proposals), so it may join; but
    // what it joins is a state no honest member shares.

    let mut states = vec![(before.epoch, before.epoch_authenticator.clone())];
    for app in leaders.iter().chain(std::iter::once(&staff)) {
        let summary = app.client.group(&group.id)?.context("group")?;
        ensure!(
            !summary.members.iter().any(|m| m.user_id == outsider.user),
            "{} accepted the outsider",
            app.user
        );
        states.push((summary.epoch, summary.epoch_authenticator));
    }
    ensure!(
        states.windows(2).all(|w| w[0] == w[1]),
        "the honest members disagree: {states:?}"
    );
    if let Some(joined) = outsider.client.group(&group.id)? {
        ensure!(
            joined.epoch_authenticator != before.epoch_authenticator,
            "the outsider shares the honest members' state"
        );
    }

    // The relay took the rogue commit, so the cohort went on without the
    // honest members: each is told it cannot follow it (a message at the
    // old epoch would be refused, never stored for readers who could not
    // decrypt it), and none rejoins a state holding the outsider.
    for app in leaders.iter_mut().chain(std::iter::once(&mut staff)) {
        app.wait_event(|e| match e {
            Event::GroupStalled { group: g, .. } if *g == group.id => Some(()),
            _ => None,
        })
        .await?;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for app in leaders.iter().chain(std::iter::once(&staff)) {
        let summary = app.client.group(&group.id)?.context("group")?;
        ensure!(
            summary.stalled.is_some()
                && !summary.members.iter().any(|m| m.user_id == outsider.user),
            "{} rejoined a state holding the outsider: {summary:?}",
            app.user
        );
    }
    // And they still talk among themselves, elsewhere.
    staff.client.send_text(&elsewhere.id, "still here").await?;
    for leader in &leaders {
        leader
            .hears(&elsewhere.id, &staff.user, "still here")
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_numbers_agree_on_both_sides() -> Result<()> {
    let relay = RelayProcess::start_default()?;
    let staff = staff_app(&relay).await?;
    let leaders = leader_apps(&relay, &staff, &names("l", 3)).await?;
    let ab = leaders[0].client.safety_number("l2").await?;
    let ba = leaders[1].client.safety_number("l1").await?;
    ensure!(ab.number == ba.number, "{} != {}", ab.number, ba.number);
    ensure!(ab.number.len() == 12 * 5 + 11);
    let ac = leaders[0].client.safety_number("l3").await?;
    ensure!(ab.number != ac.number);
    let unknown = leaders[0].client.safety_number("nobody").await.err();
    ensure!(matches!(unknown, Some(ClientError::UnknownUser(_))));
    Ok(())
}

// Every staff member can invite: the authority delegates to a colleague's
// own key, their invitees are accepted by every client, and a revoked
// delegation is refused.

fn details(user: &str, role: Role) -> UserDetails {
    UserDetails {
        user_id: user.into(),
        display_name: display_name(user),
        role,
        sector: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_staff_member_invites_under_delegation_and_a_revoked_one_is_refused() -> Result<()>
{
    let relay = RelayProcess::start_default()?;
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
    _relay: RelayProcess,
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
    let relay = RelayProcess::start_default()?;
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

    let relay = RelayProcess::start_default()?;
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
