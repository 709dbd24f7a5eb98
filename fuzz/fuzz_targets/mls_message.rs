#![no_main]
//! `cargo +nightly fuzz run mls_message`: see `convene_tests::fuzz::decoders::mls_message`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::mls_message(data));
