//! A device's ed25519 key: its identity towards the relay.
//!
//! The secret half never leaves this type except through
//! [`DeviceKey::to_secret_bytes`] (for the encrypted local store); it is
//! wiped from memory on drop, and its `Debug` output is redacted.

use convene_proto::auth::{transcript, AuthPurpose};
use convene_proto::ids::{NONCE_LEN, RELAY_ID_LEN, SIGNATURE_LEN};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

/// A device's signing key.
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// Draws a new key from the operating system's random source.
    pub fn generate() -> Self {
        DeviceKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Restores a key from its 32 secret bytes.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        DeviceKey(SigningKey::from_bytes(secret))
    }

    /// The 32 secret bytes, in a buffer wiped on drop.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key: the device's id on the relay and in every group.
    pub fn public(&self) -> convene_proto::ids::DevicePublicKey {
        convene_proto::ids::DevicePublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs arbitrary bytes (MLS signs its own labelled structures through
    /// this).
    pub(crate) fn sign_bytes(&self, payload: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(payload).to_bytes()
    }

    /// Signs a relay challenge for `purpose` (see `convene_proto::auth`).
    pub fn sign_challenge(
        &self,
        purpose: AuthPurpose,
        relay_id: &[u8; RELAY_ID_LEN],
        nonce: &[u8; NONCE_LEN],
    ) -> [u8; SIGNATURE_LEN] {
        let signed = transcript(purpose, relay_id, nonce, &self.public());
        self.0.sign(&signed).to_bytes()
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey(public {})", hex_prefix(self.public()))
    }
}

pub use convene_proto::ids::hex_prefix;

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, VerifyingKey};

    #[test]
    fn signatures_verify_over_the_shared_transcript() {
        let key = DeviceKey::generate();
        let signature = key.sign_challenge(AuthPurpose::Authenticate, &[1; 16], &[2; 32]);
        let verifying = VerifyingKey::from_bytes(&key.public()).unwrap();
        let signed = transcript(AuthPurpose::Authenticate, &[1; 16], &[2; 32], &key.public());
        verifying
            .verify_strict(&signed, &Signature::from_bytes(&signature))
            .unwrap();
    }

    #[test]
    fn round_trips_and_redacts() {
        let key = DeviceKey::generate();
        let again = DeviceKey::from_secret_bytes(&key.to_secret_bytes());
        assert_eq!(key.public(), again.public());
        let shown = format!("{key:?}");
        assert!(shown.starts_with("DeviceKey(public "));
        assert!(!shown.contains(&hex_prefix(&key.to_secret_bytes()[..])));
    }
}
