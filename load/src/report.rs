//! What a run reports: each phase's figures for the relay and for the
//! baseline, side by side with their ratio, as text or JSON.

use serde::Serialize;

use super::stats::Latency;
use super::target::Kind;

/// The figures of one phase against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub target: Kind,
    /// Load messages sent, accepted and refused.
    pub messages: u64,
    pub accepted: u64,
    pub errors: u64,
    /// Load messages delivered to members, and how many should have been.
    pub deliveries: u64,
    pub expected_deliveries: u64,
    /// From the first send to the last delivery.
    pub seconds: f64,
    pub accepted_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub latency: Latency,
    /// CPU the server used during the phase, in cores (1.0 = one core).
    pub server_cpu_cores: f64,
    /// CPU the generator used during the phase, in cores.
    pub generator_cpu_cores: f64,
    /// The server's peak resident memory since it started.
    pub peak_rss_bytes: u64,
    /// Growth of the store on disk per byte of ciphertext stored (the
    /// `--size` bytes of each message's encrypted body).
    pub disk_bytes_per_payload_byte: Option<f64>,
    /// Growth of the store on disk per byte of the MLSMessages stored: the
    /// body with the MLS framing around it (RFC 9420 section 6.3: group id,
    /// epoch, content type, encrypted sender data), all of which the relay
    /// is given to keep.
    pub disk_bytes_per_message_byte: Option<f64>,
    /// Growth of resident memory per connection held.
    pub memory_per_connection_bytes: Option<f64>,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            target: Kind::Relay,
            messages: 0,
            accepted: 0,
            errors: 0,
            deliveries: 0,
            expected_deliveries: 0,
            seconds: 0.0,
            accepted_per_sec: 0.0,
            deliveries_per_sec: 0.0,
            latency: Latency::default(),
            server_cpu_cores: 0.0,
            generator_cpu_cores: 0.0,
            peak_rss_bytes: 0,
            disk_bytes_per_payload_byte: None,
            disk_bytes_per_message_byte: None,
            memory_per_connection_bytes: None,
        }
    }
}

/// Relay over baseline for the figures that matter.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Above 1: the relay delivers faster than the baseline.
    pub deliveries_per_sec: Option<f64>,
    /// Above 1: the relay is slower to deliver.
    pub latency_p99: Option<f64>,
    /// Above 1: the relay holds more memory per connection.
    pub memory_per_connection: Option<f64>,
}

/// One phase of a scenario, against both servers.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub relay: Figures,
    pub baseline: Figures,
    pub ratio: Ratios,
}

impl Phase {
    pub fn new(name: &str, relay: Figures, baseline: Figures) -> Phase {
        let ratio = |a: f64, b: f64| (b > 0.0 && a > 0.0).then(|| a / b);
        let ratio = Ratios {
            deliveries_per_sec: ratio(relay.deliveries_per_sec, baseline.deliveries_per_sec),
            latency_p99: ratio(relay.latency.p99_ms, baseline.latency.p99_ms),
            memory_per_connection: match (
                relay.memory_per_connection_bytes,
                baseline.memory_per_connection_bytes,
            ) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => None,
            },
        };
        Phase {
            name: name.to_string(),
            relay,
            baseline,
            ratio,
        }
    }
}

/// A scenario's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub parameters: serde_json::Value,
    pub phases: Vec<Phase>,
}

impl Report {
    /// The report as text, one table per phase.
    pub fn text(&self) -> String {
        let mut out = format!("scenario {}  {}\n", self.scenario, self.parameters);
        for phase in &self.phases {
            out.push_str(&format!("\n  {}\n", phase.name));
            out.push_str(&format!(
                "  {:<34}{:>16}{:>16}{:>10}\n",
                "", "relay", "baseline", "ratio"
            ));
            let (r, b) = (&phase.relay, &phase.baseline);
            let mut row = |name: &str, r: f64, b: f64| {
                let ratio = if b > 0.0 {
                    format!("{:.2}x", r / b)
                } else {
                    "-".into()
                };
                out.push_str(&format!("  {name:<34}{r:>16.2}{b:>16.2}{ratio:>10}\n"));
            };
            row("messages accepted", r.accepted as f64, b.accepted as f64);
            row("deliveries", r.deliveries as f64, b.deliveries as f64);
            row(
                "deliveries expected",
                r.expected_deliveries as f64,
                b.expected_deliveries as f64,
            );
            row("refused", r.errors as f64, b.errors as f64);
            row("seconds", r.seconds, b.seconds);
            row("accepted / s", r.accepted_per_sec, b.accepted_per_sec);
            row("deliveries / s", r.deliveries_per_sec, b.deliveries_per_sec);
            row("latency p50 (ms)", r.latency.p50_ms, b.latency.p50_ms);
            row("latency p99 (ms)", r.latency.p99_ms, b.latency.p99_ms);
            row("latency p999 (ms)", r.latency.p999_ms, b.latency.p999_ms);
            row("server CPU (cores)", r.server_cpu_cores, b.server_cpu_cores);
            row(
                "generator CPU (cores)",
                r.generator_cpu_cores,
                b.generator_cpu_cores,
            );
            row(
                "server peak RSS (MiB)",
                mib(r.peak_rss_bytes),
                mib(b.peak_rss_bytes),
            );
            if let Some(disk) = r.disk_bytes_per_payload_byte {
                row("disk bytes per ciphertext byte", disk, 0.0);
            }
            if let Some(disk) = r.disk_bytes_per_message_byte {
                row("disk bytes per MLSMessage byte", disk, 0.0);
            }
            if let (Some(rm), Some(bm)) =
                (r.memory_per_connection_bytes, b.memory_per_connection_bytes)
            {
                row("memory per connection (bytes)", rm, bm);
            }
        }
        out
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
