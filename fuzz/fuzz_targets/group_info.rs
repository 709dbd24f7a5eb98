#![no_main]
//! `cargo +nightly fuzz run group_info`: see `convene_tests::fuzz::decoders::group_info`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_tests::fuzz::decoders::group_info(data));
