//! Bounded fuzzing of every decoder that takes bytes from outside: each
//! gets arbitrary bytes and mutations of valid inputs, a fixed number of
//! cases per run (`CONVENE_FUZZ_CASES` raises it for a longer run). A
//! failure is a panic; proptest shrinks it and records the reproducer in
//! `proptest-regressions/`, which is committed and replayed first.

use convene_tests::fuzz::{decoders, seeds};
use proptest::collection::vec;
use proptest::prelude::*;

/// Cases per decoder in a normal run.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("CONVENE_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// One edit of a valid input: flip, overwrite, insert, delete or truncate.
fn apply(bytes: &mut Vec<u8>, (op, at, value): (u8, usize, u8)) {
    let at = if bytes.is_empty() {
        0
    } else {
        at % bytes.len()
    };
    match op % 5 {
        0 if !bytes.is_empty() => bytes[at] ^= 1 << (value % 8),
        1 if !bytes.is_empty() => bytes[at] = value,
        2 => bytes.insert(at, value),
        3 if !bytes.is_empty() => {
            bytes.remove(at);
        }
        _ => bytes.truncate(at),
    }
}

/// Arbitrary bytes, or a few edits of one of `seeds`.
fn input(seeds: &'static [Vec<u8>]) -> BoxedStrategy<Vec<u8>> {
    let random = vec(any::<u8>(), 0..600);
    if seeds.is_empty() {
        return random.boxed();
    }
    let edited = (
        0..seeds.len(),
        vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
    )
        .prop_map(|(i, edits)| {
            let mut bytes = seeds[i].clone();
            for edit in edits {
                apply(&mut bytes, edit);
            }
            bytes
        });
    prop_oneof![1 => random, 3 => edited].boxed()
}

proptest! {
    #![proptest_config(cases(2_000))]
    #[test]
    fn the_envelope_decoder_never_panics(data in input(&seeds().envelopes)) {
        decoders::envelope(&data);
    }

    #[test]
    fn invite_codes_and_ids_never_panic(data in input(&seeds().invite_codes)) {
        decoders::invite_and_ids(&data);
    }

    #[test]
    fn message_content_never_panics(data in input(&seeds().contents)) {
        decoders::content(&data);
    }
}

proptest! {
    #![proptest_config(cases(500))]
    #[test]
    fn credential_chains_and_revocations_never_panic(data in input(&seeds().trust)) {
        decoders::trust(&data);
    }

    #[test]
    fn link_bundles_never_panic(data in input(&seeds().link_bundles)) {
        decoders::link_bundle(&data);
    }

    #[test]
    fn key_packages_never_panic(data in input(&seeds().key_packages)) {
        decoders::key_package(&data);
    }

    #[test]
    fn group_messages_never_panic(data in input(&seeds().mls_messages)) {
        decoders::mls_message(&data);
    }

    #[test]
    fn welcomes_never_panic(data in input(&seeds().welcomes)) {
        decoders::welcome(&data);
    }

    #[test]
    fn group_infos_never_panic(data in input(&seeds().group_infos)) {
        decoders::group_info(&data);
    }
}

/// The seeds themselves must be accepted where they are valid, or the
/// mutations above would start from nothing.
#[test]
fn the_seeds_are_valid_inputs() {
    let seeds = seeds();
    for envelope in &seeds.envelopes {
        assert!(convene_proto::decode_envelope(envelope.clone().into()).is_ok());
    }
    for code in &seeds.invite_codes {
        let code = String::from_utf8(code.clone()).unwrap();
        assert!(convene_proto::invite::Invite::from_code(&code).is_ok());
    }
    for content in &seeds.contents {
        assert!(convene_client::mls::content::read_content(content).is_ok());
    }
    assert!(!seeds.mls_messages.is_empty() && !seeds.welcomes.is_empty());
    assert!(!seeds.group_infos.is_empty() && !seeds.key_packages.is_empty());
    assert!(!seeds.trust.is_empty() && !seeds.link_bundles.is_empty());
}
