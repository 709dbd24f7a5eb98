//! The network key: a symmetric key that every member of the network
//! channel holds and the relay never does, which seals what users write in
//! their profiles. Keys reach members inside MLS, in the network channel
//! (`convene.content.v1.NetworkKeys`); this module keeps the ring of keys
//! a device was given and seals and opens profile texts with them
//! (ChaCha20-Poly1305, RFC 8439).

use std::collections::BTreeSet;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use convene_proto::trust::ProfileText;
use prost::Message;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Most keys a ring keeps (the newest) besides those held profiles are
/// sealed with.
pub const MAX_NETWORK_KEYS: usize = 64;
/// Largest sealed profile text, in bytes.
pub const MAX_SEALED_PROFILE_BYTES: usize = 4096;
/// Bytes in a key id.
pub const KEY_ID_LEN: usize = 8;

const NONCE_LEN: usize = 12;

/// The keys a device was given, ordered by the network channel's epoch
/// each was made in (then by id); the last is current. A key a member
/// re-posts keeps the epoch it was first given with, so re-posting an old
/// key never makes it current again. Its `Debug` counts the keys and shows
/// none; every key is zeroized when the ring is dropped or a key evicted.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct NetworkKeyRing {
    /// The keys.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<NetworkKeyEntry>,
    /// The network channel's epoch of the last commit that removed anyone
    /// from it: a key made before it may be held by someone removed, so
    /// nothing new is sealed with it.
    #[prost(uint64, tag = "3")]
    pub removal_epoch: u64,
}

/// One network key.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct NetworkKeyEntry {
    /// 32 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The network channel's epoch it was made in.
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
}

impl Drop for NetworkKeyEntry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for NetworkKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkKeyEntry(epoch {})", self.epoch)
    }
}

impl std::fmt::Debug for NetworkKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkKeyRing({} keys)", self.entries.len())
    }
}

/// The id of `key`: the first 8 bytes of SHA-256("convene/network-key" ||
/// key).
pub fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"convene/network-key")
        .chain_update(key)
        .finalize();
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

impl NetworkKeyRing {
    /// A fresh random key.
    pub fn generate_key() -> Zeroizing<Vec<u8>> {
        Zeroizing::new(crate::random_bytes::<32>().to_vec())
    }

    /// Takes up `keys` as posted, each with the epoch it was made in; a key
    /// already held keeps its epoch, and keys that are not 32 bytes are
    /// skipped. Beyond [`MAX_NETWORK_KEYS`], the oldest are dropped.
    /// Returns whether anything changed.
    pub fn merge(&mut self, keys: &[(Vec<u8>, u64)]) -> bool {
        self.merge_keeping(keys, &BTreeSet::new())
    }

    /// [`NetworkKeyRing::merge`], never dropping a key whose id is in
    /// `referenced` (the keys profiles this device holds are sealed with):
    /// members who leave and come back again and again make fresh keys
    /// that push old ones out, and a profile nobody rewrote must stay
    /// readable. At most [`MAX_NETWORK_KEYS`] keys besides those.
    pub fn merge_keeping(
        &mut self,
        keys: &[(Vec<u8>, u64)],
        referenced: &BTreeSet<[u8; KEY_ID_LEN]>,
    ) -> bool {
        let mut changed = false;
        for (key, epoch) in keys.iter().filter(|(k, _)| k.len() == 32) {
            if self.entries.iter().all(|held| held.key != *key) {
                self.entries.push(NetworkKeyEntry {
                    key: key.clone(),
                    epoch: *epoch,
                });
                changed = true;
            }
        }
        self.entries.sort_by(|a, b| {
            a.epoch
                .cmp(&b.epoch)
                .then(key_id(&a.key).cmp(&key_id(&b.key)))
        });
        let kept_for_profiles = self
            .entries
            .iter()
            .filter(|e| referenced.contains(&key_id(&e.key)))
            .count();
        let mut excess = self
            .entries
            .len()
            .saturating_sub(MAX_NETWORK_KEYS + kept_for_profiles);
        // The newest is current whatever else is dropped.
        let newest = self.entries.len().saturating_sub(1);
        let mut index = 0;
        self.entries.retain(|entry| {
            let keep = excess == 0 || index == newest || referenced.contains(&key_id(&entry.key));
            index += 1;
            if !keep {
                excess -= 1;
            }
            keep
        });
        changed
    }

    /// The current key (made in the latest epoch), if any.
    pub fn current(&self) -> Option<&[u8]> {
        self.entries.last().map(|e| e.key.as_slice())
    }

    /// The current key, if it was made after the last removal from the
    /// network channel: the one to seal with.
    pub fn sealing_key(&self) -> Option<&[u8]> {
        self.entries
            .last()
            .filter(|e| e.epoch >= self.removal_epoch)
            .map(|e| e.key.as_slice())
    }

    /// The key with this id.
    pub fn find(&self, id: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| key_id(&e.key).as_slice() == id)
            .map(|e| e.key.as_slice())
    }

    /// Whether a ring posted when the channel was at `epoch` claims
    /// nothing from a later one (a key or removal from the future would
    /// stay current, or block sealing, for good).
    pub fn fits_epoch(&self, epoch: u64) -> bool {
        self.removal_epoch <= epoch && self.entries.iter().all(|e| e.epoch <= epoch)
    }

    /// Every key with its epoch, as they are posted.
    pub fn posted(&self) -> Vec<(Vec<u8>, u64)> {
        self.entries
            .iter()
            .map(|e| (e.key.clone(), e.epoch))
            .collect()
    }
}

fn associated_data(user_id: &str, revision: u64, key_id: &[u8]) -> Vec<u8> {
    [
        b"convene/profile/v1\0".as_slice(),
        user_id.as_bytes(),
        b"\0",
        &revision.to_be_bytes(),
        key_id,
    ]
    .concat()
}

/// Seals `text` for `user_id`'s profile of `revision` under `key`: a
/// random nonce and the ciphertext.
pub fn seal(key: &[u8], user_id: &str, revision: u64, text: &ProfileText) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    let nonce = crate::random_bytes::<NONCE_LEN>();
    let plain = Zeroizing::new(text.encode_to_vec());
    let aad = associated_data(user_id, revision, &key_id(key));
    let sealed = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .ok()?;
    Some([nonce.as_slice(), &sealed].concat())
}

/// Opens a profile text sealed by [`seal`]; `None` if it does not open
/// (another key, or altered) or is not a profile text.
pub fn open(key: &[u8], user_id: &str, revision: u64, sealed: &[u8]) -> Option<ProfileText> {
    if sealed.len() < NONCE_LEN || sealed.len() > MAX_SEALED_PROFILE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    let aad = associated_data(user_id, revision, &key_id(key));
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?,
    );
    ProfileText::decode(plain.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_text_opens_only_with_its_key_user_and_revision() {
        let key = NetworkKeyRing::generate_key();
        let other = NetworkKeyRing::generate_key();
        let text = ProfileText {
            bio: "Fire chief".into(),
            ..Default::default()
        };
        let sealed = seal(&key, "ana", 3, &text).unwrap();
        assert_eq!(open(&key, "ana", 3, &sealed), Some(text));
        assert_eq!(open(&other, "ana", 3, &sealed), None);
        assert_eq!(open(&key, "ben", 3, &sealed), None);
        assert_eq!(open(&key, "ana", 2, &sealed), None);
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(open(&key, "ana", 3, &altered), None);
    }

    #[test]
    fn a_ring_orders_keys_by_epoch_and_a_repost_never_brings_an_old_one_back() {
        let mut ring = NetworkKeyRing::default();
        let (a, b) = (vec![1; 32], vec![2; 32]);
        assert!(ring.merge(&[(a.clone(), 1), (b.clone(), 5)]));
        assert_eq!(ring.current(), Some(b.as_slice()));
        // The old key posted again, even claiming a later epoch, stays old.
        assert!(!ring.merge(&[(b.clone(), 5), (a.clone(), 9)]));
        assert_eq!(ring.current(), Some(b.as_slice()));
        assert_eq!(ring.find(&key_id(&a)), Some(a.as_slice()));
        assert!(!ring.merge(&[(vec![3; 31], 10)]));
        // After a removal at epoch 6, nothing is sealed until a newer key.
        ring.removal_epoch = 6;
        assert_eq!(ring.sealing_key(), None);
        let c = vec![3; 32];
        ring.merge(&[(c.clone(), 6)]);
        assert_eq!(ring.sealing_key(), Some(c.as_slice()));
        let many: Vec<(Vec<u8>, u64)> = (0..100u8)
            .map(|i| (vec![i + 10; 32], u64::from(i) + 20))
            .collect();
        ring.merge(&many);
        assert_eq!(ring.entries.len(), MAX_NETWORK_KEYS);
        assert_eq!(ring.current(), Some([109; 32].as_slice()));
    }

    #[test]
    fn keys_that_held_profiles_are_sealed_with_outlive_any_number_of_newer_ones() {
        let mut ring = NetworkKeyRing::default();
        let (old, unused) = (vec![1; 32], vec![2; 32]);
        ring.merge(&[(old.clone(), 1), (unused.clone(), 2)]);
        let referenced = BTreeSet::from([key_id(&old)]);
        for round in 0..3u8 {
            let fresh: Vec<(Vec<u8>, u64)> = (0..MAX_NETWORK_KEYS as u8)
                .map(|i| {
                    (
                        vec![round * 70 + i + 3; 32],
                        u64::from(round) * 100 + u64::from(i) + 3,
                    )
                })
                .collect();
            ring.merge_keeping(&fresh, &referenced);
        }
        assert_eq!(ring.entries.len(), MAX_NETWORK_KEYS + 1);
        assert_eq!(ring.find(&key_id(&old)), Some(old.as_slice()));
        assert_eq!(ring.find(&key_id(&unused)), None);
        assert_eq!(ring.current(), Some([2 * 70 + 63 + 3; 32].as_slice()));
    }

    #[test]
    fn a_post_from_a_later_epoch_than_the_channels_does_not_fit() {
        let mut posted = NetworkKeyRing::default();
        posted.merge(&[(vec![1; 32], 4)]);
        assert!(posted.fits_epoch(4));
        assert!(!posted.fits_epoch(3));
        posted.removal_epoch = 9;
        assert!(!posted.fits_epoch(8));
        assert!(posted.fits_epoch(9));
        posted.merge(&[(vec![2; 32], u64::MAX)]);
        assert!(!posted.fits_epoch(1_000));
    }
}
