//! Test support for Convene's end-to-end tests: the real relay, in this
//! process ([`relay_in_process`]) or as its own process
//! ([`relay_process`], for tests that kill, restart or read it), driven by
//! real clients ([`device`]) over loopback.
//!
//! Every relay runs on an ephemeral port of 127.0.0.1 with its own
//! temporary data directory, and stops when its handle drops.

pub mod app;
pub mod binaries;
pub mod bystander;
pub mod connectors;
pub mod device;
pub mod fuzz;
pub mod protocol_doc;
pub mod raw;
pub mod relay_in_process;
pub mod relay_process;
pub mod stub_relay;
pub mod tampered;

pub use app::App;
pub use device::TestDevice;
pub use relay_in_process::InProcessRelay;
pub use relay_process::{RelayOptions, RelayProcess};

/// What tests need of a running relay, in this process or in its own.
pub trait RelayUnderTest {
    /// `ws://127.0.0.1:PORT` (or `wss://`).
    fn url(&self) -> &str;
    /// The bootstrap staff invite the new relay made.
    fn bootstrap_invite(&self) -> Option<&str>;
}

impl RelayUnderTest for RelayProcess {
    fn url(&self) -> &str {
        &self.url
    }

    fn bootstrap_invite(&self) -> Option<&str> {
        self.bootstrap_invite.as_deref()
    }
}

impl RelayUnderTest for InProcessRelay {
    fn url(&self) -> &str {
        &self.url
    }

    fn bootstrap_invite(&self) -> Option<&str> {
        self.bootstrap_invite.as_deref()
    }
}

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
