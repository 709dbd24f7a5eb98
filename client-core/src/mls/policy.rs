//! The group's membership policy, which every member enforces on every
//! commit and Welcome it accepts. The policy lives in the group's
//! [`GroupMeta`] (in the GroupContext), so all members read the same one,
//! and the relay, which cannot read commits, plays no part.

use convene_proto::content::{GroupKind, GroupMeta, MembershipPolicy};

use super::MemberDevice;
use crate::trust::VerifiedDevice;
use crate::types::Role;

/// What a commit changes, as far as the policy is concerned.
pub struct Change<'a> {
    /// The member who committed (verified).
    pub committer: &'a VerifiedDevice,
    /// The devices it adds (verified).
    pub added: &'a [VerifiedDevice],
    /// The devices it removes.
    pub removed: &'a [MemberDevice],
    /// Whether it changes the group's extensions (its metadata or policy).
    pub changes_context: bool,
}

fn policy(meta: &GroupMeta) -> MembershipPolicy {
    match MembershipPolicy::try_from(meta.membership) {
        Ok(MembershipPolicy::Unspecified) | Err(_) => MembershipPolicy::Staff,
        Ok(policy) => policy,
    }
}

/// Why `change` breaks the policy of a group with `meta`, if it does.
pub fn check_commit(meta: &GroupMeta, change: &Change<'_>) -> Result<(), String> {
    let changes_membership = !change.added.is_empty() || !change.removed.is_empty();
    if !changes_membership && !change.changes_context {
        return Ok(());
    }
    // Every member may add and remove devices of its own user: a device
    // the user linked, or one the user lost. The added ones carry chains
    // from the user's identity key, already verified.
    let own = &change.committer.user_id;
    if !change.changes_context
        && change.added.iter().all(|d| &d.user_id == own)
        && change.removed.iter().all(|d| &d.user_id == own)
    {
        return Ok(());
    }
    // Any member may re-add a member device that fell out of step: its
    // old leaf removed, a new leaf of the very same device added. Nobody
    // joins or leaves.
    if !change.changes_context && is_replacement(change.added, change.removed) {
        return Ok(());
    }
    match policy(meta) {
        MembershipPolicy::AnyMember => Ok(()),
        MembershipPolicy::Staff | MembershipPolicy::Unspecified => {
            if change.committer.role == Role::Staff {
                Ok(())
            } else {
                Err(format!(
                    "{} is not staff, and only staff may change this group's membership",
                    change.committer.user_id
                ))
            }
        }
        MembershipPolicy::Pair => {
            if change.changes_context {
                return Err("a direct channel's settings never change".into());
            }
            check_pair(meta, std::iter::once(change.committer))?;
            check_pair(meta, change.added.iter())
        }
    }
}

/// Why joining a group with `meta`, whose Welcome `sender` sent and whose
/// members are `members`, breaks its policy, if it does. `joiner` is the
/// user of the device joining: another device of the same user may always
/// bring it in. In a group with staff `managers`, any member may commit a
/// manager's addition: the joiner cannot see the proposal, but every
/// existing member checked it before the commit was accepted by them.
pub fn check_welcome(
    meta: &GroupMeta,
    sender: &VerifiedDevice,
    members: &[VerifiedDevice],
    joiner: &str,
    managers: &[VerifiedDevice],
) -> Result<(), String> {
    if sender.user_id == joiner && policy(meta) != MembershipPolicy::Pair {
        return Ok(());
    }
    match policy(meta) {
        MembershipPolicy::AnyMember => Ok(()),
        MembershipPolicy::Staff | MembershipPolicy::Unspecified => {
            if sender.role == Role::Staff || managers.iter().any(|m| m.role == Role::Staff) {
                Ok(())
            } else {
                Err(format!(
                    "{} is not staff, and only staff may add members to this group",
                    sender.user_id
                ))
            }
        }
        MembershipPolicy::Pair => check_pair(meta, members.iter()),
    }
}

/// Why a group's kind and membership policy do not belong together, if
/// they do not: cohorts, introductions and the network channel are staff's
/// to change, and a direct channel its pair's. Checked on joining, and a
/// commit never changes either (`managed::check_context_kept`), so no
/// member can make a group that looks like a cohort yet lets anyone add.
pub fn check_kind(meta: &GroupMeta) -> Result<(), String> {
    let expected = match GroupKind::try_from(meta.kind) {
        Ok(GroupKind::Cohort | GroupKind::Network | GroupKind::Introduction) => {
            MembershipPolicy::Staff
        }
        Ok(GroupKind::Direct) => MembershipPolicy::Pair,
        Ok(GroupKind::Unspecified) | Err(_) => {
            return Err("a group of a kind Convene does not make".into())
        }
    };
    if meta.membership != expected as i32 {
        return Err("a group whose membership policy is not the one of its kind".into());
    }
    Ok(())
}

/// Whether `a` and `b` differ at most in what staff may change by a
/// commit: the group's name, and whether the network channel is open to
/// chat. Everything else (its kind, membership policy, pair, the key its
/// GroupInfo is sealed to) is fixed when the group is made.
pub fn only_settings_differ(a: &GroupMeta, b: &GroupMeta) -> bool {
    let fixed = |meta: &GroupMeta| GroupMeta {
        name: String::new(),
        network_policy: None,
        ..meta.clone()
    };
    fixed(a) == fixed(b)
}

/// Whether every added device replaces a removed one of the same user and
/// key, and every removed one is replaced.
fn is_replacement(added: &[VerifiedDevice], removed: &[MemberDevice]) -> bool {
    added.len() == removed.len()
        && added.iter().all(|a| {
            removed
                .iter()
                .any(|r| r.device == a.device_key && r.user_id == a.user_id)
        })
}

fn check_pair<'a>(
    meta: &GroupMeta,
    devices: impl Iterator<Item = &'a VerifiedDevice>,
) -> Result<(), String> {
    if meta.direct_pair.len() != 2 {
        return Err("a direct channel names two users".into());
    }
    for device in devices {
        if !meta.direct_pair.contains(&device.user_id) {
            return Err(format!(
                "{} is not one of this direct channel's two users",
                device.user_id
            ));
        }
    }
    Ok(())
}
