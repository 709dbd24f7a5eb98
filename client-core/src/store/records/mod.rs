//! The client's own records, as protobuf messages (fields can be added
//! without rewriting old records), and their keys.

use convene_proto::ids::GroupId;

use super::{key, tag, StoreError};

mod directory;
mod help;
mod intents;
pub use directory::*;
pub use help::*;
pub use intents::*;

/// Who this device is. Written once, at enrolment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IdentityRecord {
    /// This device's user.
    #[prost(string, tag = "1")]
    pub user_id: String,
    /// The user's name, as certified.
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// `convene_proto::relay::Role` as i32.
    #[prost(int32, tag = "3")]
    pub role: i32,
    /// The device's ed25519 secret key.
    #[prost(bytes = "vec", tag = "4")]
    pub device_secret: Vec<u8>,
    /// The relay's address (a `ws://` or `wss://` URL).
    #[prost(string, tag = "5")]
    pub relay_url: String,
    /// The relay identity pinned at enrolment.
    #[prost(bytes = "vec", tag = "6")]
    pub relay_id: Vec<u8>,
    /// When this device enrolled, ms since the Unix epoch.
    #[prost(uint64, tag = "7")]
    pub enrolled_at_ms: u64,
    /// A pinned TLS certificate (PEM) for the relay, if any.
    #[prost(bytes = "vec", tag = "8")]
    pub pinned_certificate: Vec<u8>,
    /// The user's ed25519 identity key (secret), which certifies devices.
    #[prost(bytes = "vec", tag = "9")]
    pub identity_secret: Vec<u8>,
    /// The organisation's authority key, pinned at enrolment.
    #[prost(bytes = "vec", tag = "10")]
    pub authority_key: Vec<u8>,
    /// This device's encoded credential chain.
    #[prost(bytes = "vec", tag = "11")]
    pub credential: Vec<u8>,
    /// The authority's secret key, on the staff device that holds it.
    #[prost(bytes = "vec", tag = "12")]
    pub authority_secret: Vec<u8>,
    /// The user's sector, as certified; may be empty.
    #[prost(string, tag = "13")]
    pub sector: String,
}

/// One member device of a group.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MemberEntry {
    /// The member's user.
    #[prost(string, tag = "1")]
    pub user_id: String,
    /// The device key (32 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub device: Vec<u8>,
    /// When the member's user certificate, as its leaf carries it, ends
    /// (ms since the epoch).
    #[prost(uint64, tag = "3")]
    pub certificate_valid_until_ms: u64,
    /// The member's name, as their certificate gives it; empty in records
    /// written before names were kept, until the group's next epoch.
    #[prost(string, tag = "4")]
    pub display_name: String,
}

/// The newest KeyPackage a member device was re-added to a group with.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RejoinMark {
    /// The re-added device's key (32 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub device: Vec<u8>,
    /// That KeyPackage's lifetime end, seconds since the Unix epoch: a
    /// request to be re-added with one ending earlier is an old request,
    /// replayed.
    #[prost(uint64, tag = "2")]
    pub key_package_not_after: u64,
    /// That KeyPackage's HPKE init key: a request with it is the very
    /// request answered, replayed.
    #[prost(bytes = "vec", tag = "3")]
    pub init_key: Vec<u8>,
}

/// Rejoin marks a group record keeps at most.
pub const MAX_REJOIN_MARKS: usize = 256;

/// The client's view of a group it belongs to (or belonged to).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupRecord {
    /// The MLS group id.
    #[prost(bytes = "vec", tag = "1")]
    pub group_id: Vec<u8>,
    /// `convene_proto::content::GroupKind` as i32.
    #[prost(int32, tag = "2")]
    pub kind: i32,
    /// The group's name; empty for a direct channel.
    #[prost(string, tag = "3")]
    pub name: String,
    /// For a direct channel: the two users, ascending.
    #[prost(string, repeated, tag = "4")]
    pub direct_pair: Vec<String>,
    /// The MLS epoch this device's state of the group is at.
    #[prost(uint64, tag = "5")]
    pub epoch: u64,
    /// That epoch's MLS epoch authenticator.
    #[prost(bytes = "vec", tag = "6")]
    pub epoch_authenticator: Vec<u8>,
    /// Every member device at that epoch.
    #[prost(message, repeated, tag = "7")]
    pub members: Vec<MemberEntry>,
    /// Every log entry up to here was processed (and may be acknowledged).
    #[prost(uint64, tag = "8")]
    pub processed_through: u64,
    /// False once this device was removed.
    #[prost(bool, tag = "9")]
    pub active: bool,
    /// When this device joined or created the group, ms since the Unix epoch.
    #[prost(uint64, tag = "10")]
    pub joined_at_ms: u64,
    /// The users who manage the group from outside it (its MLS external
    /// senders, verified), sorted.
    #[prost(string, repeated, tag = "11")]
    pub managers: Vec<String>,
    /// This device manages the group without being a member of it.
    #[prost(bool, tag = "12")]
    pub managing: bool,
    /// Why this device cannot follow the group right now (it asked to be
    /// re-added); empty while it follows it.
    #[prost(string, tag = "13")]
    pub stalled: String,
    /// When this device last asked to be re-added (ms since the epoch).
    #[prost(uint64, tag = "14")]
    pub rejoin_requested_at_ms: u64,
    /// Requests to be re-added since the group stalled.
    #[prost(uint32, tag = "15")]
    pub rejoin_attempts: u32,
    /// Devices whose addition this device refused on the grounds of the
    /// group's policy or the chain of trust: it will not rejoin a state that
    /// holds one of them.
    #[prost(bytes = "vec", repeated, tag = "16")]
    pub refused_devices: Vec<Vec<u8>>,
    /// Entries this device could not read since it last followed the group,
    /// reported when it follows it again.
    #[prost(uint64, tag = "17")]
    pub missed: u64,
    /// When this device last renewed its own leaf in the group (a commit
    /// of its own), ms since the epoch; 0 while its leaf is the one its
    /// KeyPackage gave it (with that KeyPackage's lifetime).
    #[prost(uint64, tag = "18")]
    pub leaf_renewed_at_ms: u64,
    /// The device was added at the relay but holds no MLS state of the
    /// group yet (its Welcome failed or never came): it is not listed.
    #[prost(bool, tag = "19")]
    pub pending_join: bool,
    /// The group's encoded `GroupMeta`, as it joined or made it: what a
    /// Welcome that re-adds this device must match.
    #[prost(bytes = "vec", tag = "20")]
    pub meta: Vec<u8>,
    /// A Welcome (an encoded `InboxMessage`) that re-adds this device,
    /// waiting until the group's entries before it are read.
    #[prost(bytes = "vec", tag = "21")]
    pub deferred_welcome: Vec<u8>,
    /// The newest KeyPackage each member device was re-added with.
    #[prost(message, repeated, tag = "22")]
    pub rejoined: Vec<RejoinMark>,
    /// The certified name of every user seen in the group, members or not
    /// any more, by user id: so that what a former member said still shows
    /// their name. At most one per user of the network.
    #[prost(map = "string, string", tag = "23")]
    pub names: std::collections::HashMap<String, String>,
    /// Another copy of this device went on in the group after this
    /// state was saved: its ratchets may hold keys the group consumed, so
    /// only a rejoin (a new leaf) ends its stall, never the relay's epoch
    /// matching this state's.
    #[prost(bool, tag = "24")]
    pub ratchets_spent: bool,
    /// The newest log position of an application message this state sent
    /// and saw accepted. A receipt past it and past `processed_through`,
    /// for a submission this state does not hold, was sent by another copy
    /// of this device.
    #[prost(uint64, tag = "25")]
    pub sent_through: u64,
    /// The network channel: from which epoch chat was on or off, oldest
    /// first, for the epochs whose messages may still arrive (a text is
    /// judged by the policy of the epoch it was sent in, whatever order
    /// the relay delivers it in).
    #[prost(message, repeated, tag = "26")]
    pub chat_from: Vec<ChatFrom>,
}

/// The network channel's chat setting from an epoch on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChatFrom {
    /// The first epoch with this setting.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// Whether members other than staff may post text.
    #[prost(bool, tag = "2")]
    pub chat: bool,
}

/// Reads a group id kept in a record: one of a length the relay would
/// refuse was never written by this client, so it is damage.
pub fn stored_group_id(bytes: &[u8]) -> Result<GroupId, StoreError> {
    GroupId::from_field(bytes)
        .map_err(|err| StoreError::Corrupt(format!("a stored group id: {err}")))
}

impl GroupRecord {
    /// Whether the group's settings, as last mirrored from its
    /// GroupContext, let members other than staff post ordinary text (the
    /// network channel's `NetworkPolicy.chat`; false for any other group).
    pub fn chat_on(&self) -> bool {
        use prost::Message as _;
        convene_proto::content::GroupMeta::decode(self.meta.as_slice())
            .ok()
            .and_then(|meta| meta.network_policy)
            .is_some_and(|policy| policy.chat)
    }

    /// The group's id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored id is not a valid one.
    pub fn group(&self) -> Result<GroupId, StoreError> {
        stored_group_id(&self.group_id)
    }

    /// Notes that a device was re-added with a KeyPackage made to rejoin,
    /// keeping marks for members only.
    pub fn note_rejoined(&mut self, device: &[u8], not_after: u64, init_key: &[u8]) {
        let members = &self.members;
        self.rejoined
            .retain(|m| members.iter().any(|e| e.device == m.device));
        let mark = RejoinMark {
            device: device.to_vec(),
            key_package_not_after: not_after,
            init_key: init_key.to_vec(),
        };
        let room = self.rejoined.len() < MAX_REJOIN_MARKS;
        match self.rejoined.iter_mut().find(|m| m.device == device) {
            Some(old) if old.key_package_not_after <= not_after => *old = mark,
            Some(_) => {}
            None if room => self.rejoined.push(mark),
            None => {}
        }
    }

    /// Whether a request to re-add `device` with a KeyPackage ending at
    /// `not_after` (seconds) with `init_key` is the one it was last re-added
    /// with, or older.
    pub fn is_old_rejoin(&self, device: &[u8], not_after: u64, init_key: &[u8]) -> bool {
        self.rejoined.iter().any(|m| {
            m.device == device && (m.init_key == init_key || not_after < m.key_package_not_after)
        })
    }

    /// Whether this device is in the group and able to follow it.
    pub fn following(&self) -> bool {
        self.active && self.stalled.is_empty() && !self.pending_join
    }
}

impl MessageRecord {
    /// The group the message belongs to.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored id is not a valid one.
    pub fn group(&self) -> Result<GroupId, StoreError> {
        stored_group_id(&self.group_id)
    }
}

/// One message of a group's history.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageRecord {
    /// The group the message belongs to.
    #[prost(bytes = "vec", tag = "1")]
    pub group_id: Vec<u8>,
    /// Position in the group's relay log: the conversation's order.
    #[prost(uint64, tag = "2")]
    pub position: u64,
    /// The message's id, chosen by its sender (16 random bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub message_id: Vec<u8>,
    /// The sender's user id; empty for a notice.
    #[prost(string, tag = "4")]
    pub sender_user: String,
    /// The sender's device key (32 bytes); empty for a notice.
    #[prost(bytes = "vec", tag = "5")]
    pub sender_device: Vec<u8>,
    /// The sender's clock when it was written, ms since the Unix epoch.
    #[prost(uint64, tag = "6")]
    pub sent_at_ms: u64,
    /// When this device stored it, ms since the Unix epoch.
    #[prost(uint64, tag = "7")]
    pub received_at_ms: u64,
    /// The message's text; empty for a notice.
    #[prost(string, tag = "8")]
    pub text: String,
    /// Sent by this device.
    #[prost(bool, tag = "9")]
    pub own: bool,
    /// Not a message but a notice: this many entries of the group, up to
    /// this position, could not be read on this device.
    #[prost(uint64, tag = "10")]
    pub lost: u64,
    /// What kind of message it is ([`crate::types::MessageKind`] as a
    /// number; 0 for a text).
    #[prost(int32, tag = "11")]
    pub kind: i32,
    /// For a help request, offer or close: the request's id.
    #[prost(bytes = "vec", tag = "12")]
    pub request_id: Vec<u8>,
    /// For an offer staff passed on: the user id of the one who made it.
    #[prost(string, tag = "13")]
    pub passed_on_from: String,
    /// For an offer or a close: the title of the request it is about, as
    /// this device held it when it stored the message (empty if it held
    /// none), so that it is shown by title rather than by id.
    #[prost(string, tag = "14")]
    pub request_title: String,
}

/// This device's KeyPackages: when its stock on the relay was last
/// replaced, and the private keys it still holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyPackagesRecord {
    /// When the whole stock was last replaced (ms since the epoch).
    #[prost(uint64, tag = "1")]
    pub rotated_at_ms: u64,
    /// The format of the stock on the relay: older ones are replaced at
    /// once (format 1 lacked the last-resort capability).
    #[prost(uint32, tag = "2")]
    pub format: u32,
    /// The KeyPackages whose private keys this device still holds.
    #[prost(message, repeated, tag = "3")]
    pub keys: Vec<KeyPackageKey>,
}

/// A KeyPackage this device made, until its private keys are deleted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyPackageKey {
    /// Its hash reference, as the store keys it.
    #[prost(bytes = "vec", tag = "1")]
    pub hash_ref: Vec<u8>,
    /// When it expires, ms since the Unix epoch.
    #[prost(uint64, tag = "2")]
    pub expires_at_ms: u64,
}

/// This device's continuity tokens (see `Authenticate` in the protocol).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContinuityRecord {
    /// The token of the last authentication the relay confirmed.
    #[prost(bytes = "vec", tag = "1")]
    pub confirmed: Vec<u8>,
    /// The token sent with an authentication whose answer has not come yet.
    #[prost(bytes = "vec", tag = "2")]
    pub pending: Vec<u8>,
    /// This device took over from another copy, and not every group has
    /// been checked for what that copy did in it yet: checked after each
    /// authentication until all were.
    #[prost(bool, tag = "3")]
    pub check_after_take_over: bool,
}

/// Key of the [`ContinuityRecord`].
pub fn continuity_key() -> Vec<u8> {
    key(tag::META, &[b"continuity"])
}

/// Key of the [`KeyPackagesRecord`].
pub fn key_packages_key() -> Vec<u8> {
    key(tag::META, &[b"key_packages"])
}

/// Key of the [`IdentityRecord`].
pub fn identity_key() -> Vec<u8> {
    key(tag::META, &[b"identity"])
}

/// Key of the position (a big-endian u64) of the last inbox message
/// (Welcome) processed.
pub fn inbox_cursor_key() -> Vec<u8> {
    key(tag::META, &[b"inbox_processed"])
}

/// Key of the last intent id given out (a big-endian u64).
pub fn intent_counter_key() -> Vec<u8> {
    key(tag::META, &[b"intent_counter"])
}

/// Key of a group's [`GroupRecord`].
pub fn group_key(group_id: &[u8]) -> Vec<u8> {
    key(tag::GROUP, &[group_id])
}

/// Prefix of every [`GroupRecord`].
pub fn groups_prefix() -> Vec<u8> {
    vec![tag::GROUP]
}

/// Prefix of a group's history (its [`MessageRecord`]s).
pub fn history_prefix(group_id: &[u8]) -> Vec<u8> {
    key(tag::HISTORY, &[group_id])
}

/// Key of the [`MessageRecord`] at `position` in a group's history: the
/// history scans in log order.
pub fn history_key(group_id: &[u8], position: u64) -> Vec<u8> {
    let mut key = history_prefix(group_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// Key marking a message as shown (its value is empty), so that a
/// repeat is dropped.
pub fn seen_key(group_id: &[u8], sender_device: &[u8], message_id: &[u8]) -> Vec<u8> {
    key(tag::SEEN, &[group_id, sender_device, message_id])
}

/// Key of the [`IntentRecord`] with `id`: the outbox scans in id order.
pub fn intent_key(id: u64) -> Vec<u8> {
    let mut key = vec![tag::OUTBOX];
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Prefix of every [`IntentRecord`]: the outbox.
pub fn outbox_prefix() -> Vec<u8> {
    vec![tag::OUTBOX]
}

/// The sealing key pair of a group this device manages.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ManagerKeyRecord {
    /// The HPKE (X25519) private key.
    #[prost(bytes = "vec", tag = "1")]
    pub private: Vec<u8>,
    /// The HPKE (X25519) public key, which the group's metadata carries.
    #[prost(bytes = "vec", tag = "2")]
    pub public: Vec<u8>,
}

/// Key of the [`ManagerKeyRecord`] of a group this device manages.
pub fn manager_key(group_id: &[u8]) -> Vec<u8> {
    key(tag::MANAGER_KEY, &[group_id])
}

/// Key of the id of the direct channel with the user `peer`.
pub fn direct_key(peer: &str) -> Vec<u8> {
    key(tag::DIRECT, &[peer.as_bytes()])
}

/// Marks a direct channel that the other user created first: this device
/// waits for their Welcome instead of creating it.
pub fn awaiting_key(group_id: &[u8]) -> Vec<u8> {
    key(tag::META, &[b"awaiting", group_id])
}

/// The identity key first seen for a peer (trust on first use within the
/// authority's chain), so that a change is noticed.
pub fn peer_identity_key(user_id: &str) -> Vec<u8> {
    key(tag::PEER, &[user_id.as_bytes()])
}

/// Staff: the start (ms) of the newest user certificate this device relied
/// on to renew a user's, so that an older one is never relied on again.
pub fn renewal_floor_key(user_id: &str) -> Vec<u8> {
    key(tag::META, &[b"renewal_floor", user_id.as_bytes()])
}

/// On a device holding the authority key: the last user certificate it
/// issued `user_id` (an encoded `Signed`), so that a later renewal or
/// re-certification builds on it whatever the relay serves.
pub fn issued_certificate_key(user_id: &str) -> Vec<u8> {
    key(tag::META, &[b"issued_certificate", user_id.as_bytes()])
}

/// The network keys this device was given (a `NetworkKeyRing`).
pub fn network_keys_key() -> Vec<u8> {
    key(tag::META, &[b"network_keys"])
}

/// How far this device has read the relay's revocations.
pub fn revocation_cursor_key() -> Vec<u8> {
    key(tag::META, &[b"revocation_cursor"])
}

/// The group message at `position` held for later (its group not joined
/// or not followable yet), in log order.
pub fn held_key(group_id: &[u8], position: u64) -> Vec<u8> {
    let mut key = held_prefix(group_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// Prefix of a group's held messages (see [`held_key`]).
pub fn held_prefix(group_id: &[u8]) -> Vec<u8> {
    key(tag::HELD, &[group_id])
}

/// Prefix of every held message, whatever its group.
pub fn all_held_prefix() -> Vec<u8> {
    vec![tag::HELD]
}

/// A verified revocation of a user (empty `device`) or of one device: the
/// encoded `Signed` revocation.
pub fn revoked_key(user_id: &str, device: &[u8]) -> Vec<u8> {
    key(tag::REVOKED, &[user_id.as_bytes(), device])
}

/// Prefix of every stored revocation (see [`revoked_key`]).
pub fn revoked_prefix() -> Vec<u8> {
    vec![tag::REVOKED]
}
