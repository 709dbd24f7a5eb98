//! Another member's commit, once openmls has applied it: the group's
//! record follows the new epoch, the members' identity keys are pinned,
//! and the app hears who joined and who left, or that this device was
//! removed, or that its place was taken and it must ask to be re-added.

use std::collections::BTreeSet;

use convene_proto::relay::GroupMessage;

use super::snapshot::Snapshot;
use super::Engine;
use crate::events::Event;
use crate::mls::{MemberDevice, MlsError};
use crate::store::records::GroupRecord;
use crate::types::GroupId;

/// What an applied commit changed, as `decrypt_and_apply` hands it on.
pub(super) struct AppliedCommit {
    pub(super) added: Vec<MemberDevice>,
    pub(super) removed: Vec<MemberDevice>,
    pub(super) self_removed: bool,
    pub(super) proposed_by: Option<String>,
    pub(super) rejoined: Vec<crate::mls::Rejoined>,
}

impl Engine {
    /// Takes in a commit openmls has applied: the record follows the new
    /// epoch, identities are pinned, and the app hears who joined and left
    /// (or that this device was removed, or replaced and must ask again).
    pub(super) fn apply_commit(
        &mut self,
        group_id: &GroupId,
        record: &mut GroupRecord,
        message: &GroupMessage,
        snapshot: Snapshot,
        identities: &[(String, [u8; 32])],
        commit: AppliedCommit,
    ) -> Result<(), MlsError> {
        // The group really moved on: the relay's word about its epoch is
        // taken afresh.
        self.disproved_epochs.remove(group_id);
        let AppliedCommit {
            added,
            removed,
            self_removed,
            proposed_by,
            rejoined,
        } = commit;
        let own_user = self.mls.user_id().to_string();
        check_routing(message, &added, &removed).unwrap_or_else(|detail| {
            self.emit(Event::Warning {
                group: Some(group_id.clone()),
                detail,
            })
        });
        let members_before = user_ids_of(record);
        snapshot.apply(record);
        let members_after = user_ids_of(record);
        for mark in &rejoined {
            record.note_rejoined(mark.device.as_bytes(), mark.not_after, &mark.init_key);
        }
        self.note_identities(group_id, identities);
        // Another device of this user left (lost, revoked): what it
        // knew is suspect, so this device renews its leaf at once.
        let own_device = self.mls.key().public();
        if removed
            .iter()
            .any(|d| d.user_id == own_user && d.device != own_device)
        {
            record.leaf_renewed_at_ms = 1;
        }
        // A device re-added in place neither joined nor left.
        let replaced =
            |d: &MemberDevice, other: &[MemberDevice]| other.iter().any(|o| o.device == d.device);
        let joined: Vec<MemberDevice> = added
            .iter()
            .filter(|d| !replaced(d, &removed))
            .cloned()
            .collect();
        let left: Vec<MemberDevice> = removed
            .iter()
            .filter(|d| !replaced(d, &added))
            .cloned()
            .collect();
        if !self_removed && self.is_network_channel(group_id) {
            // Only a new member wants the open requests again: a member
            // linking a device would otherwise have every poster post
            // everything again.
            let newcomers = joined.iter().any(|d| !members_before.contains(&d.user_id));
            self.network_members_changed(group_id, record.epoch, newcomers, &added, &left)
                .map_err(super::received::stored)?;
        }
        // A user who was a member before and after changed devices, not
        // membership.
        let mut added_users = user_ids(&joined);
        let mut removed_users = user_ids(&left);
        added_users.retain(|u| !removed_users.contains(u) && !members_before.contains(u));
        removed_users.retain(|u| !members_after.contains(u));
        let device_changes = device_changes(&joined, &left, &members_before, &members_after);
        if self_removed && added.iter().any(|d| d.device == own_device) {
            // Put back in its place with a KeyPackage of its own
            // (a replayed one, or one whose Welcome it could not
            // use): it is still in the group, and asks again.
            self.groups.remove(group_id);
            self.stall(
                record,
                "another member replaced this device's place in the group",
            )
            .map_err(|err| MlsError::Operation(crate::mls::OperationError::new(err)))?;
        } else if self_removed {
            record.active = false;
            self.groups.remove(group_id);
            self.emit(Event::RemovedFromGroup {
                group: group_id.clone(),
            });
        } else if let Some(event) = super::commit::membership_event(
            group_id,
            proposed_by,
            added_users,
            removed_users
                .into_iter()
                .filter(|u| *u != own_user)
                .collect(),
        ) {
            self.emit(event);
        }
        if !self_removed {
            for (user_id, (added, removed)) in device_changes {
                self.emit(Event::MemberDevicesChanged {
                    group: group_id.clone(),
                    user_id,
                    added,
                    removed,
                });
            }
        }
        self.outbox_dirty = true;
        Ok(())
    }
}

/// The users a group record lists as members.
fn user_ids_of(record: &GroupRecord) -> std::collections::BTreeSet<String> {
    record.members.iter().map(|m| m.user_id.clone()).collect()
}

/// Per member who stayed in the group: how many of their devices joined
/// and left it.
fn device_changes(
    joined: &[MemberDevice],
    left: &[MemberDevice],
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) -> std::collections::BTreeMap<String, (usize, usize)> {
    let mut changes = std::collections::BTreeMap::new();
    let stayed = |user: &String| before.contains(user) && after.contains(user);
    for device in joined.iter().filter(|d| stayed(&d.user_id)) {
        changes.entry(device.user_id.clone()).or_insert((0, 0)).0 += 1;
    }
    for device in left.iter().filter(|d| stayed(&d.user_id)) {
        changes.entry(device.user_id.clone()).or_insert((0, 0)).1 += 1;
    }
    changes
}

/// Checks a commit's routing change as declared to the relay against what
/// the commit does.
fn check_routing(
    message: &GroupMessage,
    added: &[MemberDevice],
    removed: &[MemberDevice],
) -> Result<(), String> {
    let declared = |list: &[bytes::Bytes]| list.iter().map(|d| d.to_vec()).collect::<BTreeSet<_>>();
    let actual = |list: &[MemberDevice]| {
        list.iter()
            .map(|m| m.device.to_vec())
            .collect::<BTreeSet<_>>()
    };
    if declared(&message.added_devices) != actual(added)
        || declared(&message.removed_devices) != actual(removed)
    {
        return Err("a commit's declared routing change does not match its content".into());
    }
    Ok(())
}

fn user_ids(devices: &[MemberDevice]) -> Vec<String> {
    let mut users: Vec<String> = devices.iter().map(|d| d.user_id.clone()).collect();
    users.sort();
    users.dedup();
    users
}
