//! Managing a group from outside it, and committing what its managers
//! propose.
//!
//! A manager (staff who created a cohort and left it) cannot commit: it
//! sends external proposals and waits until a member has committed them.
//! Its intent states the goal ("carol is in the cohort, dave is not"), reads
//! the group's current tree from the relay's GroupInfo each time, and
//! proposes again whenever the group moved to a new epoch without the
//! change (proposals only live for the epoch they were made in).
//!
//! A member that keeps a checked proposal queues a `CommitProposals` intent,
//! which runs before the group's other intents: openmls refuses to encrypt
//! while proposals are pending, and the manager is waiting. Every online
//! member races to commit; the relay accepts one, and the others find the
//! proposals gone once they process it.

use bytes::Bytes;
use convene_proto::relay::{
    request, response, ErrorCode, GetGroup, GroupState, MessageKind, SendMessage,
};

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::{load_group, Engine};
use crate::error::{ClientError, GaveUp};
use crate::events::Event;
use crate::store::records::{
    self, CommitProposalsIntent, IntentKind, IntentRecord, ManageIntent, MemberEntry,
};
use crate::transport::TransportError;
use crate::types::GroupId;

/// How often a manager looks whether its proposals were committed.
const MANAGE_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Polls after which a manager stops waiting for a GroupInfo that matches
/// the relay's epoch (a committer that left none).
const MAX_STALE_READS: u32 = 120;

impl Engine {
    /// One attempt at a manager's change.
    pub(super) async fn step_manage(
        &mut self,
        mut intent: IntentRecord,
        mut manage: ManageIntent,
    ) -> Attempt {
        let group_id = intent.group()?;
        if manage.remove_users.iter().any(|u| u == self.mls.user_id()) {
            self.stop_reading(&group_id)?;
        }
        let state = self.group_state(&group_id).await?;
        if state.group_info.is_empty() {
            return Err(Step::Failed(ClientError::GaveUp(GaveUp::NotManaged)));
        }
        let view = self
            .mls
            .read_group_info(&group_id, &state.group_info)
            .map_err(ClientError::from)?;
        if view.epoch != state.epoch {
            // The newest commit left no GroupInfo (yet): a tree from an
            // older epoch would make proposals nobody accepts.
            intent.attempts += 1;
            if intent.attempts > MAX_STALE_READS {
                return Err(Step::Failed(ClientError::GaveUp(GaveUp::GroupInfoStale)));
            }
            return self.save_manage(intent, manage, MANAGE_POLL);
        }
        self.mirror_members(&group_id, &view);
        let (to_add, to_remove) = changes_left(&manage, &view);
        if to_add.is_empty() && to_remove.is_empty() {
            return self.drop_intent(&intent);
        }
        if manage.proposed_for == view.epoch + 1 {
            return Ok(Step::RetryAfter(MANAGE_POLL));
        }
        let key_packages = if to_add.is_empty() {
            Vec::new()
        } else {
            let claimed = self.claim(&group_id, to_add.clone(), Vec::new()).await?;
            if let Some(user) = to_add
                .iter()
                .find(|u| !claimed.iter().any(|(owner, _, _)| owner == *u))
            {
                return Err(Step::Failed(ClientError::NoDeviceToAdd {
                    users: vec![user.clone()],
                }));
            }
            claimed.into_iter().map(|(_, _, kp)| kp).collect()
        };
        let proposals = view.proposals(&group_id, self.mls.key(), key_packages, &to_remove)?;
        self.send_proposals(&group_id, proposals).await?;
        tracing::debug!(epoch = view.epoch, "proposed a managed change");
        manage.proposed_for = view.epoch + 1;
        self.save_manage(intent, manage, MANAGE_POLL)
    }

    fn save_manage(
        &mut self,
        mut intent: IntentRecord,
        manage: ManageIntent,
        wait: std::time::Duration,
    ) -> Attempt {
        intent.kind = Some(IntentKind::Manage(manage));
        self.store()
            .put_record(records::intent_key(intent.id), &intent);
        self.store().commit_durably()?;
        Ok(Step::RetryAfter(wait))
    }

    /// Sends a manager's proposals as the group's external sender; stops
    /// early when a commit moved the group on since the GroupInfo was read
    /// (they are made again for the new epoch).
    pub(super) async fn send_proposals(
        &mut self,
        group_id: &GroupId,
        proposals: Vec<Vec<u8>>,
    ) -> Attempt {
        for payload in proposals {
            let send = request::Kind::SendMessage(SendMessage {
                group_id: Bytes::from(group_id.to_vec()),
                kind: MessageKind::Proposal as i32,
                submission_id: Bytes::copy_from_slice(&crate::random_bytes::<16>()),
                payload: Bytes::from(payload),
            });
            match self.request(send).await {
                Ok(response::Result::MessageAccepted(_)) => {}
                Ok(_) => return Err(Step::Failed(ClientError::unexpected_response())),
                Err(TransportError::Refused(r)) if r.code == ErrorCode::StaleEpoch => {
                    return Err(Step::RetryAfter(MANAGE_POLL))
                }
                Err(TransportError::Refused(r)) => {
                    return Err(Step::Failed(ClientError::Refused(r)))
                }
                Err(_) => return Err(Step::Offline),
            }
        }
        Ok(Step::Done)
    }

    async fn group_state(&mut self, group_id: &GroupId) -> Result<GroupState, Step> {
        let get = request::Kind::GetGroup(GetGroup {
            group_id: Bytes::from(group_id.to_vec()),
        });
        match self.request(get).await {
            Ok(response::Result::GroupState(state)) => Ok(state),
            Ok(_) => Err(Step::Failed(ClientError::unexpected_response())),
            Err(TransportError::Refused(r)) => Err(Step::Failed(ClientError::Refused(r))),
            Err(_) => Err(Step::Offline),
        }
    }

    /// Leaves the group's cryptographic state behind for good, keeping
    /// only what a manager needs: from here this device cannot read it.
    fn stop_reading(&mut self, group_id: &GroupId) -> Result<(), ClientError> {
        let mut record = self
            .group_record(group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))?;
        if record.managing {
            return Ok(());
        }
        if let Some(group) = load_group(&mut self.groups, &self.mls, group_id)? {
            self.mls.ops().delete(group)?;
        }
        self.groups.remove(group_id);
        record.active = false;
        record.managing = true;
        self.store()
            .put_record(records::group_key(group_id), &record);
        self.store().commit_durably()?;
        self.emit(Event::RemovedFromGroup {
            group: group_id.clone(),
        });
        Ok(())
    }

    /// Keeps a managed group's member list as the checked GroupInfo shows
    /// it, so that the manager sees who is in the group.
    fn mirror_members(&mut self, group_id: &GroupId, view: &crate::mls::managed::ManagedView) {
        let Ok(Some(mut record)) = self.group_record(group_id) else {
            return;
        };
        if !record.managing {
            return;
        }
        let before: Vec<String> = record.members.iter().map(|m| m.user_id.clone()).collect();
        record.epoch = view.epoch;
        record.members = view
            .members
            .iter()
            .map(|(_, m)| MemberEntry {
                user_id: m.user_id.clone(),
                device: m.device.to_vec(),
                ..Default::default()
            })
            .collect();
        let after: Vec<String> = record.members.iter().map(|m| m.user_id.clone()).collect();
        self.store()
            .put_record(records::group_key(group_id), &record);
        if self.store().commit().is_ok() {
            // Seen in the GroupInfo, which does not say who proposed it.
            if let Some(event) = super::commit::members_changed(group_id, None, &before, &after) {
                self.emit(event);
            }
        }
    }

    /// One attempt at committing the proposals pending in a group.
    pub(super) async fn step_commit_proposals(&mut self, intent: IntentRecord) -> Attempt {
        if intent.pending_commit.is_empty() {
            let pending = match load_group(&mut self.groups, &self.mls, &intent.group()?) {
                Ok(Some(group)) if crate::mls::own_removal_pending(group) => false,
                Ok(Some(group)) => group.pending_proposals().next().is_some(),
                Ok(None) => false,
                Err(err) => return Err(err.into()),
            };
            if !pending {
                return self.drop_intent(&intent);
            }
        }
        self.commit_step(intent, Change::Proposals).await
    }

    /// Queues a `CommitProposals` intent for each group that received a
    /// proposal and has none yet.
    pub(super) fn queue_proposal_commits(&mut self) {
        if self.proposals_arrived.is_empty() {
            return;
        }
        let queued: Vec<GroupId> = match self
            .store()
            .scan::<IntentRecord>(&records::outbox_prefix())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(intents) => intents
                .into_iter()
                .filter(|(_, i)| matches!(i.kind, Some(IntentKind::CommitProposals(_))))
                .filter_map(|(_, i)| i.group().ok())
                .collect(),
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot read the outbox"
                );
                return;
            }
        };
        for group_id in std::mem::take(&mut self.proposals_arrived) {
            if queued.contains(&group_id) {
                continue;
            }
            if let Ok(Some(group)) = load_group(&mut self.groups, &self.mls, &group_id) {
                if crate::mls::own_removal_pending(group) {
                    continue;
                }
            }
            let intent = IntentRecord {
                group_id: group_id.to_vec(),
                kind: Some(IntentKind::CommitProposals(CommitProposalsIntent::default())),
                ..Default::default()
            };
            if let Err(err) = self.persist_intent(intent) {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot queue a commit of proposals"
                );
                self.proposals_arrived.insert(group_id);
                return;
            }
        }
        self.outbox_dirty = true;
    }
}

/// What a manager's change still has to do in the group as its GroupInfo
/// shows it: the users to add who are not members, and the member devices
/// to remove (of users to remove, devices named, or revoked ones).
fn changes_left(
    manage: &ManageIntent,
    view: &crate::mls::managed::ManagedView,
) -> (Vec<String>, Vec<convene_proto::ids::DevicePublicKey>) {
    let present = |user: &String| view.members.iter().any(|(_, m)| &m.user_id == user);
    let to_add = manage
        .add_users
        .iter()
        .filter(|u| !present(u))
        .cloned()
        .collect();
    let to_remove = view
        .members
        .iter()
        .filter(|(_, m)| {
            manage.remove_users.contains(&m.user_id)
                || manage
                    .remove_devices
                    .iter()
                    .any(|d| d.as_slice() == m.device)
                || (manage.remove_revoked && view.revoked.contains(&m.device))
        })
        .map(|(_, m)| m.device)
        .collect();
    (to_add, to_remove)
}
