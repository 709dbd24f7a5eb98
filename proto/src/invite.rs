//! Invite codes: what staff hand to a new user out of band.
//!
//! A code is `cvn2_` followed by an [`InviteCode`] message in unpadded
//! URL-safe base64, so it survives email, chat and copy-paste. It carries a
//! one-time 32-byte secret, the fingerprint of the organisation's authority
//! key (so the invitee pins the right authority) and the relay's address.
//!
//! The secret itself never reaches the relay. Two values are derived from it
//! with domain-separated SHA-256:
//! - [`InviteSecret::relay_token`], which the invitee presents to the relay
//!   (the relay stores only [`lookup_hash`] of it);
//! - [`InviteSecret::invite_key_seed`], the seed of the ed25519 invite key
//!   that staff certified and with which the invitee binds their identity key.
//!
//! So a relay, even one that keeps every token it sees, cannot bind a key of
//! its own to an invited user.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prost::Message;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::trust::InviteCode;

const PREFIX: &str = "cvn2_";
const VERSION: u32 = 2;
const SECRET_LEN: usize = 32;
/// Length of an authority key fingerprint in an invite.
pub const FINGERPRINT_LEN: usize = 16;
const TOKEN_LABEL: &[u8] = b"convene/invite/v2\0relay-token\0";
const SEED_LABEL: &[u8] = b"convene/invite/v2\0invite-key\0";
const LOOKUP_LABEL: &[u8] = b"convene/invite/v2\0lookup\0";
/// Longest invite code accepted (a relay URL of a few hundred bytes).
const MAX_CODE_LEN: usize = 1024;

/// Why an invite code could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteCodeError {
    /// The code does not start with the `cvn2_` prefix.
    #[error("an invite code starts with \"cvn2_\"; check that it was copied whole")]
    MissingPrefix,
    /// The part after the prefix does not decode to an invite.
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

    /// What the invitee presents to the relay to redeem the invite.
    pub fn relay_token(&self) -> [u8; 32] {
        labelled_hash(TOKEN_LABEL, &self.0)
    }

    /// The 32-byte seed of the invite key (an ed25519 secret key).
    pub fn invite_key_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(labelled_hash(SEED_LABEL, &self.0))
    }
}

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(<redacted>)")
    }
}

/// The hash under which the relay stores an invite, given the token the
/// invitee presents.
pub fn lookup_hash(relay_token: &[u8]) -> [u8; 32] {
    labelled_hash(LOOKUP_LABEL, relay_token)
}

fn labelled_hash(label: &[u8], value: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label);
    hasher.update(value);
    hasher.finalize().into()
}

/// The fingerprint of an authority key as invites carry it.
pub fn authority_fingerprint(authority_key: &[u8]) -> [u8; FINGERPRINT_LEN] {
    let digest = labelled_hash(b"convene/authority/v1\0", authority_key);
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

/// A whole invite: the secret and what the invitee needs besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The one-time secret, from which the relay token and the invite key
    /// are derived; never sent to the relay.
    pub secret: InviteSecret,
    /// `None` only in the relay's bootstrap invite.
    pub authority_fingerprint: Option<[u8; FINGERPRINT_LEN]>,
    /// The relay's address, when the issuer knew it.
    pub relay_url: Option<String>,
}

impl Invite {
    /// Reads an invite code as typed or pasted by a person (surrounding
    /// whitespace is ignored).
    pub fn from_code(code: &str) -> Result<Invite, InviteCodeError> {
        let code = code.trim();
        if code.len() > MAX_CODE_LEN {
            return Err(InviteCodeError::Damaged);
        }
        let body = code
            .strip_prefix(PREFIX)
            .ok_or(InviteCodeError::MissingPrefix)?;
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| InviteCodeError::Damaged)?,
        );
        let mut message =
            InviteCode::decode(decoded.as_slice()).map_err(|_| InviteCodeError::Damaged)?;
        let secret = <[u8; SECRET_LEN]>::try_from(message.secret.as_ref())
            .map(InviteSecret)
            .map_err(|_| InviteCodeError::Damaged);
        message.secret.zeroize();
        let secret = secret?;
        if message.version != VERSION {
            return Err(InviteCodeError::Damaged);
        }
        let authority_fingerprint = match message.authority_fingerprint.len() {
            0 => None,
            FINGERPRINT_LEN => {
                let mut fp = [0u8; FINGERPRINT_LEN];
                fp.copy_from_slice(&message.authority_fingerprint);
                Some(fp)
            }
            _ => return Err(InviteCodeError::Damaged),
        };
        let relay_url = Some(message.relay_url).filter(|url| !url.is_empty());
        Ok(Invite {
            secret,
            authority_fingerprint,
            relay_url,
        })
    }

    /// The code to hand out. Treat it as a password.
    pub fn to_code(&self) -> String {
        let mut message = InviteCode {
            version: VERSION,
            secret: self.secret.0.to_vec(),
            authority_fingerprint: self
                .authority_fingerprint
                .map(|fp| fp.to_vec())
                .unwrap_or_default(),
            relay_url: self.relay_url.clone().unwrap_or_default(),
        };
        let mut bytes = Zeroizing::new(message.encode_to_vec());
        message.secret.zeroize();
        let code = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes.as_slice()));
        bytes.zeroize();
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            secret: InviteSecret::generate(),
            authority_fingerprint: Some([7; FINGERPRINT_LEN]),
            relay_url: Some("wss://relay.example:7420".into()),
        }
    }

    #[test]
    fn code_round_trips() {
        let invite = invite();
        let code = invite.to_code();
        assert!(code.starts_with("cvn2_"));
        assert_eq!(Invite::from_code(&format!("  {code}\n")).unwrap(), invite);
        let bare = Invite {
            authority_fingerprint: None,
            relay_url: None,
            ..invite
        };
        assert_eq!(Invite::from_code(&bare.to_code()).unwrap(), bare);
    }

    #[test]
    fn damaged_codes_are_refused() {
        let code = invite().to_code();
        assert_eq!(
            Invite::from_code(&code[1..]),
            Err(InviteCodeError::MissingPrefix)
        );
        assert_eq!(
            Invite::from_code(&code[..code.len() - 6]),
            Err(InviteCodeError::Damaged)
        );
        assert_eq!(
            Invite::from_code("cvn2_!!!!"),
            Err(InviteCodeError::Damaged)
        );
        assert_eq!(
            Invite::from_code(&format!("cvn2_{}", "A".repeat(2000))),
            Err(InviteCodeError::Damaged)
        );
    }

    #[test]
    fn derived_values_are_distinct_and_stable() {
        let secret = InviteSecret::generate();
        assert_eq!(format!("{secret:?}"), "InviteSecret(<redacted>)");
        assert_eq!(secret.relay_token(), secret.clone().relay_token());
        assert_ne!(secret.relay_token(), *secret.invite_key_seed());
        assert_ne!(secret.relay_token(), InviteSecret::generate().relay_token());
        assert_ne!(lookup_hash(&secret.relay_token()), secret.relay_token());
    }
}
