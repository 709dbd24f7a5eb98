//! The two sides compared: plain openmls with in-memory storage, and
//! client-core over its persistent store, for the same devices.

use std::sync::Arc;

use convene_client::mls::{
    capabilities, credential, MlsOps, CIPHERSUITE, GROUP_META_EXTENSION, MAX_PAST_EPOCHS,
};
use convene_client::store::LocalStore;
use convene_client::trust::{Authority, TrustAnchor, UserDetails};
use convene_client::{DeviceKey, Role};
use convene_proto::content::GroupMeta;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use prost::Message as _;

use super::Error;

/// One member's identity, usable on either side.
pub struct Device {
    pub key: DeviceKey,
    pub user: String,
    /// The device's certificate chain: both sides carry the same credential.
    pub chain: Vec<u8>,
}

/// The organisation every benchmark device belongs to.
pub fn authority() -> Authority {
    Authority::from_secret_bytes(&[42; 32])
}

impl Device {
    pub fn new(n: usize) -> Device {
        let key = DeviceKey::generate();
        let details = UserDetails {
            user_id: format!("user{n}"),
            display_name: format!("User {n}"),
            role: Role::Staff,
            sector: String::new(),
            certified: Default::default(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (_, chain) =
            authority().issue_direct_chain(&details, key.public(), now - 1000, 3_600_000);
        Device {
            key,
            user: details.user_id,
            chain,
        }
    }
}

pub fn meta_extensions() -> Result<Extensions<GroupContext>, Error> {
    let ext = Extension::Unknown(
        GROUP_META_EXTENSION,
        UnknownExtension(meta().encode_to_vec()),
    );
    Ok(Extensions::single(ext)?)
}

/// Plain openmls: one device with in-memory storage.
pub struct Plain {
    pub provider: OpenMlsRustCrypto,
    pub device: Device,
}

impl Plain {
    pub fn new(device: Device) -> Plain {
        Plain {
            provider: OpenMlsRustCrypto::default(),
            device,
        }
    }

    pub fn create(&self, id: &[u8]) -> Result<MlsGroup, Error> {
        Ok(MlsGroup::builder()
            .with_group_id(GroupId::from_slice(id))
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities())
            .with_group_context_extensions(meta_extensions()?)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build(
                &self.provider,
                &self.device.key,
                credential(&self.device.chain, &self.device.key),
            )?)
    }

    pub fn key_package(&self) -> Result<KeyPackage, Error> {
        let bundle = KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.device.key,
                credential(&self.device.chain, &self.device.key),
            )?;
        Ok(bundle.key_package().clone())
    }

    /// Adds, merges, and returns the commit and Welcome bytes.
    pub fn add(
        &self,
        group: &mut MlsGroup,
        kps: &[KeyPackage],
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (commit, welcome, _) = group.add_members(&self.provider, &self.device.key, kps)?;
        let bytes = (
            commit.tls_serialize_detached()?,
            welcome.tls_serialize_detached()?,
        );
        group.merge_pending_commit(&self.provider)?;
        Ok(bytes)
    }

    pub fn join(&self, welcome: &[u8]) -> Result<MlsGroup, Error> {
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(welcome)?.extract()
        else {
            return Err("not a Welcome".into());
        };
        let config = MlsGroupJoinConfig::builder()
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build();
        Ok(
            StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)?
                .into_group(&self.provider)?,
        )
    }

    pub fn process(&self, group: &mut MlsGroup, bytes: &[u8]) -> Result<(), Error> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)?.try_into_protocol_message()?;
        let processed = group.process_message(&self.provider, message)?;
        if let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() {
            group.merge_staged_commit(&self.provider, *staged)?;
        }
        Ok(())
    }
}

/// client-core: one device over its persistent store.
pub struct Ours {
    pub crypto: RustCrypto,
    pub store: Arc<LocalStore>,
    pub device: Device,
    pub _dir: tempfile::TempDir,
}

impl Ours {
    pub fn new(device: Device) -> Result<Ours, Error> {
        let dir = tempfile::tempdir()?;
        Ok(Ours {
            crypto: RustCrypto::default(),
            store: Arc::new(LocalStore::open(
                dir.path(),
                &convene_client::StoreKey::generate(),
            )?),
            device,
            _dir: dir,
        })
    }

    pub fn ops(&self) -> MlsOps<'_> {
        MlsOps::new(
            &self.crypto,
            &self.store,
            &self.device.key,
            &self.device.user,
            &self.device.chain,
            TrustAnchor::new(authority().public()),
        )
    }

    /// One KeyPackage of this device, as another device receives it.
    pub fn key_package(&self, receiver: &Ours) -> Result<KeyPackage, Error> {
        let (mut made, _) = self.ops().key_packages(1, false)?;
        self.store.commit()?;
        let bytes = made.pop().ok_or("no KeyPackage")?;
        let device = self.device.key.public();
        Ok(receiver
            .ops()
            .parse_key_package(&bytes, &self.device.user, &device)?)
    }

    pub fn finish(&self, durable: bool) -> Result<(), Error> {
        if durable {
            self.store.commit_durably()?;
        } else {
            self.store.commit()?;
        }
        Ok(())
    }
}

pub fn meta() -> GroupMeta {
    GroupMeta {
        version: 1,
        kind: 1,
        name: "Benchmark cohort".into(),
        direct_pair: Vec::new(),
        membership: 1,
        ..Default::default()
    }
}
