//! Encryption at rest: nothing the client stores is readable without the
//! 32-byte key the app supplies.
//!
//! - Values are sealed with XChaCha20-Poly1305 (a random 24-byte nonce
//!   each). The plaintext carries the logical key, so a value moved under
//!   another key is detected, and so the whole store can be re-keyed.
//! - Keys are replaced by a keyed hash (HMAC-SHA-256, 16 bytes), since
//!   logical keys hold user ids and group ids. Two shapes keep their order:
//!   the history keeps its position suffix in the clear (so a group's
//!   history still scans in order, under a hashed group), and the outbox
//!   keeps its counter (which names nobody). A table tag stays in the clear
//!   so that a table can be scanned.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{tag, StoreError};

const NONCE_LEN: usize = 24;
const HASHED_KEY_LEN: usize = 16;
const POSITION_LEN: usize = 8;

/// The key that encrypts a client's local store, supplied by the app (the
/// CLI derives it from a passphrase). Wiped from memory on drop; never
/// printed.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StoreKey(Zeroizing::new(bytes))
    }

    /// A fresh random key (for apps that keep it in a platform keystore).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        StoreKey(bytes)
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"convene/store/v1\0");
        hasher.update(label);
        hasher.update(self.0.as_ref());
        Zeroizing::new(hasher.finalize().into())
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Turns logical keys and values into what sled holds, and back.
pub(super) struct StoreCipher {
    key_hasher: Hmac<Sha256>,
    aead: XChaCha20Poly1305,
}

impl StoreCipher {
    pub fn new(key: &StoreKey) -> Result<Self, StoreError> {
        let key_hasher = <Hmac<Sha256> as Mac>::new_from_slice(key.derive(b"keys").as_ref())
            .map_err(|_| StoreError::Corrupt("store key".into()))?;
        let aead = XChaCha20Poly1305::new_from_slice(key.derive(b"values").as_ref())
            .map_err(|_| StoreError::Corrupt("store key".into()))?;
        Ok(StoreCipher { key_hasher, aead })
    }

    fn hash(&self, bytes: &[u8]) -> [u8; HASHED_KEY_LEN] {
        let mut mac = self.key_hasher.clone();
        mac.update(bytes);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; HASHED_KEY_LEN];
        out.copy_from_slice(&digest[..HASHED_KEY_LEN]);
        out
    }

    /// The key under which sled stores the value of `logical`.
    pub fn physical_key(&self, logical: &[u8]) -> Vec<u8> {
        let Some(&table) = logical.first() else {
            return Vec::new();
        };
        match table {
            tag::OUTBOX => logical.to_vec(),
            // Scanned per group, in position order.
            tag::HISTORY | tag::HELD if logical.len() > POSITION_LEN => {
                let (prefix, position) = logical.split_at(logical.len() - POSITION_LEN);
                let mut out = self.hashed(table, prefix);
                out.extend_from_slice(position);
                out
            }
            _ => self.hashed(table, logical),
        }
    }

    /// The physical prefix of every key under the logical `prefix`: a whole
    /// table (`[tag]`), or one group's history or held entries.
    pub fn physical_prefix(&self, prefix: &[u8]) -> Vec<u8> {
        match prefix {
            [] | [_] => prefix.to_vec(),
            [tag::OUTBOX, ..] => prefix.to_vec(),
            [table, ..] => self.hashed(*table, prefix),
        }
    }

    fn hashed(&self, table: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + HASHED_KEY_LEN + POSITION_LEN);
        out.push(table);
        out.extend_from_slice(&self.hash(bytes));
        out
    }

    /// Seals `value` (with its logical key inside) for `physical_key`.
    pub fn seal(
        &self,
        physical_key: &[u8],
        logical: &[u8],
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(4 + logical.len() + value.len()));
        plaintext.extend_from_slice(&(logical.len() as u32).to_be_bytes());
        plaintext.extend_from_slice(logical);
        plaintext.extend_from_slice(value);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_slice(),
                    aad: physical_key,
                },
            )
            // Encryption only fails for messages beyond 256 GiB.
            .map_err(|_| StoreError::Corrupt("a value too large to encrypt".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed value stored under `physical_key`: its logical key
    /// and its value.
    pub fn open(
        &self,
        physical_key: &[u8],
        sealed: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Corrupt("a stored value is truncated".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plaintext = Zeroizing::new(
            self.aead
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: body,
                        aad: physical_key,
                    },
                )
                .map_err(|_| {
                    StoreError::Corrupt("a stored value fails its integrity check".into())
                })?,
        );
        let len_bytes: [u8; 4] = plaintext
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt("a stored value is truncated".into()))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let logical = plaintext
            .get(4..4 + len)
            .ok_or_else(|| StoreError::Corrupt("a stored value is truncated".into()))?
            .to_vec();
        let value = plaintext[4 + len..].to_vec();
        Ok((logical, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::key;

    #[test]
    fn keys_hide_names_but_keep_scannable_shapes() {
        let cipher = StoreCipher::new(&StoreKey::generate()).unwrap();
        let direct = key(tag::DIRECT, &[b"ana.okafor"]);
        let physical = cipher.physical_key(&direct);
        assert_eq!(physical[0], tag::DIRECT);
        assert!(!physical.windows(3).any(|w| w == b"ana"));
        assert_eq!(physical, cipher.physical_key(&direct), "deterministic");

        let prefix = key(tag::HISTORY, &[b"group"]);
        let mut at_7 = prefix.clone();
        at_7.extend_from_slice(&7u64.to_be_bytes());
        let mut at_9 = prefix.clone();
        at_9.extend_from_slice(&9u64.to_be_bytes());
        let scan = cipher.physical_prefix(&prefix);
        assert!(cipher.physical_key(&at_7).starts_with(&scan));
        assert!(cipher.physical_key(&at_7) < cipher.physical_key(&at_9));
    }

    #[test]
    fn values_open_only_under_their_key_and_store_key() {
        let store_key = StoreKey::generate();
        let cipher = StoreCipher::new(&store_key).unwrap();
        let sealed = cipher.seal(b"k1", b"logical", b"secret text").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        let (logical, value) = cipher.open(b"k1", &sealed).unwrap();
        assert_eq!(
            (logical.as_slice(), value.as_slice()),
            (&b"logical"[..], &b"secret text"[..])
        );
        assert!(
            cipher.open(b"k2", &sealed).is_err(),
            "moved under another key"
        );
        let other = StoreCipher::new(&StoreKey::generate()).unwrap();
        assert!(other.open(b"k1", &sealed).is_err(), "another store key");
        assert!(cipher.open(b"k1", &sealed[..10]).is_err());
        assert_eq!(format!("{store_key:?}"), "StoreKey(<redacted>)");
    }
}
