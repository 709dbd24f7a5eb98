//! Direct channels' group ids: derived from the two users' ids, so that
//! both ends open the same group whoever starts it, and reserved, so that
//! nobody else can register one first.
//!
//! A direct channel's id is [`DIRECT_GROUP_ID_LEN`] bytes: the marker byte
//! [`DIRECT_GROUP_ID_MARKER`], then the first 16 bytes of
//! `SHA-256("convene/direct/v2\0" || first || 0x00 || second)`, where
//! `first` and `second` are the two user ids in ascending byte order. The
//! relay refuses `CreateGroup` for any id of that shape unless the request
//! names the pair it derives from and the caller is one of them; clients
//! refuse a direct channel whose id is not its pair's.

use sha2::{Digest, Sha256};

use crate::ids::GroupId;

/// The first byte of every direct channel's group id.
pub const DIRECT_GROUP_ID_MARKER: u8 = 0xD1;
/// Length of a direct channel's group id, in bytes.
pub const DIRECT_GROUP_ID_LEN: usize = 17;

/// The group id of the direct channel between users `a` and `b` (in either
/// order).
pub fn direct_group_id(a: &str, b: &str) -> GroupId {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(b"convene/direct/v2\0")
        .chain_update(first.as_bytes())
        .chain_update([0])
        .chain_update(second.as_bytes())
        .finalize();
    let mut id = Vec::with_capacity(DIRECT_GROUP_ID_LEN);
    id.push(DIRECT_GROUP_ID_MARKER);
    id.extend_from_slice(&digest[..DIRECT_GROUP_ID_LEN - 1]);
    GroupId::derived(id)
}

/// Whether `group_id` has a direct channel's shape (and so is reserved for
/// the pair it derives from).
pub fn is_direct_group_id(group_id: &[u8]) -> bool {
    group_id.len() == DIRECT_GROUP_ID_LEN && group_id.first() == Some(&DIRECT_GROUP_ID_MARKER)
}

/// Whether `group_id` is the direct channel of exactly the two distinct
/// users in `pair`.
pub fn is_direct_channel_of(group_id: &[u8], pair: &[String]) -> bool {
    match pair {
        [a, b] if a != b => direct_group_id(a, b) == group_id,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_channel_id_is_the_pairs_in_either_order_and_reserved() {
        let id = direct_group_id("ann", "ben");
        assert_eq!(id, direct_group_id("ben", "ann"));
        assert!(is_direct_group_id(&id));
        assert!(is_direct_channel_of(&id, &["ben".into(), "ann".into()]));
        assert!(!is_direct_channel_of(&id, &["ann".into(), "cat".into()]));
        assert!(!is_direct_channel_of(&id, &["ann".into()]));
        assert_ne!(id, direct_group_id("an", "nben"));
        // A random 16-byte id, as clients make for other groups, never has
        // the shape.
        assert!(!is_direct_group_id(&[DIRECT_GROUP_ID_MARKER; 16]));
    }
}
