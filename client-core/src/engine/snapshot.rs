//! The parts of a group's MLS state mirrored in its record, so that the app
//! can list groups, members and managers without opening any MLS state.

use crate::store::records::{GroupRecord, MemberEntry};

/// The parts of a group's MLS state mirrored in its record.
pub(super) struct Snapshot {
    epoch: u64,
    epoch_authenticator: Vec<u8>,
    members: Vec<MemberEntry>,
    managers: Vec<String>,
    /// The encoded `GroupMeta` of the GroupContext; `None` if it has none.
    meta: Option<Vec<u8>>,
}

impl Snapshot {
    pub(super) fn of(
        group: &openmls::prelude::MlsGroup,
        anchor: &crate::trust::TrustAnchor,
    ) -> Snapshot {
        let mut managers: Vec<String> = crate::mls::managed::managers(anchor, group.extensions())
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        managers.sort();
        managers.dedup();
        let mut members: Vec<MemberEntry> = group
            .members()
            .filter_map(|m| {
                let device = crate::mls::member_device(&m.credential, &m.signature_key)?;
                let chain = openmls::prelude::BasicCredential::try_from(m.credential).ok()?;
                let (_, valid_until_ms) =
                    crate::trust::claimed_validity(chain.identity()).unwrap_or_default();
                Some(MemberEntry {
                    user_id: device.user_id,
                    device: device.device.to_vec(),
                    certificate_valid_until_ms: valid_until_ms,
                    display_name: crate::trust::claimed_display_name(chain.identity())
                        .unwrap_or_default(),
                })
            })
            .collect();
        members.sort_by(|a, b| (&a.user_id, &a.device).cmp(&(&b.user_id, &b.device)));
        Snapshot {
            epoch: group.epoch().as_u64(),
            epoch_authenticator: group.epoch_authenticator().as_slice().to_vec(),
            members,
            managers,
            meta: crate::mls::group_meta(group).map(|m| prost::Message::encode_to_vec(&m)),
        }
    }

    pub(super) fn apply(self, record: &mut GroupRecord) {
        let network = record.kind == convene_proto::content::GroupKind::Network as i32;
        if network {
            // The setting the epochs before this one were under.
            super::network::note_chat_setting(record);
        }
        record.managers = self.managers;
        record.epoch = self.epoch;
        record.epoch_authenticator = self.epoch_authenticator;
        for member in &self.members {
            if !member.display_name.is_empty() {
                record
                    .names
                    .insert(member.user_id.clone(), member.display_name.clone());
            }
        }
        record.members = self.members;
        // A commit may change the group's settings (its name, whether the
        // network channel is open to chat); what it is never changes (the
        // policy refuses that), so the mirror follows.
        if let Some(meta) = self.meta {
            record.meta = meta;
        }
        if network {
            super::network::note_chat_setting(record);
        }
    }
}
