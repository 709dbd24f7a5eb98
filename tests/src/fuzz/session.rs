//! The relay's per-connection state machine, driven by arbitrary frames.
//!
//! One relay runs in this process for all inputs (like a relay on the
//! internet, it accumulates whatever earlier inputs left behind), with one
//! enrolled device whose key a [`Step::Authenticate`] uses, so that inputs
//! reach the authenticated handlers too. After each input the harness
//! checks that the connection ended or answered a final ping, that no task
//! in the relay panicked, and that a new connection is still served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use bytes::BufMut;
use convene_client::DeviceKey;
use convene_proto::relay::{request, Envelope};
use convene_server::config::Config;
use convene_server::relay::Relay;
use futures_util::{SinkExt, StreamExt};
use prost::encoding::{encode_key, encode_varint, WireType};
use tokio_tungstenite::tungstenite::Message;

use crate::raw::{authenticate_frame, challenge};

/// How long the relay may take to answer the final ping of an input.
const ANSWER_PATIENCE: Duration = Duration::from_secs(10);
/// Request kinds are oneof fields 1..=24; a few past the end are unknown.
pub const MAX_KIND: u32 = 27;

/// One thing a fuzzed connection does.
#[derive(Debug, Clone)]
pub enum Step {
    /// A binary websocket message of arbitrary bytes.
    Raw(Vec<u8>),
    /// A well-formed envelope whose request is oneof field `kind` holding
    /// `body` (arbitrary bytes, or fields from [`encode_fields`]).
    Request { kind: u32, id: u64, body: Vec<u8> },
    /// A text websocket message (the protocol is binary only).
    Text(String),
    /// A valid authentication as the harness's enrolled device.
    Authenticate,
}

/// One protobuf field of a fuzzed request body.
#[derive(Debug, Clone)]
pub enum Field {
    Varint(u32, u64),
    Bytes(u32, Vec<u8>),
}

/// Encodes fields as a protobuf message (each well-formed on its own, so
/// that prost gets past the wire format into the handlers).
pub fn encode_fields(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        match field {
            Field::Varint(tag, value) => {
                encode_key(*tag, WireType::Varint, &mut out);
                encode_varint(*value, &mut out);
            }
            Field::Bytes(tag, bytes) => {
                encode_key(*tag, WireType::LengthDelimited, &mut out);
                encode_varint(bytes.len() as u64, &mut out);
                out.put_slice(bytes);
            }
        }
    }
    out
}

fn request_envelope(kind: u32, id: u64, body: &[u8]) -> Vec<u8> {
    let request = encode_fields(&[Field::Bytes(kind.max(1), body.to_vec())]);
    encode_fields(&[
        Field::Varint(1, 1),
        Field::Varint(2, id),
        Field::Bytes(3, request),
    ])
}

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts panics anywhere in the process (tokio catches those of tasks,
/// so the relay would otherwise fail silently), then reports them as usual.
fn count_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// The relay under test, its address and the enrolled device.
pub struct RelayUnderFuzz {
    runtime: tokio::runtime::Runtime,
    url: String,
    key: DeviceKey,
    _dir: tempfile::TempDir,
}

static RELAY: OnceLock<RelayUnderFuzz> = OnceLock::new();

impl RelayUnderFuzz {
    fn start() -> anyhow::Result<RelayUnderFuzz> {
        count_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            data_dir: dir.path().join("relay"),
            ..Config::default()
        };
        // Inputs reuse one device: let the rate limit rarely stop them
        // before the handlers.
        config.limits.requests_per_second = 1_000_000;
        config.limits.request_burst = 1_000_000;
        let (url, key) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("ws://{}", listener.local_addr()?);
            let relay = Relay::open(config)?;
            let invite = relay
                .bootstrap_invite(&url)?
                .ok_or_else(|| anyhow::anyhow!("a new relay gave no bootstrap invite"))?;
            tokio::spawn(convene_server::server::run(
                Arc::clone(&relay),
                listener,
                None,
                std::future::pending(),
            ));
            let staff = crate::TestDevice::enrol(&url, &invite.0.to_code(), "fuzz-staff").await?;
            anyhow::Ok((url, staff.vanish()))
        })?;
        Ok(RelayUnderFuzz {
            runtime,
            url,
            key,
            _dir: dir,
        })
    }

    /// The relay, started on first use.
    pub fn get() -> &'static RelayUnderFuzz {
        RELAY.get_or_init(|| match RelayUnderFuzz::start() {
            Ok(relay) => relay,
            Err(err) => panic!("the relay under fuzz did not start: {err:#}"),
        })
    }

    /// Plays `steps` on a new connection; `Err` says what went wrong.
    pub fn play(&self, steps: &[Step]) -> Result<(), String> {
        let before = PANICS.load(Ordering::SeqCst);
        let outcome = self.runtime.block_on(async {
            self.connection(steps).await?;
            // Whatever the input did, a newcomer is served.
            self.connection(&[]).await
        });
        let panics = PANICS.load(Ordering::SeqCst) - before;
        if panics > 0 {
            return Err(format!("{panics} panic(s) while serving the input"));
        }
        outcome
    }

    async fn connection(&self, steps: &[Step]) -> Result<(), String> {
        let (mut socket, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .map_err(|e| format!("the relay refused a connection: {e}"))?;
        let (relay_id, nonce) = tokio::time::timeout(ANSWER_PATIENCE, challenge(&mut socket))
            .await
            .map_err(|_| "no challenge in time".to_string())?
            .map_err(|e| format!("no challenge first: {e}"))?;
        for step in steps {
            let message = match step {
                Step::Raw(bytes) => Message::Binary(bytes.clone().into()),
                Step::Text(text) => Message::Text(text.clone().into()),
                Step::Request { kind, id, body } => {
                    Message::Binary(request_envelope(*kind, *id, body).into())
                }
                Step::Authenticate => authenticate_frame(&self.key, &relay_id, &nonce),
            };
            if socket.send(message).await.is_err() {
                // The relay closed the connection: a fine end to any input.
                return Ok(());
            }
        }
        let ping = Envelope::request(u64::MAX, request::Kind::Ping(Default::default()));
        if socket
            .send(Message::Binary(convene_proto::encode_envelope(&ping)))
            .await
            .is_err()
        {
            return Ok(());
        }
        let answered = tokio::time::timeout(ANSWER_PATIENCE, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Ok(envelope) = convene_proto::decode_envelope(bytes) {
                            if envelope.request_id == u64::MAX {
                                return;
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        })
        .await;
        answered.map_err(|_| "the relay neither answered nor closed".to_string())
    }
}

/// Reads a fuzzer's bytes as steps: a tag byte, then that step's bytes.
pub fn steps_from_bytes(data: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = data;
    let take = |rest: &mut &[u8], n: usize| {
        let n = n.min(rest.len());
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        head.to_vec()
    };
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let len = take(&mut rest, 1).first().copied().unwrap_or(0) as usize;
        match tag % 8 {
            0 => steps.push(Step::Raw(take(&mut rest, len))),
            1 => steps.push(Step::Authenticate),
            2 => steps.push(Step::Text(
                String::from_utf8_lossy(&take(&mut rest, len)).into(),
            )),
            tag => steps.push(Step::Request {
                kind: (len as u32 % MAX_KIND) + 1,
                id: u64::from(tag),
                body: {
                    let n = take(&mut rest, 1).first().copied().unwrap_or(0) as usize;
                    take(&mut rest, n)
                },
            }),
        }
        if steps.len() >= 32 {
            break;
        }
    }
    steps
}

/// The fuzz target: plays `data` as steps, and panics (a crash to the
/// fuzzer) if the relay panicked, hung or stopped serving.
pub fn session(data: &[u8]) {
    let steps = steps_from_bytes(data);
    if let Err(finding) = RelayUnderFuzz::get().play(&steps) {
        panic!("{finding} (steps: {steps:?})");
    }
}
