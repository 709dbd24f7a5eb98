//! The group operations, each a thin, checked step over openmls.

use convene_proto::content::GroupMeta;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use prost::Message;

use super::commits::routing_change;
use super::managed::authored_changes;
use super::policy::{check_commit, Change};
use super::{
    capabilities, credential, group_meta, invalid, members, op_err, verify_leaf, MemberDevice,
    MlsError, MlsStorage, Provider, CIPHERSUITE, GROUP_META_EXTENSION, MAX_PAST_EPOCHS,
};
use crate::device_key::DeviceKey;
use crate::store::LocalStore;
use crate::trust::{TrustAnchor, VerifiedDevice};
use convene_proto::ids::GroupId;

/// What an incoming group message turned out to be.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// An application message, decrypted.
    Application {
        /// The member device that sent it.
        sender: MemberDevice,
        /// The sender's role, as their certificate gives it.
        role: crate::types::Role,
        /// The decrypted application data (an encoded `Content`).
        plaintext: Vec<u8>,
        /// The epoch it was sent in (it may be one the group has left).
        epoch: u64,
    },
    /// Another member's commit, merged.
    Commit {
        /// The member device that committed, if it could be named.
        sender: Option<MemberDevice>,
        /// The member devices the commit added.
        added: Vec<MemberDevice>,
        /// The member devices the commit removed.
        removed: Vec<MemberDevice>,
        /// This device was removed by it.
        self_removed: bool,
        /// The user who proposed the members it added and removed, when
        /// one did (the committer, or a manager outside the group); `None`
        /// when several did, or it changed no-one.
        proposed_by: Option<String>,
        /// Member devices it re-added from a KeyPackage made to rejoin this
        /// group: a request to be re-added with that KeyPackage, or an
        /// older one, is a replay.
        rejoined: Vec<Rejoined>,
    },
    /// A proposal, stored until a commit covers it.
    Proposal,
}

/// A member device re-added from a KeyPackage it made to rejoin the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejoined {
    /// The re-added device's key (32 bytes).
    pub device: convene_proto::ids::DevicePublicKey,
    /// The KeyPackage's HPKE init key: what tells it from any other.
    pub init_key: Vec<u8>,
    /// Its lifetime's end, seconds since the Unix epoch.
    pub not_after: u64,
}

impl Rejoined {
    /// What a KeyPackage made to rejoin a group says of its device.
    pub fn of(key_package: &KeyPackage) -> Option<Rejoined> {
        Some(Rejoined {
            device: key_package
                .leaf_node()
                .signature_key()
                .as_slice()
                .try_into()
                .ok()?,
            init_key: key_package.hpke_init_key().as_slice().to_vec(),
            not_after: key_package.life_time().not_after(),
        })
    }
}

/// The MLS operations of one device, over its local store (or, in tests,
/// another [`MlsStorage`]).
pub struct MlsOps<'a, S = LocalStore> {
    pub(super) provider: Provider<'a, S>,
    pub(super) signer: &'a DeviceKey,
    /// This device's user.
    pub(super) user_id: &'a str,
    pub(super) chain: &'a [u8],
    pub(super) credential: CredentialWithKey,
    pub(super) anchor: TrustAnchor,
}

impl<'a, S: MlsStorage> MlsOps<'a, S> {
    /// The operations of the device that signs with `signer`, of user
    /// `user_id`, whose encoded credential chain is `chain`, over `crypto`
    /// and `store`; members are verified against `anchor`.
    pub fn new(
        crypto: &'a RustCrypto,
        store: &'a S,
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
    pub(super) fn verify(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<VerifiedDevice, MlsError> {
        verify_leaf(&self.anchor, credential, signature_key)
    }

    pub(super) fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .max_past_epochs(MAX_PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build()
    }

    /// The group's state, if this device is in it.
    pub fn load(&self, group_id: &GroupId) -> Result<Option<MlsGroup>, MlsError> {
        MlsGroup::load(
            self.provider.storage(),
            &openmls::group::GroupId::from_slice(group_id),
        )
        .map_err(op_err)
    }

    /// Creates a group at epoch 0 with this device as its only member and,
    /// when `managed`, as the manager who may change it from outside.
    pub fn create_group(
        &self,
        group_id: &GroupId,
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
            .with_group_id(openmls::group::GroupId::from_slice(group_id))
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities())
            .with_group_context_extensions(extensions)
            .max_past_epochs(MAX_PAST_EPOCHS)
            // The Welcome carries the tree, so joiners need nothing else.
            .use_ratchet_tree_extension(true)
            .build(&self.provider, self.signer, self.credential.clone())
            .map_err(op_err)
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
        let epoch = message.epoch().as_u64();
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
                let (Some(sender), Some(verified)) = (sender, verified_sender) else {
                    return Err(MlsError::Invalid(
                        "an application message from a non-member".into(),
                    ));
                };
                Ok(Incoming::Application {
                    sender,
                    role: verified.role,
                    plaintext: message.into_bytes(),
                    epoch,
                })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.merge_checked(group, verified_sender, sender, *staged)
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

    /// Checks another member's commit (its committer must be a verified
    /// member, and what it changes must pass the group's policy) and merges
    /// it.
    fn merge_checked(
        &self,
        group: &mut MlsGroup,
        verified_sender: Option<VerifiedDevice>,
        sender: Option<MemberDevice>,
        staged: StagedCommit,
    ) -> Result<Incoming, MlsError> {
        let committer = verified_sender
            .ok_or_else(|| MlsError::PolicyViolation("a commit from outside the group".into()))?;
        let (added, removed) = routing_change(group, &staged);
        if let Err(err) = self.check_staged_commit(group, &committer, &staged) {
            // What the commit really brings in (not what its
            // committer declared), so that a state holding it is
            // never rejoined.
            return Err(match err {
                MlsError::PolicyViolation(reason) => MlsError::RefusedChange {
                    reason,
                    newcomers: added
                        .iter()
                        .filter(|d| group.members().all(|m| m.signature_key != d.device))
                        .map(|d| d.device)
                        .collect(),
                },
                err => err,
            });
        }
        let self_removed = staged.self_removed();
        let proposed_by = proposer(&self.anchor, group, staged.queued_proposals());
        let rejoined = rejoined_with(group.group_id().as_slice(), &staged);
        group
            .merge_staged_commit(&self.provider, staged)
            .map_err(op_err)?;
        Ok(Incoming::Commit {
            sender,
            added,
            removed,
            self_removed,
            proposed_by,
            rejoined,
        })
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
                return Err(MlsError::LeafTakeover {
                    committer: committer.user_id.clone(),
                    owner: owner.user_id,
                });
            }
            check_not_older(committer, &owner)?;
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
            // A member's leaf is replaced only with a KeyPackage the device
            // made to rejoin this group: one from its stock, which anyone
            // may claim, would let any member push it out.
            if let Some(replaced) = change.added.iter().find(|a| {
                change.removed.iter().any(|r| r.device == a.device_key)
                    && !change.rejoining.contains(&a.device_key)
            }) {
                return Err(MlsError::PolicyViolation(format!(
                    "a device of {} was replaced without its asking",
                    replaced.user_id
                )));
            }
            for added in &change.added {
                let old = group
                    .members()
                    .find(|m| m.signature_key.as_slice() == added.device_key);
                if let Some(old) = old {
                    let old = self.verify(&old.credential, &old.signature_key)?;
                    check_not_older(&old, added)?;
                }
            }
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

    /// The one user whose pending proposals add or remove members, if one
    /// does: who a commit of them acts for.
    pub fn pending_proposer(&self, group: &MlsGroup) -> Option<String> {
        proposer(&self.anchor, group, group.pending_proposals())
    }

    /// The member devices of a group.
    pub fn members(&self, group: &MlsGroup) -> Vec<MemberDevice> {
        members(group)
    }
}

/// The devices a staged commit adds from a KeyPackage made to rejoin
/// `group_id`.
fn rejoined_with(group_id: &[u8], staged: &StagedCommit) -> Vec<Rejoined> {
    staged
        .add_proposals()
        .filter_map(|p| {
            let key_package = p.add_proposal().key_package();
            super::rejoin_target(key_package)
                .is_some_and(|target| target.group_id == group_id)
                .then(|| Rejoined::of(key_package))
                .flatten()
        })
        .collect()
}

/// A member's renewed leaf (an update, or a re-add) may not go back to an
/// older certificate, and may change the user's role or identity key only
/// with a newer one: otherwise a demoted member could come back as staff
/// with a certificate from before the change.
pub(super) fn check_not_older(
    before: &VerifiedDevice,
    after: &VerifiedDevice,
) -> Result<(), MlsError> {
    let changed = before.role != after.role || before.identity_key != after.identity_key;
    if after.valid_from_ms < before.valid_from_ms
        || (changed && after.valid_from_ms <= before.valid_from_ms)
    {
        return Err(MlsError::PolicyViolation(format!(
            "{} went back to an older certificate",
            after.user_id
        )));
    }
    Ok(())
}

/// The one user whose `proposals` add or remove members (see
/// `Incoming::Commit::proposed_by`), read before they are committed.
fn proposer<'p>(
    anchor: &TrustAnchor,
    group: &MlsGroup,
    proposals: impl Iterator<Item = &'p QueuedProposal>,
) -> Option<String> {
    let changes = super::managed::authored_changes(anchor, group, proposals).ok()?;
    let mut authors = changes
        .iter()
        .filter(|c| !c.added.is_empty() || !c.removed.is_empty())
        .map(|c| c.author.user_id.clone());
    let first = authors.next()?;
    authors.all(|a| a == first).then_some(first)
}
