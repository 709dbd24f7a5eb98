//! The bytes a device signs to authenticate a connection.
//!
//! Signatures are made and checked over these exact bytes, never over a
//! re-encoded protobuf message, so that two implementations cannot disagree
//! about what was signed. The layout is a fixed prefix naming the protocol
//! and the purpose, then fixed-length fields:
//!
//! ```text
//! "convene/relay/v1\0" || purpose || "\0" || relay_id (16) || nonce (32) || device_key (32)
//! ```
//!
//! The prefix separates these signatures from any other use of a device key;
//! the relay id binds them to one relay; the nonce, fresh for every
//! connection, makes a captured signature useless on any other connection.

use crate::ids::{DEVICE_KEY_LEN, NONCE_LEN, RELAY_ID_LEN};

const PROTOCOL_LABEL: &[u8] = b"convene/relay/v1\0";

/// Why a device signs a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPurpose {
    /// Proving that an enrolled device is at the other end (`Authenticate`).
    Authenticate,
    /// Proving possession of a new device key while redeeming an invite (`Enrol`).
    Enrol,
    /// Proving possession of a new device key while asking to link it to a
    /// user (`RequestLink`).
    Link,
}

impl AuthPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            AuthPurpose::Authenticate => b"authenticate",
            AuthPurpose::Enrol => b"enrol",
            AuthPurpose::Link => b"link",
        }
    }
}

/// Returns the exact bytes to sign (device) or verify (relay).
pub fn transcript(
    purpose: AuthPurpose,
    relay_id: &[u8; RELAY_ID_LEN],
    nonce: &[u8; NONCE_LEN],
    device_key: &[u8; DEVICE_KEY_LEN],
) -> Vec<u8> {
    let label = purpose.label();
    let mut out = Vec::with_capacity(
        PROTOCOL_LABEL.len() + label.len() + 1 + RELAY_ID_LEN + NONCE_LEN + DEVICE_KEY_LEN,
    );
    out.extend_from_slice(PROTOCOL_LABEL);
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(relay_id);
    out.extend_from_slice(nonce);
    out.extend_from_slice(device_key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_give_different_transcripts() {
        let a = transcript(AuthPurpose::Authenticate, &[1; 16], &[2; 32], &[3; 32]);
        let e = transcript(AuthPurpose::Enrol, &[1; 16], &[2; 32], &[3; 32]);
        assert_ne!(a, e);
        assert!(a.starts_with(b"convene/relay/v1\0authenticate\0"));
        assert_eq!(a.len(), 17 + 12 + 1 + 16 + 32 + 32);
    }

    #[test]
    fn every_field_is_bound() {
        let base = transcript(AuthPurpose::Authenticate, &[1; 16], &[2; 32], &[3; 32]);
        assert_ne!(
            base,
            transcript(AuthPurpose::Authenticate, &[9; 16], &[2; 32], &[3; 32])
        );
        assert_ne!(
            base,
            transcript(AuthPurpose::Authenticate, &[1; 16], &[9; 32], &[3; 32])
        );
        assert_ne!(
            base,
            transcript(AuthPurpose::Authenticate, &[1; 16], &[2; 32], &[9; 32])
        );
    }
}
