//! The listener: accepts TCP connections, bounds them, wraps them in TLS
//! where configured, and hands each to a session; and the orderly shutdown
//! (after mini-redis's `server` module).
//!
//! Two semaphores bound what strangers can cost: one caps all connections,
//! the other caps those that have not authenticated yet (a flood of idle
//! sockets is refused at once rather than queued). Each connection must
//! finish TLS, the websocket handshake and authentication within the
//! authentication timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::admission::Admission;
use crate::maintenance;
use crate::relay::Relay;
use crate::session;
use crate::shutdown::Shutdown;

/// The longest wait between attempts to accept after an error.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long connections get to close after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct Listener {
    relay: Arc<Relay>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    connections: Arc<Semaphore>,
    admission: Admission,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete: mpsc::Sender<()>,
}

/// Serves on `listener` until `shutdown` completes, then closes every
/// connection (code 1001), waits for them briefly, and flushes the store.
pub async fn run(
    relay: Arc<Relay>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = &relay.config.limits;
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete, mut shutdown_complete_rx) = mpsc::channel::<()>(1);
    let mut server = Listener {
        connections: Arc::new(Semaphore::new(limits.max_connections as usize)),
        admission: Admission::new(
            limits.max_unauthenticated,
            limits.max_unauthenticated_per_address,
        ),
        relay: relay.clone(),
        listener,
        tls,
        notify_shutdown,
        shutdown_complete,
    };
    tokio::spawn(
        maintenance::run(
            relay.clone(),
            Shutdown::new(server.notify_shutdown.subscribe()),
            server.shutdown_complete.clone(),
        )
        .instrument(tracing::info_span!("maintenance")),
    );

    tokio::select! {
        result = server.accept_loop() => {
            if let Err(err) = result {
                tracing::error!(error = &err as &dyn std::error::Error, "the listener failed");
            }
        }
        _ = shutdown => tracing::info!("shutting down"),
    }

    let Listener {
        notify_shutdown,
        shutdown_complete,
        ..
    } = server;
    drop(notify_shutdown);
    drop(shutdown_complete);
    if tokio::time::timeout(SHUTDOWN_GRACE, shutdown_complete_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    let store = relay.store.clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(_)) => tracing::info!("store flushed; stopped"),
        Ok(Err(err)) => {
            tracing::error!(error = &err as &dyn std::error::Error, "final flush failed")
        }
        Err(err) => tracing::error!(
            error = &err as &dyn std::error::Error,
            "final flush task failed"
        ),
    }
}

impl Listener {
    async fn accept_loop(&mut self) -> std::io::Result<()> {
        loop {
            let permit = self
                .connections
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| std::io::Error::other("connection semaphore closed"))?;
            let (socket, peer) = self.accept().await?;
            let Some(unauthenticated) = self.admission.admit(peer.ip()) else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let relay = self.relay.clone();
            let tls = self.tls.clone();
            let shutdown = Shutdown::new(self.notify_shutdown.subscribe());
            let done = self.shutdown_complete.clone();
            let deadline = Instant::now()
                + Duration::from_millis(u64::from(relay.config.limits.auth_timeout_ms));
            // Every line a connection logs says whose it is: the peer now,
            // the user and device once authenticated (`session::serve`).
            let span = tracing::info_span!(
                "connection",
                %peer,
                user = tracing::field::Empty,
                device = tracing::field::Empty
            );
            // Each phase is boxed: a task's future is as large as its largest
            // state, and the handshakes' would otherwise stay reserved for
            // the whole life of every idle connection.
            let connection = async move {
                match tls {
                    None => {
                        Box::pin(session::serve(
                            relay,
                            socket,
                            deadline,
                            shutdown,
                            unauthenticated,
                        ))
                        .await
                    }
                    Some(acceptor) => {
                        let handshake = Box::pin(acceptor.accept(socket));
                        match tokio::time::timeout_at(deadline, handshake).await {
                            Ok(Ok(stream)) => {
                                Box::pin(session::serve(
                                    relay,
                                    stream,
                                    deadline,
                                    shutdown,
                                    unauthenticated,
                                ))
                                .await
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = &err as &dyn std::error::Error, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
                drop(permit);
                drop(done);
            };
            tokio::spawn(connection.instrument(span));
        }
    }

    /// Accepts, waiting out errors (out of file descriptors, a connection
    /// reset before it was accepted) for as long as they last: a burst
    /// must not end the relay. Told in the log once per backoff, not per
    /// failure.
    async fn accept(&mut self) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return Ok(accepted),
                Err(err) => {
                    if backoff == Duration::from_millis(10) || backoff == MAX_ACCEPT_BACKOFF {
                        tracing::warn!(
                            error = &err as &dyn std::error::Error,
                            "accept failed; retrying"
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }
}
