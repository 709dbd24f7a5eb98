#![no_main]
//! `cargo +nightly fuzz run key_package`: see `convene_tests::fuzz::decoders::key_package`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::key_package(data));
