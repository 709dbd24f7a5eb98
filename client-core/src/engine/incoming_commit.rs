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
            rejoined,
        } = commit;
        let own_user = self.mls.user_id().to_string();
        check_routing(message, &added, &removed).unwrap_or_else(|detail| {
            self.emit(Event::Warning {
                group: Some(group_id.clone()),
                detail,
            })
        });
        snapshot.apply(record);
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
        let mut added_users = user_ids(&joined);
        let removed_users = user_ids(&left);
        added_users.retain(|u| !removed_users.contains(u));
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
            added_users,
            removed_users
                .into_iter()
                .filter(|u| *u != own_user)
                .collect(),
        ) {
            self.emit(event);
        }
        self.outbox_dirty = true;
        Ok(())
    }
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
