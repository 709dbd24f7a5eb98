//! Building commits: adding and removing members, re-adding a member that
//! asked for it, renewing this device's own leaf, committing pending
//! proposals. Each stays pending until the relay's verdict merges or clears
//! it.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use convene_proto::ids::DevicePublicKey;

use super::managed::seal_group_info;
use super::ops::MlsOps;
use super::{capabilities, group_meta, member_device, op_err, MemberDevice, MlsError};

/// A commit ready for the relay, with its routing change.
#[derive(Debug, Clone)]
pub struct CommitBundle {
    /// The commit, a TLS-serialised `MLSMessage`.
    pub commit: Vec<u8>,
    /// Empty when nobody is added.
    pub welcome: Vec<u8>,
    /// The new epoch's GroupInfo for the group's managers; empty when the
    /// group has none.
    pub group_info: Vec<u8>,
    /// The member devices the commit adds.
    pub added: Vec<MemberDevice>,
    /// The member devices the commit removes.
    pub removed: Vec<MemberDevice>,
}

impl<S: super::MlsStorage> MlsOps<'_, S> {
    /// Proposals that remove every leaf of this device's user from
    /// `group`, this device's own last (RFC 9420, section 12.1.3; a member
    /// cannot commit its own removal, so the others commit them). Each is
    /// a TLS-serialised `MLSMessage`; openmls keeps them pending here, so
    /// this device sends nothing else in the group meanwhile.
    pub fn propose_leaving(&self, group: &mut MlsGroup) -> Result<Vec<Vec<u8>>, MlsError> {
        let own = group.own_leaf_index();
        let others: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| m.index != own)
            .filter(|m| {
                member_device(&m.credential, &m.signature_key)
                    .is_some_and(|d| d.user_id == self.user_id)
            })
            .map(|m| m.index)
            .collect();
        let mut proposals = Vec::with_capacity(others.len() + 1);
        for index in others {
            let (message, _) = group
                .propose_remove_member(&self.provider, self.signer, index)
                .map_err(op_err)?;
            proposals.push(message.tls_serialize_detached().map_err(op_err)?);
        }
        let own_removal = group
            .leave_group(&self.provider, self.signer)
            .map_err(op_err)?;
        proposals.push(own_removal.tls_serialize_detached().map_err(op_err)?);
        Ok(proposals)
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
        devices: &[DevicePublicKey],
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
    /// commit with any proposals pending in the group. Pending until merged
    /// or cleared.
    pub fn readd(
        &self,
        group: &mut MlsGroup,
        device: &DevicePublicKey,
        key_package: KeyPackage,
    ) -> Result<CommitBundle, MlsError> {
        let old = group
            .members()
            .find(|m| m.signature_key.as_slice() == device.as_bytes())
            .ok_or_else(|| MlsError::Invalid("the device is not a member".into()))?;
        if member_device(&old.credential, &old.signature_key).is_none() {
            return Err(MlsError::Invalid("the device's leaf is unreadable".into()));
        }
        let staged = self.stage(
            group
                .commit_builder()
                .propose_removals([old.index])
                .propose_adds([key_package]),
        )?;
        pending_bundle(group, staged)
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
        let staged = self.stage(
            group
                .commit_builder()
                .consume_proposal_store(true)
                .force_self_update(true)
                .leaf_node_parameters(parameters.build()),
        )?;
        pending_bundle(group, staged)
    }

    /// Builds a commit that changes the group's settings to `meta` (a
    /// GroupContextExtensions proposal, RFC 9420 section 12.1.7), with any
    /// proposals pending in the group; pending until merged or cleared.
    /// Every member refuses a change of what the group is (its kind,
    /// membership policy or pair), and, where staff run the group, one
    /// that staff did not make.
    pub fn change_meta(
        &self,
        group: &mut MlsGroup,
        meta: &convene_proto::content::GroupMeta,
    ) -> Result<CommitBundle, MlsError> {
        use prost::Message as _;
        let mut extensions = group.extensions().clone();
        extensions
            .add_or_replace(Extension::Unknown(
                super::GROUP_META_EXTENSION,
                UnknownExtension(meta.encode_to_vec()),
            ))
            .map_err(op_err)?;
        // A context change may carry only extensions every member must
        // support (RFC 9420, section 12.1.7): every Convene leaf supports
        // the metadata (see `capabilities`).
        extensions
            .add_or_replace(Extension::RequiredCapabilities(
                RequiredCapabilitiesExtension::new(
                    &[ExtensionType::Unknown(super::GROUP_META_EXTENSION)],
                    &[],
                    &[],
                ),
            ))
            .map_err(op_err)?;
        let staged = self.stage(
            group
                .commit_builder()
                .consume_proposal_store(true)
                .propose_group_context_extensions(extensions)
                .map_err(op_err)?,
        )?;
        pending_bundle(group, staged)
    }

    /// Builds a commit of the proposals pending in the group (a manager's
    /// changes, checked when they arrived); pending until merged or
    /// cleared.
    pub fn commit_pending(&self, group: &mut MlsGroup) -> Result<CommitBundle, MlsError> {
        let (commit, welcome, group_info) = group
            .commit_to_pending_proposals(&self.provider, self.signer)
            .map_err(op_err)?;
        let staged = group.pending_commit().ok_or_else(|| {
            MlsError::Operation(crate::mls::OperationError::described(
                "the commit was not staged",
            ))
        })?;
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
}

impl<S: super::MlsStorage> MlsOps<'_, S> {
    /// Loads the PSKs of `builder`'s commit, signs it as this device and
    /// stages it in its group (pending until merged or cleared).
    fn stage<'g>(
        &'g self,
        builder: CommitBuilder<'g, openmls::group::Initial>,
    ) -> Result<CommitMessageBundle, MlsError> {
        builder
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
            .map_err(op_err)
    }
}

/// The devices a staged commit adds and removes (read before it is merged).
pub(super) fn routing_change(
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

/// Serialises the commit just staged in `group`, routed by what its
/// pending commit changes: proposals pending in the group are committed
/// with it, and the relay must route what they change too.
fn pending_bundle(group: &MlsGroup, staged: CommitMessageBundle) -> Result<CommitBundle, MlsError> {
    let pending = group.pending_commit().ok_or_else(|| {
        MlsError::Operation(crate::mls::OperationError::described(
            "the commit was not staged",
        ))
    })?;
    let (added, removed) = routing_change(group, pending);
    bundle(group, staged, added, removed)
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
