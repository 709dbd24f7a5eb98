//! Frames in and out of one websocket.
//!
//! Reading stays with the session; writing belongs to a dedicated task that
//! owns the socket's sink. Everything the relay sends to a device (responses,
//! pushes, the final close) goes through that task's bounded queue, which it
//! drains in batches: several frames written, one flush. The queue is bounded
//! in frames and in bytes ([`OUTBOUND_BYTES`]): a device that stops reading
//! fills it and then stalls the writer; a write that takes longer than the
//! write timeout ends the connection, so a slow reader holds at most the
//! queue's bytes and the socket buffers, however much it asked for.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::config::Limits;

/// Frames a connection's writer takes in one batch before flushing.
const WRITE_BATCH: usize = 64;
/// Frames queued for one connection before senders wait.
pub const OUTBOUND_QUEUE: usize = 128;
/// Bytes queued for one connection before senders wait (a frame larger
/// than this waits for an empty queue).
pub const OUTBOUND_BYTES: usize = 1024 * 1024;

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

/// The connection has no writer any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterGone;

/// The sending end of a connection's outbound queue: every task that
/// writes to the device holds a clone.
#[derive(Debug, Clone)]
pub struct OutboundSender {
    frames: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
}

/// The writer's end of the queue.
#[derive(Debug)]
pub struct OutboundQueue(mpsc::Receiver<Queued>);

/// A queued frame and its share of the byte budget, returned once written.
#[derive(Debug)]
struct Queued(Outbound, Option<OwnedSemaphorePermit>);

/// A new outbound queue for one connection.
pub fn outbound_queue() -> (OutboundSender, OutboundQueue) {
    let (frames, queue) = mpsc::channel(OUTBOUND_QUEUE);
    let bytes = Arc::new(Semaphore::new(OUTBOUND_BYTES));
    (OutboundSender { frames, bytes }, OutboundQueue(queue))
}

fn cost(outbound: &Outbound) -> u32 {
    match outbound {
        Outbound::Frame(bytes) => bytes.len().clamp(1, OUTBOUND_BYTES) as u32,
        Outbound::Close(..) => 1,
    }
}

impl OutboundSender {
    /// Queues `outbound`, waiting for room (in frames and bytes).
    pub async fn send(&self, outbound: Outbound) -> Result<(), WriterGone> {
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(cost(&outbound))
            .await
            .map_err(|_| WriterGone)?;
        self.frames
            .send(Queued(outbound, Some(permit)))
            .await
            .map_err(|_| WriterGone)
    }

    /// Queues `outbound` if there is room now; drops it otherwise.
    pub fn try_send(&self, outbound: Outbound) -> bool {
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(cost(&outbound)) else {
            return false;
        };
        self.frames.try_send(Queued(outbound, Some(permit))).is_ok()
    }

    /// Resolves once the writer has stopped.
    pub async fn closed(&self) {
        self.frames.closed().await
    }
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
    queue: OutboundQueue,
    write_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let OutboundQueue(mut queue) = queue;
    // Empty while idle: most connections are, and a batch's room (64
    // frames) would otherwise stay with each of them.
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut close = None;
        let written = tokio::time::timeout(write_timeout, async {
            // Each frame's budget returns once tungstenite has it.
            for Queued(outbound, _permit) in batch.drain(..) {
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
        batch.shrink_to(0);
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(
                    error = &err as &dyn std::error::Error,
                    "write to device failed"
                );
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
