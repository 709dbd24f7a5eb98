//! Frames in and out of one websocket.
//!
//! Reading stays with the session; writing belongs to a dedicated task that
//! owns the socket's sink. Everything the relay sends to a device (responses,
//! pushes, the final close) goes through that task's bounded queue, which it
//! drains in batches: several frames written, one flush. A device that stops
//! reading fills the queue and then stalls the writer; a write that takes
//! longer than the write timeout ends the connection, so a slow reader holds
//! at most the queue and the socket buffers.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::config::Limits;

/// Frames a connection's writer takes in one batch before flushing.
const WRITE_BATCH: usize = 64;
/// Frames queued for one connection before senders wait.
pub const OUTBOUND_QUEUE: usize = 128;

/// Close codes the relay uses (RFC 6455 section 7.4, and 4000-4999 for ours).
pub mod close {
    /// The relay is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The device broke the protocol.
    pub const POLICY: u16 = 1008;
    /// A frame was larger than the relay accepts.
    pub const TOO_BIG: u16 = 1009;
    /// A newer connection of the same device took over.
    pub const SUPERSEDED: u16 = 4000;
    /// The device did not authenticate in time.
    pub const AUTH_TIMEOUT: u16 = 4001;
    /// The device failed authentication too often.
    pub const AUTH_FAILED: u16 = 4002;
    /// The connection was idle too long.
    pub const IDLE: u16 = 4003;
    /// Staff revoked the device (or suspended its user).
    pub const REVOKED: u16 = 4004;
}

/// Something for the writer task to send.
#[derive(Debug)]
pub enum Outbound {
    /// One encoded envelope.
    Frame(Bytes),
    /// Close the websocket with this code and reason, then stop.
    Close(u16, &'static str),
}

/// What the session's reader got from the socket.
#[derive(Debug)]
pub enum Inbound {
    /// A binary message: one envelope, still encoded.
    Frame(Bytes),
    /// A message that is not a binary frame.
    NotBinary,
    /// The device closed the connection, or it broke.
    Closed,
    /// The device sent a frame or message over the size limit.
    TooBig,
}

/// The websocket settings for every device connection: small buffers, for
/// many idle connections, and explicit size limits (tungstenite's defaults
/// accept 64 MiB messages).
pub fn websocket_config(limits: &Limits) -> WebSocketConfig {
    let max = limits.max_frame_bytes();
    let write_buffer = limits.ws_write_buffer_bytes as usize;
    WebSocketConfig::default()
        .read_buffer_size(limits.ws_read_buffer_bytes as usize)
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(write_buffer + 2 * max)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Reads the next message that matters (control frames are answered by
/// tungstenite itself).
pub async fn read<S>(stream: &mut SplitStream<WebSocketStream<S>>) -> Inbound
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        return match stream.next().await {
            Some(Ok(Message::Binary(bytes))) => Inbound::Frame(bytes),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => Inbound::NotBinary,
            Some(Ok(Message::Close(_))) | None => Inbound::Closed,
            Some(Err(WsError::Capacity(_))) => Inbound::TooBig,
            Some(Err(_)) => Inbound::Closed,
        };
    }
}

/// The writer task: drains the queue in batches until told to close, the
/// queue's senders are all gone, or a write fails or times out.
pub async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    write_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut close = None;
        let written = tokio::time::timeout(write_timeout, async {
            for outbound in batch.drain(..) {
                match outbound {
                    Outbound::Frame(bytes) => sink.feed(Message::Binary(bytes)).await?,
                    Outbound::Close(code, reason) => {
                        close = Some((code, reason));
                        break;
                    }
                }
            }
            sink.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "write to device failed");
                return;
            }
            Err(_) => {
                tracing::info!("a device did not read for too long; dropping its connection");
                return;
            }
        }
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            let _ =
                tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(frame)))).await;
            return;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
}
