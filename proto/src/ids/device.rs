//! A device's identity on the relay and in every group: its public key.

use super::{fixed, hex_prefix, IdError, DEVICE_KEY_LEN};

/// A device's identity: its ed25519 public key, [`DEVICE_KEY_LEN`] bytes.
/// Public by nature; `Debug` and `Display` show its first six bytes in hex,
/// enough to tell devices apart in a log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DevicePublicKey(pub [u8; DEVICE_KEY_LEN]);

impl DevicePublicKey {
    /// Reads a device key from a wire field.
    ///
    /// # Errors
    /// [`IdError::Length`] when `bytes` is not [`DEVICE_KEY_LEN`] long.
    pub fn from_field(field: &'static str, bytes: &[u8]) -> Result<Self, IdError> {
        fixed(field, bytes).map(DevicePublicKey)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; DEVICE_KEY_LEN] {
        &self.0
    }
}

impl std::ops::Deref for DevicePublicKey {
    type Target = [u8; DEVICE_KEY_LEN];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<[u8]> for DevicePublicKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<&[u8]> for DevicePublicKey {
    type Error = IdError;

    fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
        DevicePublicKey::from_field("device_key", bytes)
    }
}

impl From<[u8; DEVICE_KEY_LEN]> for DevicePublicKey {
    fn from(bytes: [u8; DEVICE_KEY_LEN]) -> Self {
        DevicePublicKey(bytes)
    }
}

impl PartialEq<[u8; DEVICE_KEY_LEN]> for DevicePublicKey {
    fn eq(&self, other: &[u8; DEVICE_KEY_LEN]) -> bool {
        &self.0 == other
    }
}

impl PartialEq<DevicePublicKey> for [u8; DEVICE_KEY_LEN] {
    fn eq(&self, other: &DevicePublicKey) -> bool {
        self == &other.0
    }
}

impl PartialEq<DevicePublicKey> for [u8] {
    fn eq(&self, other: &DevicePublicKey) -> bool {
        self == other.0.as_slice()
    }
}

impl PartialEq<DevicePublicKey> for &[u8] {
    fn eq(&self, other: &DevicePublicKey) -> bool {
        *self == other.0.as_slice()
    }
}

impl PartialEq<DevicePublicKey> for Vec<u8> {
    fn eq(&self, other: &DevicePublicKey) -> bool {
        self.as_slice() == other.0.as_slice()
    }
}

impl std::fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevicePublicKey({})", hex_prefix(self.0))
    }
}

impl std::fmt::Display for DevicePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex_prefix(self.0))
    }
}
