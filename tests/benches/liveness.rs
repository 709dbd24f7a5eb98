//! Figures for groups that never get stuck (issue 14), through the real
//! relay binary and real clients:
//!
//! - how long a device that fell out of a group takes to follow it again:
//!   it comes back after the relay trimmed a commit it had not fetched, and
//!   is timed from reconnecting to rejoining (median of 20 runs, each after
//!   the relay's spacing between rejoin requests);
//! - how many update commits a cohort of 33 makes per member per week of
//!   simulated activity (the renewal interval scaled to seconds).
//!
//! ```sh
//! cargo bench -p convene-tests --bench liveness
//! ```
//!
//! Figures only: nothing here is asserted.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use convene_client::{Event, KeyLifecycle};
use convene_tests::app::{leader_apps, staff_app};
use convene_tests::{RelayOptions, RelayProcess};

const RUNS: usize = 20;
/// The renewal interval standing for one week.
const WEEK: Duration = Duration::from_secs(2);
const WEEKS: u32 = 3;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        rejoin_times().await?;
        updates_per_week().await
    })
}

async fn rejoin_times() -> Result<()> {
    let relay = RelayProcess::start(RelayOptions {
        config_toml: "[limits]\nmax_group_backlog = 20\n".into(),
        log_filter: Some("warn".into()),
        ..Default::default()
    })?;
    let staff = staff_app(&relay).await?;
    let names: Vec<String> = ["ann", "ben", "dan"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut leaders = leader_apps(&relay, &staff, &names).await?;
    let dan = leaders.pop().context("dan")?.user;
    let ben = leaders.pop().context("ben")?;
    let mut ann = leaders.pop().context("ann")?;
    let cohort = staff
        .client
        .create_group("Cohort", &[ann.user.clone(), ben.user.clone()])
        .await?;
    ann.wait_group(&cohort.id, |g| g.active).await?;
    let mut reconnect_to_rejoin = Vec::new();
    let mut stall_to_rejoin = Vec::new();
    for run in 0..RUNS {
        let stopped = ann.stop().await;
        // A commit, then enough messages that the log no longer holds it.
        let dan_only = std::slice::from_ref(&dan);
        if run % 2 == 0 {
            staff.client.add_members(&cohort.id, dan_only).await?;
        } else {
            staff.client.remove_members(&cohort.id, dan_only).await?;
        }
        for i in 0..25 {
            ben.client
                .send_text(&cohort.id, &format!("{run}: {i}"))
                .await?;
        }
        // A device asks a group to re-add it at most once per spacing: a
        // real device stalls rarely, so each run waits it out.
        tokio::time::sleep(convene_server::relay::REJOIN_SPACING).await;
        let started = Instant::now();
        ann = stopped.resume().await?;
        let mut stalled_at = None;
        loop {
            let event = ann
                .wait_event(|e| match e {
                    Event::GroupStalled { group, .. } if *group == cohort.id => Some(true),
                    Event::GroupRecovered { group, .. } if *group == cohort.id => Some(false),
                    _ => None,
                })
                .await?;
            if event {
                stalled_at = Some(Instant::now());
            } else {
                break;
            }
        }
        reconnect_to_rejoin.push(started.elapsed());
        if let Some(at) = stalled_at {
            stall_to_rejoin.push(at.elapsed());
        }
    }
    println!(
        "A device that fell out of a group (a commit trimmed before it fetched it), {RUNS} runs:"
    );
    print_spread(
        "reconnect to following the group again",
        reconnect_to_rejoin,
    );
    print_spread("stalled to following the group again", stall_to_rejoin);
    Ok(())
}

async fn updates_per_week() -> Result<()> {
    let relay = RelayProcess::start(RelayOptions {
        log_filter: Some("warn".into()),
        ..Default::default()
    })?;
    let lifecycle = KeyLifecycle {
        update_interval: WEEK,
        first_update_within: Duration::from_secs(1),
        ..KeyLifecycle::default()
    };
    let staff = staff_app(&relay)
        .await?
        .reopen_with_lifecycle(lifecycle)
        .await?;
    let names: Vec<String> = (1..=33).map(|i| format!("leader{i:02}")).collect();
    let mut leaders = Vec::new();
    for app in leader_apps(&relay, &staff, &names).await? {
        leaders.push(app.reopen_with_lifecycle(lifecycle).await?);
    }
    let cohort = staff.client.create_group("Cohort 2026", &names).await?;
    for leader in &leaders {
        leader
            .wait_group(&cohort.id, |g| g.keys_renewed_at_ms.is_some())
            .await?;
    }
    let epoch = |app: &convene_tests::App| -> Result<u64> {
        Ok(app.client.group(&cohort.id)?.context("cohort")?.epoch)
    };
    let start = epoch(&staff)?;
    let started = Instant::now();
    // Activity: every member writes now and then while the weeks pass.
    let mut round = 0;
    while started.elapsed() < WEEK * WEEKS {
        let writer = &leaders[round % leaders.len()];
        writer.client.send_text(&cohort.id, "busy week").await?;
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end = epoch(&staff)?;
    let members = (leaders.len() + 1) as f64;
    println!(
        "A cohort of 33 leaders and staff over {WEEKS} weeks of activity (a week scaled to {WEEK:?}): \
         {} update commits, {:.2} per member per week ({round} messages sent meanwhile)",
        end - start,
        (end - start) as f64 / members / f64::from(WEEKS)
    );
    Ok(())
}

fn print_spread(what: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("  {what}: no samples");
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {what}: median {:?}, p90 {:?}, min {:?}, max {:?}",
        at(0.5),
        at(0.9),
        samples[0],
        samples[samples.len() - 1]
    );
}
