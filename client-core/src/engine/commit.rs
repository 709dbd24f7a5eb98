//! Membership changes: building a commit, submitting it with its routing
//! change, and applying the relay's verdict.
//!
//! A commit is built once and stored with its intent (and openmls's pending
//! state) before it is submitted, so a commit whose response was lost is
//! resubmitted byte for byte and the relay answers with the first outcome.
//! This device learns that its commit won from the relay (the response, or
//! the receipt in its stream after a reconnect), never by guessing. A
//! refused commit is discarded, the newer commits are processed, and the
//! intent is built again on the new epoch.

use bytes::Bytes;
use convene_proto::ids::DevicePublicKey;
use convene_proto::relay::{request, response, ClaimKeyPackages, ErrorCode, SubmitCommit};
use prost::Message as _;

use super::change::commit_for;
pub(super) use super::change::Change;
use super::intents::{Attempt, Step};
use super::snapshot::Snapshot;
use super::{load_group, Completed, Engine};
use crate::error::{ClientError, GaveUp};
use crate::events::Event;
use crate::mls::{CommitBundle, MlsError};
use crate::store::records::{self, GroupRecord, IntentKind, IntentRecord};
use crate::transport::TransportError;
use crate::types::{GroupId, GroupSummary};

/// A conflicting commit is retried at most this many times.
const MAX_COMMIT_ATTEMPTS: u32 = 20;

/// The `MembersChanged` event between two member lists (a user id per
/// device), if a user came or went: a leaf renewed, or a device replaced,
/// changes nobody.
pub(super) fn members_changed(
    group_id: &GroupId,
    by: Option<String>,
    before: &[String],
    after: &[String],
) -> Option<Event> {
    let missing_from = |list: &[String], other: &[String]| {
        let mut users: Vec<String> = list
            .iter()
            .filter(|u| !other.contains(u))
            .cloned()
            .collect();
        users.sort();
        users.dedup();
        users
    };
    membership_event(
        group_id,
        by,
        missing_from(after, before),
        missing_from(before, after),
    )
}

/// Who a commit of this device's acted for: its own user for a change it
/// asked for, the proposer of the proposals it committed, or no-one known.
fn acting_for(intent: &IntentRecord, own_user: &str) -> Option<String> {
    match &intent.kind {
        Some(IntentKind::Add(_) | IntentKind::Remove(_)) => Some(own_user.to_string()),
        Some(IntentKind::CommitProposals(proposals)) if !proposals.proposed_by.is_empty() => {
            Some(proposals.proposed_by.clone())
        }
        _ => None,
    }
}

/// `MembersChanged` for these users, unless there are none.
pub(super) fn membership_event(
    group_id: &GroupId,
    by: Option<String>,
    added: Vec<String>,
    removed: Vec<String>,
) -> Option<Event> {
    (!added.is_empty() || !removed.is_empty()).then(|| Event::MembersChanged {
        group: group_id.clone(),
        added,
        removed,
        by,
    })
}

impl Engine {
    /// One attempt at a membership change.
    pub(super) async fn commit_step(
        &mut self,
        mut intent: IntentRecord,
        change: Change,
    ) -> Attempt {
        let submit = if intent.pending_commit.is_empty() {
            self.build_commit(&mut intent, change).await?
        } else {
            match SubmitCommit::decode(intent.pending_commit.as_slice()) {
                Ok(submit) => submit,
                Err(_) => {
                    return Err(Step::Failed(ClientError::DamagedState(
                        "a damaged pending commit",
                    )))
                }
            }
        };
        let epoch = submit.epoch;
        match self.request(request::Kind::SubmitCommit(submit)).await {
            Ok(response::Result::CommitAccepted(_)) => {
                let group_id = intent.group()?;
                let mut record = match self.group_record(&group_id) {
                    Ok(Some(record)) => record,
                    Ok(None) => {
                        return Err(Step::Failed(ClientError::UnknownGroup(
                            group_id.to_string(),
                        )))
                    }
                    Err(err) => return Err(err.into()),
                };
                match self.complete_commit(intent.clone(), &mut record) {
                    Ok(()) => {}
                    Err(ClientError::LostCommit) => return self.lost_commit(intent, record),
                    Err(err) => return Err(err.into()),
                }
                self.store()
                    .put_record(records::group_key(&group_id), &record);
                self.store().commit_durably()?;
                Ok(Step::Done)
            }
            Ok(_) => Err(Step::Failed(ClientError::Transport(
                TransportError::Protocol("unexpected response to a commit".into()),
            ))),
            Err(TransportError::Refused(refusal)) if refusal.code == ErrorCode::StaleEpoch => {
                // Another member's commit won this epoch. Ours is void: drop
                // it, and build again once their commit is processed.
                tracing::debug!(
                    epoch,
                    current = refusal.current_epoch,
                    "commit lost a race; retrying"
                );
                self.discard_commit(&mut intent)?;
                if intent.attempts >= MAX_COMMIT_ATTEMPTS {
                    return Err(Step::Failed(ClientError::GaveUp(GaveUp::TooManyConflicts)));
                }
                let group_id = intent.group()?;
                // Unless the relay holds the commits in between, this
                // device cannot follow the group any more (as for a stale
                // message).
                if refusal.current_epoch > epoch {
                    self.check_behind(&group_id).await?;
                }
                self.awaiting_epoch.insert(group_id, refusal.current_epoch);
                Ok(Step::Retry)
            }
            // The relay may have stored the commit before it failed: its
            // fate is unknown, so the very same submission goes again until
            // the relay gives a definite answer (the first outcome, if it
            // was stored).
            Err(TransportError::Refused(refusal)) if super::intents::outcome_unknown(&refusal) => {
                tracing::debug!(code = ?refusal.code, "a commit's outcome is unknown; resubmitting");
                Ok(Step::RetryAfter(super::intents::retry_delay(&refusal)))
            }
            Err(TransportError::Refused(refusal)) => {
                self.discard_commit(&mut intent)?;
                if refusal.code == ErrorCode::NotAMember {
                    Err(Step::Failed(ClientError::NotAMember))
                } else {
                    Err(Step::Failed(ClientError::Refused(refusal)))
                }
            }
            Err(_) => Ok(Step::Offline),
        }
    }

    /// Builds the commit for `change` on the group's current epoch and
    /// stores it, with openmls's pending state, before anything is sent.
    async fn build_commit(
        &mut self,
        intent: &mut IntentRecord,
        change: Change,
    ) -> Result<SubmitCommit, Step> {
        let group_id = intent.group()?;
        // Every member would refuse a commit signed under a certificate not
        // valid now, and be left behind by it.
        self.own_chain_valid().map_err(Step::Failed)?;
        let key_packages = match &change {
            Change::Add(users) => Some(self.claim_key_packages(&group_id, users).await?),
            Change::AddDevices(devices) => Some(self.claim_own_devices(intent, devices).await?),
            Change::Readd(device, user, key_package) => Some(vec![self
                .mls
                .ops()
                .parse_key_package(key_package, user, device)
                .map_err(|err| Step::Failed(err.into()))?]),
            Change::Remove(_) | Change::Proposals | Change::Update | Change::NetworkChat(_) => None,
        };
        let bundle: Result<(u64, CommitBundle), MlsError> = {
            let group = match load_group(&mut self.groups, &self.mls, &group_id) {
                Ok(Some(group)) => group,
                Ok(None) => {
                    return Err(Step::Failed(ClientError::UnknownGroup(
                        group_id.to_string(),
                    )))
                }
                Err(err) => return Err(err.into()),
            };
            let epoch = group.epoch().as_u64();
            if let Some(IntentKind::CommitProposals(proposals)) = &mut intent.kind {
                proposals.proposed_by = self.mls.ops().pending_proposer(group).unwrap_or_default();
            }
            commit_for(&self.mls.ops(), group, &change, key_packages).map(|bundle| (epoch, bundle))
        };
        let (epoch, bundle) = match bundle {
            Ok(bundle) => bundle,
            Err(err) => {
                self.store().rollback();
                self.groups.remove(&group_id);
                return Err(err.into());
            }
        };
        let device_list = |list: &[crate::mls::MemberDevice]| {
            list.iter()
                .map(|m| Bytes::copy_from_slice(m.device.as_bytes()))
                .collect()
        };
        let submit = SubmitCommit {
            group_id: Bytes::from(group_id.clone()),
            epoch,
            submission_id: Bytes::copy_from_slice(&crate::random_bytes::<16>()),
            commit: Bytes::from(bundle.commit),
            welcome: Bytes::from(bundle.welcome),
            ratchet_tree: Bytes::new(),
            group_info: Bytes::from(bundle.group_info),
            added_devices: device_list(&bundle.added),
            removed_devices: device_list(&bundle.removed),
        };
        intent.pending_commit = submit.encode_to_vec();
        self.store()
            .put_record(records::intent_key(intent.id), &*intent);
        if let Err(err) = self.store().commit_durably() {
            self.store().rollback();
            self.groups.remove(&group_id);
            return Err(err.into());
        }
        Ok(submit)
    }

    /// Claims and checks one KeyPackage per device of `users`, and of this
    /// user's other devices not yet in the group, which come along.
    async fn claim_key_packages(
        &mut self,
        group_id: &GroupId,
        users: &[String],
    ) -> Result<Vec<openmls::prelude::KeyPackage>, Step> {
        let own = self.mls.user_id().to_string();
        let mut claim_users = users.to_vec();
        claim_users.push(own.clone());
        let in_group = self.member_devices(group_id).map_err(Step::Failed)?;
        let claimed = self.claim(group_id, claim_users, Vec::new()).await?;
        // Own devices only come along: with no device of the users asked
        // for, the change fails rather than adding them alone.
        let any_asked = claimed.iter().any(|(user, _, _)| users.contains(user));
        let key_packages: Vec<_> = claimed
            .into_iter()
            .filter(|(user, device, _)| {
                users.contains(user) || (*user == own && !in_group.contains(device))
            })
            .map(|(_, _, key_package)| key_package)
            .collect();
        if !any_asked {
            return Err(Step::Failed(ClientError::NoDeviceToAdd {
                users: users.to_vec(),
            }));
        }
        Ok(key_packages)
    }

    /// Whether this device's own chain is valid now (by its clock).
    pub(super) fn own_chain_valid(&self) -> Result<(), ClientError> {
        let anchor = self.mls.anchor();
        anchor
            .verify(self.mls.chain(), self.mls.key().public().as_bytes(), anchor.now_ms())
            .map(|_| ())
            .map_err(|err| {
                ClientError::Untrusted(format!(
                    "this device's own certificate: {err}; it makes no change to a group until it is valid"
                ))
            })
    }

    /// The devices in a group, as this device last saw it.
    pub(super) fn member_devices(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<DevicePublicKey>, ClientError> {
        let record = self
            .group_record(group_id)?
            .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))?;
        Ok(record
            .members
            .iter()
            .filter_map(|m| DevicePublicKey::try_from(m.device.as_slice()).ok())
            .collect())
    }

    /// Claims and checks KeyPackages: every device of `users`, and
    /// `devices`. Returns what verified, with whose device it is; the
    /// others are reported and left out.
    pub(super) async fn claim(
        &mut self,
        group_id: &GroupId,
        users: Vec<String>,
        devices: Vec<DevicePublicKey>,
    ) -> Result<Vec<(String, DevicePublicKey, openmls::prelude::KeyPackage)>, Step> {
        let asked_users = users.clone();
        let claim = request::Kind::ClaimKeyPackages(ClaimKeyPackages {
            user_ids: users,
            device_keys: devices
                .iter()
                .map(|d| Bytes::copy_from_slice(d.as_bytes()))
                .collect(),
        });
        let claimed = match self.request(claim).await {
            Ok(response::Result::ClaimedKeyPackages(claimed)) => claimed,
            Ok(_) => {
                return Err(Step::Failed(ClientError::Transport(
                    TransportError::Protocol("unexpected response to a claim".into()),
                )))
            }
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotFound => {
                return Err(Step::Failed(ClientError::UnknownUser(
                    asked_users.join(", "),
                )));
            }
            Err(TransportError::Refused(r)) => return Err(Step::Failed(ClientError::Refused(r))),
            Err(_) => return Err(Step::Offline),
        };
        let mut key_packages = Vec::new();
        for claimed in claimed.key_packages {
            let Ok(device) = DevicePublicKey::try_from(claimed.device_key.as_ref()) else {
                continue;
            };
            // The relay may only hand out what it was asked for.
            if !asked_users.contains(&claimed.user_id) && !devices.contains(&device) {
                continue;
            }
            match self
                .mls
                .ops()
                .parse_key_package(&claimed.key_package, &claimed.user_id, &device)
            {
                Ok(key_package) => {
                    key_packages.push((claimed.user_id.clone(), device, key_package))
                }
                Err(err) => {
                    tracing::warn!(error = &err as &dyn std::error::Error, user = %claimed.user_id, "refused a KeyPackage");
                    self.emit(super::sync::refusal_event(
                        group_id,
                        &err,
                        &format!("a device of {} was not added", claimed.user_id),
                    ));
                }
            }
        }
        Ok(key_packages)
    }

    /// The relay accepted this device's commit, which the device no longer
    /// holds: it cannot follow the group until it is re-added. The intent
    /// waits, and looks again at what is left to do once it is back.
    fn lost_commit(&mut self, mut intent: IntentRecord, mut record: GroupRecord) -> Attempt {
        self.store().rollback();
        self.groups.remove(&intent.group()?);
        intent.pending_commit.clear();
        self.store()
            .put_record(records::intent_key(intent.id), &intent);
        let stalled = self
            .stall(&mut record, &ClientError::LostCommit.to_string())
            .and_then(|()| {
                self.store()
                    .put_record(records::group_key(&record.group()?), &record);
                Ok(self.store().commit_durably()?)
            });
        stalled?;
        Ok(Step::Wait)
    }

    /// Drops this device's pending commit after the relay refused it, and
    /// counts the attempt (in one durable write).
    fn discard_commit(&mut self, intent: &mut IntentRecord) -> Result<(), ClientError> {
        if let Some(group) = load_group(&mut self.groups, &self.mls, &intent.group()?)? {
            if group.pending_commit().is_some() {
                self.mls.ops().clear_pending(group)?;
            }
        }
        intent.pending_commit.clear();
        intent.attempts += 1;
        self.store()
            .put_record(records::intent_key(intent.id), &*intent);
        self.store().commit_durably()?;
        Ok(())
    }

    /// Applies this device's accepted commit to the group and `record`, and
    /// retires its intent, in the open operation. Used both when the relay's
    /// response arrives and when only its receipt does.
    pub(super) fn complete_commit(
        &mut self,
        intent: IntentRecord,
        record: &mut GroupRecord,
    ) -> Result<(), ClientError> {
        let group_id = intent.group()?;
        let before: Vec<String> = record.members.iter().map(|m| m.user_id.clone()).collect();
        let devices_before: std::collections::BTreeSet<Vec<u8>> =
            record.members.iter().map(|m| m.device.clone()).collect();
        let identities = {
            let group = load_group(&mut self.groups, &self.mls, &group_id)?
                .ok_or_else(|| ClientError::UnknownGroup(group_id.to_string()))?;
            if group.pending_commit().is_none() {
                // The relay accepted a commit this device no longer holds: it
                // cannot follow the group from here.
                return Err(ClientError::LostCommit);
            }
            self.mls.ops().merge_pending(group)?;
            Snapshot::of(group, self.mls.anchor()).apply(record);
            crate::mls::member_identities(group)
        };
        self.note_identities(&group_id, &identities);
        // Every commit of this device but one that only carries others'
        // proposals renews its leaf (an update path).
        if !matches!(intent.kind, Some(IntentKind::CommitProposals(_))) {
            record.leaf_renewed_at_ms = crate::now_ms();
        }
        if let Some(IntentKind::Readd(readd)) = &intent.kind {
            let device = <[u8; 32]>::try_from(readd.device_key.as_slice()).ok();
            let mark = device
                .and_then(|device| {
                    self.mls
                        .ops()
                        .parse_key_package(&readd.key_package, &readd.user_id, &device)
                        .ok()
                })
                .and_then(|key_package| crate::mls::Rejoined::of(&key_package));
            if let Some(mark) = mark {
                record.note_rejoined(mark.device.as_bytes(), mark.not_after, &mark.init_key);
            }
        }
        self.store().delete(records::intent_key(intent.id));
        let after: Vec<String> = record.members.iter().map(|m| m.user_id.clone()).collect();
        if self.is_network_channel(&group_id) {
            let devices_after = record.members.iter().map(|m| m.device.clone()).collect();
            let readded = matches!(intent.kind, Some(IntentKind::Readd(_)));
            let newcomers = after.iter().any(|user| !before.contains(user));
            self.hand_out_network_keys(
                &group_id,
                record.epoch,
                (&devices_before, &devices_after),
                newcomers,
                readded,
            )?;
            // Staff: the next batch of users who are not in it yet.
            self.add_missing_to_network_channel(record)?;
        }
        if let Some(IntentKind::Create(_)) = intent.kind {
            let summary = GroupSummary::from_record(record, self.mls.user_id())?;
            self.emit(Event::GroupCreated(summary));
        } else if let Some(event) = members_changed(
            &group_id,
            acting_for(&intent, self.mls.user_id()),
            &before,
            &after,
        ) {
            self.emit(event);
        }
        self.awaiting_epoch.remove(&group_id);
        self.disproved_epochs.remove(&group_id);
        self.outbox_dirty = true;
        self.resolve(intent.id, Ok(Completed { message: None }));
        Ok(())
    }
}
