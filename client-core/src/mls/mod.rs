//! MLS through openmls: the provider, identities, and the group operations
//! the client needs. No networking here: these functions turn state and
//! inputs into state changes (in the local store's open operation) and bytes
//! to send.
//!
//! One device is one MLS leaf: the device's ed25519 key is the leaf's
//! signature key, so the relay's routing identity and the MLS identity are
//! the same key, and a client can check one against the other.

mod ops;
#[cfg(test)]
mod tests;

use convene_proto::content::GroupMeta;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use prost::Message;

pub use ops::{CommitBundle, Incoming, MlsOps};

use crate::device_key::DeviceKey;
use crate::store::LocalStore;

/// The one ciphersuite Convene uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The private-use GroupContext extension carrying [`GroupMeta`].
pub const GROUP_META_EXTENSION: u16 = 0xF100;

/// Past epochs whose keys are kept for late messages.
pub const MAX_PAST_EPOCHS: usize = 5;

/// Why an MLS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlsError {
    /// A message, Welcome or KeyPackage could not be parsed or validated.
    #[error("invalid MLS input: {0}")]
    Invalid(String),
    /// The message belongs to an epoch this client has not reached yet.
    #[error("the message is for a later epoch")]
    FutureEpoch,
    /// A KeyPackage is not what the relay said it was.
    #[error("the relay handed out a KeyPackage that belongs to {0}")]
    WrongKeyPackage(String),
    /// openmls refused the operation.
    #[error("MLS operation failed: {0}")]
    Operation(String),
}

/// openmls's view of the client: its crypto, and the local store.
pub struct Provider<'a> {
    crypto: &'a RustCrypto,
    store: &'a LocalStore,
}

impl<'a> Provider<'a> {
    pub fn new(crypto: &'a RustCrypto, store: &'a LocalStore) -> Self {
        Provider { crypto, store }
    }
}

impl OpenMlsProvider for Provider<'_> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = LocalStore;

    fn storage(&self) -> &LocalStore {
        self.store
    }

    fn crypto(&self) -> &RustCrypto {
        self.crypto
    }

    fn rand(&self) -> &RustCrypto {
        self.crypto
    }
}

impl Signer for DeviceKey {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.sign_bytes(payload).to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// A member of a group as MLS knows it: one device of one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberDevice {
    pub user_id: String,
    pub device: [u8; 32],
}

/// The credential of this device: a basic credential naming the user,
/// with the device key as signature key. (Issue 4 replaces the basic
/// credential with the organisation's certificate chain.)
pub fn credential(user_id: &str, device: &DeviceKey) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(user_id.as_bytes().to_vec()).into(),
        signature_key: SignaturePublicKey::from(device.public().to_vec()),
    }
}

/// What every Convene leaf supports beyond the defaults.
pub fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![ExtensionType::Unknown(GROUP_META_EXTENSION)])
        .build()
}

/// Reads the user and device of a leaf.
pub fn member_device(credential: &Credential, signature_key: &[u8]) -> Option<MemberDevice> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let user_id = String::from_utf8(basic.identity().to_vec()).ok()?;
    let device = signature_key.try_into().ok()?;
    Some(MemberDevice { user_id, device })
}

/// Every member device of a group, sorted.
pub fn members(group: &MlsGroup) -> Vec<MemberDevice> {
    let mut members: Vec<MemberDevice> = group
        .members()
        .filter_map(|m| member_device(&m.credential, &m.signature_key))
        .collect();
    members.sort();
    members
}

/// The group's metadata, from its GroupContext.
pub fn group_meta(group: &MlsGroup) -> Option<GroupMeta> {
    let raw = group.extensions().unknown(GROUP_META_EXTENSION)?;
    GroupMeta::decode(raw.0.as_slice()).ok()
}

fn op_err(err: impl std::fmt::Display) -> MlsError {
    MlsError::Operation(err.to_string())
}

fn invalid(err: impl std::fmt::Display) -> MlsError {
    MlsError::Invalid(err.to_string())
}

/// What MLS operations need, owned: crypto, the store, and this device.
pub struct Mls {
    crypto: RustCrypto,
    store: std::sync::Arc<LocalStore>,
    key: DeviceKey,
    user_id: String,
}

impl Mls {
    pub fn new(store: std::sync::Arc<LocalStore>, key: DeviceKey, user_id: String) -> Mls {
        Mls {
            crypto: RustCrypto::default(),
            store,
            key,
            user_id,
        }
    }

    /// The operations, borrowing this state.
    pub fn ops(&self) -> MlsOps<'_> {
        MlsOps::new(&self.crypto, &self.store, &self.key, &self.user_id)
    }

    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}
