//! The baseline: the least a websocket fan-out can do, with the relay's
//! own libraries (tokio, tokio-tungstenite, prost) and wire protocol, and
//! nothing else: no storage, no flush, no authentication, no limits.
//!
//! It answers the requests the generator makes: any `Enrol` or
//! `Authenticate` is accepted as the device it names; a commit's added and
//! removed devices change a group's members; a message is numbered, pushed
//! at once to every connected member (its sender gets a `Receipt`) and kept
//! in memory for members that are not connected until they acknowledge it.
//! The generator drives it exactly as it drives the relay, so the relay's
//! figures divided by these measure what storage, durability,
//! authentication and bounds cost.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use convene_proto::relay::{
    envelope::Body, push, request, response, stream_ack, Acked, Authenticated, Challenge,
    CommitAccepted, Envelope, Error as WireError, ErrorCode, GroupCreated, GroupMessage,
    InviteCreated, MessageAccepted, MessageKind, Pong, Receipt, Role,
};
use convene_proto::{decode_envelope, encode_envelope};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::lock;

type Device = Bytes;

#[derive(Default)]
struct Group {
    /// Members and the newest position each acknowledged.
    members: HashMap<Device, u64>,
    /// Entries not yet acknowledged by every member: (position, sender,
    /// payload). The oldest is at `first`.
    log: VecDeque<(u64, Device, Bytes)>,
    last: u64,
}

#[derive(Default)]
struct State {
    groups: HashMap<Bytes, Group>,
    online: HashMap<Device, mpsc::UnboundedSender<Bytes>>,
}

/// Serves the baseline on `listener` until the process ends.
pub async fn serve(listener: TcpListener) {
    let state = Arc::new(Mutex::new(State::default()));
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(state.clone(), tcp));
    }
}

async fn connection(state: Arc<Mutex<State>>, tcp: TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (out, mut queue) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(128);
        while queue.recv_many(&mut batch, 128).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let challenge = push::Kind::Challenge(Challenge {
        relay_id: Bytes::from_static(&[7; 16]),
        nonce: Bytes::copy_from_slice(&nonce),
        auth_timeout_ms: 10_000,
    });
    let _ = out.send(encode_envelope(&Envelope::push(challenge)));
    let mut device: Option<Device> = None;
    while let Some(Ok(message)) = stream.next().await {
        let Message::Binary(bytes) = message else {
            continue;
        };
        let Ok(Envelope {
            request_id,
            body: Some(Body::Request(request)),
            ..
        }) = decode_envelope(bytes)
        else {
            continue;
        };
        let Some(kind) = request.kind else { continue };
        let result = handle(&state, &mut device, &out, kind);
        let _ = out.send(encode_envelope(&Envelope::response(request_id, result)));
    }
    if let Some(device) = device {
        let mut state = lock(&state);
        if state
            .online
            .get(&device)
            .is_some_and(|tx| tx.same_channel(&out))
        {
            state.online.remove(&device);
        }
    }
    drop(out);
    let _ = writer.await;
}

fn handle(
    state: &Mutex<State>,
    device: &mut Option<Device>,
    out: &mpsc::UnboundedSender<Bytes>,
    kind: request::Kind,
) -> response::Result {
    let key = match (&kind, device.as_ref()) {
        (request::Kind::Enrol(req), _) => {
            return come_online(state, device, out, req.device_key.clone())
        }
        (request::Kind::Authenticate(req), _) => {
            return come_online(state, device, out, req.device_key.clone())
        }
        (request::Kind::Ping(_), _) => return response::Result::Pong(Pong::default()),
        (_, Some(key)) => key.clone(),
        (_, None) => return error("authenticate first"),
    };
    let mut state = lock(state);
    match kind {
        request::Kind::CreateInvite(_) => response::Result::InviteCreated(InviteCreated::default()),
        request::Kind::CreateGroup(req) => {
            let group = state.groups.entry(req.group_id).or_default();
            group.members.insert(key, 0);
            response::Result::GroupCreated(GroupCreated { epoch: 0 })
        }
        request::Kind::SubmitCommit(req) => {
            let Some(group) = state.groups.get_mut(&req.group_id) else {
                return error("no such group");
            };
            let last = group.last;
            for added in req.added_devices {
                group.members.insert(added, last);
            }
            for removed in &req.removed_devices {
                group.members.remove(removed);
            }
            response::Result::CommitAccepted(CommitAccepted {
                epoch: req.epoch + 1,
                position: last,
            })
        }
        request::Kind::SendMessage(req) => {
            let state = &mut *state;
            let Some(group) = state.groups.get_mut(&req.group_id) else {
                return error("no such group");
            };
            group.last += 1;
            let position = group.last;
            let message = push::Kind::GroupMessage(GroupMessage {
                group_id: req.group_id.clone(),
                position,
                kind: MessageKind::Application as i32,
                sender_device: key.clone(),
                payload: req.payload.clone(),
                ..Default::default()
            });
            let frame = encode_envelope(&Envelope::push(message));
            let mut everyone_online = true;
            for member in group.members.keys() {
                let Some(tx) = state.online.get(member) else {
                    everyone_online = false;
                    continue;
                };
                if *member == key {
                    let receipt = push::Kind::Receipt(Receipt {
                        group_id: req.group_id.clone(),
                        position,
                        submission_id: req.submission_id.clone(),
                        ..Default::default()
                    });
                    let _ = tx.send(encode_envelope(&Envelope::push(receipt)));
                } else {
                    let _ = tx.send(frame.clone());
                }
            }
            if !everyone_online {
                group.log.push_back((position, key, req.payload));
            }
            response::Result::MessageAccepted(MessageAccepted { position })
        }
        request::Kind::Ack(req) => {
            for ack in req.acks {
                let Some(stream_ack::Stream::GroupId(group_id)) = ack.stream else {
                    continue;
                };
                if let Some(group) = state.groups.get_mut(&group_id) {
                    if let Some(acked) = group.members.get_mut(&key) {
                        *acked = (*acked).max(ack.position);
                    }
                    trim(group);
                }
            }
            response::Result::Acked(Acked {})
        }
        _ => error("the baseline does not serve this request"),
    }
}

/// Registers the connection as `key`'s and pushes what it missed.
fn come_online(
    state: &Mutex<State>,
    device: &mut Option<Device>,
    out: &mpsc::UnboundedSender<Bytes>,
    key: Bytes,
) -> response::Result {
    let mut state = lock(state);
    state.online.insert(key.clone(), out.clone());
    for (group_id, group) in &state.groups {
        let Some(acked) = group.members.get(&key) else {
            continue;
        };
        for (position, sender, payload) in group.log.iter().filter(|(p, ..)| p > acked) {
            let message = push::Kind::GroupMessage(GroupMessage {
                group_id: group_id.clone(),
                position: *position,
                kind: MessageKind::Application as i32,
                sender_device: sender.clone(),
                payload: payload.clone(),
                ..Default::default()
            });
            let _ = out.send(encode_envelope(&Envelope::push(message)));
        }
    }
    let caught_up = push::Kind::CaughtUp(Default::default());
    let _ = out.send(encode_envelope(&Envelope::push(caught_up)));
    *device = Some(key);
    response::Result::Authenticated(Authenticated {
        user_id: "baseline".into(),
        role: Role::Staff as i32,
        relay_id: Bytes::from_static(&[7; 16]),
        ..Default::default()
    })
}

/// Forgets what every member acknowledged, checking only now and then
/// (cheap enough for the baseline's purpose).
fn trim(group: &mut Group) {
    if group.log.len() < 1024 {
        return;
    }
    let safe = group.members.values().copied().min().unwrap_or(group.last);
    while group.log.front().is_some_and(|(p, ..)| *p <= safe) {
        group.log.pop_front();
    }
}

fn error(why: &str) -> response::Result {
    response::Result::Error(WireError::new(ErrorCode::InvalidArgument, why))
}
