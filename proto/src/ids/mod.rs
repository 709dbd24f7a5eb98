//! Sizes and validation of the identifiers that cross the wire.
//!
//! They live here, next to the protocol, so that the relay and every client
//! reject exactly the same malformed values.

/// Length of an ed25519 public key, which is also a device's identifier.
pub const DEVICE_KEY_LEN: usize = 32;
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the relay identity sent in every challenge.
pub const RELAY_ID_LEN: usize = 16;
/// Length of the per-connection challenge nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a client-chosen submission id (idempotency key).
pub const SUBMISSION_ID_LEN: usize = 16;
/// Length of a device's continuity token (see `Authenticate`).
pub const CONTINUITY_LEN: usize = 16;
/// Length of a blob id.
pub const BLOB_ID_LEN: usize = 16;
/// Longest accepted group id, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 64;
/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 64;
/// Longest accepted display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 128;

mod device;
mod group;
mod log;
mod user;

pub use device::DevicePublicKey;
pub use group::GroupId;
pub use log::{Epoch, Position};
pub use user::UserId;

/// The first six bytes of a public identifier (a device key, a group id)
/// in hex: enough to tell them apart in a log line, never a secret.
pub fn hex_prefix(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    hex(&bytes[..bytes.len().min(6)])
}

/// Bytes in lowercase hex, as ids are shown to people and scripts.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A fixed-length field had another length.
    #[error("{field} must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The field's name in the protocol.
        field: &'static str,
        /// The required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// A variable-length field was empty or too long.
    #[error("{field} must be 1 to {max} bytes, got {actual}")]
    BadLength {
        /// The field's name in the protocol.
        field: &'static str,
        /// The largest accepted length.
        max: usize,
        /// The length received.
        actual: usize,
    },
    /// A field written as hex was not an even number of hex digits.
    #[error("{field} must be written in hex")]
    NotHex {
        /// The field's name.
        field: &'static str,
    },
    /// A user id contained a character outside `a-z 0-9 . _ -`.
    #[error("user id may only contain a-z, 0-9, '.', '_' and '-'")]
    BadUserIdCharacter,
    /// A display name contained control, bidi or invisible characters.
    #[error("a display name may not contain control, bidi-override or invisible characters")]
    BadDisplayName,
}

/// Checks that `bytes` is exactly `N` bytes long and returns it as an array.
pub fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], IdError> {
    bytes.try_into().map_err(|_| IdError::WrongLength {
        field,
        expected: N,
        actual: bytes.len(),
    })
}

/// Checks a user id: 1 to [`MAX_USER_ID_LEN`] bytes of `a-z 0-9 . _ -`.
///
/// The alphabet is narrow on purpose: handles are typed by busy people and
/// compared by eye, so look-alike Unicode and case variants are refused.
pub fn check_user_id(user_id: &str) -> Result<(), IdError> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN {
        return Err(IdError::BadLength {
            field: "user_id",
            max: MAX_USER_ID_LEN,
            actual: user_id.len(),
        });
    }
    if !user_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::BadUserIdCharacter);
    }
    Ok(())
}

/// Checks a display name: 1 to [`MAX_DISPLAY_NAME_CHARS`] characters, none
/// of them hidden ([`crate::text::is_hidden`]: controls, bidi overrides,
/// invisible characters), which could disguise a name.
pub fn check_display_name(name: &str) -> Result<(), IdError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_DISPLAY_NAME_CHARS {
        return Err(IdError::BadLength {
            field: "display_name",
            max: MAX_DISPLAY_NAME_CHARS,
            actual: chars,
        });
    }
    if name.chars().any(crate::text::is_hidden) {
        return Err(IdError::BadDisplayName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_narrow() {
        assert!(check_user_id("jane.smith-2_x").is_ok());
        assert_eq!(check_user_id("Jane"), Err(IdError::BadUserIdCharacter));
        assert_eq!(check_user_id("jаne"), Err(IdError::BadUserIdCharacter)); // Cyrillic a
        assert!(check_user_id("").is_err());
        assert!(check_user_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn display_names_refuse_control_characters() {
        assert!(check_display_name("Dr Jane Smith").is_ok());
        assert_eq!(
            check_display_name("Jane\u{1b}[2J"),
            Err(IdError::BadDisplayName)
        );
        assert!(check_display_name("   ").is_err());
    }

    #[test]
    fn fixed_reports_lengths() {
        let err = fixed::<4>("x", &[1, 2, 3]).unwrap_err();
        assert_eq!(
            err,
            IdError::WrongLength {
                field: "x",
                expected: 4,
                actual: 3
            }
        );
        assert_eq!(fixed::<3>("x", &[1, 2, 3]).unwrap(), [1, 2, 3]);
    }
}
