//! Acknowledgements against a scripted relay: one the relay did not take
//! is sent again, since the relay holds back what follows until it hears
//! of it (its push window) and nothing else would make the device ask.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use convene_proto::relay::{push, request, stream_ack, ErrorCode, MessageKind, Receipt};

use super::scripted_tests::{application_sends, scripted_staff, until};
use crate::transport::scripted::{Answer, ScriptedRelay};
use crate::transport::RelayRefusal;

/// The (stream, position) pairs of each acknowledgement the relay was sent.
fn acks_sent(relay: &ScriptedRelay) -> Vec<Vec<(Option<stream_ack::Stream>, u64)>> {
    relay
        .requests()
        .into_iter()
        .filter_map(|(_, request)| match request {
            request::Kind::Ack(ack) => Some(
                ack.acks
                    .into_iter()
                    .map(|entry| (entry.stream, entry.position))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A device whose relay refuses, with `code`, the first acknowledgement
/// after the device's own message comes back to it as a receipt.
struct RefusedOnce {
    relay: ScriptedRelay,
    client: crate::Client,
    _dir: tempfile::TempDir,
    /// The acknowledgement of that receipt.
    wanted: (Option<stream_ack::Stream>, u64),
    /// Acknowledgements sent before it.
    before: usize,
}

async fn refused_once(code: ErrorCode, retry_after_ms: u32) -> RefusedOnce {
    let armed = Arc::new(AtomicBool::new(false));
    let relay = ScriptedRelay::new({
        let armed = armed.clone();
        move |kind, _| match kind {
            request::Kind::Ack(_) if armed.swap(false, Ordering::SeqCst) => {
                Answer::Refuse(RelayRefusal {
                    code,
                    message: "refused by the script".into(),
                    current_epoch: 0,
                    retry_after_ms,
                    revocation: Vec::new(),
                })
            }
            _ => Answer::Honest,
        }
    });
    let (dir, client) = scripted_staff(&relay).await;
    let group = client.create_group("cohort", &[]).await.unwrap();
    let sent = client.send_text(&group.id, "hello").await.unwrap();
    let send = application_sends(&relay).pop().unwrap();
    let before = acks_sent(&relay).len();
    armed.store(true, Ordering::SeqCst);
    assert!(relay.push(push::Kind::Receipt(Receipt {
        group_id: send.group_id.clone(),
        position: sent.position,
        epoch: 0,
        kind: MessageKind::Application as i32,
        submission_id: send.submission_id.clone(),
    })));
    // The refusal is used by the acknowledgement of that receipt.
    until(&relay, |_| !armed.load(Ordering::SeqCst)).await;
    RefusedOnce {
        wanted: (
            Some(stream_ack::Stream::GroupId(send.group_id.clone())),
            sent.position,
        ),
        relay,
        client,
        _dir: dir,
        before,
    }
}

/// The acknowledgements sent since the refused one's turn that carry it.
fn carrying(refused: &RefusedOnce) -> usize {
    let acks = acks_sent(&refused.relay);
    acks.get(refused.before..)
        .unwrap_or_default()
        .iter()
        .filter(|ack| ack.contains(&refused.wanted))
        .count()
}

#[tokio::test]
async fn an_acknowledgement_the_relay_refused_is_sent_again_after_its_retry_time() {
    let refused = refused_once(ErrorCode::RateLimited, 50).await;
    // `until` fails the test if it is never sent again.
    until(&refused.relay, |_| carrying(&refused) >= 2).await;
    refused.client.shutdown().await;
}

#[tokio::test]
async fn an_acknowledgement_refused_for_good_is_not_sent_again() {
    let refused = refused_once(ErrorCode::InvalidArgument, 0).await;
    // Longer than any retry would wait (1 s for such a refusal).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        carrying(&refused),
        1,
        "a refusal that would come again held the acknowledgement: {:?}",
        acks_sent(&refused.relay)
    );
    refused.client.shutdown().await;
}
