//! The KeyPackage directory: one-time KeyPackages are handed out once.

use std::collections::HashSet;

use bytes::Bytes;
use convene_proto::mls_frame::{frame_key_package, Lifetime};
use convene_proto::relay::{
    push, request, response, ClaimKeyPackages, ClaimedKeyPackages, ErrorCode, UploadKeyPackages,
};
use convene_tests::device::{bootstrap_staff, enrol_leaders};
use convene_tests::{InProcessRelay, RelayOptions, TestDevice};

/// A KeyPackage of `device` as the relay reads one, labelled `label`
/// (valid for decades: these tests are not about lifetimes).
fn kp(device: &TestDevice, label: &str) -> Bytes {
    let lifetime = Lifetime {
        not_before_secs: 0,
        not_after_secs: 4_000_000_000,
    };
    Bytes::from(frame_key_package(
        &device.device(),
        label.as_bytes(),
        lifetime,
    ))
}

async fn upload(
    device: &TestDevice,
    one_time: &[&str],
    last_resort: &str,
) -> convene_proto::relay::KeyPackageStock {
    let request = request::Kind::UploadKeyPackages(UploadKeyPackages {
        one_time: one_time.iter().map(|label| kp(device, label)).collect(),
        last_resort: if last_resort.is_empty() {
            Bytes::new()
        } else {
            kp(device, last_resort)
        },
        replace_one_time: false,
    });
    match device.conn.request(request).await.unwrap() {
        response::Result::KeyPackageStock(stock) => stock,
        other => panic!("unexpected {other:?}"),
    }
}

async fn claim(
    device: &TestDevice,
    user_id: &str,
) -> Result<ClaimedKeyPackages, convene_client::TransportError> {
    let request = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec![user_id.to_string()],
        device_keys: vec![],
    });
    match device.conn.request(request).await? {
        response::Result::ClaimedKeyPackages(claimed) => Ok(claimed),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn one_time_key_packages_are_claimed_once_then_the_last_resort_is_served() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["ann", "bob"])
        .await
        .unwrap();
    let stock = upload(&leaders[0], &["kp-1", "kp-2"], "kp-last").await;
    assert_eq!((stock.one_time, stock.last_resort), (2, true));

    let mut served = Vec::new();
    for _ in 0..4 {
        let claimed = claim(&leaders[1], "ann").await.unwrap();
        assert_eq!(
            claimed.key_packages.len(),
            1,
            "one KeyPackage per device of the user"
        );
        let claimed = &claimed.key_packages[0];
        assert_eq!(claimed.device_key.as_ref(), leaders[0].device());
        served.push((claimed.key_package.clone(), claimed.last_resort));
    }
    let owner = &leaders[0];
    let mut one_time: Vec<_> = served[..2].iter().map(|(kp, _)| kp.clone()).collect();
    one_time.sort();
    let mut expected = vec![kp(owner, "kp-1"), kp(owner, "kp-2")];
    expected.sort();
    assert_eq!(one_time, expected);
    assert!(served[..2].iter().all(|(_, last)| !last));
    assert_eq!(served[2], (kp(owner, "kp-last"), true));
    assert_eq!(served[3], (kp(owner, "kp-last"), true));
}

#[tokio::test]
async fn concurrent_claimers_never_receive_the_same_key_package() {
    // Each claimer takes more than its default share of one device's
    // stock: this test is about concurrency, not quotas.
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nkey_package_claims_per_target = 1000\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["owner", "c1", "c2", "c3"])
        .await
        .unwrap();
    let names: Vec<String> = (0..60).map(|i| format!("kp-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    upload(&leaders[0], &refs, "").await;

    let claims = leaders[1..].iter().map(|claimer| async move {
        let mut got = Vec::new();
        for _ in 0..25 {
            match claim(claimer, "owner").await {
                Ok(claimed) => {
                    got.extend(claimed.key_packages.into_iter().map(|kp| kp.key_package))
                }
                Err(err) => panic!("{err}"),
            }
        }
        got
    });
    let all: Vec<Bytes> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<&Bytes> = all.iter().collect();
    assert_eq!(all.len(), 60, "exactly the stock was handed out");
    assert_eq!(distinct.len(), 60, "a KeyPackage was handed out twice");
}

#[tokio::test]
async fn the_owner_is_told_when_its_stock_runs_low() {
    let relay = InProcessRelay::start(RelayOptions {
        config_toml: "[limits]\nkey_package_low_watermark = 2\n".into(),
        ..Default::default()
    })
    .unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let mut leaders = enrol_leaders(&relay, &staff, &["ann", "bob"])
        .await
        .unwrap();
    upload(&leaders[0], &["a", "b", "c"], "z").await;
    leaders[0].catch_up().await.unwrap();
    claim(&leaders[1], "ann").await.unwrap();
    assert!(
        leaders[0]
            .push_within(std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "two left is not low"
    );
    claim(&leaders[1], "ann").await.unwrap();
    match leaders[0].push().await.unwrap() {
        push::Kind::KeyPackagesLow(low) => {
            assert_eq!((low.one_time_remaining, low.last_resort), (1, true))
        }
        other => panic!("expected KeyPackagesLow, got {other:?}"),
    }
}

#[tokio::test]
async fn claims_for_unknown_users_waste_nothing() {
    let relay = InProcessRelay::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    let leaders = enrol_leaders(&relay, &staff, &["ann"]).await.unwrap();
    upload(&leaders[0], &["only"], "").await;
    let request = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
        user_ids: vec!["ann".into(), "nobody".into()],
        device_keys: vec![],
    });
    let err = staff.conn.request(request).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some(ErrorCode::NotFound));
    let claimed = claim(&staff, "ann").await.unwrap();
    assert_eq!(claimed.key_packages[0].key_package, kp(&leaders[0], "only"));
    let empty = claim(&staff, "ann").await.unwrap();
    assert!(empty.key_packages.is_empty());
    assert_eq!(empty.unavailable_devices.len(), 1);
}
