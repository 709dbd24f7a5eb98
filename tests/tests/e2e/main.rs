//! Convene's end-to-end tests: real relays (a process each, on loopback)
//! and real clients, one test binary with a module per area, so the relay,
//! client-core and openmls are linked once rather than once per area.
//!
//! Run one area with `cargo test -p convene-tests --test e2e <area>::`,
//! for example `cargo test -p convene-tests --test e2e liveness::`.

mod abuse;
mod authentication;
mod blobs;
mod cli_output;
mod cli_walkthrough;
mod cohort;
mod commits;
mod confidentiality;
mod crash;
mod crash_loop;
mod delegation;
mod delivery;
mod devices;
mod direct;
mod directory;
mod enrolment;
mod example;
mod fuzz_decoders;
mod fuzz_session;
mod help_hostile;
mod help_requests;
mod hostile_input;
mod identity_change;
mod introductions;
mod key_package_stock;
mod key_packages;
mod liveness;
mod managed_cohort;
mod network_channel;
mod revocation;
mod shutdown;
mod store_migration;
mod tls;
mod trust;
