//! The verified directory: what this device accepted of each user's
//! certificate and profile, and what it needs to refuse a relay that later
//! serves less (an older certificate, an older or different profile).

use super::super::{key, tag};

/// One user as this device verified them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DirectoryRecord {
    /// The user's id.
    #[prost(string, tag = "1")]
    pub user_id: String,
    /// The certified part (`UserCertificate`).
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// `convene.trust.v1.Role` as a number.
    #[prost(int32, tag = "3")]
    pub role: i32,
    /// A sector code (or, from a version 1 certificate, free text).
    #[prost(string, tag = "4")]
    pub sector: String,
    /// Certified job title.
    #[prost(string, tag = "5")]
    pub job_title: String,
    /// Certified organisation.
    #[prost(string, tag = "6")]
    pub organisation: String,
    /// An ITL1 region code.
    #[prost(string, tag = "7")]
    pub region: String,
    /// Certified programme.
    #[prost(string, tag = "8")]
    pub programme: String,
    /// Certified cohort.
    #[prost(string, tag = "9")]
    pub cohort: String,
    /// The identity key the user's chains agree on (32 bytes); a profile
    /// must be signed by it.
    #[prost(bytes = "vec", tag = "10")]
    pub identity_key: Vec<u8>,
    /// The relay's `directory_stamp` when this was fetched.
    #[prost(bytes = "vec", tag = "11")]
    pub stamp: Vec<u8>,
    /// When the certificate relied on starts (ms): an older one is never
    /// taken again.
    #[prost(uint64, tag = "12")]
    pub certificate_from_ms: u64,
    /// The written part (`Profile`): its revision, 0 when there is none.
    #[prost(uint64, tag = "13")]
    pub profile_revision: u64,
    /// The id of the network key the profile text is sealed with.
    #[prost(bytes = "vec", tag = "14")]
    pub profile_key_id: Vec<u8>,
    /// The profile text (`ProfileText`), sealed as the user wrote it:
    /// opened when shown, with the network key of that id.
    #[prost(bytes = "vec", tag = "15")]
    pub profile_sealed: Vec<u8>,
    /// When they wrote the profile (ms since the Unix epoch).
    #[prost(uint64, tag = "18")]
    pub profile_written_at_ms: u64,
    /// SHA-256 of the signed profile accepted: another with the same
    /// revision is a relay (or a user) saying two things.
    #[prost(bytes = "vec", tag = "19")]
    pub profile_digest: Vec<u8>,
    /// Why the newest profile or certificate the relay served was refused,
    /// empty if it was not.
    #[prost(string, tag = "20")]
    pub refused: String,
}

/// Key of a user's directory entry.
pub fn directory_key(user_id: &str) -> Vec<u8> {
    key(tag::DIRECTORY, &[user_id.as_bytes()])
}

/// Prefix of every directory entry.
pub fn directory_prefix() -> Vec<u8> {
    vec![tag::DIRECTORY]
}
