//! Setting up the people of a scenario: enrolled devices with open
//! connections, and the groups they are in.
//!
//! Everything goes through the protocol, as real clients do: staff invite,
//! each device enrols with its own key, group creators commit the members
//! in. Payloads are opaque stand-ins, which the relay cannot tell from MLS.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use bytes::Bytes;
use convene_client::transport::{authenticate, enrol, EnrolRequest};
use convene_client::DeviceKey;
use convene_proto::invite::Invite;
use convene_proto::relay::{request, CreateGroup, CreateInvite, Role};
use futures_util::{stream, StreamExt, TryStreamExt};
use rand::RngCore;

use super::client::{lock, LoadConn};
use super::stats::Sample;
use super::target::Target;
use convene_tests::device::{random_id, TestDevice};

/// Enrolments and connections made at once during set-up.
const SETUP_CONCURRENCY: usize = 64;
/// Devices one commit adds at most.
const ADD_CHUNK: usize = 1_000;

/// One enrolled device.
pub struct Device {
    pub key: DeviceKey,
    pub conn: Arc<LoadConn>,
}

impl Device {
    /// Opens a new authenticated connection for this device (the old one,
    /// if still open, is superseded by the relay).
    pub async fn reconnect(&mut self, url: &str, window: usize) -> Result<()> {
        let conn = LoadConn::connect(url, window).await?;
        authenticate(&conn, &self.key, None).await?;
        let old = std::mem::replace(&mut self.conn, Arc::new(conn));
        old.close();
        Ok(())
    }
}

/// The devices of a scenario.
pub struct Fleet {
    pub devices: Vec<Device>,
    pub window: usize,
    /// The epoch each group reached when it was set up (load messages are
    /// framed for it).
    epochs: Mutex<HashMap<Bytes, u64>>,
}

impl Fleet {
    /// Enrols staff and `n` devices on `target`, each with a connection
    /// that may have `window` load messages in flight.
    pub async fn enrol(target: &Target, n: usize, window: usize) -> Result<Fleet> {
        let staff = LoadConn::connect(&target.url, window).await?;
        let request = EnrolRequest {
            invite_token: token(&target.bootstrap_invite)?,
            user_id: "staff".into(),
            display_name: "Load staff".into(),
            ..Default::default()
        };
        enrol(&staff, &DeviceKey::generate(), &request).await?;
        let staff = Arc::new(staff);
        let devices = stream::iter(0..n)
            .map(|i| enrol_one(target, staff.clone(), i, window))
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Fleet {
            devices,
            window,
            epochs: Mutex::default(),
        })
    }

    /// Creates a group of `members` (indices into `devices`); the first
    /// creates it and commits the others in.
    pub async fn group(&self, group_id: &Bytes, members: &[usize]) -> Result<()> {
        let Some((&creator, others)) = members.split_first() else {
            bail!("a group needs a member");
        };
        let conn = &self.devices[creator].conn;
        conn.call(request::Kind::CreateGroup(CreateGroup {
            group_id: group_id.clone(),
            direct_pair: Vec::new(),
        }))
        .await?;
        for (epoch, chunk) in others.chunks(ADD_CHUNK).enumerate() {
            let added: Vec<[u8; 32]> = chunk
                .iter()
                .map(|&i| self.devices[i].key.public().0)
                .collect();
            let commit =
                TestDevice::commit_request(group_id, epoch as u64, random_id(), &added, &[]);
            conn.call(commit).await?;
        }
        let epoch = others.chunks(ADD_CHUNK).count() as u64;
        lock(&self.epochs).insert(group_id.clone(), epoch);
        Ok(())
    }

    /// The epoch a group reached when it was set up (0 if unknown).
    pub fn epoch(&self, group_id: &Bytes) -> u64 {
        lock(&self.epochs).get(group_id).copied().unwrap_or(0)
    }

    /// Creates many groups, a few at a time.
    pub async fn groups(&self, groups: &[(Bytes, Vec<usize>)]) -> Result<()> {
        stream::iter(groups)
            .map(|(id, members)| self.group(id, members))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Waits until set-up traffic (Welcomes, commits) has been delivered
    /// and acknowledged, then forgets what was counted so far.
    pub async fn settle(&self) {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let seen: u64 = self
                .devices
                .iter()
                .map(|d| {
                    d.conn.stats.sent.load(Ordering::Relaxed)
                        + d.conn.stats.errors.load(Ordering::Relaxed)
                })
                .sum::<u64>()
                + self.pushes_seen();
            if seen == last {
                break;
            }
            last = seen;
        }
        self.take();
    }

    fn pushes_seen(&self) -> u64 {
        self.devices
            .iter()
            .map(|d| d.conn.stats.pushes.load(Ordering::Relaxed))
            .sum()
    }

    /// Takes every device's counts and latencies, starting afresh.
    pub fn take(&self) -> Sample {
        let mut total = Sample::default();
        for device in &self.devices {
            total.add(&device.conn.stats.take());
        }
        total
    }

    /// Deliveries counted so far (not taken).
    pub fn deliveries(&self) -> u64 {
        self.devices
            .iter()
            .map(|d| d.conn.stats.deliveries.load(Ordering::Relaxed))
            .sum()
    }
}

async fn enrol_one(
    target: &Target,
    staff: Arc<LoadConn>,
    i: usize,
    window: usize,
) -> Result<Device> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    staff
        .call(request::Kind::CreateInvite(CreateInvite {
            role: Role::Leader as i32,
            invite_token: Bytes::copy_from_slice(&secret),
            ..Default::default()
        }))
        .await?;
    let key = DeviceKey::generate();
    let conn = LoadConn::connect(&target.url, window).await?;
    let request = EnrolRequest {
        invite_token: secret,
        user_id: format!("load-{i}"),
        display_name: format!("Load {i}"),
        ..Default::default()
    };
    enrol(&conn, &key, &request).await?;
    Ok(Device {
        key,
        conn: Arc::new(conn),
    })
}

fn token(code: &str) -> Result<[u8; 32]> {
    Ok(Invite::from_code(code)?.secret.relay_token())
}

/// A fresh random group id.
pub fn group_id() -> Bytes {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    Bytes::copy_from_slice(&id)
}
