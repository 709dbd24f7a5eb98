//! The scenarios of issue 5, each run against one server. [`super::run`]
//! runs each against the relay and then the baseline.

use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use super::drive::{self, Meter, Plan};
use super::fleet::{group_id, Fleet};
use super::report::Figures;
use super::target::Target;

/// Fan-out: groups of one size, every member sending.
#[derive(Debug, Clone, Args, Serialize)]
pub struct FanOut {
    /// Groups.
    #[arg(long, default_value_t = 36)]
    pub groups: usize,
    /// Devices per group (2, 33, 1200...).
    #[arg(long, default_value_t = 33)]
    pub group_size: usize,
    /// Messages in all, spread over every member of every group.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
}

/// One-to-one: pairs, as fast as possible, then open loop at half that.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Direct {
    #[arg(long, default_value_t = 1_000)]
    pub pairs: usize,
    /// Messages in the as-fast-as-possible phase.
    #[arg(long, default_value_t = 40_000)]
    pub messages: usize,
    /// Length of the open-loop phase, seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Messages a second in the open-loop phase, instead of half the
    /// relay's peak (to find the rate a latency holds up to).
    #[arg(long)]
    pub rate: Option<f64>,
}

/// Idle connections: memory per authenticated connection.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Idle {
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
}

/// Catch-up: a device offline for this many messages reconnects.
#[derive(Debug, Clone, Args, Serialize)]
pub struct CatchUp {
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
}

/// A whole-network day, replayed as fast as possible.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Day {
    #[arg(long, default_value_t = 1_200)]
    pub users: usize,
    #[arg(long, default_value_t = 36)]
    pub cohorts: usize,
    /// Messages each user sends to their cohort in a day.
    #[arg(long, default_value_t = 10)]
    pub cohort_messages: usize,
    /// Messages each user sends one-to-one in a day (users are paired).
    #[arg(long, default_value_t = 5)]
    pub direct_messages: usize,
    /// One user in this many asks the whole network something.
    #[arg(long, default_value_t = 10)]
    pub network_every: usize,
}

/// The members of each of `groups` consecutive groups of `size` devices.
fn consecutive(groups: usize, size: usize) -> Vec<(Bytes, Vec<usize>)> {
    (0..groups)
        .map(|g| (group_id(), (g * size..(g + 1) * size).collect()))
        .collect()
}

/// Every member of `groups` sends to its group in turn until `messages`
/// are planned.
fn round_robin(groups: &[(Bytes, Vec<usize>)], messages: usize) -> Plan {
    let senders: Vec<(usize, &Bytes)> = groups
        .iter()
        .flat_map(|(id, members)| members.iter().map(move |&m| (m, id)))
        .collect();
    let mut plan: Plan = senders.iter().map(|(m, _)| (*m, Vec::new())).collect();
    if senders.is_empty() {
        return plan;
    }
    for k in 0..messages {
        let slot = k % senders.len();
        plan[slot].1.push(senders[slot].1.clone());
    }
    plan
}

pub async fn fan_out(
    target: &Target,
    args: &FanOut,
    size: usize,
    window: usize,
) -> Result<Vec<(String, Figures)>> {
    if args.group_size < 2 {
        bail!("a group for fan-out needs at least 2 devices");
    }
    let fleet = Fleet::enrol(target, args.groups * args.group_size, window).await?;
    let groups = consecutive(args.groups, args.group_size);
    fleet.groups(&groups).await?;
    fleet.settle().await;
    let expected = (args.messages * (args.group_size - 1)) as u64;
    let plan = round_robin(&groups, args.messages);
    let figures = drive::closed_loop(target, &fleet, plan, size, expected).await?;
    Ok(vec![("as fast as possible".into(), figures)])
}

/// Runs the peak phase; the half-peak phase runs at `half_rate`, or at
/// half of this server's own peak when `None`.
pub async fn direct(
    target: &Target,
    args: &Direct,
    size: usize,
    window: usize,
    half_rate: Option<f64>,
) -> Result<Vec<(String, Figures)>> {
    let fleet = Fleet::enrol(target, args.pairs * 2, window).await?;
    let groups = consecutive(args.pairs, 2);
    fleet.groups(&groups).await?;
    fleet.settle().await;
    let plan = round_robin(&groups, args.messages);
    let peak = drive::closed_loop(target, &fleet, plan, size, args.messages as u64).await?;
    fleet.settle().await;
    let rate = args
        .rate
        .or(half_rate)
        .unwrap_or(peak.accepted_per_sec / 2.0);
    let why = if args.rate.is_some() {
        "as asked"
    } else {
        "half the relay's peak"
    };
    let route: Vec<(usize, Bytes)> = groups
        .iter()
        .flat_map(|(id, m)| [(m[0], id.clone()), (m[1], id.clone())])
        .collect();
    let duration = Duration::from_secs(args.seconds);
    let half = drive::open_loop(target, &fleet, &route, 1, size, rate, duration).await?;
    Ok(vec![
        ("as fast as possible".into(), peak),
        (format!("open loop at {rate:.0} messages/s ({why})"), half),
    ])
}

pub async fn idle(target: &mut Target, args: &Idle) -> Result<Vec<(String, Figures)>> {
    let mut fleet = Fleet::enrol(target, args.connections, 1).await?;
    // Enrolment leaves memory behind (caches, freed buffers the allocator
    // keeps): restart the server, then measure the connections alone.
    for device in &fleet.devices {
        device.conn.close();
    }
    target.restart()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.rss();
    let meter = Meter::start(target);
    let url = target.url.clone();
    for chunk in fleet.devices.chunks_mut(64) {
        let reconnects = chunk.iter_mut().map(|d| d.reconnect(&url, 1));
        futures_util::future::try_join_all(reconnects).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.rss();
    let mut figures = meter.finish(target, &fleet, meter.started.elapsed(), None, 0);
    figures.memory_per_connection_bytes =
        Some(after.saturating_sub(before) as f64 / args.connections as f64);
    Ok(vec![(
        format!("{} idle authenticated connections", args.connections),
        figures,
    )])
}

pub async fn catch_up(
    target: &Target,
    args: &CatchUp,
    size: usize,
    window: usize,
) -> Result<Vec<(String, Figures)>> {
    let mut fleet = Fleet::enrol(target, 2, window).await?;
    let group = group_id();
    fleet.group(&group, &[0, 1]).await?;
    fleet.settle().await;
    fleet.devices[1].conn.close();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let disk_before = target.disk();
    let plan = vec![(0, vec![group.clone(); args.messages])];
    // Nobody is there to receive: wait for nothing but the acceptances.
    let mut stored = drive::closed_loop(target, &fleet, plan, size, 0).await?;
    let disk_after = target.disk();
    let grown = disk_before
        .zip(disk_after)
        .map(|(b, a)| a.saturating_sub(b) as f64);
    let framed = super::payload::make(&group, 0, size, 0).len();
    stored.disk_bytes_per_payload_byte = grown.map(|g| g / (args.messages * size) as f64);
    stored.disk_bytes_per_message_byte = grown.map(|g| g / (args.messages * framed) as f64);

    let meter = Meter::start(target);
    let url = target.url.clone();
    fleet.devices[1].reconnect(&url, window).await?;
    let delivered = drive::wait_for(&fleet, args.messages as u64, meter.started).await;
    let figures = meter.finish(
        target,
        &fleet,
        Duration::ZERO,
        delivered,
        args.messages as u64,
    );
    Ok(vec![
        (
            format!("store {} messages for an offline device", args.messages),
            stored,
        ),
        ("the device reconnects and catches up".into(), figures),
    ])
}

pub async fn day(
    target: &Target,
    args: &Day,
    size: usize,
    window: usize,
) -> Result<Vec<(String, Figures)>> {
    if args.users < 2 || args.cohorts == 0 || args.network_every == 0 {
        bail!("a day needs at least 2 users, a cohort, and --network-every above 0");
    }
    let fleet = Fleet::enrol(target, args.users, window).await?;
    let per_cohort = args.users.div_ceil(args.cohorts);
    let cohorts: Vec<(Bytes, Vec<usize>)> = (0..args.users)
        .collect::<Vec<_>>()
        .chunks(per_cohort)
        .map(|members| (group_id(), members.to_vec()))
        .collect();
    let pairs: Vec<(Bytes, Vec<usize>)> = (0..args.users / 2)
        .map(|p| (group_id(), vec![2 * p, 2 * p + 1]))
        .collect();
    let network = (group_id(), (0..args.users).collect::<Vec<_>>());
    fleet.groups(&cohorts).await?;
    fleet.groups(&pairs).await?;
    fleet.group(&network.0, &network.1).await?;
    fleet.settle().await;

    // Each user's day, interleaved: cohort messages, one-to-one messages,
    // and now and then a question to everyone.
    let mut expected = 0u64;
    let mut plan: Plan = Vec::with_capacity(args.users);
    for user in 0..args.users {
        let cohort = &cohorts[user / per_cohort];
        let pair = pairs.get(user / 2);
        let mut sends = Vec::new();
        for k in 0..args.cohort_messages.max(args.direct_messages) {
            if k < args.cohort_messages {
                sends.push(cohort.0.clone());
                expected += cohort.1.len() as u64 - 1;
            }
            if let (true, Some(pair)) = (k < args.direct_messages, pair) {
                sends.push(pair.0.clone());
                expected += 1;
            }
        }
        if user % args.network_every == 0 {
            sends.push(network.0.clone());
            expected += args.users as u64 - 1;
        }
        plan.push((user, sends));
    }
    let figures = drive::closed_loop(target, &fleet, plan, size, expected).await?;
    Ok(vec![(
        "a day's traffic, as fast as possible".into(),
        figures,
    )])
}
