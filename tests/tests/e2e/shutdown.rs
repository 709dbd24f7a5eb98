//! SIGTERM: close every websocket with 1001, flush, exit 0.

use std::time::{Duration, Instant};

use convene_proto::ids::GroupId;
use convene_tests::device::bootstrap_staff;
use convene_tests::{RelayProcess, TestDevice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_flushes_and_exits_zero() {
    let mut relay = RelayProcess::start_default().unwrap();
    let staff = bootstrap_staff(&relay).await.unwrap();
    staff.create_group(b"g").await.unwrap();
    staff.send(b"g", b"kept").await.unwrap();

    let started = Instant::now();
    let status = tokio::task::block_in_place(|| relay.terminate(Duration::from_secs(10))).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let code = tokio::time::timeout(Duration::from_secs(5), staff.conn.closed())
        .await
        .unwrap();
    assert_eq!(code, Some(1001));

    // The data directory opens cleanly and has what was acknowledged.
    {
        let store = relay.open_store().unwrap();
        assert_eq!(
            store
                .group(&GroupId::from_field(b"g").unwrap())
                .unwrap()
                .unwrap()
                .last_position,
            1
        );
    }
    relay.restart().unwrap();
    let key = staff.vanish();
    let staff = TestDevice::connect(&relay.url, key).await.unwrap();
    staff.send(b"g", b"after restart").await.unwrap();
}
