//! The outbox's records: one intent per operation, and what each kind of
//! operation must remember between its attempts.

use convene_proto::ids::GroupId;

use crate::store::StoreError;

/// An operation persisted before anything about it is sent, so that a crash
/// or a lost response neither loses nor doubles it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IntentRecord {
    /// The intent's id, from the intent counter: the outbox's order.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// When the intent was stored, ms since the Unix epoch.
    #[prost(uint64, tag = "2")]
    pub created_at_ms: u64,
    /// The group it acts on (for a creation, the new group's id).
    #[prost(bytes = "vec", tag = "3")]
    pub group_id: Vec<u8>,
    /// How many times it had to start over (a commit that lost a race, a
    /// GroupInfo not yet current); each kind gives up past a bound.
    #[prost(uint32, tag = "4")]
    pub attempts: u32,
    /// What the operation is, with what it must remember.
    #[prost(
        oneof = "IntentKind",
        tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23"
    )]
    pub kind: Option<IntentKind>,
    /// A commit submitted and not yet known to be accepted or refused: the
    /// exact request, resubmitted as is after a reconnect.
    #[prost(bytes = "vec", tag = "20")]
    pub pending_commit: Vec<u8>,
}

impl IntentRecord {
    /// The group the intent acts on.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored id is not a valid one.
    pub fn group(&self) -> Result<GroupId, StoreError> {
        super::stored_group_id(&self.group_id)
    }
}

/// The kind of an operation, with what it must remember between its
/// attempts.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum IntentKind {
    /// Send an application message.
    #[prost(message, tag = "10")]
    Send(SendIntent),
    /// Create a group (cohort or network) with these members.
    #[prost(message, tag = "11")]
    Create(CreateIntent),
    /// Add these users to a group.
    #[prost(message, tag = "12")]
    Add(MembersIntent),
    /// Remove these users from a group.
    #[prost(message, tag = "13")]
    Remove(MembersIntent),
    /// Add these devices of this device's own user (a linked device).
    #[prost(message, tag = "14")]
    AddDevices(DevicesIntent),
    /// Remove these devices of this device's own user (a lost device).
    #[prost(message, tag = "15")]
    RemoveDevices(DevicesIntent),
    /// Change, as the group's manager from outside it, who is in a group.
    #[prost(message, tag = "16")]
    Manage(ManageIntent),
    /// Commit the proposals pending in a group (a manager's changes).
    #[prost(message, tag = "17")]
    CommitProposals(CommitProposalsIntent),
    /// Ask the group's members to re-add this device, which cannot follow
    /// the group.
    #[prost(message, tag = "18")]
    Rejoin(RejoinIntent),
    /// Re-add a member device that asked for it.
    #[prost(message, tag = "19")]
    Readd(ReaddIntent),
    /// Renew this device's leaf in a group (an update commit).
    #[prost(message, tag = "21")]
    Update(UpdateIntent),
    /// Leave a group: its other members commit this user's removal.
    #[prost(message, tag = "22")]
    Leave(LeaveIntent),
    /// Change the network channel's policy (staff).
    #[prost(message, tag = "23")]
    NetworkPolicy(NetworkPolicyIntent),
}

impl IntentKind {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            IntentKind::Send(_) => "send",
            IntentKind::Create(_) => "create",
            IntentKind::Add(_) => "add",
            IntentKind::Remove(_) => "remove",
            IntentKind::AddDevices(_) => "add_devices",
            IntentKind::RemoveDevices(_) => "remove_devices",
            IntentKind::Manage(_) => "manage",
            IntentKind::CommitProposals(_) => "commit_proposals",
            IntentKind::Rejoin(_) => "rejoin",
            IntentKind::Readd(_) => "readd",
            IntentKind::Update(_) => "update",
            IntentKind::Leave(_) => "leave",
            IntentKind::NetworkPolicy(_) => "network_policy",
        }
    }
}

/// The network channel's policy as staff want it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NetworkPolicyIntent {
    /// Whether every member may post ordinary text.
    #[prost(bool, tag = "1")]
    pub chat: bool,
}

/// Leaving a group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaveIntent {
    /// The epoch after the one the removal was last proposed in (0: not
    /// yet): proposals live for one epoch, so they are made again if the
    /// group moves on without them.
    #[prost(uint64, tag = "1")]
    pub proposed_for: u64,
}

/// Nothing to record: the group's record says when the leaf was renewed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateIntent {}

/// Nothing to record: the group's record says why and since when.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RejoinIntent {}

/// A member device to re-add, at its request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReaddIntent {
    /// The member device asking (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub device_key: Vec<u8>,
    /// Its user.
    #[prost(string, tag = "2")]
    pub user_id: String,
    /// The KeyPackage it sent, to replace its leaf with.
    #[prost(bytes = "vec", tag = "3")]
    pub key_package: Vec<u8>,
    /// Not before this time (ms since the epoch): the member nearest the
    /// device in the tree answers first, the others only if it did not.
    #[prost(uint64, tag = "4")]
    pub not_before_ms: u64,
}

/// A message to send.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendIntent {
    /// The message's id (16 random bytes), as its content carries it.
    #[prost(bytes = "vec", tag = "1")]
    pub message_id: Vec<u8>,
    /// The encoded `convene_proto::content::Content`.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
    /// 16 random bytes kept across retries, so that the relay stores the
    /// message once.
    #[prost(bytes = "vec", tag = "3")]
    pub submission_id: Vec<u8>,
    /// The ciphertext, once encrypted: a retry sends exactly these bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub ciphertext: Vec<u8>,
    /// The message's text, for the history.
    #[prost(string, tag = "5")]
    pub text: String,
    /// Not a message people read (network keys): kept out of the history.
    #[prost(bool, tag = "6")]
    pub silent: bool,
    /// What kind of message it is, for the history
    /// ([`crate::types::MessageKind`] as a number).
    #[prost(int32, tag = "7")]
    pub kind: i32,
    /// For a help request, offer or close: the request's id.
    #[prost(bytes = "vec", tag = "8")]
    pub request_id: Vec<u8>,
    /// For an offer passed on: the user id of the one who made it.
    #[prost(string, tag = "9")]
    pub passed_on_from: String,
}

/// A group to create.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateIntent {
    /// The encoded `convene_proto::content::GroupMeta`.
    #[prost(bytes = "vec", tag = "1")]
    pub meta: Vec<u8>,
    /// The users to add besides this one (user ids).
    #[prost(string, repeated, tag = "2")]
    pub members: Vec<String>,
    /// A direct channel: the other user, who may have created it first.
    #[prost(string, tag = "3")]
    pub direct_peer: String,
}

/// Users to add to or remove from a group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MembersIntent {
    /// The users' ids.
    #[prost(string, repeated, tag = "1")]
    pub user_ids: Vec<String>,
}

/// A manager's change, made by external proposals that a member commits.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ManageIntent {
    /// The users to add (user ids).
    #[prost(string, repeated, tag = "1")]
    pub add_users: Vec<String>,
    /// The users to remove (user ids).
    #[prost(string, repeated, tag = "2")]
    pub remove_users: Vec<String>,
    /// One more than the epoch the proposals were last sent for (0: never).
    #[prost(uint64, tag = "3")]
    pub proposed_for: u64,
    /// Devices (32-byte keys) to remove whoever's they are: revoked ones.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub remove_devices: Vec<Vec<u8>>,
    /// Also remove every member whose chain a revocation now covers (for
    /// instance one certified under a revoked delegation).
    #[prost(bool, tag = "5")]
    pub remove_revoked: bool,
}

/// Nothing to record: the proposals are in the group's MLS state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitProposalsIntent {
    /// The user who proposed the members the commit adds and removes, when
    /// one did (see `Event::MembersChanged::by`); empty otherwise.
    #[prost(string, tag = "1")]
    pub proposed_by: String,
}

/// Devices of this device's own user to add to or remove from a group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DevicesIntent {
    /// 32-byte device keys.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub device_keys: Vec<Vec<u8>>,
}
