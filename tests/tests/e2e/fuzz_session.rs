//! Bounded fuzzing of the relay's per-connection state machine: arbitrary
//! sequences of raw frames, well-formed envelopes holding arbitrary
//! requests, text frames and valid authentications, played against a relay
//! in this process. After each sequence the relay must have answered or
//! closed, panicked nowhere, and still serve a new connection.

use convene_tests::fuzz::session::{encode_fields, Field, RelayUnderFuzz, Step, MAX_KIND};
use proptest::collection::vec;
use proptest::prelude::*;

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        (1u32..6, any::<u64>()).prop_map(|(tag, v)| Field::Varint(tag, v)),
        (1u32..6, 0u64..40).prop_map(|(tag, v)| Field::Varint(tag, v)),
        (1u32..6, vec(any::<u8>(), 0..70)).prop_map(|(tag, b)| Field::Bytes(tag, b)),
        // Keys and ids are 16 or 32 bytes: give the handlers some.
        (1u32..6, prop_oneof![Just(16usize), Just(32)], any::<u8>())
            .prop_map(|(tag, n, b)| Field::Bytes(tag, vec![b; n])),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..200).prop_map(Step::Raw),
        1 => "\\PC{0,40}".prop_map(Step::Text),
        2 => Just(Step::Authenticate),
        3 => (1..=MAX_KIND, any::<u64>(), vec(any::<u8>(), 0..100))
            .prop_map(|(kind, id, body)| Step::Request { kind, id, body }),
        6 => (1..=MAX_KIND, 1u64..1000, vec(field(), 0..6))
            .prop_map(|(kind, id, fields)| Step::Request { kind, id, body: encode_fields(&fields) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CONVENE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]
    #[test]
    fn the_relay_survives_any_sequence_of_frames(
        authenticated in any::<bool>(),
        mut steps in vec(step(), 0..16),
    ) {
        // Half the sequences start authenticated, to reach the handlers.
        if authenticated {
            steps.insert(0, Step::Authenticate);
        }
        if let Err(finding) = RelayUnderFuzz::get().play(&steps) {
            return Err(TestCaseError::fail(finding));
        }
    }
}
