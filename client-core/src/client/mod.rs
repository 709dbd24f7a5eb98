//! The app's handle on a running client.
//!
//! A [`Client`] is cheap to clone and safe to share: every change goes to
//! the engine task as a command and is answered once it is durable; reads
//! (groups, history) come straight from the committed local store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_proto::content::MembershipPolicy;
use convene_proto::content::{GroupKind as WireKind, GroupMeta};
use convene_proto::relay::{request, response};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::engine::{
    send_intent, Command, Completed, ConnectionProblem, ConnectionState, ConnectionStatus, Shared,
    MAX_TEXT_BYTES,
};
use crate::error::ClientError;
use crate::events::EventStream;
use crate::store::records::{
    self, CreateIntent, GroupRecord, IntentKind, IntentRecord, MembersIntent, MessageRecord,
};
use crate::transport::TransportError;
use crate::types::{GroupId, GroupKind, GroupSummary, Identity, Message, Role};

/// Connection attempts that fail in a row before
/// [`Client::wait_caught_up`] gives up (the client keeps trying).
const ATTEMPTS_BEFORE_GIVING_UP: u32 = 3;
/// Longest group name.
const MAX_GROUP_NAME_CHARS: usize = 128;

/// A running Convene client. Clone it freely; it stops when
/// [`Client::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    pub(crate) fn new(
        shared: Arc<Shared>,
        commands: mpsc::Sender<Command>,
        task: JoinHandle<()>,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                shared,
                commands,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Who this device belongs to.
    pub fn identity(&self) -> Identity {
        let record = &self.inner.shared.identity;
        Identity {
            user_id: record.user_id.clone(),
            display_name: record.display_name.clone(),
            role: Role::from_wire(record.role),
            device: self.device(),
            relay_url: record.relay_url.clone(),
        }
    }

    fn device(&self) -> Vec<u8> {
        self.inner.shared.device.to_vec()
    }

    fn user_id(&self) -> &str {
        &self.inner.shared.identity.user_id
    }

    /// A new receiver of events from now on.
    pub fn events(&self) -> EventStream {
        EventStream {
            receiver: self.inner.shared.events.subscribe(),
        }
    }

    /// The connection's current status.
    pub fn status(&self) -> ConnectionStatus {
        self.inner.shared.status.borrow().clone()
    }

    /// A watch over the connection's status, for apps that show it.
    pub fn watch_status(&self) -> watch::Receiver<ConnectionStatus> {
        self.inner.shared.status.subscribe()
    }

    /// Waits until the client is connected and has processed everything the
    /// relay held for it. Gives up after `timeout`, or once several
    /// connection attempts in a row have failed (the client keeps trying in
    /// the background either way).
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut status = self.watch_status();
        let wait = async {
            loop {
                {
                    let now = status.borrow_and_update();
                    if now.state == ConnectionState::CaughtUp {
                        return Ok(());
                    }
                    if now.revoked {
                        return Err(ClientError::Revoked);
                    }
                    if now.copied {
                        return Err(ClientError::StateCopied);
                    }
                    if now.failed_attempts >= ATTEMPTS_BEFORE_GIVING_UP {
                        return Err(unreachable(now.last_error.clone()));
                    }
                }
                if status.changed().await.is_err() {
                    return Err(ClientError::Stopped);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(unreachable(self.status().last_error)),
        }
    }

    /// Creates a cohort group named `name` with these users (and this one).
    pub async fn create_group(
        &self,
        name: &str,
        members: &[String],
    ) -> Result<GroupSummary, ClientError> {
        let name = checked_group_name(name)?;
        if self.identity().role != Role::Staff {
            return Err(ClientError::Forbidden(
                "only staff create cohort groups".into(),
            ));
        }
        self.check_users(members).await?;
        let group_id = GroupId::from(crate::random_bytes::<16>());
        let meta = GroupMeta {
            version: 1,
            kind: WireKind::Cohort as i32,
            name,
            direct_pair: Vec::new(),
            membership: MembershipPolicy::Staff as i32,
            ..Default::default()
        };
        let intent = IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::Create(CreateIntent {
                meta: meta.encode_to_vec(),
                members: members.to_vec(),
                direct_peer: String::new(),
            })),
            ..Default::default()
        };
        self.submit(intent).await?;
        self.group(&group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))
    }

    /// Opens (or finds) the one-to-one channel with `user`. When the other
    /// user opened it first, this waits for their invitation, and the
    /// channel may not be listed until it arrives; sending to it works
    /// either way.
    pub async fn open_direct(&self, user: &str) -> Result<GroupId, ClientError> {
        if user == self.user_id() {
            return Err(ClientError::InvalidArgument(
                "a direct channel needs another user".into(),
            ));
        }
        if let Some(id) = self.direct_channel(user)? {
            let has_peer = self
                .group(&id)?
                .is_some_and(|g| g.members.iter().any(|m| m.user_id == user));
            if has_peer {
                return Ok(id);
            }
            // Its first add failed (the other user could not be added
            // then): it is repaired before anything is sent to nobody.
        }
        self.lookup_user(user).await?;
        let group_id = direct_group_id(self.user_id(), user);
        let mut pair = vec![self.user_id().to_string(), user.to_string()];
        pair.sort();
        let meta = GroupMeta {
            version: 1,
            kind: WireKind::Direct as i32,
            name: String::new(),
            direct_pair: pair,
            membership: MembershipPolicy::Pair as i32,
            ..Default::default()
        };
        let intent = IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::Create(CreateIntent {
                meta: meta.encode_to_vec(),
                members: vec![user.to_string()],
                direct_peer: user.to_string(),
            })),
            ..Default::default()
        };
        self.submit(intent).await?;
        Ok(group_id)
    }

    /// The direct channel with `user`, if this device has one.
    pub fn direct_channel(&self, user: &str) -> Result<Option<GroupId>, ClientError> {
        let group_id = direct_group_id(self.user_id(), user);
        let record: Option<GroupRecord> = self
            .store()
            .get_committed_record(&records::group_key(&group_id))?;
        Ok(record.filter(|r| r.active).map(|_| group_id))
    }

    /// Adds users to a group (every device of each).
    pub async fn add_members(&self, group: &GroupId, users: &[String]) -> Result<(), ClientError> {
        if self.is_managing(group)? {
            self.check_users(users).await?;
            return self.manage(group, users, &[]).await;
        }
        let summary = self.active_group(group)?;
        self.check_may_manage(&summary)?;
        self.check_users(users).await?;
        self.submit(members_intent(group, users, true))
            .await
            .map(|_| ())
    }

    /// Removes users from a group (every device of each).
    pub async fn remove_members(
        &self,
        group: &GroupId,
        users: &[String],
    ) -> Result<(), ClientError> {
        let managing = self.is_managing(group)?;
        // A group managed from outside is known by the members this device
        // last saw in its GroupInfo.
        let summary = match managing {
            true => self
                .group(group)?
                .ok_or_else(|| ClientError::UnknownGroup(group.to_string()))?,
            false => self.active_group(group)?,
        };
        if let Some(missing) = users
            .iter()
            .find(|u| !summary.members.iter().any(|m| &m.user_id == *u))
        {
            return Err(ClientError::InvalidArgument(format!(
                "{missing} is not in this group"
            )));
        }
        if managing {
            return self.manage(group, &[], users).await;
        }
        self.check_may_manage(&summary)?;
        self.submit(members_intent(group, users, false))
            .await
            .map(|_| ())
    }

    /// Refuses, before anything is sent, a membership change that the
    /// group's policy forbids this user (every other member would refuse
    /// the commit anyway).
    fn check_may_manage(&self, summary: &GroupSummary) -> Result<(), ClientError> {
        if self.inner.shared.skip_local_policy {
            return Ok(());
        }
        match summary.kind {
            GroupKind::Direct => Err(ClientError::Forbidden(
                "a direct channel's members never change".into(),
            )),
            GroupKind::Cohort | GroupKind::Network if self.identity().role != Role::Staff => Err(
                ClientError::Forbidden("only staff change this group's membership".into()),
            ),
            _ => Ok(()),
        }
    }

    /// Sends a text message; returns it once the relay has stored it.
    pub async fn send_text(&self, group: &GroupId, text: &str) -> Result<Message, ClientError> {
        if text.is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(ClientError::InvalidArgument(format!(
                "a message has 1 to {MAX_TEXT_BYTES} bytes of text"
            )));
        }
        let known = self.group(group)?.is_some()
            || self
                .store()
                .get(&records::awaiting_key(group.as_bytes()))?
                .is_some();
        if !known {
            return Err(ClientError::UnknownGroup(group.to_string()));
        }
        self.check_may_post_text(group)?;
        let completed = self.submit(send_intent(group, text)).await?;
        completed
            .message
            .ok_or_else(|| ClientError::DamagedState("the message was not stored"))
    }

    /// Sends a text to `user`'s direct channel, opening it if needed.
    pub async fn send_direct(&self, user: &str, text: &str) -> Result<Message, ClientError> {
        let group = self.open_direct(user).await?;
        self.send_text(&group, text).await
    }

    /// Every group this device is or was in.
    pub fn groups(&self) -> Result<Vec<GroupSummary>, ClientError> {
        let own = self.user_id();
        self.store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| {
                let (_, record) = item?;
                Ok(GroupSummary::from_record(&record, own)?)
            })
            .collect()
    }

    /// One group, if this device is or was in it.
    pub fn group(&self, id: &GroupId) -> Result<Option<GroupSummary>, ClientError> {
        let record: Option<GroupRecord> = self
            .store()
            .get_committed_record(&records::group_key(id.as_bytes()))?;
        Ok(record
            .map(|r| GroupSummary::from_record(&r, self.user_id()))
            .transpose()?)
    }

    /// Finds a group by id (or a unique id prefix of at least 4 hex digits),
    /// by name, or, for a direct channel, by the other user's id.
    pub fn find_group(&self, query: &str) -> Result<GroupSummary, ClientError> {
        find::pick_group(&self.groups()?, query).cloned()
    }

    /// The last `limit` messages of a group, oldest first.
    pub fn history(&self, group: &GroupId, limit: usize) -> Result<Vec<Message>, ClientError> {
        let mut messages = self
            .store()
            .scan_rev::<MessageRecord>(&records::history_prefix(group.as_bytes()))
            .take(limit)
            .map(|item| {
                item.map(|(_, record)| Message::from_record(group.clone(), record))
                    .map_err(Into::into)
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Stops the client: the engine finishes the step it is in, and nothing
    /// acknowledged is lost. Other clones stop working.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn store(&self) -> &crate::store::LocalStore {
        &self.inner.shared.store
    }

    fn active_group(&self, group: &GroupId) -> Result<GroupSummary, ClientError> {
        let summary = self
            .group(group)?
            .ok_or_else(|| ClientError::UnknownGroup(group.to_string()))?;
        if !summary.active {
            return Err(ClientError::NotAMember);
        }
        Ok(summary)
    }

    async fn submit(&self, intent: IntentRecord) -> Result<Completed, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Submit { intent, reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    /// Persists `intent` in the outbox and returns without waiting for it
    /// to be carried out.
    async fn queue(&self, intent: IntentRecord) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Queue { intent, reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    async fn relay(&self, request: request::Kind) -> Result<response::Result, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Relay { request, reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }
}

/// The relay could not be reached; the last connection problem (or, if
/// there was none, the wait that ran out) is the cause.
fn unreachable(last_error: Option<ConnectionProblem>) -> ClientError {
    ClientError::RelayUnreachable(
        last_error.unwrap_or(ConnectionProblem::Transport(TransportError::Timeout)),
    )
}

/// The id of the direct channel between two users: the same whoever
/// computes it, so that both ends open the same group (see
/// [`convene_proto::direct`]).
pub fn direct_group_id(a: &str, b: &str) -> GroupId {
    convene_proto::direct::direct_group_id(a, b)
}

/// A group name trimmed, if it has 1 to [`MAX_GROUP_NAME_CHARS`]
/// characters.
fn checked_group_name(name: &str) -> Result<String, ClientError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err(ClientError::InvalidArgument(format!(
            "a group name has 1 to {MAX_GROUP_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

fn members_intent(group: &GroupId, users: &[String], add: bool) -> IntentRecord {
    let members = MembersIntent {
        user_ids: users.to_vec(),
    };
    IntentRecord {
        group_id: group.to_vec(),
        kind: Some(if add {
            IntentKind::Add(members)
        } else {
            IntentKind::Remove(members)
        }),
        ..Default::default()
    }
}

#[cfg(feature = "testing")]
mod adversarial;
mod cohort;
mod delegation;
mod device_label;
mod devices;
mod directory;
mod find;
mod help;
mod introduce;
mod keys;
mod managed;
mod network;
mod trust;
mod users;
pub use cohort::Cohort;
pub use device_label::MAX_DEVICE_NAME_CHARS;
pub use devices::{DeviceInfo, LinkRequest};
pub use help::AskDraft;
pub use trust::SafetyNumber;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_derive_the_same_direct_channel() {
        assert_eq!(direct_group_id("ana", "ben"), direct_group_id("ben", "ana"));
        assert_ne!(direct_group_id("ana", "ben"), direct_group_id("ana", "bea"));
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(direct_group_id("a", "bc"), direct_group_id("ab", "c"));
    }
}
