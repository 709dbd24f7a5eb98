//! A relay of a test's own making on loopback, for the client's side of a
//! hostile relay: it greets each connection with a challenge, then
//! misbehaves as asked (never reads, or floods pushes), where the real
//! relay never would.

use bytes::Bytes;
use convene_proto::frame::encode_envelope;
use convene_proto::relay::{push, CaughtUp, Challenge, Envelope};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// What the stub does after its challenge.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Reads nothing more: the client's writes fill the socket and stall.
    StopReading,
    /// Sends this many pushes at once and never reads acknowledgements.
    FloodPushes(usize),
}

/// A stub relay listening on 127.0.0.1; its address as a `ws://` URL.
pub async fn start(misbehaviour: Misbehaviour) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, misbehaviour));
        }
    });
    Ok(url)
}

async fn serve(tcp: tokio::net::TcpStream, misbehaviour: Misbehaviour) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, stream) = ws.split();
    let challenge = push::Kind::Challenge(Challenge {
        relay_id: Bytes::from_static(&[7; 16]),
        nonce: Bytes::from_static(&[9; 32]),
        auth_timeout_ms: 10_000,
    });
    let frame = |kind| Message::Binary(encode_envelope(&Envelope::push(kind)));
    if sink.send(frame(challenge)).await.is_err() {
        return;
    }
    match misbehaviour {
        Misbehaviour::StopReading => {
            // Hold the socket open without reading from it.
            let _held = (sink, stream);
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
        Misbehaviour::FloodPushes(count) => {
            for _ in 0..count {
                if sink
                    .feed(frame(push::Kind::CaughtUp(CaughtUp::default())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = sink.flush().await;
            let _held = stream;
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    }
}
