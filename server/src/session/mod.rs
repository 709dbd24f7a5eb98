//! One device connection, from websocket handshake to close.
//!
//! A session first authenticates the device ([`auth`]) within the
//! authentication deadline, then serves its requests one by one in the order
//! they arrive, handing each reply to the [`responder`], which sends it once
//! durable. A delivery [`crate::pump`] runs beside it. Whatever the device
//! sends, the session answers with a typed error or closes the connection;
//! nothing a device sends can end another device's connection.

mod auth;
mod responder;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use convene_proto::relay::{
    envelope::Body, push, request, response, Challenge, Envelope, Error as WireError, ErrorCode,
};
use convene_proto::{decode_envelope, encode_envelope, FrameError};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::connection::{self, close, Inbound, Outbound, OutboundSender};
use crate::error::RelayError;
use crate::handlers::{self, Caller};
use crate::pump;
use crate::relay::Relay;
use crate::shutdown::Shutdown;

/// Bytes of responses waiting for their flush, per connection: with the
/// outbound queue's own bound, what a device that asks and never reads
/// can make the relay hold.
const RESPONSE_BYTES: usize = 1024 * 1024;
/// Failed `Authenticate` or `Enrol` attempts before the connection is closed.
const MAX_AUTH_FAILURES: u32 = 3;

/// How a session ends.
enum Ending {
    /// Close the websocket with this code and reason.
    Close(u16, &'static str),
    /// The connection is already gone.
    Gone,
}

struct Session<S> {
    relay: Arc<Relay>,
    reader: SplitStream<WebSocketStream<S>>,
    out: OutboundSender,
    writer: JoinHandle<()>,
    bad_frames: u32,
}

/// Counts a failed attempt before authentication; too many end the
/// connection.
fn one_more_failure(failures: &mut u32) -> Result<(), Ending> {
    *failures += 1;
    if *failures >= MAX_AUTH_FAILURES {
        return Err(Ending::Close(
            close::AUTH_FAILED,
            "too many failed attempts",
        ));
    }
    Ok(())
}

/// Serves one connection whose transport (TCP or TLS) is established.
/// `unauthenticated` is held until the device authenticates.
pub async fn serve<S>(
    relay: Arc<Relay>,
    stream: S,
    deadline: Instant,
    mut shutdown: Shutdown,
    unauthenticated: crate::admission::UnauthenticatedSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &relay.config.limits;
    let config = connection::websocket_config(limits);
    // Boxed, as every phase below: see `server::Listener::accept_loop`.
    let handshake = Box::pin(tokio_tungstenite::accept_async_with_config(
        stream,
        Some(config),
    ));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            tracing::debug!(
                error = &err as &dyn std::error::Error,
                "websocket handshake failed"
            );
            return;
        }
        Err(_) => return,
    };
    let write_timeout = Duration::from_millis(u64::from(limits.write_timeout_ms));
    let (sink, reader) = ws.split();
    let (out, queue) = connection::outbound_queue();
    let writer = tokio::spawn(connection::write_loop(sink, queue, write_timeout).in_current_span());
    let mut session = Session {
        relay,
        reader,
        out,
        writer,
        bad_frames: 0,
    };
    let authenticated = Box::pin(session.authenticate(deadline, &mut shutdown)).await;
    drop(unauthenticated);
    let ending = match authenticated {
        Ok(caller) => Box::pin(session.run(caller, &mut shutdown)).await,
        Err(ending) => ending,
    };
    Box::pin(session.finish(ending, write_timeout)).await;
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn authenticate(
        &mut self,
        deadline: Instant,
        shutdown: &mut Shutdown,
    ) -> Result<Caller, Ending> {
        let mut nonce = [0u8; convene_proto::ids::NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let challenge = Challenge {
            relay_id: self.relay.store.relay_id().to_vec().into(),
            nonce: nonce.to_vec().into(),
            auth_timeout_ms: self.relay.config.limits.auth_timeout_ms,
        };
        self.send(Envelope::push(push::Kind::Challenge(challenge)))
            .await?;

        let mut failures = 0;
        loop {
            let inbound = tokio::select! {
                read = tokio::time::timeout_at(deadline, connection::read(&mut self.reader)) => match read {
                    Ok(inbound) => inbound,
                    Err(_) => return Err(Ending::Close(close::AUTH_TIMEOUT, "authentication timed out")),
                },
                _ = shutdown.recv() => return Err(Ending::Close(close::GOING_AWAY, "the relay is shutting down")),
            };
            let Some((request_id, request)) = self.decode(inbound).await? else {
                continue;
            };
            let attempt = match &request {
                request::Kind::Authenticate(req) => auth::authenticate(&self.relay, &nonce, req),
                request::Kind::Enrol(req) => auth::enrol(&self.relay, &nonce, req),
                request::Kind::Ping(_) => {
                    self.respond(request_id, handlers::pong().result).await?;
                    continue;
                }
                other => {
                    let Some(served) = self.before_authentication(&nonce, other).await else {
                        self.respond_error(
                            request_id,
                            &crate::error::Refusal::NotAuthenticated.into(),
                        )
                        .await?;
                        continue;
                    };
                    match served {
                        Ok(details) => self.respond(request_id, details).await?,
                        Err(err) => {
                            // A wrong token or link counts as a failed
                            // attempt, so that a connection cannot probe.
                            self.respond_error(request_id, &err).await?;
                            one_more_failure(&mut failures)?;
                        }
                    }
                    continue;
                }
            };
            match attempt {
                Ok((caller, result)) => {
                    // Enrolment wrote the user; authentication may read what
                    // a concurrent enrolment just wrote. Either way: durable
                    // before the device is told.
                    if self.relay.flusher.durable().await.is_err() {
                        self.respond_error(request_id, &RelayError::Corrupt("flush failed".into()))
                            .await?;
                        return Err(Ending::Close(
                            close::GOING_AWAY,
                            "the relay cannot store data",
                        ));
                    }
                    self.respond(request_id, result).await?;
                    if matches!(request, request::Kind::Enrol(_)) {
                        responder::directory_changed(&self.relay);
                    }
                    return Ok(caller);
                }
                Err(err) => {
                    self.respond_error(request_id, &err).await?;
                    one_more_failure(&mut failures)?;
                }
            }
        }
    }

    /// Serves the requests, other than authenticating, that a device may
    /// make before it is enrolled: reading an invite, and linking. `None`
    /// for any other request, which needs authentication.
    async fn before_authentication(
        &self,
        nonce: &[u8; convene_proto::ids::NONCE_LEN],
        request: &request::Kind,
    ) -> Option<Result<response::Result, RelayError>> {
        Some(match request {
            request::Kind::GetInvite(req) => handlers::invite_details(&self.relay, req),
            // An approval read here may have been stored a moment ago: the
            // new device must not enrol on one a crash could take back.
            request::Kind::GetLink(req) => match handlers::link_status(&self.relay, req) {
                Ok(result) => self.flushed().await.map(|()| result),
                Err(err) => Err(err),
            },
            request::Kind::RequestLink(req) => match auth::request_link(&self.relay, nonce, req) {
                Ok(result) => self.flushed().await.map(|()| result),
                Err(err) => Err(err),
            },
            _ => return None,
        })
    }

    /// Waits until everything written so far is on disk.
    async fn flushed(&self) -> Result<(), RelayError> {
        self.relay
            .flusher
            .durable()
            .await
            .map_err(|_| RelayError::Corrupt("flush failed".into()))
    }

    async fn run(&mut self, caller: Caller, shutdown: &mut Shutdown) -> Ending {
        let relay = self.relay.clone();
        let live = relay.hub.register(caller.device, self.out.clone());
        let span = tracing::Span::current();
        span.record("user", caller.user_id.as_str());
        span.record("device", tracing::field::display(caller.device));
        live.start_pump({
            let (relay, live) = (Arc::downgrade(&relay), Arc::downgrade(&live));
            let (runtime, span) = (tokio::runtime::Handle::current(), span.clone());
            Box::new(move |state| {
                runtime
                    .spawn(pump::run(relay.clone(), live.clone(), state).instrument(span.clone()))
            })
        });
        let response_bytes = Arc::new(tokio::sync::Semaphore::new(RESPONSE_BYTES));
        let mut responder = responder::Responder::new(relay.clone(), self.out.clone());
        let idle = Duration::from_millis(u64::from(relay.config.limits.idle_timeout_ms));
        tracing::debug!("device connected");

        let ending = loop {
            let inbound = tokio::select! {
                biased;
                _ = shutdown.recv() => break Ending::Close(close::GOING_AWAY, "the relay is shutting down"),
                _ = live.superseded() => break Ending::Close(close::SUPERSEDED, "a newer connection of this device took over"),
                _ = live.revoked() => break Ending::Close(close::REVOKED, "this device was revoked"),
                _ = self.out.closed() => break Ending::Gone,
                read = tokio::time::timeout(idle, connection::read(&mut self.reader)) => match read {
                    Ok(inbound) => inbound,
                    Err(_) => break Ending::Close(close::IDLE, "idle for too long"),
                },
            };
            let (request_id, request) = match self.decode(inbound).await {
                Ok(Some(request)) => request,
                Ok(None) => continue,
                Err(ending) => break ending,
            };
            let pending = match relay.hub.check_rate(&caller.device) {
                Err(retry_after_ms) => responder::Pending {
                    request_id,
                    result: response::Result::Error(
                        crate::error::Refusal::RateLimited { retry_after_ms }.to_wire(),
                    ),
                    ticket: None,
                    effects: Vec::new(),
                },
                Ok(()) => match handlers::handle(&relay, &caller, &live, request) {
                    Ok(reply) => responder::Pending {
                        request_id,
                        result: reply.result,
                        ticket: reply.durable.then(|| relay.flusher.ticket()),
                        effects: reply.effects,
                    },
                    Err(err) => {
                        log_failure(&err);
                        responder::Pending {
                            request_id,
                            result: response::Result::Error(err.to_wire()),
                            ticket: None,
                            effects: Vec::new(),
                        }
                    }
                },
            };
            let cost = pending.result.encoded_len().clamp(1, RESPONSE_BYTES) as u32;
            let Ok(budget) = response_bytes.clone().acquire_many_owned(cost).await else {
                break Ending::Gone;
            };
            if responder.send(pending, budget).await.is_err() {
                break Ending::Gone;
            }
        };

        live.stop_pump();
        // Let the responder send what became durable, within bounds.
        let write_timeout = Duration::from_millis(u64::from(relay.config.limits.write_timeout_ms));
        responder.finish(write_timeout).await;
        relay.hub.unregister(&live);
        tracing::debug!(user = %caller.user_id, "device disconnected");
        ending
    }

    /// Turns what was read into a request, answering or ending the
    /// connection for anything else.
    async fn decode(&mut self, inbound: Inbound) -> Result<Option<(u64, request::Kind)>, Ending> {
        let bytes: Bytes = match inbound {
            Inbound::Frame(bytes) => bytes,
            Inbound::NotBinary => {
                return self
                    .bad_frame("frames must be binary protobuf envelopes")
                    .await
            }
            Inbound::TooBig => return Err(Ending::Close(close::TOO_BIG, "frame too large")),
            Inbound::Closed => return Err(Ending::Gone),
        };
        match decode_envelope(bytes) {
            Ok(Envelope {
                request_id,
                body: Some(Body::Request(request)),
                ..
            }) if request_id != 0 => match request.kind {
                Some(kind) => Ok(Some((request_id, kind))),
                None => {
                    let error = WireError::new(ErrorCode::UnknownRequest, "unknown request");
                    self.send(Envelope::response(
                        request_id,
                        response::Result::Error(error),
                    ))
                    .await?;
                    Ok(None)
                }
            },
            Ok(_) => {
                self.bad_frame("expected a request with a non-zero request id")
                    .await
            }
            Err(FrameError::UnsupportedVersion(version)) => {
                tracing::debug!(version, "device speaks another protocol version");
                let error = WireError::new(
                    ErrorCode::UnsupportedVersion,
                    "this relay speaks protocol version 1",
                );
                self.send(Envelope::response(0, response::Result::Error(error)))
                    .await?;
                Err(Ending::Close(close::POLICY, "unsupported protocol version"))
            }
            Err(_) => self.bad_frame("the frame is not a valid envelope").await,
        }
    }

    async fn bad_frame<T>(&mut self, why: &'static str) -> Result<Option<T>, Ending> {
        self.bad_frames += 1;
        let error = WireError::new(ErrorCode::Malformed, why);
        self.send(Envelope::response(0, response::Result::Error(error)))
            .await?;
        if self.bad_frames >= self.relay.config.limits.max_bad_frames {
            return Err(Ending::Close(close::POLICY, "too many malformed frames"));
        }
        Ok(None)
    }

    async fn respond(&self, request_id: u64, result: response::Result) -> Result<(), Ending> {
        self.send(Envelope::response(request_id, result)).await
    }

    async fn respond_error(&self, request_id: u64, err: &RelayError) -> Result<(), Ending> {
        log_failure(err);
        self.respond(request_id, response::Result::Error(err.to_wire()))
            .await
    }

    async fn send(&self, envelope: Envelope) -> Result<(), Ending> {
        self.out
            .send(Outbound::Frame(encode_envelope(&envelope)))
            .await
            .map_err(|_| Ending::Gone)
    }

    async fn finish(self, ending: Ending, write_timeout: Duration) {
        if let Ending::Close(code, reason) = ending {
            let _ =
                tokio::time::timeout(write_timeout, self.out.send(Outbound::Close(code, reason)))
                    .await;
        }
        drop(self.out);
        let _ = tokio::time::timeout(write_timeout, self.writer).await;
    }
}

/// Refusals are the device's business; failures of the relay are logged.
fn log_failure(err: &RelayError) {
    match err {
        RelayError::Refused(refusal) => tracing::debug!(%refusal, "request refused"),
        RelayError::Storage(_) | RelayError::Corrupt(_) => {
            tracing::error!(
                error = err as &dyn std::error::Error,
                "request failed inside the relay"
            )
        }
    }
}
