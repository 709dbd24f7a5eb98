#![no_main]
//! `cargo +nightly fuzz run envelope`: see `convene_tests::fuzz::decoders::envelope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::envelope(data));
