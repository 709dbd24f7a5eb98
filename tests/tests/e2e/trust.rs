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
use convene_tests::app::{leader_apps, raw_device, staff_app, App};
use convene_tests::{InProcessRelay, TestDevice};
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
    let relay = InProcessRelay::start_default()?;
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
        certified: Default::default(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let (_, chain) =
        fake.issue_direct_chain(&details, mallory.device().into(), now - 1000, 3_600_000);
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
    let relay = InProcessRelay::start_default()?;
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
    let relay = InProcessRelay::start_default()?;
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
    let relay = InProcessRelay::start_default()?;
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
