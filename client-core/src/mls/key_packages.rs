//! KeyPackages (RFC 9420, section 10): made for the relay's stock with a
//! lifetime, checked when claimed, one marked for rejoining a group, and
//! their private keys forgotten once they can no longer be used.

use convene_proto::content::RejoinTarget;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;

use super::ops::MlsOps;
use super::{capabilities, invalid, op_err, MlsError, CIPHERSUITE, REJOIN_EXTENSION};
use convene_proto::ids::GroupId;

/// How long a KeyPackage made to rejoin a group lives, in seconds.
const REJOIN_KEY_PACKAGE_LIFETIME_SECS: u64 = 3600;

/// The group (and the epoch it was at) a KeyPackage was made to rejoin, if
/// it was.
pub fn rejoin_target(key_package: &KeyPackage) -> Option<RejoinTarget> {
    use prost::Message as _;
    let raw = key_package.extensions().unknown(REJOIN_EXTENSION)?;
    RejoinTarget::decode(raw.0.as_slice()).ok()
}

/// Whether `key_package` may replace its device's leaf in `group` as it is
/// now: made to rejoin this group, asked at the group's current epoch or
/// the one before (so a request replayed later replaces nothing), and not
/// the very leaf the device already has (a replay right after the re-add).
pub fn rejoins(group: &MlsGroup, key_package: &KeyPackage) -> bool {
    let Some(target) = rejoin_target(key_package) else {
        return false;
    };
    let epoch = group.epoch().as_u64();
    let leaf = key_package.leaf_node();
    target.group_id == group.group_id().as_slice()
        && (target.epoch..=target.epoch.saturating_add(1)).contains(&epoch)
        && group.members().all(|m| {
            m.signature_key != leaf.signature_key().as_slice()
                || openmls::treesync::EncryptionKey::from(m.encryption_key)
                    != *leaf.encryption_key()
        })
}

/// Serialised KeyPackages: one-time ones, and a last-resort one if asked.
pub type KeyPackageBatch = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// KeyPackages made for upload, with their private keys' handles.
#[derive(Debug, Default, Clone)]
pub struct MadeKeyPackages {
    /// The one-time KeyPackages, each TLS-serialised.
    pub one_time: Vec<Vec<u8>>,
    /// The last-resort KeyPackage, TLS-serialised, if one was asked for.
    pub last_resort: Option<Vec<u8>>,
    /// One per KeyPackage made.
    pub keys: Vec<MadeKey>,
}

/// What it takes to delete a KeyPackage's private keys later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeKey {
    /// The KeyPackage's hash reference (RFC 9420, section 5.2), encoded as
    /// the local store keys it.
    pub hash_ref: Vec<u8>,
    /// When it expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl<S: super::MlsStorage> MlsOps<'_, S> {
    /// Makes `count` one-time KeyPackages (and a last-resort one if asked),
    /// serialised for upload, valid for openmls's default lifetime. Their
    /// private keys are written to the store's open operation, which must
    /// be committed before they are uploaded.
    pub fn key_packages(
        &self,
        count: usize,
        last_resort: bool,
    ) -> Result<KeyPackageBatch, MlsError> {
        let made = self.key_packages_for(
            count,
            last_resort,
            crate::lifecycle::MAX_KEY_PACKAGE_LIFETIME,
        )?;
        Ok((made.one_time, made.last_resort))
    }

    /// As [`MlsOps::key_packages`], each valid for `lifetime` (RFC 9420,
    /// section 7.2), with what is needed to delete their private keys later.
    pub fn key_packages_for(
        &self,
        count: usize,
        last_resort: bool,
        lifetime: std::time::Duration,
    ) -> Result<MadeKeyPackages, MlsError> {
        self.make_key_packages(count, last_resort, lifetime, None)
    }

    /// A KeyPackage to rejoin `group_id` with, asked when the group is at
    /// `epoch`: it names both in a signed extension, so that only it (not
    /// one of the stock anyone may claim) lets a member replace this
    /// device's leaf, and only in a commit on that epoch or the next (see
    /// [`rejoins`]); it lives an hour.
    pub fn rejoin_key_package(
        &self,
        group_id: &GroupId,
        epoch: u64,
    ) -> Result<MadeKeyPackages, MlsError> {
        let target = RejoinTarget {
            group_id: group_id.to_vec().into(),
            epoch,
        };
        self.make_key_packages(
            1,
            false,
            std::time::Duration::from_secs(REJOIN_KEY_PACKAGE_LIFETIME_SECS),
            Some(&target),
        )
    }

    fn make_key_packages(
        &self,
        count: usize,
        last_resort: bool,
        lifetime: std::time::Duration,
        rejoining: Option<&RejoinTarget>,
    ) -> Result<MadeKeyPackages, MlsError> {
        use prost::Message as _;
        let mut made = MadeKeyPackages::default();
        let extensions = match rejoining {
            Some(target) => Extensions::single(Extension::Unknown(
                REJOIN_EXTENSION,
                UnknownExtension(target.encode_to_vec()),
            ))
            .map_err(op_err)?,
            None => Extensions::empty(),
        };
        let mut build = |last: bool| -> Result<Vec<u8>, MlsError> {
            let mut builder = KeyPackage::builder()
                .leaf_node_capabilities(capabilities())
                .key_package_extensions(extensions.clone())
                .key_package_lifetime(Lifetime::new(lifetime.as_secs()));
            if last {
                builder = builder.mark_as_last_resort();
            }
            let bundle = builder
                .build(
                    CIPHERSUITE,
                    &self.provider,
                    self.signer,
                    self.credential.clone(),
                )
                .map_err(op_err)?;
            let key_package = bundle.key_package();
            let hash_ref = key_package
                .hash_ref(self.provider.crypto())
                .map_err(op_err)?;
            made.keys.push(MadeKey {
                // As the store keys it: the reference's serde form.
                hash_ref: serde_json::to_vec(&hash_ref).map_err(op_err)?,
                expires_at_ms: key_package.life_time().not_after().saturating_mul(1000),
            });
            key_package.tls_serialize_detached().map_err(op_err)
        };
        let one_time = (0..count)
            .map(|_| build(false))
            .collect::<Result<Vec<_>, _>>()?;
        let last = if last_resort {
            Some(build(true)?)
        } else {
            None
        };
        made.one_time = one_time;
        made.last_resort = last;
        Ok(made)
    }

    /// Deletes the private keys of a KeyPackage this device made (in the
    /// open operation): nobody can join with it from now on.
    pub fn forget_key_package(&self, hash_ref: &[u8]) -> Result<(), MlsError> {
        let hash_ref: KeyPackageRef = serde_json::from_slice(hash_ref).map_err(invalid)?;
        self.provider
            .storage()
            .delete_key_package(&hash_ref)
            .map_err(op_err)
    }

    /// Parses and validates a claimed KeyPackage, and checks that it is the
    /// one the relay said: `user_id`'s device `device`.
    pub fn parse_key_package(
        &self,
        bytes: &[u8],
        user_id: &str,
        device: &[u8; 32],
    ) -> Result<KeyPackage, MlsError> {
        let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
            .map_err(invalid)?
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(invalid)?;
        let leaf = key_package.leaf_node();
        let owner = self.verify(leaf.credential(), leaf.signature_key().as_slice())?;
        if owner.user_id != user_id || owner.device_key != *device {
            return Err(MlsError::WrongKeyPackage(owner.user_id));
        }
        if key_package.ciphersuite() != CIPHERSUITE {
            return Err(MlsError::Invalid(
                "a KeyPackage for another ciphersuite".into(),
            ));
        }
        Ok(key_package)
    }
}
