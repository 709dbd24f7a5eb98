//! Managing a cohort without reading it: staff who created a group leave
//! its cryptographic state behind and go on adding and removing members as
//! the group's MLS external sender (see `mls::managed`).

use super::Client;
use crate::error::ClientError;
use crate::store::records::{IntentKind, IntentRecord, ManageIntent};
use crate::types::{GroupId, GroupKind, Role};

impl Client {
    /// Leaves a group this device manages, and keeps managing it from
    /// outside: this device forgets the group's keys at once (it can read
    /// nothing sent from here on), the members commit its removal, and
    /// [`Client::add_members`] and [`Client::remove_members`] go on working
    /// for the group through external proposals.
    ///
    /// Returns once a member has committed the removal (which needs one of
    /// them online).
    pub async fn leave_group(&self, group: &GroupId) -> Result<(), ClientError> {
        let summary = self
            .group(group)?
            .ok_or_else(|| ClientError::UnknownGroup(group.to_string()))?;
        if summary.kind == GroupKind::Direct {
            return Err(ClientError::Forbidden(
                "a direct channel cannot be left".into(),
            ));
        }
        if self.identity().role != Role::Staff
            || !summary.managers.iter().any(|m| m == self.user_id())
        {
            return Err(ClientError::Forbidden(
                "only the staff member who manages a group can leave it and keep managing it"
                    .into(),
            ));
        }
        self.manage(group, &[], &[self.user_id().to_string()]).await
    }

    /// Whether this device manages `group` from outside it.
    pub(super) fn is_managing(&self, group: &GroupId) -> Result<bool, ClientError> {
        Ok(self.group(group)?.is_some_and(|g| g.managing))
    }

    /// Adds and removes users as the group's manager; returns once a member
    /// has committed the change.
    pub(super) async fn manage(
        &self,
        group: &GroupId,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ClientError> {
        let intent = IntentRecord {
            group_id: group.to_vec(),
            kind: Some(IntentKind::Manage(ManageIntent {
                add_users: add.to_vec(),
                remove_users: remove.to_vec(),
                proposed_for: 0,
                remove_devices: Vec::new(),
                remove_revoked: false,
            })),
            ..Default::default()
        };
        self.submit(intent).await.map(|_| ())
    }
}
