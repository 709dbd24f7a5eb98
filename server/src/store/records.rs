//! The records the relay stores, as protobuf messages.
//!
//! Protobuf gives the stored format what the wire format has: fields can be
//! added without rewriting old records, and a record from a newer relay is
//! read by an older one without error. The schema version in the meta table
//! guards changes that are not compatible in that way.

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct InviteRecord {
    /// `convene_proto::relay::Role` as i32.
    #[prost(int32, tag = "1")]
    pub role: i32,
    /// Preassigned handle, or empty.
    #[prost(string, tag = "2")]
    pub user_id: String,
    /// Preassigned display name, or empty.
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(uint64, tag = "4")]
    pub created_at_ms: u64,
    #[prost(uint64, tag = "5")]
    pub expires_at_ms: u64,
    /// The staff device that created it (empty for bootstrap invites).
    #[prost(bytes = "vec", tag = "6")]
    pub created_by: Vec<u8>,
    /// When it was redeemed, or 0. Redeemed invites are kept until they
    /// expire so that reuse is reported as such.
    #[prost(uint64, tag = "7")]
    pub redeemed_at_ms: u64,
    /// The invitee's signed user certificate, opaque (empty for bootstrap
    /// invites).
    #[prost(bytes = "vec", tag = "8")]
    pub user_certificate: Vec<u8>,
    /// The delegation under which staff certified the invitee, opaque.
    #[prost(bytes = "vec", tag = "9")]
    pub delegation: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UserRecord {
    #[prost(string, tag = "1")]
    pub user_id: String,
    #[prost(string, tag = "2")]
    pub display_name: String,
    #[prost(int32, tag = "3")]
    pub role: i32,
    #[prost(uint64, tag = "4")]
    pub created_at_ms: u64,
    /// When staff suspended the user, or 0.
    #[prost(uint64, tag = "5")]
    pub suspended_at_ms: u64,
    /// The user's current certificate (an encoded `Signed` user
    /// certificate), opaque but for its expiry.
    #[prost(bytes = "vec", tag = "6")]
    pub certificate: Vec<u8>,
    /// When it expires (ms since the epoch), 0 if unknown.
    #[prost(uint64, tag = "7")]
    pub certificate_expires_at_ms: u64,
    /// Staff only: the newest delegation the authority stored for them
    /// (an encoded, signed `StaffDelegation`), empty if none.
    #[prost(bytes = "vec", tag = "8")]
    pub delegation: Vec<u8>,
    /// Whether `certificate` was signed under a staff delegation (until the
    /// authority renews it).
    #[prost(bool, tag = "9")]
    pub certified_by_delegate: bool,
    /// The sequence number of the revocation that suspended the user, or 0.
    #[prost(uint64, tag = "10")]
    pub suspended_by: u64,
    /// The user's own profile (an encoded `Signed` profile), opaque but for
    /// its user and revision; empty if none.
    #[prost(bytes = "vec", tag = "11")]
    pub profile: Vec<u8>,
    /// That profile's revision (0 if none).
    #[prost(uint64, tag = "12")]
    pub profile_revision: u64,
}

/// A new device asking to join a user, until it is approved or expires.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinkRecord {
    #[prost(string, tag = "1")]
    pub user_id: String,
    #[prost(uint64, tag = "3")]
    pub requested_at_ms: u64,
    #[prost(uint64, tag = "4")]
    pub expires_at_ms: u64,
    /// When one of the user's devices approved it, or 0.
    #[prost(uint64, tag = "5")]
    pub approved_at_ms: u64,
    /// The approving device's sealed bundle, opaque.
    #[prost(bytes = "vec", tag = "6")]
    pub sealed: Vec<u8>,
    /// The new device's SPAKE2 message, opaque (tag 2 held an HPKE key in
    /// version 1 of linking).
    #[prost(bytes = "vec", tag = "7")]
    pub pake_request: Vec<u8>,
    /// The approving device's SPAKE2 message, opaque.
    #[prost(bytes = "vec", tag = "8")]
    pub pake_answer: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceRecord {
    #[prost(string, tag = "1")]
    pub user_id: String,
    #[prost(uint64, tag = "2")]
    pub created_at_ms: u64,
    /// The device's credential chain, opaque to the relay.
    #[prost(bytes = "vec", tag = "3")]
    pub credential: Vec<u8>,
    /// When staff revoked the device, or 0.
    #[prost(uint64, tag = "4")]
    pub revoked_at_ms: u64,
    /// The continuity token of the device's last authentication (see
    /// `Authenticate`); empty before the first.
    #[prost(bytes = "vec", tag = "5")]
    pub continuity: Vec<u8>,
    /// The sequence number of the staff revocation that revoked it, or 0
    /// (its user removed it, or it is not revoked).
    #[prost(uint64, tag = "6")]
    pub revoked_by: u64,
    /// When it last authenticated, to the minute (ms since the Unix
    /// epoch), or 0 before the first: shown to its own user only.
    #[prost(uint64, tag = "7")]
    pub last_seen_ms: u64,
    /// Its label (name and platform), sealed by its user's devices: opaque.
    #[prost(bytes = "vec", tag = "8")]
    pub sealed_label: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupRecord {
    /// The current epoch: the only one a commit may be built on.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// Position of the newest log entry (0 when none was ever appended).
    #[prost(uint64, tag = "2")]
    pub last_position: u64,
    /// Entries up to this position were acknowledged by every member and
    /// deleted.
    #[prost(uint64, tag = "3")]
    pub trimmed_through: u64,
    #[prost(uint64, tag = "4")]
    pub created_at_ms: u64,
    /// The group's epoch just after `trimmed_through`: what a device that
    /// missed the trimmed entries is told it missed.
    #[prost(uint64, tag = "5")]
    pub trimmed_epoch: u64,
}

impl GroupRecord {
    /// Entries stored and not yet trimmed.
    pub fn backlog(&self) -> u64 {
        self.last_position.saturating_sub(self.trimmed_through)
    }
}

/// One device's subscription to one group log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberRecord {
    /// The first position this device receives.
    #[prost(uint64, tag = "1")]
    pub from_position: u64,
    /// When removed: the last position it receives (the removing commit).
    /// Zero while it is a member.
    #[prost(uint64, tag = "2")]
    pub until_position: u64,
    /// Everything up to here was acknowledged by the device.
    #[prost(uint64, tag = "3")]
    pub acked: u64,
}

impl MemberRecord {
    /// A current member (not removed).
    pub fn is_active(&self) -> bool {
        super::Routing::from(self).is_active()
    }

    /// The last position this device should receive, given the log's end.
    pub fn last_deliverable(&self, last_position: u64) -> u64 {
        super::Routing::from(self).last_deliverable(last_position)
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEntry {
    /// `convene_proto::relay::MessageKind` as i32.
    #[prost(int32, tag = "1")]
    pub kind: i32,
    // Views of the buffer an entry is decoded from, not copies (as the
    // payload): a catch-up reads every entry.
    #[prost(bytes = "bytes", tag = "2")]
    pub sender_device: Bytes,
    /// The group's epoch when the entry was accepted.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    #[prost(bytes = "bytes", tag = "4")]
    pub payload: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    pub submission_id: Bytes,
    #[prost(uint64, tag = "6")]
    pub received_at_ms: u64,
    /// For a commit: the devices its committer declared added and removed.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub added_devices: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub removed_devices: Vec<Vec<u8>>,
}

impl LogEntry {
    /// The group's epoch once this entry is applied: a commit starts the
    /// next epoch.
    pub fn epoch_after(&self) -> u64 {
        if self.kind == convene_proto::relay::MessageKind::Commit as i32 {
            self.epoch + 1
        } else {
            self.epoch
        }
    }
}

/// An inbox entry points at a Welcome stored once for all its joiners.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub group_id: Vec<u8>,
    /// Position of the commit whose Welcome this is.
    #[prost(uint64, tag = "2")]
    pub group_position: u64,
    /// The epoch the Welcome opens.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub sender_device: Vec<u8>,
    #[prost(uint64, tag = "5")]
    pub received_at_ms: u64,
    /// The sending device's user, whose share of the inbox it counts in.
    #[prost(string, tag = "6")]
    pub sender_user: String,
}

/// A Welcome and what joiners need with it, shared by all its recipients.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WelcomeRecord {
    #[prost(bytes = "bytes", tag = "1")]
    pub welcome: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub ratchet_tree: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub group_info: Bytes,
    /// Recipients that have not acknowledged it yet; deleted at zero.
    #[prost(uint32, tag = "4")]
    pub remaining: u32,
}

/// The outcome of an accepted submission, replayed on resubmission.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubmissionRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub group_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub position: u64,
    /// For a commit: the epoch after it. For a message: the epoch it was
    /// accepted in.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    #[prost(int32, tag = "4")]
    pub kind: i32,
    #[prost(uint64, tag = "5")]
    pub created_at_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobRecord {
    #[prost(uint64, tag = "1")]
    pub size: u64,
    #[prost(uint64, tag = "2")]
    pub received: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub owner_device: Vec<u8>,
    #[prost(uint64, tag = "4")]
    pub created_at_ms: u64,
    /// The chunk size the blob was cut into.
    #[prost(uint32, tag = "5")]
    pub chunk_bytes: u32,
    /// The user whose quota it counts against.
    #[prost(string, tag = "6")]
    pub owner_user: String,
}

impl BlobRecord {
    pub fn is_complete(&self) -> bool {
        self.received == self.size
    }
}
