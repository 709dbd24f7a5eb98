//! Test support for Convene's end-to-end tests: real relay processes
//! ([`relay_process`]) driven by real clients ([`device`]) over loopback.
//!
//! Every relay runs on an ephemeral port of 127.0.0.1 with its own
//! temporary data directory, and is killed when its handle drops.

pub mod app;
pub mod binaries;
pub mod bystander;
pub mod connectors;
pub mod device;
pub mod fuzz;
pub mod protocol_doc;
pub mod raw;
pub mod relay_process;
pub mod stub_relay;
pub mod tampered;

pub use app::App;
pub use device::TestDevice;
pub use relay_process::{RelayOptions, RelayProcess};

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
