//! Key layout of the relay's single ordered key space.
//!
//! Every record lives in one key space so that each operation can write all its
//! records in one atomic batch. A key starts with a one-byte table tag;
//! variable-length parts are length-prefixed and integers are big-endian, so
//! that the engine's byte order is the order we scan in (positions ascending).

pub use convene_proto::ids::DevicePublicKey;
use convene_proto::ids::DEVICE_KEY_LEN;

pub(crate) const META: u8 = 0x01;
pub(crate) const INVITE: u8 = 0x02;
pub(crate) const USER: u8 = 0x03;
pub(crate) const DEVICE: u8 = 0x04;
pub(crate) const USER_DEVICE: u8 = 0x05;
pub(crate) const KEY_PACKAGE: u8 = 0x06;
pub(crate) const LAST_RESORT: u8 = 0x07;
pub(crate) const GROUP: u8 = 0x08;
pub(crate) const MEMBER: u8 = 0x09;
pub(crate) const DEVICE_GROUP: u8 = 0x0A;
pub(crate) const LOG: u8 = 0x0B;
pub(crate) const INBOX: u8 = 0x0C;
pub(crate) const INBOX_HEAD: u8 = 0x0D;
pub(crate) const WELCOME: u8 = 0x0E;
pub(crate) const SUBMISSION: u8 = 0x0F;
pub(crate) const BLOB: u8 = 0x10;
pub(crate) const BLOB_CHUNK: u8 = 0x11;
pub(crate) const INBOX_ACKED: u8 = 0x12;
pub(crate) const REVOCATION: u8 = 0x13;
pub(crate) const LINK: u8 = 0x14;
pub(crate) const USER_LINK: u8 = 0x15;
pub(crate) const GROUP_INFO: u8 = 0x16;
pub(crate) const USER_BLOB: u8 = 0x17;

fn with_tag(tag: u8, capacity: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + capacity);
    key.push(tag);
    key
}

/// Appends a length-prefixed byte string (ids are at most 255 bytes).
fn push_var(key: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= u8::MAX as usize);
    key.push(bytes.len() as u8);
    key.extend_from_slice(bytes);
}

pub(crate) fn meta(name: &str) -> Vec<u8> {
    let mut key = with_tag(META, name.len());
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn invite(hash: &[u8; 32]) -> Vec<u8> {
    let mut key = with_tag(INVITE, 32);
    key.extend_from_slice(hash);
    key
}

pub(crate) fn user(user_id: &str) -> Vec<u8> {
    let mut key = with_tag(USER, user_id.len());
    key.extend_from_slice(user_id.as_bytes());
    key
}

pub(crate) fn device(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(DEVICE, DEVICE_KEY_LEN);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn user_devices_prefix(user_id: &str) -> Vec<u8> {
    let mut key = with_tag(USER_DEVICE, 1 + user_id.len());
    push_var(&mut key, user_id.as_bytes());
    key
}

pub(crate) fn user_device(user_id: &str, device: &DevicePublicKey) -> Vec<u8> {
    let mut key = user_devices_prefix(user_id);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn key_packages_prefix(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(KEY_PACKAGE, DEVICE_KEY_LEN + 8);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn key_package(device: &DevicePublicKey, id: u64) -> Vec<u8> {
    let mut key = key_packages_prefix(device);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub(crate) fn last_resort(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(LAST_RESORT, DEVICE_KEY_LEN);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn group(group_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(GROUP, 1 + group_id.len());
    push_var(&mut key, group_id);
    key
}

/// The newest GroupInfo a committer left for the group's managers.
pub(crate) fn group_info(group_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(GROUP_INFO, 1 + group_id.len());
    push_var(&mut key, group_id);
    key
}

pub(crate) fn members_prefix(group_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(MEMBER, 1 + group_id.len() + DEVICE_KEY_LEN);
    push_var(&mut key, group_id);
    key
}

pub(crate) fn member(group_id: &[u8], device: &DevicePublicKey) -> Vec<u8> {
    let mut key = members_prefix(group_id);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn device_groups_prefix(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(DEVICE_GROUP, DEVICE_KEY_LEN + 65);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn device_group(device: &DevicePublicKey, group_id: &[u8]) -> Vec<u8> {
    let mut key = device_groups_prefix(device);
    push_var(&mut key, group_id);
    key
}

/// The group id at the end of a `DEVICE_GROUP` key.
pub(crate) fn group_of_device_group_key(key: &[u8]) -> Option<&[u8]> {
    let rest = key.get(1 + DEVICE_KEY_LEN..)?;
    let (&len, id) = rest.split_first()?;
    (id.len() == len as usize).then_some(id)
}

pub(crate) fn log_prefix(group_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(LOG, 1 + group_id.len() + 8);
    push_var(&mut key, group_id);
    key
}

pub(crate) fn log_entry(group_id: &[u8], position: u64) -> Vec<u8> {
    let mut key = log_prefix(group_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn inbox_prefix(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(INBOX, DEVICE_KEY_LEN + 8);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn inbox_entry(device: &DevicePublicKey, position: u64) -> Vec<u8> {
    let mut key = inbox_prefix(device);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn inbox_head(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(INBOX_HEAD, DEVICE_KEY_LEN);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn inbox_acked(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(INBOX_ACKED, DEVICE_KEY_LEN);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn welcome(group_id: &[u8], position: u64) -> Vec<u8> {
    let mut key = with_tag(WELCOME, 1 + group_id.len() + 8);
    push_var(&mut key, group_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub(crate) fn submission(device: &DevicePublicKey, submission_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(SUBMISSION, DEVICE_KEY_LEN + submission_id.len());
    key.extend_from_slice(device.as_bytes());
    key.extend_from_slice(submission_id);
    key
}

pub(crate) fn blob(blob_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(BLOB, blob_id.len());
    key.extend_from_slice(blob_id);
    key
}

pub(crate) fn blob_chunks_prefix(blob_id: &[u8]) -> Vec<u8> {
    let mut key = with_tag(BLOB_CHUNK, blob_id.len() + 4);
    key.extend_from_slice(blob_id);
    key
}

pub(crate) fn blob_chunk(blob_id: &[u8], index: u32) -> Vec<u8> {
    let mut key = blob_chunks_prefix(blob_id);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The trailing big-endian u64 of a key (a log or inbox position).
pub(crate) fn trailing_u64(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// The trailing 32 bytes of a key (a device key).
pub(crate) fn trailing_device(key: &[u8]) -> Option<DevicePublicKey> {
    let tail = key.get(key.len().checked_sub(DEVICE_KEY_LEN)?..)?;
    DevicePublicKey::from_field("device", tail).ok()
}

/// A stored revocation, by sequence number.
pub(crate) fn revocation(sequence: u64) -> Vec<u8> {
    let mut key = with_tag(REVOCATION, 8);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// A request to link a new device, by the new device's key.
pub(crate) fn link(device: &DevicePublicKey) -> Vec<u8> {
    let mut key = with_tag(LINK, DEVICE_KEY_LEN);
    key.extend_from_slice(device.as_bytes());
    key
}

pub(crate) fn user_links_prefix(user_id: &str) -> Vec<u8> {
    let mut key = with_tag(USER_LINK, 1 + user_id.len());
    push_var(&mut key, user_id.as_bytes());
    key
}

/// A user's link request, so that the user's devices can list them.
pub(crate) fn user_link(user_id: &str, device: &DevicePublicKey) -> Vec<u8> {
    let mut key = user_links_prefix(user_id);
    key.extend_from_slice(device.as_bytes());
    key
}

/// A user's attachments (value: the size promised), for their quota.
pub(crate) fn user_blobs_prefix(user_id: &str) -> Vec<u8> {
    let mut key = with_tag(USER_BLOB, 1 + user_id.len());
    push_var(&mut key, user_id.as_bytes());
    key
}

pub(crate) fn user_blob(user_id: &str, blob_id: &[u8]) -> Vec<u8> {
    let mut key = user_blobs_prefix(user_id);
    key.extend_from_slice(blob_id);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_position() {
        let a = log_entry(b"g", 2);
        let b = log_entry(b"g", 10);
        let c = log_entry(b"g", 256);
        assert!(a < b && b < c);
        assert!(a.starts_with(&log_prefix(b"g")));
        assert_eq!(trailing_u64(&c), Some(256));
    }

    #[test]
    fn prefixes_do_not_collide_across_group_ids() {
        // "ab" must not be a prefix match for group "a" followed by "b...".
        assert!(!log_entry(b"ab", 1).starts_with(&log_prefix(b"a")));
        assert!(!member(b"ab", &DevicePublicKey([0; 32])).starts_with(&members_prefix(b"a")));
    }

    #[test]
    fn device_group_key_round_trips() {
        let key = device_group(&DevicePublicKey([7; 32]), b"group-1");
        assert_eq!(group_of_device_group_key(&key), Some(&b"group-1"[..]));
        assert_eq!(
            trailing_device(&member(b"g", &DevicePublicKey([9; 32]))),
            Some(DevicePublicKey([9; 32]))
        );
    }
}
