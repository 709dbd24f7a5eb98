//! Removing members whose certification a revocation took away.
//!
//! Revoking a staff member's delegation (or suspending the staff member)
//! refuses every certificate it signed that the authority has not renewed.
//! The users it certified are no longer anyone the organisation vouches
//! for, but they still hold their leaves and would read on; and since their
//! leaves no longer verify, every later Welcome into their groups would be
//! refused. So every device that may change a group removes them: staff in
//! cohorts they are in, staff managers through proposals, either user of a
//! direct channel. A user the authority has already renewed (its own
//! signature, the same identity key) stays: their device takes up the
//! renewed certificate as soon as it learns of the revocation.

use std::collections::HashMap;

use convene_proto::content::GroupKind as WireKind;
use convene_proto::relay::{request, response, GetUser};
use convene_proto::trust::Signed;
use openmls::prelude::BasicCredential;
use prost::Message as _;

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
    pub(super) async fn remove_revoked_members(&mut self) -> Result<(), ClientError> {
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        let own_user = self.shared.identity.user_id.clone();
        let staff = Role::from_wire(self.shared.identity.role) == Role::Staff;
        // Per user and identity key: whether the authority renewed them.
        let mut renewed: HashMap<(String, [u8; 32]), bool> = HashMap::new();
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
                let Some(mls_group) = load_group(&mut self.groups, &self.mls, &group.group()?)?
                else {
                    continue;
                };
                let anchor = self.mls.anchor();
                let candidates: Vec<_> = mls_group
                    .members()
                    .filter(|m| leaf_revoked(anchor, &m.credential, &m.signature_key))
                    .collect();
                let mut revoked = Vec::new();
                for member in candidates {
                    let kept = self
                        .renewed_since(&member.credential, &member.signature_key, &mut renewed)
                        .await;
                    if !kept {
                        revoked.push(member.signature_key);
                    }
                }
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

    /// Whether a member whose leaf a revocation covers only through its
    /// certifier (not its own device or user) has since been renewed by
    /// the authority for the same identity key, as the relay's record of
    /// the user shows (checked against the authority here).
    async fn renewed_since(
        &mut self,
        credential: &openmls::prelude::Credential,
        signature_key: &[u8],
        renewed: &mut HashMap<(String, [u8; 32]), bool>,
    ) -> bool {
        let Some((user, identity)) = BasicCredential::try_from(credential.clone())
            .ok()
            .and_then(|basic| crate::trust::claimed_identity(basic.identity()))
        else {
            return false;
        };
        if self.mls.anchor().revocations().covers(&user, signature_key) {
            return false;
        }
        if let Some(known) = renewed.get(&(user.clone(), identity)) {
            return *known;
        }
        let request = request::Kind::GetUser(GetUser {
            user_id: user.clone(),
        });
        let found = match self.request(request).await {
            Ok(response::Result::User(found)) => found,
            _ => return false,
        };
        let anchor = self.mls.anchor();
        let by_authority = Signed::decode(found.user_certificate.as_ref())
            .ok()
            .and_then(|signed| {
                anchor
                    .verify_user_certificate(&signed, None, anchor.now_ms())
                    .ok()
            })
            .is_some_and(|certificate| {
                certificate.user_id == user
                    && !certificate.bound_by_invite
                    && certificate.subject_key == identity
            });
        renewed.insert((user, identity), by_authority);
        by_authority
    }
}
