//! The load generator behind `convene-load` (issue 5): it drives the real
//! relay binary over loopback websockets with many authenticated devices,
//! then drives a minimal in-memory fan-out ([`baseline`]) the same way, and
//! reports both side by side with their ratio, so that the figures mean
//! something on a shared, noisy machine.
//!
//! Speed is only ever reported here, never asserted: see
//! `docs/BENCHMARKS.md` for the scenarios, the commands and the figures.

pub mod baseline;
mod client;
mod drive;
mod fleet;
mod payload;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod target;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

pub use client::LoadConn;
use report::{Figures, Phase, Report};
use target::{Kind, Target};

/// A scenario and its parameters.
#[derive(Debug, Clone, Subcommand, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// (a) Fan-out in groups (33-member cohorts by default).
    Fanout(scenarios::FanOut),
    /// (b) One-to-one traffic between pairs: peak, then p99 at half peak.
    Direct(scenarios::Direct),
    /// (c) Idle authenticated connections: memory per connection.
    Idle(scenarios::Idle),
    /// (d) A device offline for many messages reconnects and catches up.
    CatchUp(scenarios::CatchUp),
    /// (e) A whole-network day (cohorts, pairs, one network channel).
    Day(scenarios::Day),
}

/// Settings shared by every scenario.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Common {
    /// Bytes of opaque ciphertext per message.
    pub size: usize,
    /// Messages one device may have in flight (sent, not yet accepted).
    pub window: usize,
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout(_) => "fanout",
            Scenario::Direct(_) => "direct",
            Scenario::Idle(_) => "idle",
            Scenario::CatchUp(_) => "catch-up",
            Scenario::Day(_) => "day",
        }
    }

    async fn on(
        &self,
        kind: Kind,
        common: Common,
        half_rate: Option<f64>,
    ) -> Result<Vec<(String, Figures)>> {
        let mut target = Target::start(kind)?;
        let (size, window) = (common.size, common.window);
        match self {
            Scenario::Fanout(args) => scenarios::fan_out(&target, args, size, window).await,
            Scenario::Direct(args) => {
                scenarios::direct(&target, args, size, window, half_rate).await
            }
            Scenario::Idle(args) => scenarios::idle(&mut target, args).await,
            Scenario::CatchUp(args) => scenarios::catch_up(&target, args, size, window).await,
            Scenario::Day(args) => scenarios::day(&target, args, size, window).await,
        }
    }
}

/// Runs `scenario` against the relay, then the baseline.
pub async fn run(scenario: &Scenario, common: Common) -> Result<Report> {
    let relay = scenario.on(Kind::Relay, common, None).await?;
    // The open-loop phase offers both servers the same load: half the
    // relay's peak.
    let half_rate = relay.first().map(|(_, f)| f.accepted_per_sec / 2.0);
    let baseline = scenario.on(Kind::Baseline, common, half_rate).await?;
    let phases = relay
        .into_iter()
        .zip(baseline)
        .map(|((name, relay), (_, baseline))| Phase::new(&name, relay, baseline))
        .collect();
    Ok(Report {
        scenario: scenario.name().to_string(),
        parameters: serde_json::json!({ "scenario": scenario, "common": common }),
        phases,
    })
}
