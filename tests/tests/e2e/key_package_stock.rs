//! A client keeps its KeyPackage stock on the relay: when claims run it
//! low, the relay tells it and it uploads more, so others keep getting
//! one-time KeyPackages rather than the last-resort one.

use anyhow::{bail, Context, Result};
use convene_client::store::records::{key_packages_key, KeyPackagesRecord};
use convene_client::store::LocalStore;
use convene_client::Role;
use convene_proto::relay::{push, request, response, ClaimKeyPackages, KeyPackagesLow};
use convene_tests::app::{leader_apps, raw_device, staff_app, store_key, StoppedApp};
use convene_tests::connectors::TwistedConnector;
use convene_tests::{InProcessRelay, RelayOptions, TestDevice};

/// Claims one KeyPackage of `user`; true if it was the last-resort one.
async fn claim(staff: &TestDevice, user: &str) -> Result<bool> {
    let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec![user.to_string()],
        device_keys: Vec::new(),
    });
    match staff.conn.request(claim).await? {
        response::Result::ClaimedKeyPackages(claimed) if claimed.key_packages.len() == 1 => {
            Ok(claimed.key_packages[0].last_resort)
        }
        other => bail!("unexpected answer {other:?}"),
    }
}

/// A relay that lets one claimer take as many of one device's one-time
/// KeyPackages as it likes: these tests are about the client's stock, not
/// the relay's quotas.
fn generous_relay() -> Result<InProcessRelay> {
    InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nkey_package_claims_per_target = 100000\n".into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_client_replenishes_its_key_packages_when_told() -> Result<()> {
    let relay = generous_relay()?;
    let staff = staff_app(&relay).await?;
    let ana = leader_apps(&relay, &staff, &["ana".to_string()]).await?;
    // The claims come from a raw device, so that no client of ours is
    // involved on the claiming side.
    let claimer = raw_device(&relay, &staff, "claimer", Role::Staff).await?;

    // More claims than the 30 uploaded at enrolment: without top-ups the
    // last ones would be the last-resort KeyPackage.
    for n in 0..60 {
        if claim(&claimer, "ana").await? {
            bail!("claim {n} got the last-resort KeyPackage: the stock was not replenished");
        }
        // Give the client a moment to answer the relay's low-stock push.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(ana);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_drained_without_pause_makes_a_bounded_number_of_key_packages() -> Result<()> {
    let relay = generous_relay()?;
    let staff = staff_app(&relay).await?;
    let ana = leader_apps(&relay, &staff, &["ana".to_string()]).await?;
    let claimer = raw_device(&relay, &staff, "claimer", Role::Staff).await?;

    // The 30 uploaded at enrolment, then at most ten top-ups of 30 in a
    // minute (client-core's TOP_UPS_PER_WINDOW); the rest of a drain that
    // lasts well under a minute gets the last-resort KeyPackage.
    const AT_MOST: usize = 30 + 10 * 30;
    let mut one_time = 0;
    for _ in 0..(AT_MOST + 150) {
        if !claim(&claimer, "ana").await? {
            one_time += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        one_time <= AT_MOST,
        "{one_time} one-time KeyPackages made for one drain"
    );
    assert!(one_time > 30, "the stock was never topped up");
    drop(ana);
    Ok(())
}

/// How many KeyPackage private keys a stopped client holds.
fn key_package_keys(stopped: &StoppedApp) -> Result<usize> {
    let store = LocalStore::open(&stopped.state_dir, &store_key(&stopped.user))?;
    let record: Option<KeyPackagesRecord> = store.get_committed_record(&key_packages_key())?;
    Ok(record.map_or(0, |r| r.keys.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_keeps_saying_the_last_resort_is_gone_gets_a_bounded_number() -> Result<()> {
    let relay = InProcessRelay::start_default()?;
    let staff = staff_app(&relay).await?;
    let mut leaders = leader_apps(&relay, &staff, &["ana".to_string()]).await?;
    let stopped = leaders.pop().context("one leader")?.stop().await;
    let before = key_package_keys(&stopped)?;

    // 200 pushes saying the stock is full but the last-resort KeyPackage
    // is gone: each would make one, with a durable write.
    let low = push::Kind::KeyPackagesLow(KeyPackagesLow {
        one_time_remaining: 30,
        last_resort: false,
    });
    let ana = stopped
        .resume()
        .await?
        .reopen_with(TwistedConnector::injecting(&relay.url, vec![low; 200]))
        .await?;
    ana.client.wait_caught_up(convene_tests::PATIENCE).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = key_package_keys(&ana.stop().await)?;
    // Ten top-ups a minute, and as many last-resort replacements again.
    assert!(
        after <= before + 20,
        "{after} KeyPackage keys held after the relay's pushes ({before} before)"
    );
    Ok(())
}

/// One device cannot drain another's one-time KeyPackages: past its share
/// it gets the last-resort one, while another claimer still gets one-time
/// ones; past its share in all, claims are refused with a retry time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimer_past_its_share_gets_the_last_resort_or_waits() -> Result<()> {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml:
            "[limits]\nkey_package_claims_per_target = 5\nkey_package_claims_per_claimer = 12\n"
                .into(),
        ..Default::default()
    })?;
    let staff = staff_app(&relay).await?;
    let ana = leader_apps(&relay, &staff, &["ana".to_string()]).await?;
    let mallory = raw_device(&relay, &staff, "mallory", Role::Leader).await?;
    let honest = raw_device(&relay, &staff, "honest", Role::Staff).await?;

    let mut last_resort = Vec::new();
    for _ in 0..8 {
        last_resort.push(claim(&mallory, "ana").await?);
    }
    assert_eq!(
        last_resort,
        [false, false, false, false, false, true, true, true]
    );
    assert!(
        !claim(&honest, "ana").await?,
        "another claimer got the last resort"
    );

    // Mallory's 12 in all: 8 above, 4 more, then refused.
    for _ in 0..4 {
        claim(&mallory, "ana").await?;
    }
    let claim_again = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec!["ana".into()],
        device_keys: Vec::new(),
    });
    match mallory.conn.request(claim_again).await {
        Err(convene_client::TransportError::Refused(r)) => {
            assert_eq!(r.code, convene_proto::relay::ErrorCode::RateLimited, "{r}");
            assert!(r.retry_after_ms > 0);
        }
        other => bail!("a claim past the claimer's share was answered: {other:?}"),
    }
    drop(ana);
    Ok(())
}
