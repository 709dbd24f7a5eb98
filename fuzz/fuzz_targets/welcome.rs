#![no_main]
//! `cargo +nightly fuzz run welcome`: see `convene_tests::fuzz::decoders::welcome`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::welcome(data));
