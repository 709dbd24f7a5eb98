//! Transports that sit between a real client and the real relay and
//! misbehave on purpose: they hold pushes back, deliver them twice, or
//! rewrite and delay the client's requests. They plug in through
//! client-core's `Connector` trait.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use convene_client::transport::{BoxFuture, Connected, Connection, Connector};
use convene_client::{ConnectOptions, TransportError, WebSocketConnector};
use convene_proto::relay::{push, request, response};
use tokio::sync::{mpsc, watch};

/// What the wrapper does with each push.
#[derive(Clone)]
enum Behaviour {
    /// Holds pushes back while the gate is closed.
    Gate(watch::Receiver<bool>),
    /// Delivers every stream entry twice.
    Duplicate,
    /// Claims, for as many group entries as the counter says, that the
    /// entry is for an epoch far ahead (a relay's forged word).
    ForgeEpoch(Arc<AtomicU32>),
    /// Sends these pushes of its own making after the first real one.
    Inject(Arc<std::sync::Mutex<Vec<push::Kind>>>),
}

/// A websocket transport with a twist.
pub struct TwistedConnector {
    inner: WebSocketConnector,
    behaviour: Behaviour,
}

/// Opens and closes a gated connector's push gate.
pub struct PushGate(watch::Sender<bool>);

impl PushGate {
    /// Lets pushes through (those held back first, in order).
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Holds pushes back from now on.
    pub fn close(&self) {
        self.0.send_replace(false);
    }
}

impl TwistedConnector {
    /// A transport whose pushes wait while the returned gate is closed
    /// (it starts open).
    pub fn gated(url: &str) -> (Arc<dyn Connector>, PushGate) {
        let (sender, receiver) = watch::channel(true);
        let connector = TwistedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            behaviour: Behaviour::Gate(receiver),
        };
        (Arc::new(connector), PushGate(sender))
    }

    /// A transport that, for each count the returned counter is raised by,
    /// rewrites the next group entry's epoch as the relay states it to one
    /// far ahead: what a compromised relay can claim.
    pub fn forging_epochs(url: &str) -> (Arc<dyn Connector>, Arc<AtomicU32>) {
        let forge = Arc::new(AtomicU32::new(0));
        let connector = TwistedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            behaviour: Behaviour::ForgeEpoch(forge.clone()),
        };
        (Arc::new(connector), forge)
    }

    /// A transport that, after the first push of a connection, passes on
    /// `pushes` of a relay's own making (once).
    pub fn injecting(url: &str, pushes: Vec<push::Kind>) -> Arc<dyn Connector> {
        Arc::new(TwistedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            behaviour: Behaviour::Inject(Arc::new(std::sync::Mutex::new(pushes))),
        })
    }

    /// A transport that delivers every message, receipt and Welcome twice,
    /// as at-least-once delivery may.
    pub fn duplicating(url: &str) -> Arc<dyn Connector> {
        Arc::new(TwistedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            behaviour: Behaviour::Duplicate,
        })
    }
}

impl Connector for TwistedConnector {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Connected, TransportError>> {
        Box::pin(async move {
            let (connection, mut pushes) = self.inner.connect().await?;
            let (sender, receiver) = mpsc::channel(convene_client::transport::MAX_QUEUED_PUSHES);
            let behaviour = self.behaviour.clone();
            tokio::spawn(async move {
                while let Some(mut push) = pushes.recv().await {
                    match &behaviour {
                        Behaviour::ForgeEpoch(forge) => {
                            if let push::Kind::GroupMessage(message) = &mut push {
                                let due = forge
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                                if due {
                                    message.epoch += 1_000;
                                }
                            }
                        }
                        Behaviour::Gate(gate) => {
                            let mut gate = gate.clone();
                            if gate.wait_for(|open| *open).await.is_err() {
                                return;
                            }
                        }
                        Behaviour::Inject(_) => {}
                        Behaviour::Duplicate => {
                            let entry = matches!(
                                push,
                                push::Kind::GroupMessage(_)
                                    | push::Kind::Receipt(_)
                                    | push::Kind::InboxMessage(_)
                            );
                            if entry && sender.send(push.clone()).await.is_err() {
                                return;
                            }
                        }
                    }
                    if sender.send(push).await.is_err() {
                        return;
                    }
                    if let Behaviour::Inject(queued) = &behaviour {
                        let forged = match queued.lock() {
                            Ok(mut queued) => std::mem::take(&mut *queued),
                            Err(_) => return,
                        };
                        for push in forged {
                            if sender.send(push).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            Ok((connection, receiver))
        })
    }
}

/// What a [`RequestHook`] does to each request before it is sent: returns
/// the request to send (changed or not), after any delay it likes.
pub type RequestHook =
    Arc<dyn Fn(request::Kind) -> BoxFuture<'static, request::Kind> + Send + Sync>;

/// What a [`ResponseHook`] makes of the relay's answer to a request: the
/// answer the client sees.
pub type ResponseHook = Arc<
    dyn Fn(
            &request::Kind,
            Result<response::Result, TransportError>,
        ) -> Result<response::Result, TransportError>
        + Send
        + Sync,
>;

/// A websocket transport that passes every request of the client through a
/// hook, and optionally every answer through another: a tampered or slow
/// client as the relay sees it, or a relay whose answers get lost.
pub struct HookedConnector {
    inner: WebSocketConnector,
    hook: RequestHook,
    respond: Option<ResponseHook>,
}

impl HookedConnector {
    pub fn hooked(url: &str, hook: RequestHook) -> Arc<dyn Connector> {
        Arc::new(HookedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            hook,
            respond: None,
        })
    }

    /// Passes requests as they are, and answers through `respond`.
    pub fn answering(url: &str, respond: ResponseHook) -> Arc<dyn Connector> {
        Arc::new(HookedConnector {
            inner: WebSocketConnector::new(url, ConnectOptions::default()),
            hook: Arc::new(|kind| Box::pin(async move { kind })),
            respond: Some(respond),
        })
    }
}

impl Connector for HookedConnector {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Connected, TransportError>> {
        Box::pin(async move {
            let (inner, pushes) = self.inner.connect().await?;
            let hooked: Arc<dyn Connection> = Arc::new(HookedConnection {
                inner,
                hook: self.hook.clone(),
                respond: self.respond.clone(),
            });
            Ok((hooked, pushes))
        })
    }
}

struct HookedConnection {
    inner: Arc<dyn Connection>,
    hook: RequestHook,
    respond: Option<ResponseHook>,
}

impl Connection for HookedConnection {
    fn relay_id(&self) -> [u8; 16] {
        self.inner.relay_id()
    }

    fn nonce(&self) -> [u8; 32] {
        self.inner.nonce()
    }

    fn request(
        &self,
        kind: request::Kind,
    ) -> BoxFuture<'_, Result<response::Result, TransportError>> {
        Box::pin(async move {
            let kind = (self.hook)(kind).await;
            match &self.respond {
                Some(respond) => {
                    let sent = kind.clone();
                    respond(&sent, self.inner.request(kind).await)
                }
                None => self.inner.request(kind).await,
            }
        })
    }
}
