//! Linking a user's second device with a code the relay never sees.
//!
//! The new device shows a 12-digit code. Its first 4 digits name the
//! request among the user's waiting ones (they follow from what the relay
//! holds); the last 8 are a password that only the person carrying the
//! code between the two screens knows. Both devices run SPAKE2 (RFC 9382)
//! on that password through the relay, so that each side ends with the
//! same key only if the other side used the same password and the same
//! request: the new device's key and user are bound into SPAKE2's
//! identities. The approving device seals what the new device needs (the
//! authority it must pin, its credential chain, the user's identity key
//! and, for staff, the organisation's authority key) under that key.
//!
//! A relay that watches learns nothing it can test the password against.
//! A relay that answers for either side gets one guess per request (1 in
//! 10^8), and a wrong guess ends the request: the new device accepts only
//! the first answer, and its credential travels only inside the sealed
//! bundle, so a request the relay made up yields no certificate it could
//! use. The new device sets its own credential on the relay once it holds
//! it (`UpdateCredential`).

mod pending;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use convene_proto::trust::LinkBundle;
use prost::Message;
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as PakeIdentity, Password, Spake2};
use zeroize::Zeroizing;

pub use pending::PendingLink;

use crate::error::ClientError;

/// Digits of a code that name the request (public).
const TAG_DIGITS: usize = 4;
/// Digits of a code that are the SPAKE2 password (secret).
const PASSWORD_DIGITS: usize = 8;
const TAG_CONTEXT: &[u8] = b"convene/link-tag/v2\0";
const NEW_DEVICE_ID: &[u8] = b"convene/link/v2 new device\0";
const APPROVING_DEVICE_ID: &[u8] = b"convene/link/v2 approving device\0";
const BUNDLE_INFO: &[u8] = b"convene/link/v2 bundle\0";
/// Digits a link code shows.
pub const CODE_DIGITS: usize = TAG_DIGITS + PASSWORD_DIGITS;

/// The 4 digits that name a link request: from the new device's key and
/// SPAKE2 message, so the approving device can find it.
pub fn request_tag(device_key: &[u8], pake_message: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(TAG_CONTEXT)
        .chain_update(device_key)
        .chain_update(pake_message)
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    format!(
        "{:0width$}",
        u64::from_be_bytes(first) % 10u64.pow(TAG_DIGITS as u32),
        width = TAG_DIGITS
    )
}

/// A link code as the person typed it: the request's tag and the password.
pub struct LinkCode {
    tag: String,
    password: Zeroizing<String>,
}

impl LinkCode {
    /// Reads a typed code: only its digits count, and there must be 12.
    pub fn parse(typed: &str) -> Result<LinkCode, ClientError> {
        let digits: Zeroizing<String> =
            Zeroizing::new(typed.chars().filter(char::is_ascii_digit).collect());
        if digits.len() != TAG_DIGITS + PASSWORD_DIGITS {
            return Err(ClientError::InvalidArgument(format!(
                "a link code has {} digits, as the new device shows them",
                TAG_DIGITS + PASSWORD_DIGITS
            )));
        }
        Ok(LinkCode {
            tag: digits[..TAG_DIGITS].to_string(),
            password: Zeroizing::new(digits[TAG_DIGITS..].to_string()),
        })
    }

    /// The digits that name the request.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The code in groups of four, as a device shows it.
    fn display(&self) -> String {
        let digits = format!("{}{}", self.tag, self.password.as_str());
        digits
            .as_bytes()
            .chunks(4)
            .map(|group| String::from_utf8_lossy(group).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkCode({} <redacted>)", self.tag)
    }
}

/// SPAKE2's two identities for one request: the new device's names its
/// user and key, so a request the relay altered yields another key.
fn identities(user_id: &str, device_key: &[u8]) -> (PakeIdentity, PakeIdentity) {
    let new_device = [NEW_DEVICE_ID, user_id.as_bytes(), b"\0", device_key].concat();
    let approving = [APPROVING_DEVICE_ID, user_id.as_bytes()].concat();
    (
        PakeIdentity::new(&new_device),
        PakeIdentity::new(&approving),
    )
}

/// The key one link bundle is sealed under: HKDF-SHA256 of the SPAKE2 key,
/// bound to the new device's key.
pub struct BundleKey {
    key: Zeroizing<[u8; 32]>,
    device_key: Vec<u8>,
}

impl BundleKey {
    /// Derives the bundle key from SPAKE2's shared key.
    pub fn derive(shared: &[u8], device_key: &[u8]) -> BundleKey {
        let mut key = Zeroizing::new([0; 32]);
        let info = [BUNDLE_INFO, device_key].concat();
        // 32 bytes is far below HKDF-SHA256's limit of 8,160, so this
        // cannot fail.
        let _ = hkdf::Hkdf::<Sha256>::new(None, shared).expand(&info, key.as_mut_slice());
        BundleKey {
            key,
            device_key: device_key.to_vec(),
        }
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(self.key.as_slice().into())
    }

    /// Seals `bundle` (ChaCha20-Poly1305, RFC 8439). The key serves one
    /// bundle, so the nonce is fixed.
    pub fn seal(&self, bundle: &LinkBundle) -> Result<Vec<u8>, ClientError> {
        let plain = Zeroizing::new(bundle.encode_to_vec());
        let payload = Payload {
            msg: plain.as_slice(),
            aad: &self.device_key,
        };
        self.cipher()
            .encrypt(&[0; 12].into(), payload)
            .map_err(|_| ClientError::Crypto("cannot seal the link bundle"))
    }

    /// Opens a bundle sealed under this key.
    pub fn open(&self, sealed: &[u8]) -> Result<LinkBundle, ClientError> {
        let refused = || {
            ClientError::Untrusted(
                "this link's approval was not made with the code shown here \
                 (a mistyped code, or a relay answering in your device's place); \
                 ask to link again"
                    .into(),
            )
        };
        let payload = Payload {
            msg: sealed,
            aad: &self.device_key,
        };
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(&[0; 12].into(), payload)
                .map_err(|_| refused())?,
        );
        LinkBundle::decode(plain.as_slice()).map_err(|_| refused())
    }
}

/// What the approving device leaves for the new one.
#[derive(Debug, Clone)]
pub struct LinkAnswer {
    /// Its SPAKE2 message (side B).
    pub pake_message: Vec<u8>,
    /// `bundle`, sealed under the key both sides derive.
    pub sealed: Vec<u8>,
}

/// The approving device's side: runs SPAKE2 with the request's message and
/// the typed code, and seals `bundle` under the result.
pub fn answer(
    user_id: &str,
    device_key: &[u8],
    request_pake: &[u8],
    code: &LinkCode,
    bundle: &LinkBundle,
) -> Result<LinkAnswer, ClientError> {
    let (new_device, approving) = identities(user_id, device_key);
    let password = Password::new(code.password.as_bytes());
    let (state, pake_message) = Spake2::<Ed25519Group>::start_b(&password, &new_device, &approving);
    let shared = Zeroizing::new(state.finish(request_pake).map_err(|_| {
        ClientError::InvalidArgument("the waiting device's link request is malformed".into())
    })?);
    let sealed = BundleKey::derive(&shared, device_key).seal(bundle)?;
    Ok(LinkAnswer {
        pake_message,
        sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> LinkBundle {
        LinkBundle {
            version: 1,
            identity_secret: vec![5; 32],
            ..Default::default()
        }
    }

    /// Runs both sides in memory: the new device's password, the code the
    /// person typed on the approving device.
    fn run(
        shown: &str,
        typed: &str,
        approver_sees_device: &[u8],
    ) -> Result<LinkBundle, ClientError> {
        let device = [1; 32];
        let (new_device, approving) = identities("ann", &device);
        let (state, request) = Spake2::<Ed25519Group>::start_a(
            &Password::new(shown.as_bytes()),
            &new_device,
            &approving,
        );
        let code = LinkCode::parse(&format!("1234{typed}"))?;
        let answer = answer("ann", approver_sees_device, &request, &code, &bundle())?;
        assert!(!answer.sealed.windows(32).any(|w| w == [5; 32]));
        let shared = state.finish(&answer.pake_message).unwrap();
        BundleKey::derive(&shared, &device).open(&answer.sealed)
    }

    #[test]
    fn a_bundle_opens_only_with_the_code_and_device_it_was_made_for() {
        assert_eq!(run("12345678", "1234 5678", &[1; 32]).unwrap(), bundle());
        let typo = run("12345678", "12345679", &[1; 32]).unwrap_err();
        assert_eq!(typo.code(), "untrusted");
        let swapped = run("12345678", "12345678", &[2; 32]).unwrap_err();
        assert_eq!(swapped.code(), "untrusted");
    }

    #[test]
    fn a_code_needs_twelve_digits_and_keeps_its_password_out_of_debug() {
        assert!(LinkCode::parse("1234 5678").is_err());
        assert!(LinkCode::parse("1234 5678 9012 3").is_err());
        let code = LinkCode::parse("1234-5678-9012").unwrap();
        assert_eq!(
            (code.tag(), code.display().as_str()),
            ("1234", "1234 5678 9012")
        );
        assert!(!format!("{code:?}").contains("5678"));
        assert_eq!(request_tag(&[1; 32], &[2; 33]).len(), 4);
        assert_ne!(
            request_tag(&[1; 32], &[2; 33]),
            request_tag(&[1; 32], &[3; 33])
        );
    }
}
