//! What the generator measures: counts and latencies per connection, and
//! the CPU, memory and disk of the process under test (from `/proc`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::payload;

/// Counters and the latency histogram of one connection.
pub struct ConnStats {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub errors: AtomicU64,
    pub deliveries: AtomicU64,
    /// Every push received, of any kind (never reset).
    pub pushes: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for ConnStats {
    fn default() -> Self {
        ConnStats {
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            latency_us: Mutex::new(new_histogram()),
        }
    }
}

/// An auto-resizing histogram with three significant figures (a few KB).
fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid precision")
}

impl ConnStats {
    /// Records a delivery of a payload stamped `sent_us`.
    pub fn delivered(&self, sent_us: u64) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let latency = payload::now_us().saturating_sub(sent_us).max(1);
        let mut hist = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let _ = hist.record(latency);
    }

    /// Takes the counts and latencies so far, starting afresh.
    pub fn take(&self) -> Sample {
        let mut hist = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let latency = hist.clone();
        hist.reset();
        Sample {
            sent: self.sent.swap(0, Ordering::Relaxed),
            accepted: self.accepted.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            deliveries: self.deliveries.swap(0, Ordering::Relaxed),
            latency_us: latency,
        }
    }
}

/// Counts and latencies over some connections and some time.
#[derive(Clone)]
pub struct Sample {
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    pub deliveries: u64,
    pub latency_us: Histogram<u64>,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            sent: 0,
            accepted: 0,
            errors: 0,
            deliveries: 0,
            latency_us: new_histogram(),
        }
    }
}

impl Sample {
    pub fn add(&mut self, other: &Sample) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.errors += other.errors;
        self.deliveries += other.deliveries;
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// Latency percentiles in milliseconds.
    pub fn latency(&self) -> Latency {
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.latency_us.max() as f64 / 1000.0,
        }
    }
}

/// Send-to-delivery latency.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 12th and 13th after it.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every
    // architecture it exposes to user space.
    (ticks(11) + ticks(12)) / 100.0
}

pub use convene_tests::bystander::process_memory as memory;

/// Bytes a directory occupies on disk (allocated blocks, not lengths).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
