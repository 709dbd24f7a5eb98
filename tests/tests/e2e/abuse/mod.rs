//! Abuse: each attack runs while two bystanders keep talking, with the
//! relay's peak memory taken from the kernel. The attacker must be refused or cut off within
//! a bound, the bystanders' messages must all arrive, and the relay must
//! not buffer what the attacker makes it send. Each test prints its
//! figures (docs/RELIABILITY.md collects them); none asserts a speed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use convene_proto::relay::{request, response, Envelope, ErrorCode, GetBlob, Role};
use convene_tests::bystander::{peak_resident_bytes, reset_peak, resident_bytes, Bystanders};
use convene_tests::raw::{authenticated_socket, next_envelope};
use convene_tests::{RelayOptions, RelayProcess, RelayUnderTest, TestDevice};
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Short timeouts, so that cut-offs happen within a test's patience.
mod quotas;

const LIMITS: &str = "[limits]\n\
    auth_timeout_ms = 2000\n\
    write_timeout_ms = 2000\n\
    max_unauthenticated = 64\n\
    max_payload_bytes = 65536\n\
    blob_chunk_bytes = 65536\n";

fn relay() -> RelayProcess {
    RelayProcess::start(RelayOptions {
        config_toml: LIMITS.into(),
        log_filter: Some("info".into()),
        ..Default::default()
    })
    .unwrap()
}

/// An enrolled leader's key, for a raw attacker.
async fn attacker_key(
    relay: &impl RelayUnderTest,
    staff: &TestDevice,
) -> convene_client::DeviceKey {
    let invite = staff.invite(Role::Leader).await.unwrap();
    TestDevice::enrol(relay.url(), &invite, "mallory")
        .await
        .unwrap()
        .vanish()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

async fn wait_for_log(relay: &RelayProcess, needle: &str, patience: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < patience {
        if relay.logs().contains(needle) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_reads_is_dropped_and_costs_bounded_memory() {
    let relay = relay();
    let pid = relay.pid().unwrap();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let key = attacker_key(&relay, &bystanders.staff).await;
    // A 64 KiB attachment the attacker asks for again and again.
    let blob = {
        let begin = request::Kind::BeginBlob(convene_proto::relay::BeginBlob { size: 65536 });
        let Ok(response::Result::BlobStarted(started)) = bystanders.staff.conn.request(begin).await
        else {
            panic!("no blob");
        };
        let put = request::Kind::PutBlobChunk(convene_proto::relay::PutBlobChunk {
            blob_id: started.blob_id.clone(),
            offset: 0,
            data: Bytes::from(vec![7u8; 65536]),
        });
        bystanders.staff.conn.request(put).await.unwrap();
        started.blob_id
    };
    let before = resident_bytes(pid);
    reset_peak(pid).unwrap();
    let mut attacker = authenticated_socket(&relay.url, &key).await.unwrap();
    // 900 requests (the burst allows 1,000): 56 MiB of answers, never read.
    let asked = 900u64;
    let started = Instant::now();
    for id in 0..asked {
        let get = Envelope::request(
            id + 2,
            request::Kind::GetBlob(GetBlob {
                blob_id: blob.clone(),
                offset: 0,
                max_bytes: 0,
            }),
        );
        let frame = Message::Binary(convene_proto::encode_envelope(&get));
        if tokio::time::timeout(Duration::from_secs(5), attacker.send(frame))
            .await
            .map_or(true, |sent| sent.is_err())
        {
            break; // the relay stopped reading us (back-pressure) or closed
        }
    }
    let dropped = wait_for_log(&relay, "did not read for too long", Duration::from_secs(20)).await;
    let cut_off = started.elapsed();
    let peak = peak_resident_bytes(pid);
    let latency = bystanders.stop().await.unwrap();
    assert!(
        dropped.is_some(),
        "the relay kept a device that never reads"
    );
    let owed_mib = (asked * 65536) as f64 / 1048576.0;
    let grew = mib(peak.saturating_sub(before));
    eprintln!(
        "never reads: asked for {owed_mib:.0} MiB, dropped after {:.1} s; relay RSS {:.1} -> peak {:.1} MiB (+{grew:.1}); bystanders: {latency}",
        cut_off.as_secs_f64(),
        mib(before),
        mib(peak)
    );
    // Without the byte bounds on its queues the relay held 21 to 25 MiB
    // here (one 64 KiB answer per queued frame or pending response).
    assert!(
        grew < owed_mib / 8.0,
        "the relay buffered {grew:.1} MiB of the {owed_mib:.0} MiB a non-reader asked for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshakes_are_cut_off_at_the_deadline_and_the_excess_refused() {
    let relay = relay();
    let pid = relay.pid().unwrap();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let before = resident_bytes(pid);
    reset_peak(pid).unwrap();
    // 200 sockets (the relay admits 64 unauthenticated), each sending its
    // upgrade request one byte every 100 ms.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        relay.url.trim_start_matches("ws://")
    );
    let started = Instant::now();
    let attackers: Vec<_> = (0..200)
        .map(|_| {
            let addr = relay.url.trim_start_matches("ws://").to_string();
            let request = request.clone().into_bytes();
            tokio::spawn(async move {
                let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else {
                    return Some(Duration::ZERO);
                };
                let start = Instant::now();
                for byte in request.iter().cycle() {
                    if socket.write_all(&[*byte]).await.is_err() {
                        return Some(start.elapsed());
                    }
                    if start.elapsed() > Duration::from_secs(15) {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    // Those over the cap are closed at once (before a second byte, 100 ms
    // on); the admitted ones at the 2 s deadline.
    let mut refused_at_once = 0;
    for attacker in attackers {
        let held = attacker
            .await
            .unwrap()
            .expect("a slowloris socket was held past 15 s");
        worst = worst.max(held);
        if held < Duration::from_secs(1) {
            refused_at_once += 1;
        }
    }
    // A newcomer is served once the attack is over.
    let (mut newcomer, _) = tokio_tungstenite::connect_async(relay.url.as_str())
        .await
        .unwrap();
    next_envelope(&mut newcomer).await.unwrap();
    let peak = peak_resident_bytes(pid);
    let latency = bystanders.stop().await.unwrap();
    eprintln!(
        "slowloris: 200 sockets, {refused_at_once} refused at once, all closed within {:.1} s (deadline 2 s); attack lasted {:.1} s; relay RSS {:.1} -> peak {:.1} MiB; bystanders: {latency}",
        worst.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        mib(before),
        mib(peak)
    );
    assert!(worst < Duration::from_secs(10));
    assert!(
        refused_at_once >= 200 - 64,
        "only {refused_at_once} sockets over the cap of 64 were refused at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_refused_over_the_rate_while_others_carry_on() {
    let relay = relay();
    let pid = relay.pid().unwrap();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let key = attacker_key(&relay, &bystanders.staff).await;
    let before = resident_bytes(pid);
    reset_peak(pid).unwrap();
    let attacker = TestDevice::connect(&relay.url, key).await.unwrap();
    let started = Instant::now();
    let mut refused = 0;
    let mut served = 0;
    // 3 s of pings as fast as the connection allows, 64 in flight.
    while started.elapsed() < Duration::from_secs(3) {
        let pings = (0..64).map(|_| {
            attacker
                .conn
                .request(request::Kind::Ping(Default::default()))
        });
        for result in futures_util::future::join_all(pings).await {
            match result {
                Ok(_) => served += 1,
                Err(err) if err.refusal_code() == Some(ErrorCode::RateLimited) => refused += 1,
                Err(err) => panic!("unexpected {err}"),
            }
        }
    }
    let peak = peak_resident_bytes(pid);
    let latency = bystanders.stop().await.unwrap();
    eprintln!(
        "request flood: {} requests in 3 s, {served} served, {refused} refused as rate-limited; relay RSS {:.1} -> peak {:.1} MiB; bystanders: {latency}",
        served + refused,
        mib(before),
        mib(peak)
    );
    assert!(refused > 0 && served <= 1000 + 200 * 4, "served {served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_and_the_sender_may_go_on() {
    let relay = relay();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let staff = &bystanders.staff;
    staff.create_group(b"staff-room").await.unwrap();
    // The limit counts the whole MLS message; its framing takes a few
    // dozen bytes of it.
    let err = staff
        .send(b"staff-room", &vec![0u8; 65536])
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some(ErrorCode::TooLarge));
    staff
        .send(b"staff-room", &vec![0u8; 65536 - 64])
        .await
        .unwrap();
    let latency = bystanders.stop().await.unwrap();
    eprintln!("oversized message: refused with TooLarge; bystanders: {latency}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reads_posts_to_or_acknowledges_another_devices_queue() {
    let relay = relay();
    let bystanders = Bystanders::start(&relay).await.unwrap();
    let key = attacker_key(&relay, &bystanders.staff).await;
    let attacker = TestDevice::connect(&relay.url, key).await.unwrap();
    let group = convene_tests::bystander::GROUP;
    // Reading the bystanders' group, posting to it, acknowledging its
    // stream as if it were ours: all refused.
    let get = request::Kind::GetGroup(convene_proto::relay::GetGroup {
        group_id: Bytes::from_static(group),
    });
    let read = attacker.conn.request(get).await.unwrap_err();
    let post = attacker.send(group, b"let me in").await.unwrap_err();
    let ack = attacker.ack_group(group, u64::MAX).await;
    let inbox = attacker.ack_inbox(u64::MAX).await;
    // The bystanders' delivery goes on untouched.
    let latency = bystanders.stop().await.unwrap();
    for err in [&read, &post] {
        assert!(
            matches!(
                err.refusal_code(),
                Some(ErrorCode::NotAMember | ErrorCode::Forbidden | ErrorCode::NotFound)
            ),
            "{err}"
        );
    }
    // An acknowledgement for a group the device is not in is ignored.
    assert!(ack.is_ok(), "{ack:?}");
    assert!(inbox.is_ok(), "{inbox:?}");
    eprintln!(
        "another's queue: read refused {:?}, post refused {:?}, ack ignored; bystanders: {latency}",
        read.refusal_code(),
        post.refusal_code(),
    );
}

/// 1,000 unauthenticated sockets from one address take at most its share
/// of the slots: a device connecting from another loopback address
/// (127.0.0.2) still authenticates and is answered, and the refusals are
/// logged as a summary, not a line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_flooding_unauthenticated_sockets_locks_nobody_else_out() {
    let relay = RelayProcess::start(RelayOptions {
        config_toml: "[limits]\nmax_unauthenticated = 64\nmax_unauthenticated_per_address = 16\n"
            .into(),
        log_filter: Some("info".into()),
        ..Default::default()
    })
    .unwrap();
    let staff = convene_tests::device::bootstrap_staff(&relay)
        .await
        .unwrap();
    let key = staff.vanish();
    let addr: std::net::SocketAddr = relay.url.trim_start_matches("ws://").parse().unwrap();
    let log_before = relay.logs().len();

    let mut flood = Vec::new();
    for _ in 0..1_000 {
        if let Ok(socket) = tokio::net::TcpStream::connect(addr).await {
            flood.push(socket);
        }
    }
    assert!(flood.len() > 900, "only {} sockets opened", flood.len());

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut other, _) = tokio_tungstenite::client_async(relay.url.as_str(), stream)
        .await
        .unwrap();
    let (relay_id, nonce) = convene_tests::raw::challenge(&mut other).await.unwrap();
    other
        .send(convene_tests::raw::authenticate_frame(
            &key, &relay_id, &nonce,
        ))
        .await
        .unwrap();
    let answer = next_envelope(&mut other).await.unwrap();
    assert!(
        matches!(
            answer.body,
            Some(convene_proto::relay::envelope::Body::Response(ref r))
                if matches!(r.result, Some(response::Result::Authenticated(_)))
        ),
        "{answer:?}"
    );
    drop(flood);
    let grown = relay.logs().len() - log_before;
    eprintln!("unauthenticated flood: the log grew by {grown} bytes");
    assert!(grown < 16 * 1024, "the log grew by {grown} bytes");
}
