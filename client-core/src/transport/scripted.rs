//! A relay made of a script, in memory, for testing how a client behaves
//! when its relay answers wrongly, late, twice or not at all, without
//! running one.
//!
//! Each request goes to the script first. What the script leaves to the
//! relay ([`Answer::Honest`]) gets what an honest relay serving this one
//! device would answer: enrolment with a bootstrap invite, authentication
//! (followed by `CaughtUp`), group creation, commits and messages accepted
//! at the next position, acknowledgements. Pushes of the script's own
//! making go to the live connection through [`ScriptedRelay::push`].
//! Every request is kept, in order, for the test to inspect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use convene_proto::relay::{
    push, request, response, Acked, Authenticated, CaughtUp, ClaimedKeyPackages, CommitAccepted,
    GroupCreated, GroupState, InviteDetails, KeyPackageStock, MessageAccepted, Pong, Revocations,
    Role as WireRole, UserList,
};
use tokio::sync::mpsc;

use super::{BoxFuture, Connected, Connection, Connector, TransportError, MAX_QUEUED_PUSHES};
use crate::transport::RelayRefusal;

/// What the script makes of one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Answer with this, whatever it is.
    Respond(response::Result),
    /// Refuse the request.
    Refuse(RelayRefusal),
    /// Close the connection without answering: the response is lost, and
    /// the request may or may not have been acted on.
    Drop,
    /// Answer as an honest relay would (the request is acted on).
    Honest,
    /// Act on the request as an honest relay would, then close the
    /// connection before the response leaves: the outcome is unknown to
    /// the client.
    HonestThenDrop,
    /// Answer honestly, with these pushes sent first (for an
    /// authentication: before the `CaughtUp` that ends the catch-up).
    HonestWithPushes(Vec<push::Kind>),
}

/// The script: called with each request and the number of the connection
/// it came on (1 for the first).
pub type Script = Box<dyn FnMut(&request::Kind, u32) -> Answer + Send>;

/// An in-memory relay whose answers a test scripts. Clone it to keep a
/// handle after giving it to a client as its [`Connector`].
#[derive(Clone)]
pub struct ScriptedRelay {
    state: Arc<Mutex<State>>,
}

struct State {
    script: Script,
    requests: Vec<(u32, request::Kind)>,
    connections: u32,
    /// The live connection's pushes, closed when it drops.
    pushes: Option<mpsc::Sender<push::Kind>>,
    relay_id: [u8; 16],
    honest: Honest,
}

/// What an honest relay with one device keeps.
#[derive(Default)]
struct Honest {
    user_id: String,
    display_name: String,
    /// Per group: (epoch, last position).
    groups: HashMap<Vec<u8>, (u64, u64)>,
}

impl ScriptedRelay {
    /// A relay that answers every request honestly until the script says
    /// otherwise.
    pub fn new(script: impl FnMut(&request::Kind, u32) -> Answer + Send + 'static) -> Self {
        ScriptedRelay {
            state: Arc::new(Mutex::new(State {
                script: Box::new(script),
                requests: Vec::new(),
                connections: 0,
                pushes: None,
                relay_id: [7; 16],
                honest: Honest::default(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request so far with the connection it came on, in order.
    pub fn requests(&self) -> Vec<(u32, request::Kind)> {
        self.state().requests.clone()
    }

    /// How many connections were opened.
    pub fn connections(&self) -> u32 {
        self.state().connections
    }

    /// From the next connection on, the relay shows this identity (as a
    /// relay impersonating the device's own would).
    pub fn set_relay_id(&self, relay_id: [u8; 16]) {
        self.state().relay_id = relay_id;
    }

    /// Sends `push` on the live connection; false when there is none.
    pub fn push(&self, push: push::Kind) -> bool {
        self.state()
            .pushes
            .as_ref()
            .is_some_and(|pushes| pushes.try_send(push).is_ok())
    }
}

impl Connector for ScriptedRelay {
    fn url(&self) -> &str {
        "ws://scripted.invalid"
    }

    fn connect(&self) -> BoxFuture<'_, Result<Connected, TransportError>> {
        Box::pin(async move {
            let (sender, receiver) = mpsc::channel(MAX_QUEUED_PUSHES);
            let mut state = self.state();
            state.connections += 1;
            state.pushes = Some(sender);
            let connection = ScriptedConnection {
                relay: self.clone(),
                number: state.connections,
                relay_id: state.relay_id,
            };
            Ok((Arc::new(connection) as Arc<dyn Connection>, receiver))
        })
    }
}

struct ScriptedConnection {
    relay: ScriptedRelay,
    number: u32,
    relay_id: [u8; 16],
}

impl Connection for ScriptedConnection {
    fn relay_id(&self) -> [u8; 16] {
        self.relay_id
    }

    fn nonce(&self) -> [u8; 32] {
        [self.number as u8; 32]
    }

    fn request(
        &self,
        kind: request::Kind,
    ) -> BoxFuture<'_, Result<response::Result, TransportError>> {
        Box::pin(async move {
            let mut state = self.relay.state();
            if state.connections != self.number || state.pushes.is_none() {
                return Err(closed());
            }
            state.requests.push((self.number, kind.clone()));
            let answer = (state.script)(&kind, self.number);
            match answer {
                Answer::Respond(response::Result::Error(error)) => {
                    Err(TransportError::Refused(error.into()))
                }
                Answer::Respond(result) => Ok(result),
                Answer::Refuse(refusal) => Err(TransportError::Refused(refusal)),
                Answer::Drop => {
                    state.pushes = None;
                    Err(closed())
                }
                Answer::Honest => state.honest(&kind),
                Answer::HonestThenDrop => {
                    let _ = state.honest(&kind);
                    state.pushes = None;
                    Err(closed())
                }
                Answer::HonestWithPushes(pushes) => {
                    if let Some(sender) = &state.pushes {
                        for push in pushes {
                            let _ = sender.try_send(push);
                        }
                    }
                    state.honest(&kind)
                }
            }
        })
    }
}

fn closed() -> TransportError {
    TransportError::Closed {
        code: None,
        reason: "the scripted relay dropped the connection".into(),
    }
}

impl State {
    /// What an honest relay serving one device answers.
    fn honest(&mut self, kind: &request::Kind) -> Result<response::Result, TransportError> {
        match self.honest_result(kind) {
            response::Result::Error(error) => Err(TransportError::Refused(error.into())),
            result => Ok(result),
        }
    }

    fn honest_result(&mut self, kind: &request::Kind) -> response::Result {
        let now = crate::now_ms();
        let stock = KeyPackageStock {
            one_time: 100,
            last_resort: true,
        };
        match kind {
            request::Kind::GetInvite(_) => response::Result::InviteDetails(InviteDetails {
                bootstrap: true,
                expires_at_ms: now + 3_600_000,
                ..Default::default()
            }),
            request::Kind::Enrol(enrol) => {
                self.honest.user_id = enrol.user_id.clone();
                self.honest.display_name = enrol.display_name.clone();
                self.authenticated(stock, now)
            }
            request::Kind::Authenticate(_) => {
                if let Some(pushes) = &self.pushes {
                    let _ = pushes.try_send(push::Kind::CaughtUp(CaughtUp {}));
                }
                self.authenticated(stock, now)
            }
            request::Kind::UploadKeyPackages(_) => response::Result::KeyPackageStock(stock),
            request::Kind::ListRevocations(_) => {
                response::Result::Revocations(Revocations::default())
            }
            request::Kind::ListUsers(_) => response::Result::UserList(UserList::default()),
            request::Kind::ClaimKeyPackages(_) => {
                response::Result::ClaimedKeyPackages(ClaimedKeyPackages::default())
            }
            request::Kind::CreateGroup(create) => {
                self.honest.groups.insert(create.group_id.to_vec(), (0, 0));
                response::Result::GroupCreated(GroupCreated { epoch: 0 })
            }
            request::Kind::SubmitCommit(commit) => {
                let group = self.group(&commit.group_id);
                group.0 = commit.epoch + 1;
                group.1 += 1;
                response::Result::CommitAccepted(CommitAccepted {
                    epoch: group.0,
                    position: group.1,
                })
            }
            request::Kind::SendMessage(message) => {
                let group = self.group(&message.group_id);
                group.1 += 1;
                response::Result::MessageAccepted(MessageAccepted { position: group.1 })
            }
            request::Kind::GetGroup(get) => {
                let (epoch, last_position) = *self.group(&get.group_id);
                response::Result::GroupState(GroupState {
                    group_id: get.group_id.clone(),
                    epoch,
                    last_position,
                    ..Default::default()
                })
            }
            request::Kind::Ack(_) => response::Result::Acked(Acked {}),
            request::Kind::Ping(_) => response::Result::Pong(Pong { relay_time_ms: now }),
            _ => response::Result::Error(convene_proto::relay::Error {
                code: convene_proto::relay::ErrorCode::InvalidArgument as i32,
                message: "the scripted relay does not serve this request".into(),
                ..Default::default()
            }),
        }
    }

    fn authenticated(&self, stock: KeyPackageStock, now: u64) -> response::Result {
        response::Result::Authenticated(Authenticated {
            user_id: self.honest.user_id.clone(),
            display_name: self.honest.display_name.clone(),
            role: WireRole::Staff as i32,
            relay_id: bytes::Bytes::copy_from_slice(&self.relay_id),
            key_package_stock: Some(stock),
            relay_time_ms: now,
        })
    }

    fn group(&mut self, group_id: &[u8]) -> &mut (u64, u64) {
        self.honest.groups.entry(group_id.to_vec()).or_default()
    }
}
