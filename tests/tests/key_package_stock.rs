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
use convene_tests::{RelayProcess, TestDevice};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_client_replenishes_its_key_packages_when_told() -> Result<()> {
    let relay = RelayProcess::start_default()?;
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
    let relay = RelayProcess::start_default()?;
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
    let relay = RelayProcess::start_default()?;
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
