//! MLS through openmls: the provider, identities, and the group operations
//! the client needs. No networking here: these functions turn state and
//! inputs into state changes (in the local store's open operation) and bytes
//! to send.
//!
//! One device is one MLS leaf: the device's ed25519 key is the leaf's
//! signature key, so the relay's routing identity and the MLS identity are
//! the same key, and a client can check one against the other. The leaf's
//! credential carries the organisation's certificate chain for that key
//! (see [`crate::trust`]); every KeyPackage, Welcome, commit and message
//! sender is verified against the pinned authority before it is accepted.

mod commits;
pub mod content;
#[cfg(test)]
mod hostile_tests;
mod join;
mod key_packages;
pub mod managed;
#[cfg(test)]
mod managed_tests;
mod ops;
pub mod policy;
#[cfg(test)]
mod rejoin_tests;
#[cfg(test)]
mod tests;

use convene_proto::content::GroupMeta;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use prost::Message;

pub use commits::CommitBundle;
pub use join::{JoinRules, PreviousState};
pub use key_packages::{rejoin_target, rejoins, KeyPackageBatch, MadeKey, MadeKeyPackages};
pub use ops::{Incoming, MlsOps, Rejoined};

use crate::device_key::DeviceKey;
use crate::store::records::IdentityRecord;
use crate::store::{LocalStore, StoreError};
use crate::trust::{TrustAnchor, VerifiedDevice};
use convene_proto::ids::GroupId;

/// The one ciphersuite Convene uses.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The private-use GroupContext extension carrying [`GroupMeta`].
pub const GROUP_META_EXTENSION: u16 = 0xF100;

/// The private-use KeyPackage extension marking a KeyPackage made to
/// rejoin one group: its value is that group's id. Only such a KeyPackage,
/// signed by the device itself, may replace a member's leaf.
pub const REJOIN_EXTENSION: u16 = 0xF101;

/// Past epochs whose keys are kept for late messages.
pub const MAX_PAST_EPOCHS: usize = 5;

/// Why a manager could not read a managed group's GroupInfo
/// ([`Mls::read_group_info`]).
#[derive(Debug, thiserror::Error)]
pub enum ReadGroupInfoError {
    /// This device holds no manager key for the group.
    #[error("this device does not manage the group")]
    NotManager,
    /// The manager key could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The GroupInfo could not be opened or failed its checks.
    #[error(transparent)]
    Mls(#[from] MlsError),
}

/// Why an MLS operation failed.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// openmls refused the operation; the source is its own error for that
    /// operation (openmls's per-operation error enums).
    #[error("MLS operation failed")]
    Operation(#[source] OperationError),
    /// A credential failed the organisation's chain of trust; the source
    /// says which check.
    #[error("refused an untrusted member ({who})")]
    Untrusted {
        /// The user the credential claims, or "an unknown user".
        who: String,
        /// The check it failed.
        #[source]
        reason: crate::trust::TrustError,
    },
    /// A credential is not valid at this time by this device's clock: it
    /// may be later, or once the clock is set right.
    #[error("refused a member whose certificate is not valid now ({who}); is this device's clock right?")]
    NotValidNow {
        /// The user the credential names.
        who: String,
    },
    /// A commit's new leaf for its committer carries another user's
    /// credential: a member may renew its own leaf, never take over one.
    #[error("{committer} tried to take over a leaf as {owner}")]
    LeafTakeover {
        /// The committing user.
        committer: String,
        /// The user the new leaf's credential names.
        owner: String,
    },
    /// A commit or Welcome breaks the group's membership policy.
    #[error("refused a change the group's policy forbids: {0}")]
    PolicyViolation(String),
    /// A commit breaks the group's membership policy; it would have brought
    /// in `newcomers` (devices not in the group before it).
    #[error("refused a change the group's policy forbids: {reason}")]
    RefusedChange {
        /// Why the group's policy forbids the change.
        reason: String,
        /// The device keys the commit would have brought into the group.
        newcomers: Vec<convene_proto::ids::DevicePublicKey>,
    },
}

/// A storage openmls can keep a device's MLS state in: the local store
/// ([`LocalStore`], what devices use), or openmls's own memory storage,
/// which the MLS tests run against as well (openmls_test's per-provider
/// pattern), so that a difference between the two shows.
pub trait MlsStorage:
    openmls_traits::storage::StorageProvider<
    { openmls_traits::storage::CURRENT_VERSION },
    Error = <Self as MlsStorage>::Failure,
>
{
    /// The storage's error.
    type Failure: std::error::Error + Send + Sync + 'static;
}

impl MlsStorage for LocalStore {
    type Failure = crate::store::MlsStorageError;
}

impl MlsStorage for openmls_memory_storage::MemoryStorage {
    type Failure = openmls_memory_storage::MemoryStorageError;
}

/// openmls's view of the client: its crypto, and its storage (the local
/// store unless a test says otherwise).
pub struct Provider<'a, S = LocalStore> {
    crypto: &'a RustCrypto,
    store: &'a S,
}

impl<'a, S> Provider<'a, S> {
    /// A provider over `crypto` and `store`.
    pub fn new(crypto: &'a RustCrypto, store: &'a S) -> Self {
        Provider { crypto, store }
    }
}

impl<S: MlsStorage> OpenMlsProvider for Provider<'_, S> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = S;

    fn storage(&self) -> &S {
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
    /// The device's user.
    pub user_id: String,
    /// The device key (32 bytes): the leaf's signature key.
    pub device: convene_proto::ids::DevicePublicKey,
}

/// The revocations this device verified and stored, for its anchor.
fn held_revocations(store: &LocalStore) -> Result<crate::trust::Revocations, StoreError> {
    let revocations = crate::trust::Revocations::default();
    for item in store.scan::<convene_proto::trust::Signed>(&crate::store::records::revoked_prefix())
    {
        let (_, signed) = item?;
        // Verified before it was stored; the store is this device's own.
        let revocation = convene_proto::trust::Revocation::decode(signed.body.as_slice())
            .map_err(|_| StoreError::Corrupt("a stored revocation".into()))?;
        let revoked_key = match revocation.delegate_key.is_empty() {
            true => &revocation.device_key,
            false => &revocation.delegate_key,
        };
        revocations.add(&revocation.user_id, revoked_key);
    }
    Ok(revocations)
}

/// Whether a leaf's chain fails only because a revocation this device holds
/// covers it (its device, its user, or the delegation that certified it):
/// such a member is still listed, so that it can be removed.
pub fn leaf_revoked(anchor: &TrustAnchor, credential: &Credential, signature_key: &[u8]) -> bool {
    BasicCredential::try_from(credential.clone()).is_ok_and(|basic| {
        matches!(
            anchor.verify(basic.identity(), signature_key, anchor.now_ms()),
            Err(crate::trust::TrustError::Revoked)
        )
    })
}

/// The credential of this device: a basic credential whose identity is the
/// encoded certificate chain, with the device key as signature key.
pub fn credential(chain: &[u8], device: &DeviceKey) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(chain.to_vec()).into(),
        signature_key: SignaturePublicKey::from(device.public().to_vec()),
    }
}

/// Verifies a leaf's credential chain against the pinned authority, for the
/// leaf's signature key.
pub fn verify_leaf(
    anchor: &TrustAnchor,
    credential: &Credential,
    signature_key: &[u8],
) -> Result<VerifiedDevice, MlsError> {
    let basic = BasicCredential::try_from(credential.clone()).map_err(|_| MlsError::Untrusted {
        who: "an unknown user".into(),
        reason: crate::trust::TrustError::Malformed("not a basic credential"),
    })?;
    anchor
        .verify(basic.identity(), signature_key, anchor.now_ms())
        .map_err(|reason| {
            let who = crate::trust::claimed_user_id(basic.identity())
                .unwrap_or_else(|| "an unknown user".into());
            match reason {
                crate::trust::TrustError::Expired => MlsError::NotValidNow { who },
                reason => MlsError::Untrusted { who, reason },
            }
        })
}

/// What every Convene leaf supports beyond the defaults: the group's
/// metadata extension, and the rejoin and last-resort KeyPackage extensions (a
/// KeyPackage's capabilities must list every extension it carries, RFC
/// 9420 section 10.1, or nobody can validate it).
pub fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![
            ExtensionType::Unknown(GROUP_META_EXTENSION),
            ExtensionType::Unknown(REJOIN_EXTENSION),
            ExtensionType::LastResort,
        ])
        .build()
}

/// Reads the user and device of a leaf already accepted into a group (its
/// chain was verified then): the user id its certificate names.
pub fn member_device(credential: &Credential, signature_key: &[u8]) -> Option<MemberDevice> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let user_id = crate::trust::claimed_user_id(basic.identity())?;
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

/// Every member user's identity key, as their leaves' chains name it (one
/// entry per leaf).
pub fn member_identities(group: &MlsGroup) -> Vec<(String, [u8; 32])> {
    group
        .members()
        .filter_map(|m| {
            let basic = BasicCredential::try_from(m.credential).ok()?;
            crate::trust::claimed_identity(basic.identity())
        })
        .collect()
}

/// The group's metadata, from its GroupContext.
pub fn group_meta(group: &MlsGroup) -> Option<GroupMeta> {
    meta_from(group.extensions())
}

/// Whether a proposal pending in the group removes this device: it must not
/// commit them (RFC 9420, section 12.2: a commit cannot remove its sender),
/// and leaves them to the other members.
pub fn own_removal_pending(group: &MlsGroup) -> bool {
    let own = group.own_leaf_index();
    group.pending_proposals().any(
        |queued| matches!(queued.proposal(), Proposal::Remove(remove) if remove.removed() == own),
    )
}

/// The metadata in a GroupContext's extensions.
fn meta_from(extensions: &Extensions<GroupContext>) -> Option<GroupMeta> {
    let raw = extensions.unknown(GROUP_META_EXTENSION)?;
    GroupMeta::decode(raw.0.as_slice()).ok()
}

/// openmls's error for one operation, kept whole as the cause.
#[derive(Debug, Clone)]
pub struct OperationError(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl OperationError {
    /// Keeps `err` as the cause.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        OperationError(std::sync::Arc::new(err))
    }

    /// A failure openmls did not report, described.
    pub fn described(what: &'static str) -> Self {
        #[derive(Debug)]
        struct Described(&'static str);
        impl std::fmt::Display for Described {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Described {}
        OperationError::new(Described(what))
    }
}

impl std::fmt::Display for OperationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for OperationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn op_err(err: impl std::error::Error + Send + Sync + 'static) -> MlsError {
    MlsError::Operation(OperationError::new(err))
}

fn invalid(err: impl std::fmt::Display) -> MlsError {
    MlsError::Invalid(err.to_string())
}

impl MlsError {
    /// Whether this is a refusal on grounds of trust or policy (the user
    /// must be told), rather than a damaged or unreadable input.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            MlsError::Untrusted { .. }
                | MlsError::NotValidNow { .. }
                | MlsError::LeafTakeover { .. }
                | MlsError::PolicyViolation(_)
                | MlsError::RefusedChange { .. }
                | MlsError::WrongKeyPackage(_)
        )
    }

    /// Whether the same input may be accepted later: a certificate not
    /// valid now (a clock off, or a certificate dated ahead), or an input
    /// that could not be processed rather than one refused.
    pub fn may_pass_later(&self) -> bool {
        !self.is_refusal() || matches!(self, MlsError::NotValidNow { .. })
    }
}

/// What MLS operations need, owned: crypto, the store, this device, its
/// credential chain and the pinned authority.
pub struct Mls {
    crypto: RustCrypto,
    store: std::sync::Arc<LocalStore>,
    key: DeviceKey,
    user_id: String,
    chain: Vec<u8>,
    anchor: TrustAnchor,
}

impl Mls {
    /// The MLS state of the device that `identity` describes, verifying
    /// chains by a clock `clock_offset_ms` off the system's (0 but in tests
    /// of clock skew).
    pub fn new(
        store: std::sync::Arc<LocalStore>,
        key: DeviceKey,
        identity: &IdentityRecord,
        clock_offset_ms: i64,
    ) -> Result<Mls, StoreError> {
        let authority: [u8; 32] = identity.authority_key.as_slice().try_into().map_err(|_| {
            StoreError::Corrupt(
                "this device has no organisation authority pinned; enrol it again".into(),
            )
        })?;
        let revocations = held_revocations(&store)?;
        Ok(Mls {
            crypto: RustCrypto::default(),
            store,
            key,
            user_id: identity.user_id.clone(),
            chain: identity.credential.clone(),
            anchor: TrustAnchor::new(authority)
                .with_clock_offset(clock_offset_ms)
                .with_revocations(revocations),
        })
    }

    /// The operations, borrowing this state.
    pub fn ops(&self) -> MlsOps<'_> {
        MlsOps::new(
            &self.crypto,
            &self.store,
            &self.key,
            &self.user_id,
            &self.chain,
            self.anchor.clone(),
        )
    }

    /// Opens and checks a managed group's sealed GroupInfo from the relay,
    /// for this device as its manager.
    pub fn read_group_info(
        &self,
        group_id: &GroupId,
        sealed: &[u8],
    ) -> Result<managed::ManagedView, ReadGroupInfoError> {
        let mut record: crate::store::records::ManagerKeyRecord = self
            .store
            .get_record(&crate::store::records::manager_key(group_id))?
            .ok_or(ReadGroupInfoError::NotManager)?;
        let key = crate::sealing::SealingKey::from_parts(&record.private, &record.public);
        zeroize::Zeroize::zeroize(&mut record.private);
        let plain = managed::open_group_info(&key, group_id, sealed)?;
        Ok(managed::read_group_info(
            &self.crypto,
            &self.anchor,
            group_id,
            &plain,
            &self.key.public(),
        )?)
    }

    /// Uses `chain` as this device's credential from now on (its
    /// certificates were renewed): new KeyPackages and leaf updates carry it.
    pub fn set_chain(&mut self, chain: Vec<u8>) {
        self.chain = chain;
    }

    /// This device's credential chain.
    pub fn chain(&self) -> &[u8] {
        &self.chain
    }

    /// The pinned authority.
    pub fn anchor(&self) -> &TrustAnchor {
        &self.anchor
    }

    /// This device's signing key: its leaves' signature key.
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// This device's user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}
