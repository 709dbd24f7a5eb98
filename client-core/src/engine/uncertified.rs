//! Removing members whose certification a revocation took away.
//!
//! Revoking a staff member's delegation (or suspending the staff member)
//! refuses every certificate it signed that the authority has not renewed.
//! The users it certified are no longer anyone the organisation vouches
//! for, but they still hold their leaves and would read on; and since their
//! leaves no longer verify, every later Welcome into their groups would be
//! refused. So every device that may change a group removes them: staff in
//! cohorts they are in, staff managers through proposals, either user of a
//! direct channel.

use convene_proto::content::GroupKind as WireKind;

use super::{load_group, Engine};
use crate::error::ClientError;
use crate::mls::leaf_revoked;
use crate::store::records::{
    self, DevicesIntent, GroupRecord, IntentKind, IntentRecord, ManageIntent,
};
use crate::types::Role;

impl Engine {
    /// Queues the removal of every member whose chain a revocation this
    /// device holds now covers, from every group this device may change.
    pub(super) fn remove_revoked_members(&mut self) -> Result<(), ClientError> {
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        let own_user = self.shared.identity.user_id.clone();
        let staff = Role::from_wire(self.shared.identity.role) == Role::Staff;
        for group in groups {
            let kind = if group.managing {
                if !staff {
                    continue;
                }
                // The manager reads the group's tree afresh, and ends at
                // once if nobody in it is revoked.
                IntentKind::Manage(ManageIntent {
                    remove_revoked: true,
                    ..Default::default()
                })
            } else {
                let allowed = match WireKind::try_from(group.kind) {
                    Ok(WireKind::Direct) => group.direct_pair.contains(&own_user),
                    _ => staff,
                };
                if !group.active || !allowed {
                    continue;
                }
                let Some(mls_group) = load_group(&mut self.groups, &self.mls, &group.group_id)?
                else {
                    continue;
                };
                let anchor = self.mls.anchor();
                let revoked: Vec<Vec<u8>> = mls_group
                    .members()
                    .filter(|m| leaf_revoked(anchor, &m.credential, &m.signature_key))
                    .map(|m| m.signature_key)
                    .collect();
                if revoked.is_empty() {
                    continue;
                }
                IntentKind::RemoveDevices(DevicesIntent {
                    device_keys: revoked,
                })
            };
            let intent = IntentRecord {
                group_id: group.group_id.clone(),
                kind: Some(kind),
                ..Default::default()
            };
            self.persist_intent(intent)?;
            self.outbox_dirty = true;
        }
        Ok(())
    }
}
