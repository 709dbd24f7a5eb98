//! The network channel: the one MLS group of every leader and staff.
//! Its policy lives in its metadata and every member enforces it (see
//! `sync::store_received`); this module keeps its members in step with the
//! directory (staff devices add every verified leader who is not in it),
//! and hands out the network keys that seal profiles: the member whose
//! commit changed its membership posts them right after, with a fresh key
//! first when someone left.

use std::collections::BTreeSet;

use convene_proto::content::{GroupKind as WireKind, GroupMeta};
use convene_proto::network::network_channel_id;
use prost::Message as _;

use super::Engine;
use crate::directory::NetworkKeyRing;
use crate::error::ClientError;
use crate::store::records::{self, DirectoryRecord, GroupRecord, IntentKind};
use crate::types::{GroupId, Role};

/// Most users one automatic add brings into the network channel: a
/// cohort's worth, so that one commit and its Welcome stay small.
const ADD_BATCH: usize = 50;

/// Whether the network channel `record` lets members other than staff
/// post ordinary text.
pub(super) fn network_chat(record: &GroupRecord) -> bool {
    GroupMeta::decode(record.meta.as_slice())
        .ok()
        .and_then(|meta| meta.network_policy)
        .is_some_and(|policy| policy.chat)
}

impl Engine {
    /// The keys this device holds (in the open operation).
    pub(super) fn network_keys(&self) -> Result<NetworkKeyRing, ClientError> {
        Ok(self
            .store()
            .get_record(&records::network_keys_key())?
            .unwrap_or_default())
    }

    /// Takes up keys posted in the network channel.
    pub(super) fn take_network_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), ClientError> {
        let mut ring = self.network_keys()?;
        if ring.merge(keys) {
            self.store().put_record(records::network_keys_key(), &ring);
            tracing::info!(keys = ring.keys.len(), "network keys received");
        }
        Ok(())
    }

    /// After this device's commit changed the network channel's members
    /// from `before` to `after` (device keys): posts the keys, with a
    /// fresh one first if anyone left (or none is held yet).
    pub(super) fn hand_out_network_keys(
        &mut self,
        group_id: &GroupId,
        before: &BTreeSet<Vec<u8>>,
        after: &BTreeSet<Vec<u8>>,
    ) -> Result<(), ClientError> {
        if before == after {
            return Ok(());
        }
        let mut ring = self.network_keys()?;
        if ring.current().is_none() || !before.is_subset(after) {
            ring.merge(&[NetworkKeyRing::generate_key().to_vec()]);
            self.store().put_record(records::network_keys_key(), &ring);
        }
        self.stage_intent(super::intents::network_keys_intent(group_id, &ring.keys))?;
        self.outbox_dirty = true;
        Ok(())
    }

    /// Makes sure this device holds a network key (the creator of the
    /// channel, before anyone else is in it).
    pub(super) fn ensure_network_key(&mut self) -> Result<(), ClientError> {
        let mut ring = self.network_keys()?;
        if ring.current().is_none() {
            ring.merge(&[NetworkKeyRing::generate_key().to_vec()]);
            self.store().put_record(records::network_keys_key(), &ring);
        }
        Ok(())
    }

    /// Staff: adds to the network channel every user the directory holds,
    /// verified and not suspended, who is not in it (at most
    /// [`ADD_BATCH`] at a time), unless an add is already queued.
    pub(super) fn complete_network_channel(&mut self) -> Result<(), ClientError> {
        match self.network_channel()? {
            Some(channel) => self.add_missing_to_network_channel(&channel),
            None => Ok(()),
        }
    }

    /// Staff: queues the add of up to [`ADD_BATCH`] directory users who
    /// are not among `channel`'s members (as this device sees them now).
    pub(super) fn add_missing_to_network_channel(
        &mut self,
        channel: &GroupRecord,
    ) -> Result<(), ClientError> {
        if Role::from_wire(self.shared.identity.role) != Role::Staff {
            return Ok(());
        }
        let group_id = channel.group()?;
        if self
            .queued_intent(&group_id, |k| matches!(k, IntentKind::Add(_)))?
            .is_some()
        {
            return Ok(());
        }
        let members: BTreeSet<&str> = channel.members.iter().map(|m| m.user_id.as_str()).collect();
        let revocations = self.mls.anchor().revocations().clone();
        let missing: Vec<String> = self
            .store()
            .scan::<DirectoryRecord>(&records::directory_prefix())
            .filter_map(Result::ok)
            .map(|(_, record)| record.user_id)
            .filter(|user| !members.contains(user.as_str()) && !revocations.covers(user, &[]))
            .take(ADD_BATCH)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(users = missing.len(), "adding users to the network channel");
        self.stage_intent(crate::store::records::IntentRecord {
            group_id: group_id.to_vec(),
            kind: Some(IntentKind::Add(records::MembersIntent {
                user_ids: missing,
            })),
            ..Default::default()
        })?;
        self.outbox_dirty = true;
        Ok(())
    }

    /// Whether `group_id` is this organisation's network channel.
    pub(super) fn is_network_channel(&self, group_id: &GroupId) -> bool {
        *group_id == network_channel_id(&self.mls.anchor().authority_key())
    }

    /// The network channel, if this device is an active member of it.
    pub(super) fn network_channel(&self) -> Result<Option<GroupRecord>, ClientError> {
        let group_id = network_channel_id(&self.mls.anchor().authority_key());
        let record: Option<GroupRecord> =
            self.store().get_record(&records::group_key(&group_id))?;
        Ok(record
            .filter(|r| r.kind == WireKind::Network as i32 && r.active && r.stalled.is_empty()))
    }
}
