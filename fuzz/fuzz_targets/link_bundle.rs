#![no_main]
//! `cargo +nightly fuzz run link_bundle`: see `convene_tests::fuzz::decoders::link_bundle`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::link_bundle(data));
