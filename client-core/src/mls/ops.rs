//! The group operations, each a thin, checked step over openmls.

use convene_proto::content::GroupMeta;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use prost::Message;

use super::managed::{authored_changes, managers, seal_group_info};
use super::policy::{check_commit, check_welcome, Change};
use super::{
    capabilities, credential, group_meta, invalid, member_device, members, meta_from, op_err,
    verify_leaf, MemberDevice, MlsError, Provider, CIPHERSUITE, GROUP_META_EXTENSION,
    MAX_PAST_EPOCHS,
};
use crate::device_key::DeviceKey;
use crate::store::LocalStore;
use crate::trust::{TrustAnchor, VerifiedDevice};

/// A commit ready for the relay, with its routing change.
#[derive(Debug, Clone)]
pub struct CommitBundle {
    pub commit: Vec<u8>,
    /// Empty when nobody is added.
    pub welcome: Vec<u8>,
    /// The new epoch's GroupInfo for the group's managers; empty when the
    /// group has none.
    pub group_info: Vec<u8>,
    pub added: Vec<MemberDevice>,
    pub removed: Vec<MemberDevice>,
}

/// Serialised KeyPackages: one-time ones, and a last-resort one if asked.
pub type KeyPackageBatch = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// KeyPackages made for upload, with their private keys' handles.
#[derive(Debug, Default, Clone)]
pub struct MadeKeyPackages {
    pub one_time: Vec<Vec<u8>>,
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

/// What an incoming group message turned out to be.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// An application message, decrypted.
    Application {
        sender: MemberDevice,
        plaintext: Vec<u8>,
    },
    /// Another member's commit, merged.
    Commit {
        sender: Option<MemberDevice>,
        added: Vec<MemberDevice>,
        removed: Vec<MemberDevice>,
        /// This device was removed by it.
        self_removed: bool,
    },
    /// A proposal, stored until a commit covers it.
    Proposal,
}

/// The MLS operations of one device, over its local store.
pub struct MlsOps<'a> {
    provider: Provider<'a>,
    signer: &'a DeviceKey,
    /// This device's user.
    user_id: &'a str,
    chain: &'a [u8],
    credential: CredentialWithKey,
    anchor: TrustAnchor,
}

impl<'a> MlsOps<'a> {
    pub fn new(
        crypto: &'a RustCrypto,
        store: &'a LocalStore,
        signer: &'a DeviceKey,
        user_id: &'a str,
        chain: &'a [u8],
        anchor: TrustAnchor,
    ) -> Self {
        MlsOps {
            provider: Provider::new(crypto, store),
            signer,
            user_id,
            chain,
            credential: credential(chain, signer),
            anchor,
        }
    }

    /// Verifies a leaf's chain against the pinned authority.
    fn verify(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<VerifiedDevice, MlsError> {
        verify_leaf(&self.anchor, credential, signature_key)
    }

    fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build()
    }

    /// The group's state, if this device is in it.
    pub fn load(&self, group_id: &[u8]) -> Result<Option<MlsGroup>, MlsError> {
        MlsGroup::load(self.provider.storage(), &GroupId::from_slice(group_id)).map_err(op_err)
    }

    /// Creates a group at epoch 0 with this device as its only member and,
    /// when `managed`, as the manager who may change it from outside.
    pub fn create_group(
        &self,
        group_id: &[u8],
        meta: &GroupMeta,
        managed: bool,
    ) -> Result<MlsGroup, MlsError> {
        let meta = Extension::Unknown(GROUP_META_EXTENSION, UnknownExtension(meta.encode_to_vec()));
        let mut extensions = vec![meta];
        if managed {
            extensions.push(super::managed::external_senders(self.chain, self.signer));
        }
        let extensions = Extensions::from_vec(extensions).map_err(op_err)?;
        MlsGroup::builder()
            .with_group_id(GroupId::from_slice(group_id))
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities())
            .with_group_context_extensions(extensions)
            .max_past_epochs(MAX_PAST_EPOCHS)
            // The Welcome carries the tree, so joiners need nothing else.
            .use_ratchet_tree_extension(true)
            .build(&self.provider, self.signer, self.credential.clone())
            .map_err(op_err)
    }

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
        let mut made = MadeKeyPackages::default();
        let mut build = |last: bool| -> Result<Vec<u8>, MlsError> {
            let mut builder = KeyPackage::builder()
                .leaf_node_capabilities(capabilities())
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
        use openmls_traits::storage::StorageProvider as _;
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

    /// Builds a commit adding `key_packages`; it stays pending until merged
    /// or cleared.
    pub fn add(
        &self,
        group: &mut MlsGroup,
        key_packages: &[KeyPackage],
    ) -> Result<CommitBundle, MlsError> {
        let added = key_packages
            .iter()
            .filter_map(|kp| {
                member_device(
                    kp.leaf_node().credential(),
                    kp.leaf_node().signature_key().as_slice(),
                )
            })
            .collect();
        let (commit, welcome, group_info) = group
            .add_members(&self.provider, self.signer, key_packages)
            .map_err(op_err)?;
        Ok(CommitBundle {
            commit: commit.tls_serialize_detached().map_err(op_err)?,
            welcome: welcome.tls_serialize_detached().map_err(op_err)?,
            group_info: for_managers(group, group_info)?,
            added,
            removed: Vec::new(),
        })
    }

    /// Builds a commit removing these devices; pending until merged or
    /// cleared.
    pub fn remove(
        &self,
        group: &mut MlsGroup,
        devices: &[[u8; 32]],
    ) -> Result<CommitBundle, MlsError> {
        let mut leaves = Vec::new();
        let mut removed = Vec::new();
        for member in group.members() {
            if let Some(device) = member_device(&member.credential, &member.signature_key) {
                if devices.contains(&device.device) {
                    leaves.push(member.index);
                    removed.push(device);
                }
            }
        }
        let (commit, _, group_info) = group
            .remove_members(&self.provider, self.signer, &leaves)
            .map_err(op_err)?;
        Ok(CommitBundle {
            commit: commit.tls_serialize_detached().map_err(op_err)?,
            welcome: Vec::new(),
            group_info: for_managers(group, group_info)?,
            added: Vec::new(),
            removed,
        })
    }

    /// Builds a commit that re-adds a member device which asked for it: its
    /// old leaf removed, `key_package` (of the same device) added, in one
    /// commit. Pending until merged or cleared.
    pub fn readd(
        &self,
        group: &mut MlsGroup,
        device: &[u8; 32],
        key_package: KeyPackage,
    ) -> Result<CommitBundle, MlsError> {
        let old = group
            .members()
            .find(|m| m.signature_key.as_slice() == device)
            .ok_or_else(|| MlsError::Invalid("the device is not a member".into()))?;
        let member = member_device(&old.credential, &old.signature_key)
            .ok_or_else(|| MlsError::Invalid("the device's leaf is unreadable".into()))?;
        let staged = group
            .commit_builder()
            .propose_removals([old.index])
            .propose_adds([key_package])
            .load_psks(self.provider.storage())
            .map_err(op_err)?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                self.signer,
                |_| true,
            )
            .map_err(op_err)?
            .stage_commit(&self.provider)
            .map_err(op_err)?;
        bundle(group, staged, vec![member.clone()], vec![member])
    }

    /// Builds a commit that renews this device's own leaf (new HPKE keys,
    /// and `credential` when its certificates were renewed): what gives
    /// post-compromise security, and drops the lifetime its KeyPackage gave
    /// the leaf. Proposals pending in the group are committed with it.
    /// Pending until merged or cleared.
    pub fn update(
        &self,
        group: &mut MlsGroup,
        credential: Option<CredentialWithKey>,
    ) -> Result<CommitBundle, MlsError> {
        let mut parameters = LeafNodeParameters::builder().with_capabilities(capabilities());
        // The leaf takes this device's current chain when it has a new one.
        let renewed = credential.or_else(|| {
            group
                .own_leaf()
                .filter(|leaf| *leaf.credential() != self.credential.credential)
                .map(|_| self.credential.clone())
        });
        if let Some(credential) = renewed {
            parameters = parameters.with_credential_with_key(credential);
        }
        let staged = group
            .commit_builder()
            .consume_proposal_store(true)
            .force_self_update(true)
            .leaf_node_parameters(parameters.build())
            .load_psks(self.provider.storage())
            .map_err(op_err)?
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                self.signer,
                |_| true,
            )
            .map_err(op_err)?
            .stage_commit(&self.provider)
            .map_err(op_err)?;
        let pending = group
            .pending_commit()
            .ok_or_else(|| MlsError::Operation("the commit was not staged".into()))?;
        let (added, removed) = routing_change(group, pending);
        bundle(group, staged, added, removed)
    }

    /// Builds a commit of the proposals pending in the group (a manager's
    /// changes, checked when they arrived); pending until merged or
    /// cleared.
    pub fn commit_pending(&self, group: &mut MlsGroup) -> Result<CommitBundle, MlsError> {
        let (commit, welcome, group_info) = group
            .commit_to_pending_proposals(&self.provider, self.signer)
            .map_err(op_err)?;
        let staged = group
            .pending_commit()
            .ok_or_else(|| MlsError::Operation("the commit was not staged".into()))?;
        let (added, removed) = routing_change(group, staged);
        let welcome = welcome
            .map(|w| w.tls_serialize_detached())
            .transpose()
            .map_err(op_err)?
            .unwrap_or_default();
        Ok(CommitBundle {
            commit: commit.tls_serialize_detached().map_err(op_err)?,
            welcome,
            group_info: for_managers(group, group_info)?,
            added,
            removed,
        })
    }

    /// Applies this device's pending commit (the relay accepted it).
    pub fn merge_pending(&self, group: &mut MlsGroup) -> Result<(), MlsError> {
        group.merge_pending_commit(&self.provider).map_err(op_err)
    }

    /// Drops this device's pending commit (the relay refused it).
    pub fn clear_pending(&self, group: &mut MlsGroup) -> Result<(), MlsError> {
        group
            .clear_pending_commit(self.provider.storage())
            .map_err(op_err)
    }

    /// Forgets a group's MLS state for good: this device will never read
    /// the group again.
    pub fn delete(&self, group: &mut MlsGroup) -> Result<(), MlsError> {
        group.delete(self.provider.storage()).map_err(op_err)
    }

    /// Encrypts an application message.
    pub fn encrypt(&self, group: &mut MlsGroup, plaintext: &[u8]) -> Result<Vec<u8>, MlsError> {
        group
            .create_message(&self.provider, self.signer, plaintext)
            .map_err(op_err)?
            .tls_serialize_detached()
            .map_err(op_err)
    }

    /// Decrypts and applies a message from the group's log.
    pub fn process(&self, group: &mut MlsGroup, bytes: &[u8]) -> Result<Incoming, MlsError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(invalid)?
            .try_into_protocol_message()
            .map_err(invalid)?;
        if message.epoch() > group.epoch() {
            return Err(MlsError::FutureEpoch);
        }
        let processed = group
            .process_message(&self.provider, message)
            .map_err(invalid)?;
        // The sender is whoever holds the leaf now, and only if it is the
        // leaf that signed: a message from an earlier epoch (whose keys the
        // group keeps) may come from a member who has since left, and whose
        // leaf another member now holds.
        let sender_leaf = match processed.sender() {
            Sender::Member(index) => group
                .member_at(*index)
                .filter(|member| member.credential == *processed.credential()),
            _ => None,
        };
        // The sender's chain is checked on every message, not only when it
        // joined: a credential is only as good as its chain now.
        let verified_sender = sender_leaf
            .as_ref()
            .map(|m| self.verify(&m.credential, &m.signature_key))
            .transpose()?;
        let sender = verified_sender.as_ref().map(|v| MemberDevice {
            user_id: v.user_id.clone(),
            device: v.device_key,
        });
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let sender = sender.ok_or_else(|| {
                    MlsError::Invalid("an application message from a non-member".into())
                })?;
                Ok(Incoming::Application {
                    sender,
                    plaintext: message.into_bytes(),
                })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let committer = verified_sender.ok_or_else(|| {
                    MlsError::PolicyViolation("a commit from outside the group".into())
                })?;
                self.check_staged_commit(group, &committer, &staged)?;
                let (added, removed) = routing_change(group, &staged);
                let self_removed = staged.self_removed();
                group
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(op_err)?;
                Ok(Incoming::Commit {
                    sender,
                    added,
                    removed,
                    self_removed,
                })
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                // Kept only if its author could make the change itself: a
                // manager, or a member acting on its own devices.
                self.check_proposals(group, std::iter::once(&*proposal), None)?;
                group
                    .store_pending_proposal(self.provider.storage(), *proposal)
                    .map_err(op_err)?;
                Ok(Incoming::Proposal)
            }
            other => Err(MlsError::Invalid(format!(
                "unexpected message content: {other:?}"
            ))),
        }
    }

    /// Checks a staged commit before it is merged: every new or changed
    /// leaf's chain, and the group's policy for each change, judged by who
    /// proposed it (the committer, another member, or a manager).
    fn check_staged_commit(
        &self,
        group: &MlsGroup,
        committer: &VerifiedDevice,
        staged: &StagedCommit,
    ) -> Result<(), MlsError> {
        if let Some(leaf) = staged.update_path_leaf_node() {
            let owner = self.verify(leaf.credential(), leaf.signature_key().as_slice())?;
            // A member may renew its own leaf, never turn it into someone
            // else's.
            if owner.user_id != committer.user_id {
                return Err(MlsError::Untrusted(format!(
                    "{} tried to take over a leaf as {}",
                    committer.user_id, owner.user_id
                )));
            }
        }
        self.check_proposals(group, staged.queued_proposals(), Some(committer))
    }

    /// Checks proposals against the group's policy, each by its author's
    /// rights. A commit's own inline proposals are the committer's.
    fn check_proposals<'p>(
        &self,
        group: &MlsGroup,
        proposals: impl Iterator<Item = &'p QueuedProposal>,
        committer: Option<&VerifiedDevice>,
    ) -> Result<(), MlsError> {
        let meta = group_meta(group)
            .ok_or_else(|| MlsError::PolicyViolation("the group has no metadata".into()))?;
        let changes = authored_changes(&self.anchor, group, proposals)?;
        for change in &changes {
            check_commit(
                &meta,
                &Change {
                    committer: &change.author,
                    added: &change.added,
                    removed: &change.removed,
                    changes_context: change.changes_context,
                },
            )
            .map_err(MlsError::PolicyViolation)?;
        }
        // A commit with no proposals (a key update) is the committer's.
        if let (true, Some(committer)) = (changes.is_empty(), committer) {
            check_commit(
                &meta,
                &Change {
                    committer,
                    added: &[],
                    removed: &[],
                    changes_context: false,
                },
            )
            .map_err(MlsError::PolicyViolation)?;
        }
        Ok(())
    }

    /// Joins a group from a Welcome, after checking every member's chain
    /// and that the group's policy allowed its sender to add this device.
    ///
    /// Any state this device still holds for the group is replaced: a
    /// Welcome is how a device that was removed, or fell behind, comes
    /// back. `rejoining` says this device asked to be re-added to a group
    /// it was in, which any member may answer. Leaves' lifetimes in the
    /// tree are not checked (RFC 9420, section 7.3 allows it): a member who
    /// has not renewed its leaf for a while must not lock everyone else
    /// out; KeyPackages, which are checked when claimed, carry lifetimes.
    pub fn join(&self, welcome: &[u8], rejoining: bool) -> Result<MlsGroup, MlsError> {
        let welcome = match MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(invalid)?
            .extract()
        {
            MlsMessageBodyIn::Welcome(welcome) => welcome,
            _ => return Err(MlsError::Invalid("not a Welcome".into())),
        };
        let staged =
            StagedWelcome::build_from_welcome(&self.provider, &Self::join_config(), welcome)
                .map_err(invalid)?
                .replace_old_group()
                .skip_lifetime_validation()
                .build()
                .map_err(invalid)?;
        let members = staged
            .members()
            .map(|m| self.verify(&m.credential, &m.signature_key))
            .collect::<Result<Vec<_>, _>>()?;
        let sender_leaf = staged.welcome_sender().map_err(invalid)?;
        let sender = self.verify(
            sender_leaf.credential(),
            sender_leaf.signature_key().as_slice(),
        )?;
        let meta = meta_from(staged.group_context().extensions())
            .ok_or_else(|| MlsError::PolicyViolation("the group has no metadata".into()))?;
        let managers = managers(&self.anchor, staged.group_context().extensions());
        if !rejoining {
            check_welcome(&meta, &sender, &members, self.user_id, &managers)
                .map_err(MlsError::PolicyViolation)?;
        }
        staged.into_group(&self.provider).map_err(invalid)
    }

    /// The member devices of a group.
    pub fn members(&self, group: &MlsGroup) -> Vec<MemberDevice> {
        members(group)
    }
}

/// The devices a staged commit adds and removes (read before it is merged).
fn routing_change(
    group: &MlsGroup,
    staged: &StagedCommit,
) -> (Vec<MemberDevice>, Vec<MemberDevice>) {
    let added = staged
        .add_proposals()
        .filter_map(|p| {
            let leaf = p.add_proposal().key_package().leaf_node();
            member_device(leaf.credential(), leaf.signature_key().as_slice())
        })
        .collect();
    let removed = staged
        .remove_proposals()
        .filter_map(|p| group.member_at(p.remove_proposal().removed()))
        .filter_map(|m| member_device(&m.credential, &m.signature_key))
        .collect();
    (added, removed)
}

/// Serialises a staged commit for the relay.
fn bundle(
    group: &MlsGroup,
    staged: CommitMessageBundle,
    added: Vec<MemberDevice>,
    removed: Vec<MemberDevice>,
) -> Result<CommitBundle, MlsError> {
    let welcome = staged
        .to_welcome_msg()
        .map(|w| w.tls_serialize_detached())
        .transpose()
        .map_err(op_err)?
        .unwrap_or_default();
    let (commit, _, group_info) = staged.into_contents();
    Ok(CommitBundle {
        commit: commit.tls_serialize_detached().map_err(op_err)?,
        welcome,
        group_info: for_managers(group, group_info)?,
        added,
        removed,
    })
}

/// The GroupInfo to leave at the relay, sealed to the managers' key: only
/// for a managed group (others need none, and a large group's tree is not
/// small). Sealed because it names every member and the group, which the
/// relay must not learn from it.
fn for_managers(
    group: &MlsGroup,
    group_info: Option<openmls::messages::group_info::GroupInfo>,
) -> Result<Vec<u8>, MlsError> {
    let key = group_meta(group)
        .map(|meta| meta.manager_seal_key)
        .unwrap_or_default();
    match group_info {
        Some(info) if !key.is_empty() => {
            let plain = MlsMessageOut::from(info)
                .tls_serialize_detached()
                .map_err(op_err)?;
            seal_group_info(&key, group.group_id().as_slice(), &plain)
        }
        _ => Ok(Vec::new()),
    }
}
