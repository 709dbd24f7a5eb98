//! Answering a member device's request to be re-added (see `rejoin` for
//! the asking side).
//!
//! The member nearest the device in the tree answers first; the others wait
//! longer and answer only if nobody has, so a large group does not race
//! hundreds of commits for one device. A request is answered only with the
//! device's own KeyPackage made to rejoin this group at its current epoch
//! (see `mls::rejoins`), and never one older than the last re-add.

use convene_proto::ids::DevicePublicKey;
use std::time::Duration;

use convene_proto::relay::GroupMessage;
use openmls::prelude::tls_codec::Serialize as _;

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::{load_group, Engine};
use crate::error::ClientError;
use crate::mls::MlsError;
use crate::store::records::{self, GroupRecord, IntentKind, IntentRecord, ReaddIntent};
use crate::types::GroupId;

/// How much longer each further member waits before answering a request.
const ANSWER_STAGGER_MS: u64 = 300;
/// Members further than this in the tree wait no longer than this many
/// staggers.
const MAX_STAGGER_STEPS: u64 = 100;

impl Engine {
    /// A member device asked to be re-added (in the open operation): checks
    /// that it is a member and that its KeyPackage is its own and valid, and
    /// queues the re-add, later the further this device is from it.
    pub(super) fn on_rejoin_request(
        &mut self,
        group_id: &GroupId,
        record: &GroupRecord,
        message: &GroupMessage,
    ) {
        let device: Option<[u8; 32]> = message.sender_device.as_ref().try_into().ok();
        let member = device.and_then(|d| {
            record
                .members
                .iter()
                .position(|m| m.device.as_slice() == d)
                .map(|at| (d, at))
        });
        let Some((device, at)) = member else {
            tracing::debug!("a rejoin request from a device that is not a member; ignored");
            return;
        };
        let user_id = record.members[at].user_id.clone();
        if !self.rejoin_key_package_holds(group_id, record, &user_id, &device, &message.payload) {
            return;
        }
        if self.is_revoked(&user_id, &device) {
            tracing::debug!("a rejoin request from a revoked device; ignored");
            return;
        }
        let readd = ReaddIntent {
            device_key: device.to_vec(),
            user_id,
            key_package: message.payload.to_vec(),
            not_before_ms: crate::now_ms() + self.answer_delay_ms(record, at),
        };
        if let Err(err) = self.queue_readd(group_id, readd) {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "cannot queue a re-add"
            );
        }
        self.outbox_dirty = true;
    }

    /// Whether a rejoin request's KeyPackage is the member's own, made to
    /// rejoin this group, and newer than its last re-add; a refusal is told.
    fn rejoin_key_package_holds(
        &mut self,
        group_id: &GroupId,
        record: &GroupRecord,
        user_id: &str,
        device: &[u8; 32],
        key_package: &[u8],
    ) -> bool {
        let refused = match self
            .mls
            .ops()
            .parse_key_package(key_package, user_id, device)
        {
            // A request from before the device's last re-add, sent again
            // (by the relay, say): answering it would push the device out.
            Ok(key_package)
                if record.is_old_rejoin(
                    device,
                    key_package.life_time().not_after(),
                    key_package.hpke_init_key().as_slice(),
                ) =>
            {
                tracing::debug!("a request to be re-added older than the last re-add; ignored");
                return false;
            }
            Ok(key_package)
                if crate::mls::rejoin_target(&key_package)
                    .is_some_and(|target| target.group_id == record.group_id) =>
            {
                return true;
            }
            Ok(_) => {
                MlsError::PolicyViolation("its KeyPackage was not made to rejoin this group".into())
            }
            Err(err) => err,
        };
        self.emit(super::sync::refusal_event(
            group_id,
            &refused,
            &format!("a request from {user_id} to be re-added was refused"),
        ));
        false
    }

    /// How long this device waits before answering the member at `at`:
    /// the member next after the requester answers at once, each further
    /// one a stagger later, so that one re-add, not many, is committed.
    fn answer_delay_ms(&self, record: &GroupRecord, at: usize) -> u64 {
        let own = self.mls.key().public();
        let mine = record
            .members
            .iter()
            .position(|m| m.device.as_slice() == own)
            .unwrap_or(0);
        let n = record.members.len().max(1);
        let distance = ((mine + n - at) % n) as u64;
        distance.min(MAX_STAGGER_STEPS).saturating_sub(1) * ANSWER_STAGGER_MS
    }

    /// Queues `readd`, or updates the one queued for the same device.
    fn queue_readd(&mut self, group_id: &GroupId, readd: ReaddIntent) -> Result<(), ClientError> {
        let queued = self.queued_intent(
            group_id,
            |k| matches!(k, IntentKind::Readd(r) if r.device_key == readd.device_key),
        )?;
        match queued {
            // A commit for the older request is out: its fate decides.
            Some(intent) if !intent.pending_commit.is_empty() => Ok(()),
            // A newer request replaces an older one's KeyPackage, not its
            // turn: requests repeated faster than the turn comes must not
            // keep it from coming.
            Some(mut intent) => {
                let mut readd = readd;
                if let Some(IntentKind::Readd(older)) = &intent.kind {
                    readd.not_before_ms = readd.not_before_ms.min(older.not_before_ms);
                }
                intent.kind = Some(IntentKind::Readd(readd));
                self.store()
                    .put_record(records::intent_key(intent.id), &intent);
                Ok(())
            }
            None => self
                .stage_intent(IntentRecord {
                    group_id: group_id.to_vec(),
                    kind: Some(IntentKind::Readd(readd)),
                    ..Default::default()
                })
                .map(|_| ()),
        }
    }

    /// One attempt at re-adding a member device that asked for it.
    pub(super) async fn step_readd(&mut self, intent: IntentRecord, readd: ReaddIntent) -> Attempt {
        let now = crate::now_ms();
        if intent.pending_commit.is_empty() && now < readd.not_before_ms {
            // Waiting for its turn holds nothing else of the group back.
            return Ok(Step::Later(Duration::from_millis(
                readd.not_before_ms - now,
            )));
        }
        let Ok(device) = DevicePublicKey::try_from(readd.device_key.as_slice()) else {
            return self.drop_intent(&intent);
        };
        if intent.pending_commit.is_empty() {
            match self.already_readded(&intent.group()?, &device, &readd) {
                Ok(true) => return self.drop_intent(&intent),
                Ok(false) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.commit_step(
            intent,
            Change::Readd(device, readd.user_id, readd.key_package),
        )
        .await
    }

    /// Whether the device is gone from the group, or its leaf already is
    /// the one its request asked for (another member answered first).
    fn already_readded(
        &mut self,
        group_id: &GroupId,
        device: &[u8; 32],
        readd: &ReaddIntent,
    ) -> Result<bool, ClientError> {
        let requested =
            self.mls
                .ops()
                .parse_key_package(&readd.key_package, &readd.user_id, device)?;
        // The key serialised with its length prefix ends with the raw key.
        let wanted = requested
            .leaf_node()
            .encryption_key()
            .tls_serialize_detached()
            .map_err(|err| MlsError::Operation(crate::mls::OperationError::new(err)))?;
        let Some(group) = load_group(&mut self.groups, &self.mls, group_id)? else {
            return Ok(true);
        };
        Ok(
            match group
                .members()
                .find(|m| m.signature_key.as_slice() == device)
            {
                Some(member) => {
                    !member.encryption_key.is_empty() && wanted.ends_with(&member.encryption_key)
                }
                None => true,
            },
        )
    }
}
