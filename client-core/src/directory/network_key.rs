//! The network key: a symmetric key that every member of the network
//! channel holds and the relay never does, which seals what users write in
//! their profiles. Keys reach members inside MLS, in the network channel
//! (`convene.content.v1.NetworkKeys`); this module keeps the ring of keys
//! a device was given and seals and opens profile texts with them
//! (ChaCha20-Poly1305, RFC 8439).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use convene_proto::trust::ProfileText;
use prost::Message;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Most keys a ring keeps (the newest).
pub const MAX_NETWORK_KEYS: usize = 64;
/// Largest sealed profile text, in bytes.
pub const MAX_SEALED_PROFILE_BYTES: usize = 4096;
/// Bytes in a key id.
pub const KEY_ID_LEN: usize = 8;

const NONCE_LEN: usize = 12;

/// The keys a device was given, oldest first; the last is current. Its
/// `Debug` counts the keys and shows none.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct NetworkKeyRing {
    /// Each key, 32 bytes.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub keys: Vec<Vec<u8>>,
}

impl Drop for NetworkKeyRing {
    fn drop(&mut self) {
        for key in &mut self.keys {
            key.zeroize();
        }
    }
}

impl std::fmt::Debug for NetworkKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkKeyRing({} keys)", self.keys.len())
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

    /// Takes up `keys` as posted (the last one becomes current); keys
    /// that are not 32 bytes are skipped. Returns whether anything changed.
    pub fn merge(&mut self, keys: &[Vec<u8>]) -> bool {
        let before = self.keys.clone();
        for key in keys.iter().filter(|k| k.len() == 32) {
            self.keys.retain(|held| held != key);
            self.keys.push(key.clone());
        }
        let excess = self.keys.len().saturating_sub(MAX_NETWORK_KEYS);
        self.keys.drain(..excess);
        let changed = self.keys != before;
        for mut key in before {
            key.zeroize();
        }
        changed
    }

    /// The current key (the newest given), if any.
    pub fn current(&self) -> Option<&[u8]> {
        self.keys.last().map(Vec::as_slice)
    }

    /// The key with this id.
    pub fn find(&self, id: &[u8]) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|k| key_id(k).as_slice() == id)
            .map(Vec::as_slice)
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
    fn a_ring_keeps_the_newest_keys_and_the_last_posted_is_current() {
        let mut ring = NetworkKeyRing::default();
        let a = vec![1; 32];
        let b = vec![2; 32];
        assert!(ring.merge(&[a.clone(), b.clone()]));
        assert_eq!(ring.current(), Some(b.as_slice()));
        assert!(!ring.merge(&[a.clone(), b.clone()]));
        assert!(ring.merge(&[b.clone(), a.clone()]));
        assert_eq!(ring.current(), Some(a.as_slice()));
        assert_eq!(ring.find(&key_id(&b)), Some(b.as_slice()));
        assert!(!ring.merge(&[vec![3; 31]]));
        let many: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 32]).collect();
        ring.merge(&many);
        assert_eq!(ring.keys.len(), MAX_NETWORK_KEYS);
        assert_eq!(ring.current(), Some([99; 32].as_slice()));
    }
}
