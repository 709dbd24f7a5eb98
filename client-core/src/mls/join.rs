//! Joining a group from a Welcome, or joining it again.
//!
//! A first join is judged by the group's policy as a Welcome (who may bring
//! whom in). A device still in the group (it asked to be re-added, or was
//! removed and added again while away) judges the Welcome against the
//! state it last held, since any member may answer a request to be
//! re-added: the group's settings must be the same, a managed group still
//! managed, the sender one of the members it knew, and every device it did
//! not know one the policy would let that sender add. Either way the
//! Welcome's epoch must be above any this device held of the group, so
//! that nobody can take it back to an old state.

use convene_proto::content::GroupMeta;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;

use super::managed::managers;
use super::ops::MlsOps;
use super::policy::{check_commit, check_welcome, Change};
use super::{invalid, meta_from, MlsError};

/// What a Welcome is judged against.
#[derive(Debug, Clone, Default)]
pub struct JoinRules {
    /// The highest epoch this device held of the group, if it held any:
    /// the Welcome must open a later one.
    pub after_epoch: Option<u64>,
    /// This device rejoins a group it was in, as it last saw it.
    pub rejoining: Option<PreviousState>,
}

/// A group as this device last held it.
#[derive(Debug, Clone, Default)]
pub struct PreviousState {
    /// Its metadata, when recorded.
    pub meta: Option<GroupMeta>,
    /// Its member devices.
    pub members: Vec<convene_proto::ids::DevicePublicKey>,
    /// The users who managed it from outside, sorted.
    pub managers: Vec<String>,
}

impl<S: super::MlsStorage> MlsOps<'_, S> {
    /// Joins a group from a Welcome, after checking every member's chain
    /// and the rules above.
    ///
    /// Any state this device still holds for the group is replaced: a
    /// Welcome is how a device that was removed, or fell behind, comes
    /// back. Leaves' lifetimes in the tree are not checked (RFC 9420,
    /// section 7.3 allows it): a member who has not renewed its leaf for a
    /// while must not lock everyone else out; KeyPackages, which are checked
    /// when claimed, carry lifetimes.
    pub fn join(&self, welcome: &[u8], rules: &JoinRules) -> Result<MlsGroup, MlsError> {
        let welcome = match MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(invalid)?
            .extract()
        {
            MlsMessageBodyIn::Welcome(welcome) => welcome,
            _ => return Err(MlsError::Invalid("not a Welcome".into())),
        };
        let builder =
            StagedWelcome::build_from_welcome(&self.provider, &Self::join_config(), welcome)
                .map_err(invalid)?;
        // A device still in the group comes back only on a KeyPackage it
        // made to rejoin that very group: one from its stock (anyone may
        // claim those) would let a member put it into a state of its own.
        let rejoin_key_package = builder
            .processed_welcome()
            .own_key_package()
            .and_then(super::rejoin_target)
            .map(|target| target.group_id);
        let staged = builder
            .replace_old_group()
            .skip_lifetime_validation()
            .build()
            .map_err(invalid)?;
        let epoch = staged.group_context().epoch().as_u64();
        if rules.after_epoch.is_some_and(|held| epoch <= held) {
            return Err(MlsError::PolicyViolation(format!(
                "a Welcome to epoch {epoch}, which this device has been past"
            )));
        }
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
        check_network_channel(
            &self.anchor,
            staged.group_context().group_id().as_slice(),
            &meta,
        )
        .map_err(MlsError::PolicyViolation)?;
        super::policy::check_kind(&meta).map_err(MlsError::PolicyViolation)?;
        match &rules.rejoining {
            None => check_welcome(&meta, &sender, &members, self.user_id, &managers)
                .map_err(MlsError::PolicyViolation)?,
            Some(previous) => {
                let mut manager_ids: Vec<String> =
                    managers.iter().map(|m| m.user_id.clone()).collect();
                manager_ids.sort();
                manager_ids.dedup();
                check_rejoin(previous, &meta, &manager_ids, &sender, &members)
                    .map_err(MlsError::PolicyViolation)?;
                let group_id = staged.group_context().group_id().as_slice();
                if rejoin_key_package.as_deref() != Some(group_id) {
                    return Err(MlsError::PolicyViolation(
                        "a Welcome back into a group this device is in, on a KeyPackage \
                         it did not make to rejoin that group"
                            .into(),
                    ));
                }
            }
        }
        // openmls replaces the old group's state but not its proposal
        // queue: proposals of the state this device left (its own removal,
        // say) would come back on the next load and block every send.
        {
            let storage = self.provider.storage();
            let group_id = staged.group_context().group_id().clone();
            storage
                .clear_proposal_queue::<openmls::group::GroupId, openmls::ciphersuite::hash_ref::ProposalRef>(
                    &group_id,
                )
                .map_err(super::op_err)?;
            storage
                .delete_own_leaf_nodes(&group_id)
                .map_err(super::op_err)?;
        }
        staged.into_group(&self.provider).map_err(invalid)
    }
}

/// Why a Welcome that re-adds this device breaks from the state it held.
fn check_rejoin(
    previous: &PreviousState,
    meta: &GroupMeta,
    managers: &[String],
    sender: &crate::trust::VerifiedDevice,
    members: &[crate::trust::VerifiedDevice],
) -> Result<(), String> {
    // Staff may have renamed the group or turned chat on while this
    // device was away; nothing else about it may differ.
    if previous
        .meta
        .as_ref()
        .is_some_and(|held| !super::policy::only_settings_differ(held, meta))
    {
        return Err("the group's settings are not the ones this device knew".into());
    }
    // Managers are staff the organisation certified, and staff hand cohorts
    // over while a device is away; a managed group never becomes unmanaged,
    // though, or any member could bring anyone in.
    if !previous.managers.is_empty() && managers.is_empty() {
        return Err("the group's managers are gone".into());
    }
    if !previous.members.contains(&sender.device_key) {
        return Err(format!(
            "{} was not a member when this device last followed the group",
            sender.user_id
        ));
    }
    let newcomers: Vec<crate::trust::VerifiedDevice> = members
        .iter()
        .filter(|m| !previous.members.contains(&m.device_key))
        .cloned()
        .collect();
    // In a managed group a manager's proposals bring members in, and any
    // member commits them: who asked cannot be seen from here.
    if newcomers.is_empty() || !managers.is_empty() {
        return Ok(());
    }
    check_commit(
        meta,
        &Change {
            committer: sender,
            added: &newcomers,
            removed: &[],
            changes_context: false,
        },
    )
}

/// The network channel is the group whose id the organisation's authority
/// key gives (`convene_proto::network`): a group of that id must be of the
/// network kind with staff alone changing its members, and no other group
/// may claim the network kind, so that nobody passes a group of their own
/// off as the network channel (or takes its id first).
pub(crate) fn check_network_channel(
    anchor: &crate::trust::TrustAnchor,
    group_id: &[u8],
    meta: &convene_proto::content::GroupMeta,
) -> Result<(), String> {
    use convene_proto::content::{GroupKind, MembershipPolicy};
    let network_id = convene_proto::network::network_channel_id(&anchor.authority_key());
    let is_network_id = group_id == network_id.as_bytes();
    let network_kind = meta.kind == GroupKind::Network as i32;
    match (is_network_id, network_kind) {
        (true, true) if meta.membership == MembershipPolicy::Staff as i32 => Ok(()),
        (true, _) => Err(
            "a group with the network channel's id that is not the network \
                          channel staff run"
                .into(),
        ),
        (false, true) => Err("a network channel other than the organisation's".into()),
        (false, false) => Ok(()),
    }
}
