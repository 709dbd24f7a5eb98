//! Keeping keys fresh (see [`crate::lifecycle`]): this device's leaf in
//! each group, renewed by update commits, and its KeyPackages on the relay,
//! topped up, rotated and, once unusable, forgotten.
//!
//! The checks run when the device has caught up and then on a timer while
//! it is online; an update is an intent like any other, so it waits for a
//! group this device cannot act in, and survives a restart.

use std::time::Duration;

use bytes::Bytes;
use convene_proto::relay::{request, UploadKeyPackages};
use sha2::{Digest, Sha256};

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::Engine;
use crate::error::ClientError;
use crate::store::records::{
    self, GroupRecord, IntentKind, IntentRecord, KeyPackageKey, KeyPackagesRecord, UpdateIntent,
};

/// One-time KeyPackages a device keeps on the relay.
const KEY_PACKAGE_TARGET: u32 = 30;
/// Below this, the device uploads more when it connects (the relay also
/// tells it when the stock runs low).
const KEY_PACKAGE_LOW: u32 = 10;
/// Top-ups of the stock within [`TOP_UP_WINDOW`] at most: a burst of
/// claims (staff making a term's cohorts) is met, while someone claiming
/// this device's KeyPackages as fast as it makes them is answered by the
/// last-resort KeyPackage in between, not by ever more keys.
const TOP_UPS_PER_WINDOW: usize = 10;
const TOP_UP_WINDOW: Duration = Duration::from_secs(60);
/// KeyPackage private keys kept at most (they go when they expire): past
/// this, the stock is not topped up until some expire.
const MAX_KEY_PACKAGE_KEYS: usize = 5_000;
/// The KeyPackage format this client makes. Format 1 (no record) lacked the
/// last-resort extension in its capabilities: such a stock is replaced.
pub(crate) const KEY_PACKAGE_FORMAT: u32 = 2;
/// How long a leaf renewal waits while this device's removal is proposed.
const UPDATE_WHILE_LEAVING: Duration = Duration::from_secs(60);
/// The checks run at least this often while online, and at most as often
/// as a quarter of the shortest interval they serve.
const MAX_TICK: Duration = Duration::from_secs(60);
const MIN_TICK: Duration = Duration::from_millis(200);

/// What one replenishment of the KeyPackage stock makes.
struct StockPlan {
    /// The whole stock is replaced (its one-time KeyPackages with it).
    rotate: bool,
    /// One-time KeyPackages to make.
    one_time: u32,
    /// Whether to make a last-resort KeyPackage too.
    last_resort: bool,
}

impl Engine {
    /// How often the lifecycle checks run.
    pub(super) fn lifecycle_tick(&self) -> Duration {
        let lifecycle = &self.shared.lifecycle;
        let shortest = lifecycle
            .update_interval
            .min(lifecycle.key_package_rotation)
            .min(lifecycle.certificate_check);
        (shortest / 4).clamp(MIN_TICK, MAX_TICK)
    }

    /// Runs what is due: KeyPackages rotated or forgotten, leaves renewed.
    pub(super) async fn run_lifecycle(&mut self) {
        if !self.relay.caught_up() {
            return;
        }
        // The stock's size is known only if a top-up waits; otherwise only
        // a rotation can be due.
        let (one_time, last_resort) = self.stock_low.take().unwrap_or((KEY_PACKAGE_TARGET, true));
        self.replenish_key_packages(one_time, last_resort).await;
        if let Err(err) = self.forget_expired_key_packages() {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "cannot forget expired KeyPackages"
            );
            self.store().rollback();
        }
        self.check_certificates().await;
        self.check_directory().await;
        if let Err(err) = self.queue_leaf_renewals() {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "cannot queue leaf renewals"
            );
            self.store().rollback();
        }
    }

    /// Tops up this device's KeyPackages on the relay, or replaces the
    /// whole stock when it is due for rotation. Their private keys are on
    /// disk before the relay can hand them out.
    pub(super) async fn replenish_key_packages(&mut self, one_time: u32, last_resort: bool) {
        let mut record = match self.key_packages_record() {
            Ok(record) => record,
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot read the KeyPackage record"
                );
                return;
            }
        };
        let now = crate::now_ms();
        let Some(plan) = self.plan_stock(&record, one_time, last_resort, now) else {
            return;
        };
        let Some(made) = self.make_key_packages(&mut record, &plan) else {
            return;
        };
        let upload = request::Kind::UploadKeyPackages(UploadKeyPackages {
            one_time: made.one_time.into_iter().map(Bytes::from).collect(),
            last_resort: made.last_resort.map(Bytes::from).unwrap_or_default(),
            replace_one_time: plan.rotate,
        });
        if let Err(err) = self.request(upload).await {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "KeyPackages not uploaded; will retry on the next connection"
            );
            return;
        }
        if plan.rotate {
            record.rotated_at_ms = now;
            record.format = KEY_PACKAGE_FORMAT;
            self.store()
                .put_record(records::key_packages_key(), &record);
            if let Err(err) = self.store().commit_durably() {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot record a KeyPackage rotation"
                );
            }
        }
    }

    /// What to make, given the relay's word on the stock (`one_time` left,
    /// a `last_resort` one or not): the whole stock anew when it is due for
    /// rotation, else a top-up, held back when the relay asks faster than
    /// a few times a window; `None` when nothing is to be made.
    fn plan_stock(
        &mut self,
        record: &KeyPackagesRecord,
        one_time: u32,
        last_resort: bool,
        now: u64,
    ) -> Option<StockPlan> {
        let rotate = record.format < KEY_PACKAGE_FORMAT
            || now.saturating_sub(record.rotated_at_ms)
                >= self.shared.lifecycle.key_package_rotation.as_millis() as u64;
        if !rotate && one_time >= KEY_PACKAGE_LOW && last_resort {
            return None;
        }
        while self
            .top_ups
            .front()
            .is_some_and(|at| at.elapsed() >= TOP_UP_WINDOW)
        {
            self.top_ups.pop_front();
        }
        let capped = record.keys.len() >= MAX_KEY_PACKAGE_KEYS;
        let held_back = !rotate && (self.top_ups.len() >= TOP_UPS_PER_WINDOW || capped);
        if held_back {
            // Topped up at the next lifecycle tick (a minute at most).
            self.stock_low = Some((one_time, last_resort));
        }
        // Held back, only a missing last-resort KeyPackage is made, and
        // only a few times a window: a relay that keeps saying it has none
        // gets no more.
        if held_back && (last_resort || capped || self.top_ups.len() >= 2 * TOP_UPS_PER_WINDOW) {
            tracing::debug!("KeyPackages claimed faster than they are topped up");
            return None;
        }
        if !rotate {
            self.top_ups.push_back(tokio::time::Instant::now());
        }
        let one_time = if rotate {
            KEY_PACKAGE_TARGET
        } else if held_back {
            0
        } else {
            KEY_PACKAGE_TARGET.saturating_sub(one_time)
        };
        Some(StockPlan {
            rotate,
            one_time,
            last_resort: rotate || !last_resort,
        })
    }

    /// Makes the planned KeyPackages and keeps their private keys, durably;
    /// `None` (logged) when that fails.
    fn make_key_packages(
        &mut self,
        record: &mut KeyPackagesRecord,
        plan: &StockPlan,
    ) -> Option<crate::mls::MadeKeyPackages> {
        let made = self.mls.ops().key_packages_for(
            plan.one_time as usize,
            plan.last_resort,
            self.shared.lifecycle.key_package_lifetime,
        );
        let made = match made {
            Ok(made) => made,
            Err(err) => {
                self.store().rollback();
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot make KeyPackages"
                );
                return None;
            }
        };
        record
            .keys
            .extend(made.keys.iter().map(|key| KeyPackageKey {
                hash_ref: key.hash_ref.clone(),
                expires_at_ms: key.expires_at_ms,
            }));
        self.store().put_record(records::key_packages_key(), record);
        if let Err(err) = self.store().commit_durably() {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "cannot store KeyPackages"
            );
            return None;
        }
        Some(made)
    }

    /// Records KeyPackages made outside the stock (to rejoin a group), so
    /// that their private keys are forgotten once they expire (in the open
    /// operation).
    pub(super) fn remember_key_packages(
        &mut self,
        keys: Vec<crate::mls::MadeKey>,
    ) -> Result<(), ClientError> {
        let mut record = self.key_packages_record()?;
        record
            .keys
            .extend(keys.into_iter().map(|key| KeyPackageKey {
                hash_ref: key.hash_ref,
                expires_at_ms: key.expires_at_ms,
            }));
        self.store()
            .put_record(records::key_packages_key(), &record);
        Ok(())
    }

    fn key_packages_record(&self) -> Result<KeyPackagesRecord, ClientError> {
        Ok(self
            .store()
            .get_record(&records::key_packages_key())?
            .unwrap_or_default())
    }

    /// Deletes the private keys of KeyPackages past their lifetime and
    /// grace: a Welcome that used one can no longer arrive.
    fn forget_expired_key_packages(&mut self) -> Result<(), ClientError> {
        let mut record = self.key_packages_record()?;
        let cutoff = crate::now_ms()
            .saturating_sub(self.shared.lifecycle.key_package_grace.as_millis() as u64);
        let before = record.keys.len();
        let mut kept = Vec::with_capacity(before);
        for key in std::mem::take(&mut record.keys) {
            if key.expires_at_ms < cutoff {
                self.mls.ops().forget_key_package(&key.hash_ref)?;
            } else {
                kept.push(key);
            }
        }
        if kept.len() == before {
            return Ok(());
        }
        record.keys = kept;
        self.store()
            .put_record(records::key_packages_key(), &record);
        self.store().commit_durably()?;
        Ok(())
    }

    /// Queues an update in every group where this device's leaf is due for
    /// renewal.
    fn queue_leaf_renewals(&mut self) -> Result<(), ClientError> {
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        let now = crate::now_ms();
        let mut queued = false;
        for group in groups.iter().filter(|g| g.following()) {
            if !self.leaf_due(group, now) {
                continue;
            }
            let pending =
                self.queued_intent(&group.group()?, |k| matches!(k, IntentKind::Update(_)))?;
            if pending.is_none() {
                self.stage_intent(IntentRecord {
                    group_id: group.group_id.clone(),
                    kind: Some(IntentKind::Update(UpdateIntent {})),
                    ..Default::default()
                })?;
                queued = true;
            }
        }
        if queued {
            self.store().commit_durably()?;
            self.outbox_dirty = true;
        }
        Ok(())
    }

    /// Whether this device's leaf in `group` is due for renewal at `now`:
    /// a leaf from a KeyPackage soon after joining (at a moment spread
    /// over `first_update_within`), any other once `update_interval` old.
    fn leaf_due(&self, group: &GroupRecord, now: u64) -> bool {
        let lifecycle = &self.shared.lifecycle;
        if group.leaf_renewed_at_ms == 0 {
            let spread = lifecycle.first_update_within.as_millis() as u64;
            let delay = if spread == 0 {
                0
            } else {
                let digest = Sha256::new()
                    .chain_update(self.mls.key().public())
                    .chain_update(&group.group_id)
                    .finalize();
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                u64::from_be_bytes(first) % spread
            };
            return now >= group.joined_at_ms.saturating_add(delay);
        }
        now.saturating_sub(group.leaf_renewed_at_ms) >= lifecycle.update_interval.as_millis() as u64
    }

    /// One attempt at renewing this device's leaf in a group.
    pub(super) async fn step_update(&mut self, intent: IntentRecord) -> Attempt {
        if intent.pending_commit.is_empty() && self.own_chain_valid().is_err() {
            // Tried again at the next check, once the certificate (or the
            // clock) is right; nobody needs to be told each time.
            return self.drop_intent(&intent);
        }
        if intent.pending_commit.is_empty() {
            let due = match self.group_record(&intent.group()?) {
                Ok(Some(group)) => group.following() && self.leaf_due(&group, crate::now_ms()),
                Ok(None) => false,
                Err(err) => return Err(err.into()),
            };
            let leaving = match super::load_group(&mut self.groups, &self.mls, &intent.group()?) {
                Ok(Some(group)) => crate::mls::own_removal_pending(group),
                Ok(None) => false,
                Err(err) => return Err(err.into()),
            };
            if leaving {
                // A commit cannot remove its sender (RFC 9420, 12.2): the
                // renewal waits for the others to commit the removal.
                return Ok(Step::Later(UPDATE_WHILE_LEAVING));
            }
            if !due {
                // Another commit of this device renewed it meanwhile.
                return self.drop_intent(&intent);
            }
        }
        self.commit_step(intent, Change::Update).await
    }

    /// Makes every leaf of this device due for renewal, and its KeyPackage
    /// stock due for rotation (a suspected compromise).
    pub(super) fn renew_all_keys(&mut self) -> Result<(), ClientError> {
        let groups: Vec<GroupRecord> = self
            .store()
            .scan::<GroupRecord>(&records::groups_prefix())
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        for mut group in groups.into_iter().filter(|g| g.following()) {
            group.leaf_renewed_at_ms = 1;
            self.store()
                .put_record(records::group_key(&group.group()?), &group);
        }
        let mut record = self.key_packages_record()?;
        record.rotated_at_ms = 0;
        self.store()
            .put_record(records::key_packages_key(), &record);
        self.store().commit_durably()?;
        Ok(())
    }
}
