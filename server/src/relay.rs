//! The state every connection shares: configuration, store, flusher,
//! visibility watermarks and the hub of connected devices.

use convene_proto::ids::GroupId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::acks::AckBuffer;
use crate::config::Config;
use crate::durability::Flusher;
use crate::error::RelayError;
use crate::frames::FrameCache;
use crate::hub::Hub;
use crate::rate_limit::{KeyedBuckets, Rate, Spacing};
use convene_proto::invite::Invite;

use crate::store::{now_ms, Founding, OpenError, QueueLimits, Store, StoreOptions, TrimPolicy};
use crate::visibility::Visibility;

/// Why the relay could not start on its data directory.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot read the data directory")]
    Load(#[from] RelayError),
}

/// How often one device may ask one group to re-add it: every request
/// costs each member a commit, so a device may not make them churn.
pub const REJOIN_SPACING: std::time::Duration = std::time::Duration::from_secs(10);
/// How many (group, device) pairs the rejoin spacing remembers at once
/// (only members' requests are remembered, so an honest device is crowded
/// out only by this many requests from members within one spacing).
const REJOIN_SPACING_KEYS: usize = 100_000;
/// Devices (and claimer-target pairs) whose hourly quotas are tracked at
/// once.
const CLAIM_QUOTA_KEYS: usize = 100_000;
/// Profile writes a device may make in an hour (a person edits a few).
pub const PROFILE_WRITES_PER_HOUR: u32 = 60;

/// `per_hour` a second, with all of it available at once.
fn hourly(per_hour: u32) -> Rate {
    Rate {
        per_second: f64::from(per_hour) / 3600.0,
        burst: f64::from(per_hour),
    }
}

/// Encoded group messages kept for delivery, in all (see [`FrameCache`]).
const FRAME_CACHE_BYTES: usize = 64 * 1024 * 1024;

pub struct Relay {
    pub config: Config,
    pub store: Arc<Store>,
    pub flusher: Arc<Flusher>,
    pub visibility: Visibility,
    pub hub: Hub,
    pub frames: FrameCache,
    pub acks: AckBuffer,
    /// When each device last asked each group to re-add it.
    pub rejoin_spacing: Spacing<(GroupId, crate::store::DevicePublicKey)>,
    /// Each claimer's share of each other device's one-time KeyPackages.
    pub claims_per_target:
        KeyedBuckets<(crate::store::DevicePublicKey, crate::store::DevicePublicKey)>,
    /// Each claimer's KeyPackage claims in all.
    pub claims_per_claimer: KeyedBuckets<crate::store::DevicePublicKey>,
    /// Each device's group creations.
    pub groups_per_device: KeyedBuckets<crate::store::DevicePublicKey>,
    /// Profile writes per device: each one tells every connected device
    /// to sync its directory.
    pub profiles_per_device: KeyedBuckets<crate::store::DevicePublicKey>,
    /// Proposals each staff device may send to groups as their manager.
    pub outside_proposals_per_device: KeyedBuckets<crate::store::DevicePublicKey>,
    /// Groups whose members acknowledged something since the last trim.
    trim_queue: Mutex<HashSet<GroupId>>,
}

impl Relay {
    /// Fits `max_connections` to the open-file limit (see `fd_limit`),
    /// opens the store and loads what delivery needs. Must run inside a
    /// tokio runtime (the flusher is a task).
    pub fn open(mut config: Config) -> Result<Arc<Relay>, StartError> {
        config.limits.max_connections =
            crate::fd_limit::fit_connections(config.limits.max_connections);
        let options = StoreOptions {
            cache_bytes: config.store_cache_bytes,
        };
        let store = Arc::new(Store::open(&config.data_dir, options)?);
        let visibility = Visibility::load(&store)?;
        let flusher = Flusher::start(store.clone());
        let rate = Rate {
            per_second: f64::from(config.limits.requests_per_second),
            burst: f64::from(config.limits.request_burst),
        };
        let claims_per_target = KeyedBuckets::new(
            hourly(config.limits.key_package_claims_per_target),
            CLAIM_QUOTA_KEYS,
        );
        let claims_per_claimer = KeyedBuckets::new(
            hourly(config.limits.key_package_claims_per_claimer),
            CLAIM_QUOTA_KEYS,
        );
        let groups_per_device =
            KeyedBuckets::new(hourly(config.limits.groups_per_device), CLAIM_QUOTA_KEYS);
        let profiles_per_device =
            KeyedBuckets::new(hourly(PROFILE_WRITES_PER_HOUR), CLAIM_QUOTA_KEYS);
        let outside_proposals_per_device = KeyedBuckets::new(
            hourly(config.limits.outside_proposals_per_device),
            CLAIM_QUOTA_KEYS,
        );
        Ok(Arc::new(Relay {
            config,
            store,
            flusher,
            visibility,
            hub: Hub::new(rate),
            frames: FrameCache::new(FRAME_CACHE_BYTES),
            acks: AckBuffer::default(),
            rejoin_spacing: Spacing::new(REJOIN_SPACING, REJOIN_SPACING_KEYS),
            claims_per_target,
            claims_per_claimer,
            groups_per_device,
            profiles_per_device,
            outside_proposals_per_device,
            trim_queue: Mutex::new(HashSet::new()),
        }))
    }

    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_group_backlog: self.config.limits.max_group_backlog,
            max_inbox: self.config.limits.max_inbox,
            max_inbox_per_sender: self.config.limits.max_inbox_per_sender,
        }
    }

    /// How far group logs are kept at time `now` (ms since the Unix epoch).
    pub fn trim_policy(&self, now: u64) -> TrimPolicy {
        let retention_ms = self.config.retention.group_entry_secs.saturating_mul(1000);
        TrimPolicy {
            max_backlog: self.config.limits.max_group_backlog,
            keep_since_ms: now.saturating_sub(retention_ms),
        }
    }

    /// Asks the maintenance task to trim a group's log.
    pub fn schedule_trim(&self, group_id: &GroupId) {
        self.trim_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group_id.clone());
    }

    /// Writes the acknowledgements gathered in memory for the groups `due`
    /// accepts to the store, and schedules the trims they allow.
    ///
    /// One that cannot be written holds back no other, and stays in the
    /// buffer for the next turn; the first error is returned once the rest
    /// are written.
    pub fn write_acks(&self, due: impl Fn(&GroupId) -> bool) -> Result<(), RelayError> {
        let mut first_error = None;
        for (group_id, device, position) in self.acks.pending_where(due) {
            match self.store.ack_group(&group_id, &device, position) {
                Ok(outcome) => {
                    if outcome.advanced {
                        self.schedule_trim(&group_id);
                    }
                    self.acks.written(&group_id, &device, position);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The groups to trim that `due` accepts, taken from the queue.
    pub fn take_trims(&self, due: impl Fn(&GroupId) -> bool) -> Vec<GroupId> {
        let mut taken = Vec::new();
        self.trim_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|group_id| {
                let take = due(group_id);
                if take {
                    taken.push(group_id.clone());
                }
                !take
            });
        taken
    }
}

impl Relay {
    /// On a relay nobody has enrolled in yet, replaces the bootstrap staff
    /// invite with a fresh one and returns it (with its validity in seconds),
    /// so that each start of an empty relay shows a working invite.
    ///
    /// `relay_url` is written into the invite, so its redeemer needs nothing
    /// else. The invite names no authority: its redeemer creates one.
    pub fn bootstrap_invite(&self, relay_url: &str) -> Result<Option<(Invite, u32)>, RelayError> {
        if self.store.has_users()? {
            return Ok(None);
        }
        let ttl_secs = self.config.limits.invite_ttl_secs;
        let invite = self.store.issue_founding_invite(
            Founding::Bootstrap { relay_url },
            u64::from(ttl_secs) * 1000,
            now_ms(),
        )?;
        Ok(Some((invite, ttl_secs)))
    }
}
