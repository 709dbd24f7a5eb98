//! Driving traffic and timing it: as fast as the server takes it (closed
//! loop, each device keeping a window of messages in flight), or at a
//! target rate (open loop, latency counted from when each message was due,
//! so that a server that falls behind cannot hide it).

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use futures_util::future::try_join_all;

use super::fleet::Fleet;
use super::payload;
use super::report::Figures;
use super::target::Target;

/// Give up waiting for deliveries after this long without progress.
const STALL: Duration = Duration::from_secs(15);

/// What one device sends, in order: the groups of its messages.
pub type Plan = Vec<(usize, Vec<Bytes>)>;

/// Sends every device's messages as fast as the server accepts them and
/// waits until `expected` deliveries arrived (or delivery stalls).
pub async fn closed_loop(
    target: &Target,
    fleet: &Fleet,
    plan: Plan,
    size: usize,
    expected: u64,
) -> Result<Figures> {
    let meter = Meter::start(target);
    let senders = plan.into_iter().map(|(device, groups)| {
        let conn = fleet.devices[device].conn.clone();
        let window = fleet.window;
        let groups: Vec<(Bytes, u64)> = groups
            .into_iter()
            .map(|group| {
                let epoch = fleet.epoch(&group);
                (group, epoch)
            })
            .collect();
        tokio::spawn(async move {
            for (group, epoch) in &groups {
                conn.send_load(group, *epoch, size, payload::now_us())
                    .await?;
            }
            conn.drain(window).await
        })
    });
    let started = meter.started;
    let sending = async move { (try_join_all(senders).await, started.elapsed()) };
    let ((sent, accepted_at), delivered_at) =
        tokio::join!(sending, wait_for(fleet, expected, started));
    for outcome in sent? {
        outcome?;
    }
    Ok(meter.finish(target, fleet, accepted_at, delivered_at, expected))
}

/// Sends `rate` messages a second for `duration`, taking senders and
/// groups from `route` in turn, then waits for the deliveries.
#[allow(clippy::too_many_arguments)]
pub async fn open_loop(
    target: &Target,
    fleet: &Fleet,
    route: &[(usize, Bytes)],
    fan_out: u64,
    size: usize,
    rate: f64,
    duration: Duration,
) -> Result<Figures> {
    let meter = Meter::start(target);
    let start_us = payload::now_us();
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total && !route.is_empty() {
        tick.tick().await;
        let due = ((meter.started.elapsed().as_secs_f64() * rate) as u64).min(total);
        while sent < due {
            let (device, group) = &route[(sent as usize) % route.len()];
            let scheduled = start_us + (sent as f64 * 1e6 / rate) as u64;
            fleet.devices[*device]
                .conn
                .send_load(group, fleet.epoch(group), size, scheduled)
                .await?;
            sent += 1;
        }
    }
    // A delivery can reach the other member before the sender's own answer
    // comes back, so the phase also waits for every answer.
    let mut senders: Vec<usize> = route.iter().map(|(device, _)| *device).collect();
    senders.sort_unstable();
    senders.dedup();
    let answered = try_join_all(
        senders
            .iter()
            .map(|device| fleet.devices[*device].conn.drain(fleet.window)),
    );
    let started = meter.started;
    let answered = async move { (answered.await, started.elapsed()) };
    let ((answered, accepted_at), delivered_at) =
        tokio::join!(answered, wait_for(fleet, total * fan_out, meter.started));
    answered?;
    Ok(meter.finish(target, fleet, accepted_at, delivered_at, total * fan_out))
}

/// Waits until `expected` deliveries were counted; returns when the last
/// one came (measured from `since`), or `None` if delivery stalled first.
pub async fn wait_for(fleet: &Fleet, expected: u64, since: Instant) -> Option<Duration> {
    let mut last = (0, Instant::now());
    loop {
        let now = fleet.deliveries();
        if now >= expected {
            return Some(since.elapsed());
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The server's and the generator's CPU from the start of a measurement.
pub struct Meter {
    pub started: Instant,
    server_cpu: f64,
    own_cpu: f64,
}

impl Meter {
    pub fn start(target: &Target) -> Meter {
        Meter {
            started: Instant::now(),
            server_cpu: target.cpu_seconds(),
            own_cpu: super::stats::cpu_seconds(std::process::id()),
        }
    }

    pub fn finish(
        &self,
        target: &Target,
        fleet: &Fleet,
        accepted_at: Duration,
        delivered_at: Option<Duration>,
        expected: u64,
    ) -> Figures {
        let wall = self.started.elapsed().as_secs_f64();
        let sample = fleet.take();
        // With nothing to deliver, the phase is over once all was accepted.
        let seconds = match (expected, delivered_at) {
            (0, _) => accepted_at,
            (_, Some(delivered_at)) => delivered_at,
            (_, None) => self.started.elapsed(),
        }
        .as_secs_f64();
        Figures {
            target: target.kind,
            messages: sample.sent,
            accepted: sample.accepted,
            errors: sample.errors,
            deliveries: sample.deliveries,
            expected_deliveries: expected,
            seconds,
            accepted_per_sec: sample.accepted as f64 / accepted_at.as_secs_f64().max(1e-9),
            deliveries_per_sec: sample.deliveries as f64 / seconds.max(1e-9),
            latency: sample.latency(),
            server_cpu_cores: (target.cpu_seconds() - self.server_cpu) / wall,
            generator_cpu_cores: (super::stats::cpu_seconds(std::process::id()) - self.own_cpu)
                / wall,
            peak_rss_bytes: target.peak_rss(),
            ..Figures::default()
        }
    }
}
