//! Groups managed from outside: staff run a cohort's membership as MLS
//! external senders, so they can add and remove leaders without being able
//! to read a word of the cohort.
//!
//! The manager's device is listed in the group's `external_senders`
//! extension (in the GroupContext, so every member agrees on it). It sends
//! signed Add and Remove proposals; every member checks the signer's chain
//! and the group's policy before it keeps a proposal, and one of them
//! commits it. A manager learns the group's current tree from the GroupInfo
//! the last committer left at the relay, and checks it (the tree's hash and
//! signatures, and every leaf's chain) before proposing anything from it.
//!
//! Member-side, a commit's changes are judged by who proposed each of them
//! ([`authored_changes`]), not only by who committed it.

use convene_proto::ids::DevicePublicKey;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;

use super::{credential, invalid, member_device, op_err, verify_leaf, MemberDevice, MlsError};
use zeroize::Zeroizing;

use crate::device_key::DeviceKey;
use crate::sealing::SealingKey;
use crate::trust::{TrustAnchor, VerifiedDevice};
use convene_proto::ids::GroupId;

/// The `external_senders` extension naming this device as the group's
/// manager.
pub fn external_senders(chain: &[u8], device: &DeviceKey) -> Extension {
    let own = credential(chain, device);
    Extension::ExternalSenders(vec![ExternalSender::new(own.signature_key, own.credential)])
}

/// An external sender's credential and signature key. openmls keeps their
/// accessors to itself, so they are read back from the sender's encoding
/// (the signature key, then the credential).
fn sender_parts(sender: &ExternalSender) -> Result<(Credential, Vec<u8>), MlsError> {
    let raw = sender.tls_serialize_detached().map_err(op_err)?;
    let mut rest = raw.as_slice();
    let key = SignaturePublicKey::tls_deserialize(&mut rest).map_err(invalid)?;
    let credential = Credential::tls_deserialize_exact(rest).map_err(invalid)?;
    Ok((credential, key.as_slice().to_vec()))
}

/// Verifies an external sender's chain.
fn verify_sender(
    anchor: &TrustAnchor,
    sender: &ExternalSender,
) -> Result<VerifiedDevice, MlsError> {
    let (credential, key) = sender_parts(sender)?;
    verify_leaf(anchor, &credential, &key)
}

/// The group's managers whose chains verify now, in extension order.
pub fn managers(
    anchor: &TrustAnchor,
    extensions: &Extensions<GroupContext>,
) -> Vec<VerifiedDevice> {
    extensions
        .external_senders()
        .map(|senders| {
            senders
                .iter()
                .filter_map(|s| verify_sender(anchor, s).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Binds a sealed GroupInfo to its purpose; the group id is the AAD.
const GROUP_INFO_SEAL: &[u8] = b"convene/group-info/v1";

/// Seals a GroupInfo to the managers' key, bound to the group.
pub fn seal_group_info(key: &[u8], group_id: &[u8], plain: &[u8]) -> Result<Vec<u8>, MlsError> {
    crate::sealing::seal(key, GROUP_INFO_SEAL, group_id, plain)
        .map_err(|_| MlsError::Invalid("the group's manager key is not a valid key".into()))
}

/// Opens a sealed GroupInfo of `group_id` with the manager's key.
pub fn open_group_info(
    key: &SealingKey,
    group_id: &GroupId,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, MlsError> {
    key.open(GROUP_INFO_SEAL, group_id, sealed)
        .map_err(|_| MlsError::Invalid("the group's GroupInfo could not be opened".into()))
}

fn sender_index(index: &SenderExtensionIndex) -> Result<usize, MlsError> {
    let raw = index.tls_serialize_detached().map_err(op_err)?;
    let raw: [u8; 4] = raw
        .as_slice()
        .try_into()
        .map_err(|_| MlsError::Invalid("an external sender index".into()))?;
    Ok(u32::from_be_bytes(raw) as usize)
}

/// The verified author of a proposal in `group`: a member, or one of the
/// group's external senders.
pub fn author_of(
    anchor: &TrustAnchor,
    group: &MlsGroup,
    sender: &Sender,
) -> Result<VerifiedDevice, MlsError> {
    match sender {
        Sender::Member(index) => {
            let member = group
                .member_at(*index)
                .ok_or_else(|| MlsError::Invalid("a proposal from an empty leaf".into()))?;
            verify_leaf(anchor, &member.credential, &member.signature_key)
        }
        Sender::External(index) => {
            let index = sender_index(index)?;
            let sender = group
                .extensions()
                .external_senders()
                .and_then(|senders| senders.get(index))
                .ok_or_else(|| {
                    MlsError::PolicyViolation("a proposal from an unknown manager".into())
                })?;
            verify_sender(anchor, sender)
        }
        _ => Err(MlsError::PolicyViolation(
            "a proposal from outside the group".into(),
        )),
    }
}

/// What one author changed: the devices it proposed to add and remove, and
/// whether it changed the group's context.
pub struct AuthoredChange {
    /// Who proposed: a member, or a manager as an external sender
    /// (verified).
    pub author: VerifiedDevice,
    /// The devices it proposed to add, their chains verified.
    pub added: Vec<VerifiedDevice>,
    /// The member devices it proposed to remove.
    pub removed: Vec<MemberDevice>,
    /// Whether it proposed to change the group's context extensions (its
    /// metadata or policy).
    pub changes_context: bool,
    /// Added devices whose KeyPackage was made to rejoin this very group
    /// now (see [`super::rejoins`]).
    pub rejoining: Vec<[u8; 32]>,
}

/// Groups `proposals` by their verified author, verifying every added or
/// updated leaf on the way. Only additions, removals, updates and context
/// changes are allowed.
pub fn authored_changes<'p>(
    anchor: &TrustAnchor,
    group: &MlsGroup,
    proposals: impl Iterator<Item = &'p QueuedProposal>,
) -> Result<Vec<AuthoredChange>, MlsError> {
    let mut changes: Vec<AuthoredChange> = Vec::new();
    for queued in proposals {
        let author = author_of(anchor, group, queued.sender())?;
        let slot = match changes
            .iter()
            .position(|c| c.author.device_key == author.device_key)
        {
            Some(slot) => slot,
            None => {
                changes.push(AuthoredChange {
                    author,
                    added: Vec::new(),
                    removed: Vec::new(),
                    changes_context: false,
                    rejoining: Vec::new(),
                });
                changes.len() - 1
            }
        };
        let change = &mut changes[slot];
        match queued.proposal() {
            Proposal::Add(add) => {
                let leaf = add.key_package().leaf_node();
                let verified =
                    verify_leaf(anchor, leaf.credential(), leaf.signature_key().as_slice())?;
                if super::key_packages::rejoins(group, add.key_package()) {
                    change.rejoining.push(*verified.device_key);
                }
                change.added.push(verified);
            }
            Proposal::Remove(remove) => {
                let removed = group
                    .member_at(remove.removed())
                    .and_then(|m| member_device(&m.credential, &m.signature_key))
                    .ok_or_else(|| MlsError::Invalid("a proposal removes an empty leaf".into()))?;
                change.removed.push(removed);
            }
            Proposal::Update(update) => {
                let leaf = update.leaf_node();
                let owner =
                    verify_leaf(anchor, leaf.credential(), leaf.signature_key().as_slice())?;
                // The same rules as a commit's own update path: a member
                // renews its own leaf, never with an older certificate.
                if owner.user_id != change.author.user_id {
                    return Err(MlsError::LeafTakeover {
                        committer: change.author.user_id.clone(),
                        owner: owner.user_id,
                    });
                }
                super::ops::check_not_older(&change.author, &owner)?;
            }
            Proposal::GroupContextExtensions(extensions) => {
                check_context_kept(group, extensions.extensions())?;
                change.changes_context = true;
            }
            _ => {
                return Err(MlsError::PolicyViolation(
                    "a kind of proposal Convene does not use".into(),
                ))
            }
        }
    }
    Ok(changes)
}

/// Why new context `extensions` change more than a group's settings, if
/// they do. Staff may rename a group or turn chat in the network channel
/// on or off; everything else in its GroupContext is fixed when it is made
/// (its kind, membership policy, pair, the key its GroupInfo is sealed to,
/// its external senders), so that nobody with the right to change settings
/// can turn the network channel into a group anyone may add to, take over
/// managing a cohort, or leave a device that was away unable to rejoin.
/// Only the required capabilities may come and go, which openmls checks
/// every member supports (RFC 9420, section 12.1.7).
fn check_context_kept(
    group: &MlsGroup,
    extensions: &Extensions<GroupContext>,
) -> Result<(), MlsError> {
    let before = super::group_meta(group)
        .ok_or_else(|| MlsError::PolicyViolation("the group has no metadata".into()))?;
    let after = super::meta_from(extensions).ok_or_else(|| {
        MlsError::PolicyViolation("a context change that drops the group's metadata".into())
    })?;
    let fixed = |set: &Extensions<GroupContext>| {
        let mut kept: Vec<Extension> = set
            .iter()
            .filter(|e| {
                !matches!(e.extension_type(), ExtensionType::RequiredCapabilities)
                    && e.extension_type() != ExtensionType::Unknown(super::GROUP_META_EXTENSION)
            })
            .cloned()
            .collect();
        kept.sort_by_key(|e| u16::from(e.extension_type()));
        kept
    };
    if !super::policy::only_settings_differ(&before, &after)
        || fixed(group.extensions()) != fixed(extensions)
    {
        return Err(MlsError::PolicyViolation(
            "a context change of what the group is (its kind, who may change its members, \
             its pair or its managers), not only its name or chat setting"
                .into(),
        ));
    }
    Ok(())
}

/// A managed group as its manager sees it from the relay's GroupInfo,
/// checked.
#[derive(Debug, Clone)]
pub struct ManagedView {
    /// The epoch of the GroupInfo read.
    pub epoch: u64,
    /// Every member device with its leaf.
    pub members: Vec<(LeafNodeIndex, MemberDevice)>,
    /// The member devices a revocation this device holds now covers.
    pub revoked: Vec<DevicePublicKey>,
    /// This device's place among the group's external senders.
    sender: SenderExtensionIndex,
}

/// Reads and checks a GroupInfo of `group_id`: its signature and tree hash,
/// every leaf's chain, and that `manager` is one of its external senders.
pub fn read_group_info(
    crypto: &RustCrypto,
    anchor: &TrustAnchor,
    group_id: &GroupId,
    bytes: &[u8],
    manager: &[u8; 32],
) -> Result<ManagedView, MlsError> {
    let info = match MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(invalid)?
        .extract()
    {
        MlsMessageBodyIn::GroupInfo(info) => info,
        _ => return Err(MlsError::Invalid("not a GroupInfo".into())),
    };
    if info.group_id().as_slice() != group_id {
        return Err(MlsError::Invalid("a GroupInfo of another group".into()));
    }
    let tree = info
        .extensions()
        .ratchet_tree()
        .map(|ext| ext.ratchet_tree().clone())
        .ok_or_else(|| MlsError::Invalid("a GroupInfo without its tree".into()))?;
    // A throwaway public view: openmls checks the GroupInfo's signature
    // against its signer's leaf and the tree against the signed tree hash.
    let scratch = MemoryStorage::default();
    let (public, _) =
        PublicGroup::from_external(crypto, &scratch, tree, info, ProposalStore::new())
            .map_err(invalid)?;
    let sender = public
        .group_context()
        .extensions()
        .external_senders()
        .and_then(|senders| {
            senders
                .iter()
                .position(|s| sender_parts(s).is_ok_and(|(_, key)| key.as_slice() == manager))
        })
        .ok_or_else(|| MlsError::PolicyViolation("this device does not manage the group".into()))?;
    let (mut members, mut revoked) = (Vec::new(), Vec::new());
    for member in public.members() {
        // A revoked member is still listed, so that its manager can
        // propose its removal; every other leaf must verify.
        let device = match verify_leaf(anchor, &member.credential, &member.signature_key) {
            Ok(verified) => MemberDevice {
                user_id: verified.user_id,
                device: verified.device_key,
            },
            Err(err) => {
                let claimed = member_device(&member.credential, &member.signature_key)
                    .filter(|_| {
                        super::leaf_revoked(anchor, &member.credential, &member.signature_key)
                    })
                    .ok_or(err)?;
                revoked.push(claimed.device);
                claimed
            }
        };
        members.push((member.index, device));
    }
    Ok(ManagedView {
        epoch: public.group_context().epoch().as_u64(),
        members,
        revoked,
        sender: SenderExtensionIndex::new(sender as u32),
    })
}

impl ManagedView {
    /// Signed external proposals adding `key_packages` and removing the
    /// member devices in `remove`, for this view's epoch.
    pub fn proposals(
        &self,
        group_id: &GroupId,
        signer: &DeviceKey,
        key_packages: Vec<KeyPackage>,
        remove: &[DevicePublicKey],
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        type P<'a> = super::Provider<'a>;
        let group_id = openmls::group::GroupId::from_slice(group_id);
        let epoch = GroupEpoch::from(self.epoch);
        let mut out = Vec::new();
        for key_package in key_packages {
            let message = ExternalProposal::new_add::<P<'_>>(
                key_package,
                group_id.clone(),
                epoch,
                signer,
                self.sender,
            )
            .map_err(op_err)?;
            out.push(message.tls_serialize_detached().map_err(op_err)?);
        }
        for (leaf, member) in &self.members {
            if !remove.contains(&member.device) {
                continue;
            }
            let message = ExternalProposal::new_remove::<P<'_>>(
                *leaf,
                group_id.clone(),
                epoch,
                signer,
                self.sender,
            )
            .map_err(op_err)?;
            out.push(message.tls_serialize_detached().map_err(op_err)?);
        }
        Ok(out)
    }
}
