#![no_main]
//! `cargo +nightly fuzz run trust`: see `convene_tests::fuzz::decoders::trust`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::trust(data));
