//! What other users see while someone attacks the relay: two members who
//! keep talking (send-to-delivery latency of each message), and the
//! relay's memory, from the kernel's peak resident set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinHandle;

use crate::device::{bootstrap_staff, enrol_leaders};
use crate::TestDevice;

/// The group the bystanders talk in.
pub const GROUP: &[u8] = b"bystanders";
/// Pause between the bystanders' messages.
const PACE: Duration = Duration::from_millis(20);

/// Latencies the bystanders saw.
#[derive(Debug, Clone)]
pub struct Latency {
    pub messages: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.messages, self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Staff and two members talking in [`GROUP`], until stopped.
pub struct Bystanders {
    /// The staff device that enrolled everyone (free to invite attackers).
    pub staff: TestDevice,
    stop: Arc<AtomicBool>,
    talk: JoinHandle<Result<Vec<Duration>>>,
}

impl Bystanders {
    /// Enrols staff, ann and bob, puts ann and bob in a group and starts
    /// them talking: ann sends, bob receives and acknowledges, in turn.
    pub async fn start(relay: &impl crate::RelayUnderTest) -> Result<Bystanders> {
        let staff = bootstrap_staff(relay).await?;
        let mut members = enrol_leaders(relay, &staff, &["ann", "bob"]).await?;
        members[0].create_group(GROUP).await?;
        let bob_device = members[1].device();
        members[0].commit(GROUP, 0, &[bob_device], &[]).await?;
        for member in &mut members {
            member.settle().await?;
        }
        let mut bob = members.pop().ok_or_else(|| anyhow::anyhow!("no bob"))?;
        let ann = members.pop().ok_or_else(|| anyhow::anyhow!("no ann"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let talk = tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let sent = Instant::now();
                ann.send(GROUP, b"still talking").await?;
                bob.group_messages(1).await?;
                latencies.push(sent.elapsed());
                tokio::time::sleep(PACE).await;
            }
            Ok(latencies)
        });
        Ok(Bystanders { staff, stop, talk })
    }

    /// Stops them; fails if any message was refused or not delivered.
    pub async fn stop(self) -> Result<Latency> {
        self.stop.store(true, Ordering::SeqCst);
        let mut latencies = self.talk.await??;
        anyhow::ensure!(!latencies.is_empty(), "the bystanders sent nothing");
        latencies.sort();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i].as_secs_f64() * 1000.0
        };
        Ok(Latency {
            messages: latencies.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// A process's resident set now, in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    process_memory(pid, "VmRSS")
}

/// Starts a new peak: the kernel's high-water mark of the process's
/// resident set (`VmHWM`) is set back to its resident set now, so that
/// [`peak_resident_bytes`] covers only what follows.
pub fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    Ok(())
}

/// The highest resident set since the last [`reset_peak`], in bytes.
pub fn peak_resident_bytes(pid: u32) -> u64 {
    process_memory(pid, "VmHWM")
}

/// A `/proc/PID/status` memory field (`VmRSS`, `VmHWM`), in bytes.
pub fn process_memory(pid: u32, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
