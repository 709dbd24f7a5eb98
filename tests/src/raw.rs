//! Raw websockets to the relay, for tests that must behave as no real
//! client would: never read, send half a handshake, flood.

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use convene_client::DeviceKey;
use convene_proto::auth::AuthPurpose;
use convene_proto::relay::{envelope::Body, push, request, response, Authenticate, Envelope};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A websocket to the relay, without the client library.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the relay's first push, its challenge: (relay id, nonce).
pub async fn challenge(socket: &mut RawSocket) -> Result<([u8; 16], [u8; 32])> {
    match next_envelope(socket).await?.body {
        Some(Body::Push(convene_proto::relay::Push {
            kind: Some(push::Kind::Challenge(c)),
        })) => Ok((
            c.relay_id.as_ref().try_into()?,
            c.nonce.as_ref().try_into()?,
        )),
        other => bail!("expected a challenge, got {other:?}"),
    }
}

/// The `Authenticate` request answering a challenge with `key`.
pub fn authenticate_frame(key: &DeviceKey, relay_id: &[u8; 16], nonce: &[u8; 32]) -> Message {
    let signature = key.sign_challenge(AuthPurpose::Authenticate, relay_id, nonce);
    let auth = Envelope::request(
        1,
        request::Kind::Authenticate(Authenticate {
            device_key: Bytes::copy_from_slice(key.public().as_bytes()),
            signature: Bytes::copy_from_slice(&signature),
            ..Default::default()
        }),
    );
    Message::Binary(convene_proto::encode_envelope(&auth))
}

/// Connects, answers the challenge with `key` and waits to be told the
/// device is authenticated.
pub async fn authenticated_socket(url: &str, key: &DeviceKey) -> Result<RawSocket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let (relay_id, nonce) = challenge(&mut socket).await?;
    socket
        .send(authenticate_frame(key, &relay_id, &nonce))
        .await?;
    loop {
        if let Some(Body::Response(r)) = next_envelope(&mut socket).await?.body {
            return match r.result {
                Some(response::Result::Authenticated(_)) => Ok(socket),
                other => Err(anyhow!("authentication refused: {other:?}")),
            };
        }
    }
}

/// The next envelope on `socket`.
pub async fn next_envelope(socket: &mut RawSocket) -> Result<Envelope> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(convene_proto::decode_envelope(bytes)?),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("the relay closed the connection"),
        }
    }
}
