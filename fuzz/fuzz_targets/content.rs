#![no_main]
//! `cargo +nightly fuzz run content`: see `convene_tests::fuzz::decoders::content`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::content(data));
