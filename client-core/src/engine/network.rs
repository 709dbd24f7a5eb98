//! The network channel: the one MLS group of every leader and staff.
//! Its policy lives in its metadata and every member enforces it (see
//! `sync::store_received`); this module keeps its members in step with the
//! directory (staff devices add every verified leader who is not in it),
//! and hands out the network keys that seal profiles: the member whose
//! commit changed its membership posts them right after, with a fresh key
//! first when someone left, and staff devices post them after any
//! member's commit that adds (members take keys only from staff).

use std::collections::BTreeSet;

use convene_proto::content::GroupKind as WireKind;
use convene_proto::network::network_channel_id;

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::Engine;
use crate::directory::{NetworkKeyRing, KEY_ID_LEN};
use crate::error::ClientError;
use crate::mls::MemberDevice;
use crate::store::records::{
    self, DirectoryRecord, GroupRecord, IntentKind, IntentRecord, NetworkPolicyIntent,
};
use crate::types::{GroupId, Role};

/// Most users one automatic add brings into the network channel: a
/// cohort's worth, so that one commit and its Welcome stay small.
const ADD_BATCH: usize = 50;

/// How many changes of the chat setting the record keeps: more than the
/// past epochs whose messages can still be read.
const CHAT_HISTORY: usize = crate::mls::MAX_PAST_EPOCHS + 2;

/// Whether the network channel `record` let members other than staff post
/// ordinary text in `epoch`: a text is judged by the policy it was sent
/// under, so that every member judges it alike whenever it arrives.
pub(super) fn network_chat(record: &GroupRecord, epoch: u64) -> bool {
    record
        .chat_from
        .iter()
        .rev()
        .find(|change| change.epoch <= epoch)
        .map_or_else(|| record.chat_on(), |change| change.chat)
}

/// Notes in `record`, now at its epoch, the chat setting its GroupContext
/// gives, if it changed.
pub(super) fn note_chat_setting(record: &mut GroupRecord) {
    let chat = record.chat_on();
    if record
        .chat_from
        .last()
        .is_some_and(|last| last.chat == chat)
    {
        return;
    }
    record.chat_from.push(records::ChatFrom {
        epoch: record.epoch,
        chat,
    });
    let excess = record.chat_from.len().saturating_sub(CHAT_HISTORY);
    record.chat_from.drain(..excess);
}

impl Engine {
    /// Turns ordinary chat in the network channel on or off (staff; every
    /// member refuses the commit from anyone else), unless it is so
    /// already.
    pub(super) async fn step_network_policy(
        &mut self,
        intent: IntentRecord,
        policy: NetworkPolicyIntent,
    ) -> Attempt {
        let group_id = intent.group()?;
        let Some(record) = self.group_record(&group_id)? else {
            return Err(Step::Failed(ClientError::UnknownGroup(
                group_id.to_string(),
            )));
        };
        if !record.active || record.chat_on() == policy.chat {
            return self.drop_intent(&intent);
        }
        self.commit_step(intent, Change::NetworkChat(policy.chat))
            .await
    }

    /// The keys this device holds (in the open operation).
    pub(super) fn network_keys(&self) -> Result<NetworkKeyRing, ClientError> {
        Ok(self
            .store()
            .get_record(&records::network_keys_key())?
            .unwrap_or_default())
    }

    /// Takes up keys posted in the network channel by `sender` (of
    /// `role`), which is at `epoch`: only staff hand keys out, and a device
    /// takes its own user's (a device it linked holds nothing else yet).
    /// Anyone else's post is ignored (a member's client posts for its own
    /// user's new device). A key or removal epoch above the channel's
    /// epoch is refused: it would stay current for good.
    pub(super) fn take_network_keys(
        &mut self,
        sender: &str,
        role: Role,
        epoch: u64,
        posted: &NetworkKeyRing,
    ) -> Result<(), crate::mls::MlsError> {
        if role != Role::Staff && sender != self.mls.user_id() {
            return Ok(());
        }
        if !posted.fits_epoch(epoch) {
            return Err(crate::mls::MlsError::PolicyViolation(format!(
                "{sender} posted a network key from an epoch the channel has not reached"
            )));
        }
        let mut ring = self.network_keys().map_err(super::received::stored)?;
        let raised = posted.removal_epoch > ring.removal_epoch;
        ring.removal_epoch = ring.removal_epoch.max(posted.removal_epoch);
        let referenced = self
            .referenced_network_keys()
            .map_err(super::received::stored)?;
        if ring.merge_keeping(&posted.posted(), &referenced) || raised {
            self.store().put_record(records::network_keys_key(), &ring);
            tracing::info!(keys = ring.entries.len(), "network keys received");
        }
        Ok(())
    }

    /// After this device's commit changed the network channel's members
    /// from `before` to `after` (device keys), now at `epoch`: posts the
    /// keys so that new devices, and a device put back in its place
    /// (`readded`), hold them (a staff device first adds a fresh one if
    /// anyone left), and this device's open requests for `newcomers`
    /// (users who were not members before).
    pub(super) fn hand_out_network_keys(
        &mut self,
        group_id: &GroupId,
        epoch: u64,
        (before, after): (&BTreeSet<Vec<u8>>, &BTreeSet<Vec<u8>>),
        newcomers: bool,
        readded: bool,
    ) -> Result<(), ClientError> {
        if newcomers {
            self.repost_open_requests(group_id)?;
        }
        if before == after && !readded {
            return Ok(());
        }
        if !before.is_subset(after) {
            self.note_network_removal(epoch)?;
            if self.is_staff() {
                // The fresh key went out with the removal's notice.
                return Ok(());
            }
        }
        self.post_network_keys(group_id)
    }

    /// Another member's commit changed the network channel's members
    /// (`added` includes devices re-added in place): `newcomers` (users
    /// not members before) get this device's open requests; a staff device hands
    /// them, and any device put back in its place, the keys (they take
    /// keys only from staff, whoever committed); and a removal retires the
    /// keys the removed could hold.
    pub(super) fn network_members_changed(
        &mut self,
        channel: &GroupId,
        epoch: u64,
        newcomers: bool,
        added: &[MemberDevice],
        left: &[MemberDevice],
    ) -> Result<(), ClientError> {
        if newcomers {
            self.repost_open_requests(channel)?;
        }
        if !left.is_empty() {
            // A staff device posts the keys with its fresh one.
            return self.note_network_removal(epoch);
        }
        if !added.is_empty() && self.is_staff() {
            self.post_network_keys(channel)?;
        }
        Ok(())
    }

    /// The ids of the keys the profiles this device holds are sealed with.
    fn referenced_network_keys(&self) -> Result<BTreeSet<[u8; KEY_ID_LEN]>, ClientError> {
        let mut referenced = BTreeSet::new();
        for item in self
            .store()
            .scan::<DirectoryRecord>(&records::directory_prefix())
        {
            if let Ok(id) = item?.1.profile_key_id.as_slice().try_into() {
                referenced.insert(id);
            }
        }
        Ok(referenced)
    }

    /// Posts every network key this device holds in the channel, unless a
    /// post of them is already waiting to go (it carries every key but a
    /// fresh one after a removal, which is posted on its own).
    fn post_network_keys(&mut self, channel: &GroupId) -> Result<(), ClientError> {
        let ring = self.network_keys()?;
        if ring.entries.is_empty() {
            return Ok(());
        }
        let waiting = self.queued_intent(
            channel,
            |kind| matches!(kind, IntentKind::Send(s) if s.silent && s.request_id.is_empty()),
        )?;
        if waiting.is_some() {
            return Ok(());
        }
        self.stage_intent(super::intents::network_keys_intent(
            channel,
            &ring.posted(),
            ring.removal_epoch,
        ))?;
        self.outbox_dirty = true;
        Ok(())
    }

    /// Someone was removed from the network channel in `epoch`: nothing
    /// new is sealed with an older key, and a staff device makes a fresh
    /// one and posts the keys (several staff devices may each make one:
    /// every member orders them the same way, by epoch then id).
    pub(super) fn note_network_removal(&mut self, epoch: u64) -> Result<(), ClientError> {
        let mut ring = self.network_keys()?;
        ring.removal_epoch = ring.removal_epoch.max(epoch);
        let staff = self.is_staff();
        if staff {
            let referenced = self.referenced_network_keys()?;
            ring.merge_keeping(
                &[(NetworkKeyRing::generate_key().to_vec(), epoch)],
                &referenced,
            );
        }
        self.store().put_record(records::network_keys_key(), &ring);
        if let (true, Some(channel)) = (staff, self.network_channel()?) {
            let group_id = channel.group()?;
            self.stage_intent(super::intents::network_keys_intent(
                &group_id,
                &ring.posted(),
                ring.removal_epoch,
            ))?;
            self.outbox_dirty = true;
        }
        Ok(())
    }

    /// Makes sure this device holds a network key (the creator of the
    /// channel, before anyone else is in it).
    pub(super) fn ensure_network_key(&mut self) -> Result<(), ClientError> {
        let mut ring = self.network_keys()?;
        if ring.current().is_none() {
            ring.merge(&[(NetworkKeyRing::generate_key().to_vec(), 0)]);
            self.store().put_record(records::network_keys_key(), &ring);
        }
        Ok(())
    }

    fn is_staff(&self) -> bool {
        Role::from_wire(self.shared.identity.role) == Role::Staff
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
        if !self.is_staff() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use convene_proto::content::{GroupMeta, NetworkPolicy};
    use prost::Message as _;

    fn at(record: &mut GroupRecord, epoch: u64, chat: bool) {
        record.epoch = epoch;
        record.meta = GroupMeta {
            kind: WireKind::Network as i32,
            network_policy: Some(NetworkPolicy { chat }),
            ..Default::default()
        }
        .encode_to_vec();
        note_chat_setting(record);
    }

    /// A text is judged by the policy of the epoch it was sent in, so a
    /// relay that delivers it after the commit that turned chat off (or
    /// before the one that turned it on) changes nobody's verdict.
    #[test]
    fn a_text_is_judged_by_the_chat_setting_of_its_epoch() {
        let mut record = GroupRecord {
            kind: WireKind::Network as i32,
            ..Default::default()
        };
        at(&mut record, 3, false);
        at(&mut record, 4, false);
        at(&mut record, 5, true);
        at(&mut record, 8, false);
        let verdicts: Vec<bool> = (3..=9).map(|e| network_chat(&record, e)).collect();
        assert_eq!(verdicts, [false, false, true, true, true, false, false]);
        // Only as many changes are kept as epochs can still be read.
        for epoch in 10..40 {
            at(&mut record, epoch, epoch % 2 == 0);
        }
        assert_eq!(record.chat_from.len(), CHAT_HISTORY);
        assert!(network_chat(&record, 38));
        assert!(!network_chat(&record, 39));
    }
}
