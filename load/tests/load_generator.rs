//! The load generator itself: every scenario, tiny, against the real relay
//! and the baseline. Only counts are asserted (every message accepted and
//! delivered as planned); the speeds it reports are for docs/BENCHMARKS.md.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

fn run(args: &[&str]) -> Result<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_convene-load"))
        .arg("--json")
        .args(args)
        .output()
        .context("cannot run convene-load")?;
    ensure!(
        output.status.success(),
        "convene-load {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn phases(report: &Value) -> Vec<&Value> {
    report["phases"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default()
}

/// Every phase of both servers delivered exactly what it planned, and
/// refused nothing.
fn assert_complete(report: &Value) {
    let phases = phases(report);
    assert!(!phases.is_empty(), "no phases in {report}");
    for phase in phases {
        for side in ["relay", "baseline"] {
            let figures = &phase[side];
            assert_eq!(figures["errors"], 0, "{side} refused messages: {phase}");
            assert_eq!(
                figures["deliveries"], figures["expected_deliveries"],
                "{side} lost or duplicated deliveries: {phase}"
            );
            assert_eq!(
                figures["messages"], figures["accepted"],
                "{side} left messages unanswered: {phase}"
            );
        }
    }
}

#[test]
fn fan_out_delivers_every_message_to_every_other_member() -> Result<()> {
    let report = run(&[
        "fanout",
        "--groups",
        "2",
        "--group-size",
        "4",
        "--messages",
        "300",
    ])?;
    assert_complete(&report);
    let phase = phases(&report)[0];
    assert_eq!(phase["relay"]["deliveries"], 900);
    assert!(phase["ratio"]["deliveries_per_sec"].as_f64().is_some());
    Ok(())
}

#[test]
fn direct_runs_a_peak_and_an_open_loop_phase() -> Result<()> {
    let report = run(&[
        "direct",
        "--pairs",
        "4",
        "--messages",
        "200",
        "--seconds",
        "1",
    ])?;
    assert_complete(&report);
    let phases = phases(&report);
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["relay"]["deliveries"], 200);
    // The open-loop phase offered both servers the same number.
    assert_eq!(
        phases[1]["relay"]["messages"],
        phases[1]["baseline"]["messages"]
    );
    Ok(())
}

#[test]
fn catch_up_delivers_the_backlog_and_measures_the_disk() -> Result<()> {
    let report = run(&["catch-up", "--messages", "500"])?;
    assert_complete(&report);
    let phases = phases(&report);
    assert_eq!(phases[0]["relay"]["accepted"], 500);
    assert!(
        phases[0]["relay"]["disk_bytes_per_payload_byte"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(phases[1]["relay"]["deliveries"], 500);
    assert_eq!(phases[1]["baseline"]["deliveries"], 500);
    Ok(())
}

#[test]
fn idle_measures_memory_per_connection() -> Result<()> {
    let report = run(&["idle", "--connections", "50"])?;
    let phase = phases(&report)[0];
    for side in ["relay", "baseline"] {
        assert!(
            phase[side]["memory_per_connection_bytes"]
                .as_f64()
                .is_some(),
            "{side}: {phase}"
        );
    }
    Ok(())
}

#[test]
fn a_day_reaches_cohorts_pairs_and_the_network() -> Result<()> {
    let report = run(&[
        "day",
        "--users",
        "20",
        "--cohorts",
        "2",
        "--cohort-messages",
        "3",
        "--direct-messages",
        "2",
        "--network-every",
        "10",
    ])?;
    assert_complete(&report);
    // 20 users: cohorts of 10 (3 x 9 each), 10 pairs (2 x 1 each), two
    // network questions (19 each).
    assert_eq!(
        phases(&report)[0]["relay"]["expected_deliveries"],
        20 * 27 + 20 * 2 + 2 * 19
    );
    Ok(())
}
