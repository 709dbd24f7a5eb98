//! The network channel's group id: one per organisation, derived from its
//! authority key, so that every client knows which group it is and a
//! second one cannot be registered beside it.

use sha2::{Digest, Sha256};

use crate::ids::GroupId;

/// First byte of the network channel's group id ('N').
pub const NETWORK_CHANNEL_MARKER: u8 = 0x4E;
/// Bytes in the network channel's group id.
pub const NETWORK_CHANNEL_ID_LEN: usize = 17;

/// The network channel's group id for the organisation whose authority key
/// is `authority_key`: 0x4E, then the first 16 bytes of
/// SHA-256("convene/network-channel/v1" || authority_key).
pub fn network_channel_id(authority_key: &[u8]) -> GroupId {
    let digest = Sha256::new()
        .chain_update(b"convene/network-channel/v1")
        .chain_update(authority_key)
        .finalize();
    let mut id = Vec::with_capacity(NETWORK_CHANNEL_ID_LEN);
    id.push(NETWORK_CHANNEL_MARKER);
    id.extend_from_slice(&digest[..NETWORK_CHANNEL_ID_LEN - 1]);
    GroupId::derived(id)
}
