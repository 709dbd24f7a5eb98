//! A device speaking the relay protocol directly, for relay-level tests.
//!
//! The payloads it sends are opaque bytes standing in for MLS messages,
//! framed with the clear MLS header that the relay reads (group id, epoch,
//! content type; see `convene_proto::mls_frame`): the relay must treat the
//! rest as ciphertext, which these tests rely on. [`opaque`] unwraps what
//! such a device sent.

use std::collections::HashMap;
use std::sync::Mutex;

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use convene_client::transport::EnrolRequest;
use convene_client::{ConnectOptions, DeviceKey, RelayConnection, TransportError};
use convene_proto::invite::{Invite, InviteSecret};
use convene_proto::mls_frame::{frame_private_message, private_message_body, ContentType};
use convene_proto::relay::{
    push, request, response, stream_ack, Ack, CommitAccepted, CreateGroup, CreateInvite, ErrorCode,
    GetGroup, GroupMessage, MessageKind, Role, SendMessage, StreamAck, SubmitCommit,
};
use rand::RngCore;

use crate::PATIENCE;

/// One enrolled device with an authenticated connection.
pub struct TestDevice {
    pub key: DeviceKey,
    pub conn: RelayConnection,
    pub user_id: String,
    /// The epoch each group was last known to be at.
    epochs: Mutex<HashMap<Vec<u8>, u64>>,
}

/// The opaque body a [`TestDevice`] framed (the bytes as given when they
/// are not a framed message).
pub fn opaque(payload: &[u8]) -> &[u8] {
    private_message_body(payload).unwrap_or(payload)
}

/// 16 random bytes: a submission id.
pub fn random_id() -> Bytes {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    Bytes::copy_from_slice(&id)
}

impl TestDevice {
    /// Enrols a new user (with a new device) through `invite`.
    pub async fn enrol(url: &str, invite: &str, user_id: &str) -> Result<TestDevice> {
        let key = DeviceKey::generate();
        let conn = RelayConnection::connect(url, &ConnectOptions::default()).await?;
        // The relay neither reads nor checks credentials, so this raw
        // device needs none.
        let request = EnrolRequest {
            invite_token: invite_token(invite),
            user_id: user_id.to_string(),
            display_name: format!("Test {user_id}"),
            ..Default::default()
        };
        let authenticated = conn.enrol(&key, &request).await?;
        Ok(TestDevice {
            key,
            conn,
            user_id: authenticated.user_id,
            epochs: Mutex::default(),
        })
    }

    /// Connects an enrolled device.
    pub async fn connect(url: &str, key: DeviceKey) -> Result<TestDevice> {
        Self::connect_continuing(url, key, Vec::new()).await
    }

    /// Connects as a device that a client has run, naming the client's
    /// continuity `token` both as the last and the next one, so that the
    /// client's own state stays current.
    pub async fn connect_continuing(
        url: &str,
        key: DeviceKey,
        token: Vec<u8>,
    ) -> Result<TestDevice> {
        let conn = RelayConnection::connect(url, &ConnectOptions::default()).await?;
        let continuity = convene_client::transport::Continuity {
            previous: token.clone(),
            next: token,
            take_over: false,
        };
        let authenticated =
            convene_client::transport::authenticate_continuing(&conn, &key, None, &continuity)
                .await?;
        Ok(TestDevice {
            key,
            conn,
            user_id: authenticated.user_id,
            epochs: Mutex::default(),
        })
    }

    /// Closes this connection and opens a new one for the same device.
    pub async fn reconnect(self, url: &str) -> Result<TestDevice> {
        let TestDevice { key, conn, .. } = self;
        conn.close().await;
        Self::connect(url, key).await
    }

    /// Drops the connection without closing it (a crash or a lost network),
    /// and returns the key to connect again.
    pub fn vanish(self) -> DeviceKey {
        self.key
    }

    /// The device's key: its id on the relay.
    pub fn device(&self) -> [u8; 32] {
        self.key.public().0
    }

    /// Creates an invite (staff only), without a certificate: the relay
    /// cannot tell, and only clients check certificates.
    pub async fn invite(&self, role: Role) -> Result<String, TransportError> {
        let invite = Invite {
            secret: InviteSecret::generate(),
            authority_fingerprint: None,
            relay_url: None,
        };
        let request = request::Kind::CreateInvite(CreateInvite {
            role: role as i32,
            invite_token: Bytes::copy_from_slice(&invite.secret.relay_token()),
            ..Default::default()
        });
        match self.conn.request(request).await? {
            response::Result::InviteCreated(_) => Ok(invite.to_code()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn create_group(&self, group_id: &[u8]) -> Result<(), TransportError> {
        let request = request::Kind::CreateGroup(CreateGroup {
            group_id: Bytes::copy_from_slice(group_id),
            direct_pair: Vec::new(),
        });
        self.conn.request(request).await.map(|_| ())
    }

    /// A commit request with opaque payloads (the commit framed for
    /// `epoch`); a Welcome when adding.
    pub fn commit_request(
        group_id: &[u8],
        epoch: u64,
        submission_id: Bytes,
        added: &[[u8; 32]],
        removed: &[[u8; 32]],
    ) -> request::Kind {
        request::Kind::SubmitCommit(SubmitCommit {
            group_id: Bytes::copy_from_slice(group_id),
            epoch,
            submission_id,
            commit: Bytes::from(frame_private_message(
                group_id,
                epoch,
                ContentType::Commit,
                format!("commit on epoch {epoch}").as_bytes(),
            )),
            welcome: if added.is_empty() {
                Bytes::new()
            } else {
                Bytes::from(format!("welcome to epoch {}", epoch + 1))
            },
            ratchet_tree: Bytes::new(),
            group_info: Bytes::new(),
            added_devices: added.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
            removed_devices: removed.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
        })
    }

    pub async fn commit(
        &self,
        group_id: &[u8],
        epoch: u64,
        added: &[[u8; 32]],
        removed: &[[u8; 32]],
    ) -> Result<CommitAccepted, TransportError> {
        let request = Self::commit_request(group_id, epoch, random_id(), added, removed);
        match self.conn.request(request).await? {
            response::Result::CommitAccepted(accepted) => {
                self.note_epoch(group_id, accepted.epoch);
                Ok(accepted)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Sends an application message at the group's current epoch (asking
    /// the relay for it when unknown or stale); returns its log position.
    pub async fn send(&self, group_id: &[u8], payload: &[u8]) -> Result<u64, TransportError> {
        let mut epoch = match self.known_epoch(group_id) {
            Some(epoch) => epoch,
            None => self.epoch(group_id).await?,
        };
        for _ in 0..3 {
            let request = Self::message_request(group_id, epoch, random_id(), payload);
            match self.conn.request(request).await {
                Ok(response::Result::MessageAccepted(accepted)) => return Ok(accepted.position),
                Ok(other) => return Err(unexpected(other)),
                Err(TransportError::Refused(refusal)) if refusal.code == ErrorCode::StaleEpoch => {
                    epoch = refusal.current_epoch;
                    self.note_epoch(group_id, epoch);
                }
                Err(err) => return Err(err),
            }
        }
        Err(TransportError::Protocol(
            "the group's epoch kept changing".into(),
        ))
    }

    /// An application message request, framed for `epoch`.
    pub fn message_request(
        group_id: &[u8],
        epoch: u64,
        submission_id: Bytes,
        payload: &[u8],
    ) -> request::Kind {
        request::Kind::SendMessage(SendMessage {
            group_id: Bytes::copy_from_slice(group_id),
            kind: MessageKind::Application as i32,
            submission_id,
            payload: Bytes::from(frame_private_message(
                group_id,
                epoch,
                ContentType::Application,
                payload,
            )),
        })
    }

    /// The group's current epoch, as the relay says.
    pub async fn epoch(&self, group_id: &[u8]) -> Result<u64, TransportError> {
        let request = request::Kind::GetGroup(GetGroup {
            group_id: Bytes::copy_from_slice(group_id),
        });
        match self.conn.request(request).await? {
            response::Result::GroupState(state) => {
                self.note_epoch(group_id, state.epoch);
                Ok(state.epoch)
            }
            other => Err(unexpected(other)),
        }
    }

    fn known_epoch(&self, group_id: &[u8]) -> Option<u64> {
        self.epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group_id)
            .copied()
    }

    fn note_epoch(&self, group_id: &[u8], epoch: u64) {
        self.epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group_id.to_vec(), epoch);
    }

    /// The next push, waiting at most [`PATIENCE`].
    pub async fn push(&mut self) -> Result<push::Kind> {
        self.push_within(PATIENCE)
            .await
            .ok_or_else(|| anyhow!("no push from the relay within {PATIENCE:?}"))
    }

    /// The next push other than a `DirectoryNotice`, or `None` if none
    /// comes within `wait`. Directory notices are skipped because the relay
    /// sends them to every connected device whenever anyone enrols or
    /// writes a profile, so they arrive at any point of any test;
    /// [`TestDevice::any_push_within`] sees them.
    pub async fn push_within(&mut self, wait: Duration) -> Option<push::Kind> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.any_push_within(remaining).await? {
                push::Kind::DirectoryNotice(_) => continue,
                other => return Some(other),
            }
        }
    }

    /// The next push of any kind, or `None` if none comes within `wait`.
    pub async fn any_push_within(&mut self, wait: Duration) -> Option<push::Kind> {
        tokio::time::timeout(wait, self.conn.next_push())
            .await
            .ok()
            .flatten()
    }

    /// Collects the next `n` group messages (skipping other pushes) and
    /// acknowledges each.
    pub async fn group_messages(&mut self, n: usize) -> Result<Vec<GroupMessage>> {
        let mut messages = Vec::with_capacity(n);
        while messages.len() < n {
            if let push::Kind::GroupMessage(message) = self.push().await? {
                self.ack_group(&message.group_id, message.position).await?;
                messages.push(message);
            }
        }
        Ok(messages)
    }

    /// Receives pushes up to `CaughtUp`, acknowledging each as it comes (the
    /// relay holds back the rest of a backlog larger than its push window
    /// until earlier pushes are acknowledged), and returns them.
    pub async fn catch_up(&mut self) -> Result<Vec<push::Kind>> {
        let mut before = Vec::new();
        loop {
            let push = self.push().await?;
            if matches!(push, push::Kind::CaughtUp(_)) {
                return Ok(before);
            }
            self.acknowledge(&push).await?;
            before.push(push);
        }
    }

    /// Acknowledges one push, if it is one that needs it.
    pub async fn acknowledge(&self, push: &push::Kind) -> Result<(), TransportError> {
        match push {
            push::Kind::GroupMessage(m) => self.ack_group(&m.group_id, m.position).await,
            push::Kind::Receipt(r) => self.ack_group(&r.group_id, r.position).await,
            push::Kind::InboxMessage(w) => self.ack_inbox(w.position).await,
            _ => Ok(()),
        }
    }

    /// Receives and acknowledges pushes until none has come for a moment,
    /// returning them: brings a device to a quiet state before a test step.
    pub async fn settle(&mut self) -> Result<Vec<push::Kind>> {
        let mut pushes = Vec::new();
        while let Some(push) = self.push_within(Duration::from_millis(300)).await {
            self.acknowledge(&push).await?;
            pushes.push(push);
        }
        Ok(pushes)
    }

    pub async fn ack_group(&self, group_id: &[u8], position: u64) -> Result<(), TransportError> {
        self.ack(
            stream_ack::Stream::GroupId(Bytes::copy_from_slice(group_id)),
            position,
        )
        .await
    }

    pub async fn ack_inbox(&self, position: u64) -> Result<(), TransportError> {
        self.ack(stream_ack::Stream::Inbox(true), position).await
    }

    async fn ack(&self, stream: stream_ack::Stream, position: u64) -> Result<(), TransportError> {
        let request = request::Kind::Ack(Ack {
            acks: vec![StreamAck {
                stream: Some(stream),
                position,
            }],
        });
        self.conn.request(request).await.map(|_| ())
    }
}

fn unexpected(result: response::Result) -> TransportError {
    TransportError::Protocol(format!("unexpected response {result:?}"))
}

/// Staff enrolled through the relay's bootstrap invite.
pub async fn bootstrap_staff(relay: &impl crate::RelayUnderTest) -> Result<TestDevice> {
    let Some(invite) = relay.bootstrap_invite() else {
        bail!("the relay printed no bootstrap invite");
    };
    TestDevice::enrol(relay.url(), invite, "staff").await
}

/// Enrols `names` as leaders invited by `staff`.
pub async fn enrol_leaders(
    relay: &impl crate::RelayUnderTest,
    staff: &TestDevice,
    names: &[&str],
) -> Result<Vec<TestDevice>> {
    let mut devices = Vec::new();
    for name in names {
        let invite = staff.invite(Role::Leader).await?;
        devices.push(TestDevice::enrol(relay.url(), &invite, name).await?);
    }
    Ok(devices)
}

/// Leaders `names`, invited by the bootstrap staff member, in a group "g"
/// at epoch 1 that the first of them made; every member settled.
pub async fn group_of(
    relay: &impl crate::RelayUnderTest,
    names: &[&str],
) -> Result<Vec<TestDevice>> {
    let staff = bootstrap_staff(relay).await?;
    let mut members = enrol_leaders(relay, &staff, names).await?;
    let Some((first, others)) = members.split_first() else {
        bail!("a group needs a member");
    };
    first.create_group(b"g").await?;
    let others: Vec<[u8; 32]> = others.iter().map(TestDevice::device).collect();
    members[0].commit(b"g", 0, &others, &[]).await?;
    for member in &mut members {
        member.settle().await?;
    }
    Ok(members)
}

/// The relay token of an invite code; an unreadable code gives a token no
/// relay knows, so that the relay's answer is what a test sees.
pub fn invite_token(code: &str) -> [u8; 32] {
    Invite::from_code(code)
        .map(|invite| invite.secret.relay_token())
        .unwrap_or([0; 32])
}
