use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_proto::ids::{fixed, NONCE_LEN, RELAY_ID_LEN};
use convene_proto::relay::{
    envelope::Body, push, request, response, Authenticated, Challenge, Envelope,
};
use convene_proto::{decode_envelope, encode_envelope};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::tls::{client_config, TrustRoots};
use super::{RelayRefusal, TransportError};
use crate::device_key::DeviceKey;

/// Any byte stream a websocket can run over (TCP, or TLS over TCP).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;
type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Option<response::Result>>>>>;

/// How to reach the relay.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Which certificates a `wss://` relay may present.
    pub trust: TrustRoots,
    /// Time allowed for TCP, TLS, websocket and the relay's challenge.
    pub connect_timeout: Duration,
    /// Time allowed for each response.
    pub request_timeout: Duration,
    /// Largest frame accepted from the relay.
    pub max_frame_bytes: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            trust: TrustRoots::WebPki,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the connection ended, once it has.
#[derive(Debug, Clone, Default)]
struct CloseInfo {
    code: Option<u16>,
    reason: String,
}

/// An open connection to the relay.
pub struct RelayConnection {
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    waiters: Waiters,
    pushes: mpsc::Receiver<push::Kind>,
    next_id: AtomicU64,
    relay_id: [u8; RELAY_ID_LEN],
    nonce: [u8; NONCE_LEN],
    closed: watch::Receiver<Option<CloseInfo>>,
    request_timeout: Duration,
}

impl RelayConnection {
    /// Connects to `url` (`ws://` for loopback relays, `wss://` otherwise)
    /// and waits for the relay's challenge.
    pub async fn connect(
        url: &str,
        options: &ConnectOptions,
    ) -> Result<RelayConnection, TransportError> {
        tokio::time::timeout(options.connect_timeout, Self::open(url, options))
            .await
            .map_err(|_| TransportError::Unreachable {
                url: url.to_string(),
                reason: "timed out".into(),
            })?
    }

    async fn open(url: &str, options: &ConnectOptions) -> Result<RelayConnection, TransportError> {
        let invalid = |reason: &str| TransportError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let request = url
            .into_client_request()
            .map_err(|err| invalid(&err.to_string()))?;
        let uri = request.uri().clone();
        let secure = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(invalid("it must start with ws:// or wss://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| invalid("it has no host"))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let host_for_dial = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();

        let tcp = TcpStream::connect((host_for_dial.as_str(), port))
            .await
            .map_err(|err| TransportError::Unreachable {
                url: url.to_string(),
                reason: err.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if secure {
            let connector = tokio_rustls::TlsConnector::from(client_config(&options.trust)?);
            let name = rustls::pki_types::ServerName::try_from(host_for_dial.clone())
                .map_err(|_| invalid("its host is not a valid TLS server name"))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|err| TransportError::Tls(err.to_string()))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(8 * 1024)
            .max_message_size(Some(options.max_frame_bytes))
            .max_frame_size(Some(options.max_frame_bytes));
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
            .await
            .map_err(|err| TransportError::Handshake(err.to_string()))?;
        let (sink, mut stream) = ws.split();

        let challenge = first_challenge(&mut stream).await?;
        let relay_id = fixed::<RELAY_ID_LEN>("relay_id", &challenge.relay_id)
            .map_err(|err| TransportError::Protocol(err.to_string()))?;
        let nonce = fixed::<NONCE_LEN>("nonce", &challenge.nonce)
            .map_err(|err| TransportError::Protocol(err.to_string()))?;

        let waiters: Waiters = Arc::default();
        let (push_tx, pushes) = mpsc::channel(super::MAX_QUEUED_PUSHES);
        let (closed_tx, closed) = watch::channel(None);
        tokio::spawn(tracing::Instrument::in_current_span(read_loop(
            stream,
            waiters.clone(),
            push_tx,
            closed_tx,
        )));
        Ok(RelayConnection {
            sink: tokio::sync::Mutex::new(sink),
            waiters,
            pushes,
            next_id: AtomicU64::new(1),
            relay_id,
            nonce,
            closed,
            request_timeout: options.request_timeout,
        })
    }

    /// The relay's identity, from its challenge.
    pub fn relay_id(&self) -> [u8; RELAY_ID_LEN] {
        self.relay_id
    }

    /// The challenge nonce of this connection.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }

    /// Authenticates as an enrolled device (see [`super::authenticate`]).
    pub async fn authenticate(
        &self,
        key: &DeviceKey,
        expected_relay: Option<[u8; RELAY_ID_LEN]>,
    ) -> Result<Authenticated, TransportError> {
        super::authenticate(self, key, expected_relay).await
    }

    /// Redeems an invite (see [`super::enrol`]).
    pub async fn enrol(
        &self,
        key: &DeviceKey,
        enrolment: &super::EnrolRequest,
    ) -> Result<Authenticated, TransportError> {
        super::enrol(self, key, enrolment).await
    }

    /// Takes the push queue, for a caller that reads pushes elsewhere; after
    /// this, [`RelayConnection::next_push`] returns `None`.
    pub fn take_pushes(&mut self) -> mpsc::Receiver<push::Kind> {
        let (_, empty) = mpsc::channel(1);
        std::mem::replace(&mut self.pushes, empty)
    }

    /// Sends a request and waits for its response. An error response comes
    /// back as [`TransportError::Refused`].
    pub async fn request(&self, kind: request::Kind) -> Result<response::Result, TransportError> {
        let (id, answer) = self.submit(kind).await?;
        let outcome = tokio::time::timeout(self.request_timeout, answer).await;
        let result = match outcome {
            Err(_) => {
                self.forget(id);
                return Err(TransportError::Timeout);
            }
            Ok(Err(_)) => return Err(self.closed_error()),
            Ok(Ok(None)) => {
                return Err(TransportError::Protocol(
                    "a response without a result".into(),
                ))
            }
            Ok(Ok(Some(result))) => result,
        };
        match result {
            response::Result::Error(error) => Err(RelayRefusal::from(error).into()),
            other => Ok(other),
        }
    }

    /// Sends a request without waiting for its response (which is then
    /// dropped): for callers that learn the outcome another way.
    pub async fn send_only(&self, kind: request::Kind) -> Result<(), TransportError> {
        let (id, _answer) = self.submit(kind).await?;
        self.forget(id);
        Ok(())
    }

    /// Sends raw bytes as one binary frame (for tests of the relay's
    /// handling of malformed input).
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), TransportError> {
        let send = async {
            self.sink
                .lock()
                .await
                .send(Message::Binary(bytes.into()))
                .await
        };
        match tokio::time::timeout(self.request_timeout, send).await {
            Ok(sent) => sent.map_err(|_| self.closed_error()),
            Err(_) => Err(TransportError::Timeout),
        }
    }

    /// The next push from the relay, in the order sent; `None` once the
    /// connection has closed and every push was taken.
    pub async fn next_push(&mut self) -> Option<push::Kind> {
        self.pushes.recv().await
    }

    /// Whether the connection has closed, with the relay's close code.
    pub fn close_code(&self) -> Option<Option<u16>> {
        self.closed.borrow().as_ref().map(|info| info.code)
    }

    /// Waits until the connection has closed and returns the close code.
    pub async fn closed(&self) -> Option<u16> {
        let mut closed = self.closed.clone();
        let code = match closed.wait_for(Option::is_some).await {
            Ok(info) => info.as_ref().and_then(|i| i.code),
            Err(_) => None,
        };
        code
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let timeout = self.request_timeout;
        let close = async {
            let mut sink = self.sink.lock().await;
            let _ = sink.send(Message::Close(None)).await;
            let _ = sink.close().await;
        };
        // A relay that stops reading gets no polite goodbye.
        let _ = tokio::time::timeout(timeout, close).await;
    }

    async fn submit(
        &self,
        kind: request::Kind,
    ) -> Result<(u64, oneshot::Receiver<Option<response::Result>>), TransportError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let frame = encode_envelope(&Envelope::request(id, kind));
        // A relay that stops reading must not hold the caller (the engine,
        // its shutdown included) for ever: the write gets the request's
        // timeout too.
        let send = async { self.sink.lock().await.send(Message::Binary(frame)).await };
        match tokio::time::timeout(self.request_timeout, send).await {
            Ok(Ok(())) => Ok((id, rx)),
            Ok(Err(_)) => {
                self.forget(id);
                Err(self.closed_error())
            }
            Err(_) => {
                self.forget(id);
                Err(TransportError::Timeout)
            }
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.waiters).remove(&id);
    }

    fn closed_error(&self) -> TransportError {
        let info = self.closed.borrow().clone().unwrap_or_default();
        TransportError::Closed {
            code: info.code,
            reason: info.reason,
        }
    }
}

async fn first_challenge(stream: &mut SplitStream<Ws>) -> Result<Challenge, TransportError> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                let envelope = decode_envelope(bytes)
                    .map_err(|err| TransportError::Protocol(crate::error::with_causes(&err)))?;
                return match envelope.body {
                    Some(Body::Push(push)) => match push.kind {
                        Some(push::Kind::Challenge(challenge)) => Ok(challenge),
                        _ => Err(TransportError::Protocol(
                            "expected a challenge first".into(),
                        )),
                    },
                    _ => Err(TransportError::Protocol(
                        "expected a challenge first".into(),
                    )),
                };
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(TransportError::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                })
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(TransportError::Handshake(err.to_string())),
            None => {
                return Err(TransportError::Closed {
                    code: None,
                    reason: String::new(),
                })
            }
        }
    }
}

/// Routes responses to their waiters and pushes to the push queue, until the
/// connection ends.
async fn read_loop(
    mut stream: SplitStream<Ws>,
    waiters: Waiters,
    pushes: mpsc::Sender<push::Kind>,
    closed: watch::Sender<Option<CloseInfo>>,
) {
    let mut info = CloseInfo::default();
    while let Some(message) = stream.next().await {
        let bytes = match message {
            Ok(Message::Binary(bytes)) => bytes,
            Ok(Message::Close(frame)) => {
                if let Some(frame) = frame {
                    info.code = Some(u16::from(frame.code));
                    info.reason = frame.reason.to_string();
                }
                break;
            }
            Ok(_) => continue,
            Err(err) => {
                tracing::debug!(
                    error = &err as &dyn std::error::Error,
                    "relay connection failed"
                );
                break;
            }
        };
        let envelope = match decode_envelope(bytes) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "ignoring an undecodable frame from the relay"
                );
                continue;
            }
        };
        match envelope.body {
            Some(Body::Response(response)) => match lock(&waiters).remove(&envelope.request_id) {
                Some(waiter) => {
                    let _ = waiter.send(response.result);
                }
                None => {
                    if let Some(response::Result::Error(error)) = response.result {
                        tracing::warn!(code = error.code, message = %error.message, "the relay reported an error");
                    }
                }
            },
            Some(Body::Push(push)) => {
                let Some(kind) = push.kind else { continue };
                if let Err(mpsc::error::TrySendError::Full(_)) = pushes.try_send(kind) {
                    tracing::warn!(
                        queued = super::MAX_QUEUED_PUSHES,
                        "the relay sent more pushes than this client queues; reconnecting"
                    );
                    info.reason = "too many pushes queued".into();
                    break;
                }
            }
            Some(Body::Request(_)) | None => {
                tracing::warn!("ignoring a request frame from the relay")
            }
        }
    }
    // Waiters still registered learn of the close when their senders drop.
    lock(&waiters).clear();
    closed.send_replace(Some(info));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
