//! Help requests this device knows: posted in the network channel (by
//! anyone), asked by this user (through staff too), and, on a staff
//! device, asked through it by a leader, with the offers each received.

use super::super::{key, tag};

/// One help request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelpRequestRecord {
    /// The encoded `convene.content.v1.HelpRequest`, as posted (or, for
    /// one asked through staff and not posted yet, as asked).
    #[prost(bytes = "vec", tag = "1")]
    pub request: Vec<u8>,
    /// Who posted it in the network channel (a user id); empty until it
    /// is posted.
    #[prost(string, tag = "2")]
    pub poster: String,
    /// When it was posted (the poster's clock), ms since the Unix epoch.
    #[prost(uint64, tag = "3")]
    pub posted_at_ms: u64,
    /// This user asked it.
    #[prost(bool, tag = "4")]
    pub mine: bool,
    /// On the staff device that posted it for a leader: that leader's user
    /// id, to pass offers and the close on. Empty otherwise, and never
    /// told to anyone.
    #[prost(string, tag = "5")]
    pub asked_by: String,
    /// When it was closed (ms since the Unix epoch, this device's clock);
    /// 0 while open.
    #[prost(uint64, tag = "6")]
    pub closed_at_ms: u64,
    /// Offers received, oldest first (at most
    /// [`crate::help::MAX_OFFERS_KEPT`]).
    #[prost(message, repeated, tag = "7")]
    pub offers: Vec<OfferRecord>,
    /// A close asked for before the request was posted: applied when it
    /// is.
    #[prost(bool, tag = "8")]
    pub close_pending: bool,
    /// On the device of a leader who asked through staff: the staff
    /// member asked (offers and the close go through them).
    #[prost(string, tag = "9")]
    pub asked_through: String,
    /// This device posted it in the network channel (for its user, or for
    /// a leader who asked through this staff member): it posts it again
    /// for members who join while it is open.
    #[prost(bool, tag = "10")]
    pub posted_here: bool,
}

impl HelpRequestRecord {
    /// When the request stops being open, ms since the Unix epoch (0 if
    /// it does not decode).
    pub fn expires_at_ms(&self) -> u64 {
        use prost::Message as _;
        convene_proto::content::HelpRequest::decode(self.request.as_slice())
            .map_or(0, |r| r.expires_at_ms)
    }
}

/// One offer under a request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OfferRecord {
    /// Who offered.
    #[prost(string, tag = "1")]
    pub from: String,
    /// What they offered.
    #[prost(string, tag = "2")]
    pub text: String,
    /// When this device received it, ms since the Unix epoch.
    #[prost(uint64, tag = "3")]
    pub received_at_ms: u64,
    /// The staff member who passed it on; empty if it came straight.
    #[prost(string, tag = "4")]
    pub passed_on_by: String,
}

/// The key of the request `request_id`.
pub fn help_request_key(request_id: &[u8; 16]) -> Vec<u8> {
    key(tag::HELP, &[request_id])
}

/// The first byte of every help request's key, to list them.
pub fn help_request_prefix() -> Vec<u8> {
    vec![tag::HELP]
}
