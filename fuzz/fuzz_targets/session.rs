#![no_main]
//! `cargo +nightly fuzz run session`: the relay's per-connection state
//! machine; see `convene_tests::fuzz::session::session`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::session::session(data));
