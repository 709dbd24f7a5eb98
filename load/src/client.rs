//! A lean device connection for the load generator.
//!
//! The client-core transport answers every request through a oneshot and
//! flushes every frame; at hundreds of thousands of deliveries a second the
//! generator would measure itself. This connection writes frames in batches
//! (one flush per batch), pipelines load messages under a window without
//! per-request bookkeeping, and acknowledges what it received in one `Ack`
//! per burst of pushes, as a real client on a busy connection would.
//!
//! It implements [`Connection`], so enrolment and authentication reuse
//! client-core's own code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use convene_client::transport::{BoxFuture, Connection, RelayRefusal, TransportError};
use convene_proto::relay::{
    envelope::Body, push, request, response, stream_ack, Ack, Envelope, MessageKind, SendMessage,
    StreamAck,
};
use convene_proto::{decode_envelope, encode_envelope};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::payload;
use super::stats::ConnStats;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<response::Result>>>>;

/// Request ids with this bit are load messages: their responses release a
/// window slot instead of waking a waiter.
const LOAD_BIT: u64 = 1 << 63;
/// Request ids with this bit are acknowledgements, whose responses are only
/// counted.
const ACK_BIT: u64 = 1 << 62;
/// Pushes acknowledged in one `Ack` at most.
const ACK_BATCH: usize = 128;
/// Frames written per flush at most.
const WRITE_BATCH: usize = 128;

/// One device's connection, authenticated or not yet.
pub struct LoadConn {
    out: mpsc::UnboundedSender<Bytes>,
    waiters: Waiters,
    next_id: AtomicU64,
    window: Arc<Semaphore>,
    relay_id: [u8; 16],
    nonce: [u8; 32],
    /// What this connection sent and received.
    pub stats: Arc<ConnStats>,
    /// Notified at every `CaughtUp` push.
    pub caught_up: Arc<Notify>,
}

impl LoadConn {
    /// Connects to `url` and reads the challenge. `window` bounds the load
    /// messages in flight (sent, not yet answered).
    pub async fn connect(url: &str, window: usize) -> Result<LoadConn> {
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(16 * 1024);
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async_with_config(url, Some(config), true),
        )
        .await
        .map_err(|_| anyhow!("connecting to {url} timed out"))?
        .with_context(|| format!("cannot connect to {url}"))?;
        let (sink, mut stream) = ws.split();
        let (relay_id, nonce) = read_challenge(&mut stream).await?;
        let (out, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(sink, queue));
        let conn = LoadConn {
            out,
            waiters: Arc::default(),
            next_id: AtomicU64::new(1),
            window: Arc::new(Semaphore::new(window)),
            relay_id,
            nonce,
            stats: Arc::new(ConnStats::default()),
            caught_up: Arc::new(Notify::new()),
        };
        tokio::spawn(
            Reader {
                waiters: conn.waiters.clone(),
                window: conn.window.clone(),
                out: conn.out.clone(),
                stats: conn.stats.clone(),
                caught_up: conn.caught_up.clone(),
                acks: HashMap::new(),
                inbox_ack: None,
                unacked: 0,
                next_ack_id: ACK_BIT,
            }
            .run(stream),
        );
        Ok(conn)
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, kind: request::Kind) -> Result<response::Result> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        self.out
            .send(encode_envelope(&Envelope::request(id, kind)))
            .map_err(|_| anyhow!("the connection is closed"))?;
        let result = tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .map_err(|_| anyhow!("no response within 120 s"))?
            .map_err(|_| anyhow!("the connection closed before the response"))?;
        if let response::Result::Error(error) = &result {
            bail!("refused: {:?} {}", error.code(), error.message);
        }
        Ok(result)
    }

    /// Sends one load message to `group_id` (at `epoch`), once the window
    /// has room. `scheduled_us` is when it was meant to leave (see
    /// [`payload`]).
    pub async fn send_load(
        &self,
        group_id: &Bytes,
        epoch: u64,
        size: usize,
        scheduled_us: u64,
    ) -> Result<()> {
        let permit = self
            .window
            .acquire()
            .await
            .map_err(|_| anyhow!("the connection is closed"))?;
        permit.forget();
        let id = LOAD_BIT | self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut submission_id = [0u8; 16];
        submission_id[..8].copy_from_slice(&id.to_be_bytes());
        submission_id[8..].copy_from_slice(&scheduled_us.to_be_bytes());
        let kind = request::Kind::SendMessage(SendMessage {
            group_id: group_id.clone(),
            kind: MessageKind::Application as i32,
            submission_id: Bytes::copy_from_slice(&submission_id),
            payload: payload::make(group_id, epoch, size, scheduled_us),
        });
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.out
            .send(encode_envelope(&Envelope::request(id, kind)))
            .map_err(|_| anyhow!("the connection is closed"))
    }

    /// Waits until every load message sent has been answered.
    pub async fn drain(&self, window: usize) -> Result<()> {
        let permits = self
            .window
            .acquire_many(window as u32)
            .await
            .map_err(|_| anyhow!("the connection is closed"))?;
        drop(permits);
        Ok(())
    }

    /// Closes the connection (the writer sends a close frame).
    pub fn close(&self) {
        let _ = self.out.send(Bytes::new());
    }
}

impl Connection for LoadConn {
    fn relay_id(&self) -> [u8; 16] {
        self.relay_id
    }

    fn nonce(&self) -> [u8; 32] {
        self.nonce
    }

    fn request(
        &self,
        kind: request::Kind,
    ) -> BoxFuture<'_, Result<response::Result, TransportError>> {
        Box::pin(async move {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&self.waiters).insert(id, tx);
            self.out
                .send(encode_envelope(&Envelope::request(id, kind)))
                .map_err(|_| TransportError::Closed {
                    code: None,
                    reason: String::new(),
                })?;
            match rx.await {
                Ok(response::Result::Error(error)) => Err(RelayRefusal::from(error).into()),
                Ok(result) => Ok(result),
                Err(_) => Err(TransportError::Closed {
                    code: None,
                    reason: String::new(),
                }),
            }
        })
    }
}

async fn read_challenge(stream: &mut SplitStream<Ws>) -> Result<([u8; 16], [u8; 32])> {
    let read = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .map_err(|_| anyhow!("no challenge within 30 s"))?;
    let Some(Ok(Message::Binary(bytes))) = read else {
        bail!("expected the relay's challenge");
    };
    match decode_envelope(bytes)?.body {
        Some(Body::Push(convene_proto::relay::Push {
            kind: Some(push::Kind::Challenge(challenge)),
        })) => {
            let relay_id = challenge.relay_id.as_ref().try_into()?;
            let nonce = challenge.nonce.as_ref().try_into()?;
            Ok((relay_id, nonce))
        }
        _ => bail!("expected the relay's challenge"),
    }
}

/// Writes queued frames, flushing once per batch; an empty frame closes.
async fn write_loop(mut sink: SplitSink<Ws, Message>, mut queue: mpsc::UnboundedReceiver<Bytes>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for frame in batch.drain(..) {
            if frame.is_empty() {
                let _ = sink.close().await;
                return;
            }
            if sink.feed(Message::Binary(frame)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

struct Reader {
    waiters: Waiters,
    window: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Bytes>,
    stats: Arc<ConnStats>,
    caught_up: Arc<Notify>,
    /// The newest position received per group, not yet acknowledged.
    acks: HashMap<Bytes, u64>,
    inbox_ack: Option<u64>,
    unacked: usize,
    next_ack_id: u64,
}

impl Reader {
    async fn run(mut self, mut stream: SplitStream<Ws>) {
        loop {
            // Take whatever is already there; acknowledge once the socket
            // has nothing more ready, or a batch is full.
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    self.flush_acks();
                    stream.next().await
                }
            };
            let bytes = match next {
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            };
            let Ok(envelope) = decode_envelope(bytes) else {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match envelope.body {
                Some(Body::Response(response)) => {
                    self.response(envelope.request_id, response.result)
                }
                Some(Body::Push(push)) => {
                    if let Some(kind) = push.kind {
                        self.push(kind);
                    }
                }
                _ => {}
            }
            if self.unacked >= ACK_BATCH {
                self.flush_acks();
            }
        }
        // Wake waiters and senders: the connection is gone.
        lock(&self.waiters).clear();
        self.window.close();
    }

    fn response(&mut self, id: u64, result: Option<response::Result>) {
        let refused = matches!(result, Some(response::Result::Error(_)) | None);
        if id & LOAD_BIT != 0 {
            if refused {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            self.window.add_permits(1);
        } else if id & ACK_BIT != 0 {
            if refused {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(waiter) = lock(&self.waiters).remove(&id) {
            let _ = waiter.send(result.unwrap_or(response::Result::Error(
                convene_proto::relay::Error::default(),
            )));
        }
    }

    fn push(&mut self, kind: push::Kind) {
        self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        match kind {
            push::Kind::GroupMessage(message) => {
                if let Some(sent_us) = payload::sent_at(&message.payload) {
                    self.stats.delivered(sent_us);
                }
                self.acks.insert(message.group_id, message.position);
                self.unacked += 1;
            }
            push::Kind::Receipt(receipt) => {
                self.acks.insert(receipt.group_id, receipt.position);
                self.unacked += 1;
            }
            push::Kind::InboxMessage(welcome) => {
                self.inbox_ack = Some(welcome.position);
                self.unacked += 1;
            }
            push::Kind::CaughtUp(_) => self.caught_up.notify_waiters(),
            _ => {}
        }
    }

    fn flush_acks(&mut self) {
        if self.unacked == 0 {
            return;
        }
        let mut acks: Vec<StreamAck> = self
            .acks
            .drain()
            .map(|(group_id, position)| StreamAck {
                stream: Some(stream_ack::Stream::GroupId(group_id)),
                position,
            })
            .collect();
        if let Some(position) = self.inbox_ack.take() {
            acks.push(StreamAck {
                stream: Some(stream_ack::Stream::Inbox(true)),
                position,
            });
        }
        self.unacked = 0;
        self.next_ack_id += 1;
        let request = request::Kind::Ack(Ack { acks });
        let _ = self.out.send(encode_envelope(&Envelope::request(
            self.next_ack_id,
            request,
        )));
    }
}

/// Locks `mutex`, poisoned or not: the load generator's critical sections
/// are plain counter and map updates, consistent whatever panicked.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
