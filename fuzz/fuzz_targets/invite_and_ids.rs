#![no_main]
//! `cargo +nightly fuzz run invite_and_ids`: see `convene_tests::fuzz::decoders::invite_and_ids`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::invite_and_ids(data));
