//! Invite codes: the one-time secret that staff hand to a new user out of band.
//!
//! A code is `cvn1_` followed by 32 random bytes in unpadded URL-safe base64,
//! so it survives email, chat and copy-paste. The relay stores only
//! [`InviteSecret::lookup_hash`], so a leaked relay database reveals no usable
//! invite.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

const PREFIX: &str = "cvn1_";
const SECRET_LEN: usize = 32;
const HASH_LABEL: &[u8] = b"convene/invite/v1\0";

/// Why an invite code could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteCodeError {
    /// The code does not start with the `cvn1_` prefix.
    #[error("an invite code starts with \"cvn1_\"; check that it was copied whole")]
    MissingPrefix,
    /// The part after the prefix is not a 32-byte base64 value.
    #[error("the invite code is damaged or incomplete; check that it was copied whole")]
    Damaged,
}

/// A one-time invite secret. Its `Debug` output is redacted and its bytes are
/// wiped when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct InviteSecret([u8; SECRET_LEN]);

impl InviteSecret {
    /// Draws a fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        InviteSecret(bytes)
    }

    /// Reads an invite code as typed or pasted by a person (surrounding
    /// whitespace is ignored).
    pub fn from_code(code: &str) -> Result<Self, InviteCodeError> {
        let body = code
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(InviteCodeError::MissingPrefix)?;
        let mut decoded = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InviteCodeError::Damaged)?;
        let result = <[u8; SECRET_LEN]>::try_from(decoded.as_slice())
            .map(InviteSecret)
            .map_err(|_| InviteCodeError::Damaged);
        decoded.zeroize();
        result
    }

    /// The code to hand out. Treat it as a password.
    pub fn to_code(&self) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// The domain-separated SHA-256 under which the relay stores the invite.
    pub fn lookup_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(HASH_LABEL);
        hasher.update(self.0);
        hasher.finalize().into()
    }
}

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trips() {
        let secret = InviteSecret::generate();
        let code = secret.to_code();
        assert!(code.starts_with("cvn1_"));
        assert_eq!(
            InviteSecret::from_code(&format!("  {code}\n")).unwrap(),
            secret
        );
    }

    #[test]
    fn damaged_codes_are_refused() {
        let code = InviteSecret::generate().to_code();
        assert_eq!(
            InviteSecret::from_code(&code[1..]),
            Err(InviteCodeError::MissingPrefix)
        );
        assert_eq!(
            InviteSecret::from_code(&code[..code.len() - 2]),
            Err(InviteCodeError::Damaged)
        );
        assert_eq!(
            InviteSecret::from_code("cvn1_!!!!"),
            Err(InviteCodeError::Damaged)
        );
    }

    #[test]
    fn debug_is_redacted_and_hash_is_stable() {
        let secret = InviteSecret::generate();
        assert_eq!(format!("{secret:?}"), "InviteSecret(<redacted>)");
        assert_eq!(secret.lookup_hash(), secret.clone().lookup_hash());
        assert_ne!(secret.lookup_hash(), InviteSecret::generate().lookup_hash());
    }
}
