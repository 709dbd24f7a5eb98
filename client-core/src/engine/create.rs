//! Creating a group: registering it at the relay, creating it locally
//! (with, for a managed group, the key its GroupInfo is sealed to), and
//! adding its first members.

use bytes::Bytes;
use convene_proto::content::{GroupKind as WireKind, GroupMeta};
use convene_proto::relay::{request, response, CreateGroup, ErrorCode, GetGroup};
use prost::Message as _;

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::{Completed, Engine};
use crate::error::ClientError;
use crate::store::records::{self, CreateIntent, GroupRecord, IntentRecord};
use crate::transport::TransportError;
use crate::types::GroupId;

enum Registered {
    Ours,
    Theirs,
    Failed(Step),
}

impl Engine {
    pub(super) async fn step_create(
        &mut self,
        intent: IntentRecord,
        create: CreateIntent,
    ) -> Attempt {
        let group_id = intent.group()?;
        let Ok(meta) = GroupMeta::decode(create.meta.as_slice()) else {
            return Err(Step::Failed(ClientError::InvalidArgument(
                "damaged group metadata".into(),
            )));
        };
        let exists = match super::load_group(&mut self.groups, &self.mls, &group_id) {
            Ok(group) => group.is_some(),
            Err(err) => return Err(err.into()),
        };
        if !exists {
            match self.register_group(&group_id, &create).await {
                Registered::Ours => {}
                Registered::Theirs => {
                    // The other user opened this direct channel first: their
                    // Welcome will bring us in.
                    self.store()
                        .put(records::awaiting_key(&group_id), Vec::new());
                    self.store().delete(records::intent_key(intent.id));
                    self.store().commit_durably()?;
                    self.resolve(intent.id, Ok(Completed { message: None }));
                    return Ok(Step::Done);
                }
                Registered::Failed(step) => return Err(step),
            }
            if let Err(err) = self.create_locally(&group_id, &meta, &create) {
                self.store().rollback();
                self.groups.remove(&group_id);
                return Err(err.into());
            }
        }
        let missing = self.missing_users(&group_id, &create.members)?;
        if missing.is_empty() {
            return self.drop_intent(&intent);
        }
        self.commit_step(intent, Change::Add(missing)).await
    }

    /// Registers the group at the relay, telling apart "created now", "we
    /// created it before a crash" and "someone else did".
    async fn register_group(&mut self, group_id: &GroupId, create: &CreateIntent) -> Registered {
        let id = Bytes::from(group_id.to_vec());
        match self
            .request(request::Kind::CreateGroup(CreateGroup {
                group_id: id.clone(),
                direct_pair: direct_pair(self.mls.user_id(), &create.direct_peer),
            }))
            .await
        {
            Ok(_) => return Registered::Ours,
            Err(TransportError::Refused(r)) if r.code == ErrorCode::AlreadyExists => {}
            Err(TransportError::Refused(r)) => {
                return Registered::Failed(Step::Failed(ClientError::Refused(r)))
            }
            Err(_) => return Registered::Failed(Step::Offline),
        }
        let own = self.mls.key().public();
        let direct = !create.direct_peer.is_empty();
        match self
            .request(request::Kind::GetGroup(GetGroup { group_id: id }))
            .await
        {
            // Registered by this device before a crash: only it is in.
            Ok(response::Result::GroupState(state))
                if state.epoch == 0
                    && state.member_devices.len() == 1
                    && state.member_devices.iter().any(|d| d.as_ref() == own) =>
            {
                Registered::Ours
            }
            // The other user opened the channel first and already added
            // this device: its Welcome is on the way.
            Ok(response::Result::GroupState(_)) if direct => Registered::Theirs,
            Ok(_) => Registered::Failed(Step::Failed(ClientError::DamagedState(
                "this device lost its state of the group",
            ))),
            Err(TransportError::Refused(r)) if r.code == ErrorCode::NotAMember && direct => {
                Registered::Theirs
            }
            Err(TransportError::Refused(r)) => {
                Registered::Failed(Step::Failed(ClientError::Refused(r)))
            }
            Err(_) => Registered::Failed(Step::Offline),
        }
    }

    fn create_locally(
        &mut self,
        group_id: &GroupId,
        meta: &GroupMeta,
        create: &CreateIntent,
    ) -> Result<(), ClientError> {
        // Staff's cohorts are managed: their creator can change them from
        // outside once it leaves, reading the GroupInfo that committers seal
        // to a key only it holds.
        // Cohorts only: a committer seals the whole tree for the manager
        // with every commit, which a 1,200-member channel should not pay.
        let managed = meta.kind == WireKind::Cohort as i32;
        let mut meta = meta.clone();
        if managed {
            let key = crate::sealing::SealingKey::generate()
                .map_err(|_| ClientError::Crypto("cannot make a sealing key"))?;
            meta.manager_seal_key = Bytes::copy_from_slice(key.public());
            let mut record = records::ManagerKeyRecord {
                private: key.private().to_vec(),
                public: key.public().to_vec(),
            };
            self.store()
                .put_record(records::manager_key(group_id), &record);
            zeroize::Zeroize::zeroize(&mut record.private);
        }
        let meta = &meta;
        if self.is_network_channel(group_id) {
            // Its creator holds the first key, to seal its own profile
            // before anyone else is in it.
            self.ensure_network_key()?;
        }
        let group = self.mls.ops().create_group(group_id, meta, managed)?;
        let mut record = GroupRecord {
            group_id: group_id.to_vec(),
            kind: meta.kind,
            name: meta.name.clone(),
            meta: meta.encode_to_vec(),
            direct_pair: meta.direct_pair.clone(),
            active: true,
            joined_at_ms: crate::now_ms(),
            ..Default::default()
        };
        super::snapshot::Snapshot::of(&group, self.mls.anchor()).apply(&mut record);
        self.store()
            .put_record(records::group_key(group_id), &record);
        if meta.kind == WireKind::Direct as i32 && !create.direct_peer.is_empty() {
            self.store()
                .put(records::direct_key(&create.direct_peer), group_id.to_vec());
        }
        self.store().commit_durably()?;
        self.groups.insert(group_id.clone(), group);
        Ok(())
    }
}

/// The pair a direct channel is between, as the relay checks its id
/// against; empty for any other group.
fn direct_pair(own: &str, peer: &str) -> Vec<String> {
    if peer.is_empty() {
        return Vec::new();
    }
    let mut pair = vec![own.to_string(), peer.to_string()];
    pair.sort();
    pair
}
