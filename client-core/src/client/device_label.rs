//! A device's label (its name and platform), as its user's other devices
//! see it in [`Client::devices`]. The label is sealed (HPKE, RFC 9180) to a
//! key every device of the user derives from the user's identity key, with
//! the device's key as associated data: the relay stores it but can
//! neither read it nor show one device's label as another's, and no-one
//! else is given it.

use convene_proto::content::DeviceLabel;
use convene_proto::relay::{request, response, SetDeviceLabel};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::HashType;
use prost::Message as _;
use zeroize::Zeroizing;

use super::Client;
use crate::error::ClientError;
use crate::sealing::{seal, SealingKey};
use crate::store::records::{identity_key, IdentityRecord};

/// Longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Longest platform name, in characters.
const MAX_PLATFORM_CHARS: usize = 32;
/// Salt of the label key's derivation from the identity key: no other key
/// is derived with it.
const LABEL_KEY_SALT: &[u8] = b"convene/device-label-key/v1";
/// HPKE `info` of a sealed label.
const LABEL_INFO: &[u8] = b"convene/device-label/v1";

/// The key this user's devices seal their labels to, derived from the
/// user's identity key (`identity_secret`, 32 bytes).
///
/// # Errors
/// [`ClientError::Forbidden`] when `identity_secret` is not 32 bytes: a
/// key derived from anything less could be derived by anyone.
pub(crate) fn label_key(identity_secret: &[u8]) -> Result<SealingKey, ClientError> {
    if identity_secret.len() != 32 {
        return Err(ClientError::Forbidden(
            "this device does not hold your identity key".into(),
        ));
    }
    let seed = RustCrypto::default()
        .hkdf_extract(HashType::Sha2_256, LABEL_KEY_SALT, identity_secret)
        .map_err(|_| ClientError::Crypto("cannot derive the device label key"))?;
    let seed = Zeroizing::new(seed.as_slice().to_vec());
    SealingKey::derive(&seed).map_err(|_| ClientError::Crypto("cannot derive the device label key"))
}

/// `sealed`, the label the relay holds for `device`, opened and checked;
/// `None` if it does not open for this user and device, or is not a label
/// within bounds.
pub(crate) fn open_label(key: &SealingKey, device: &[u8], sealed: &[u8]) -> Option<DeviceLabel> {
    if sealed.is_empty() {
        return None;
    }
    let plain = key.open(LABEL_INFO, device, sealed).ok()?;
    let label = DeviceLabel::decode(plain.as_slice()).ok()?;
    let within = label.name.chars().count() <= MAX_DEVICE_NAME_CHARS
        && label.platform.chars().count() <= MAX_PLATFORM_CHARS;
    within.then_some(label)
}

impl Client {
    /// Names this device for the user's other devices (`convene devices`),
    /// with the platform it runs on. The name is sealed before it leaves
    /// the device (see the module's documentation).
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for an empty name, one over
    /// [`MAX_DEVICE_NAME_CHARS`] characters, or one with hidden characters;
    /// the relay's errors otherwise.
    pub async fn set_device_name(&self, name: &str) -> Result<(), ClientError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_DEVICE_NAME_CHARS {
            return Err(ClientError::InvalidArgument(format!(
                "a device name is 1 to {MAX_DEVICE_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(convene_proto::text::is_hidden) {
            return Err(ClientError::InvalidArgument(
                "a device name cannot hold invisible or direction-changing characters".into(),
            ));
        }
        let label = DeviceLabel {
            name: name.to_string(),
            platform: std::env::consts::OS.to_string(),
        };
        let key = self.label_key()?;
        let sealed = seal(
            key.public(),
            LABEL_INFO,
            &self.device(),
            &label.encode_to_vec(),
        )
        .map_err(|_| ClientError::Crypto("cannot seal the device label"))?;
        let request = request::Kind::SetDeviceLabel(SetDeviceLabel {
            sealed_label: sealed.into(),
        });
        match self.relay(request).await? {
            response::Result::DeviceLabelSet(_) => Ok(()),
            _ => Err(ClientError::unexpected_response()),
        }
    }

    /// The key this user's devices seal their labels to.
    pub(super) fn label_key(&self) -> Result<SealingKey, ClientError> {
        let mut identity: IdentityRecord = self
            .store()
            .get_committed_record(&identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let key = label_key(&identity.identity_secret);
        crate::settle::wipe_secrets(&mut identity);
        key
    }
}

#[cfg(test)]
mod tests {
    use convene_proto::content::DeviceLabel;
    use prost::Message as _;

    use super::{label_key, open_label, seal, LABEL_INFO};

    fn sealed(secret: &[u8], device: &[u8], name: &str) -> Vec<u8> {
        let label = DeviceLabel {
            name: name.into(),
            platform: "linux".into(),
        };
        let key = label_key(secret).expect("a key");
        seal(key.public(), LABEL_INFO, device, &label.encode_to_vec()).expect("sealed")
    }

    #[test]
    fn a_label_opens_for_its_users_devices_and_its_own_device_only() {
        let secret = [7u8; 32];
        let label = sealed(&secret, b"device a", "Ana's laptop");
        // Another device of the same user derives the same key.
        let key = label_key(&secret).expect("a key");
        let opened = open_label(&key, b"device a", &label).expect("opens");
        assert_eq!(opened.name, "Ana's laptop");
        assert_eq!(opened.platform, "linux");
        // Shown for another device, or to another user, it does not open.
        assert!(open_label(&key, b"device b", &label).is_none());
        let other = label_key(&[8u8; 32]).expect("a key");
        assert!(open_label(&other, b"device a", &label).is_none());
        // No key comes from a secret that is not one.
        assert!(label_key(&[]).is_err());
        assert!(open_label(&key, b"device a", b"not sealed").is_none());
        // A label over the bounds is not shown.
        let long = sealed(&secret, b"device a", &"x".repeat(65));
        assert!(open_label(&key, b"device a", &long).is_none());
    }
}
