//! Safety numbers: a short string two users compare out of band (read
//! aloud, or side by side) to check that each holds the other's real
//! identity key, whatever the relay or the authority did.

use sha2::{Digest, Sha512};

const LABEL: &[u8] = b"convene/safety-number/v1\0";
/// Iterations of the hash, so that finding a colliding key is costly.
const ITERATIONS: usize = 1024;
const GROUPS: usize = 12;

/// One side's half: the hash of its user id and identity key.
fn half(user_id: &str, identity_key: &[u8; 32]) -> [u8; 64] {
    let mut digest: [u8; 64] = Sha512::new()
        .chain_update(LABEL)
        .chain_update((user_id.len() as u32).to_be_bytes())
        .chain_update(user_id.as_bytes())
        .chain_update(identity_key)
        .finalize()
        .into();
    for _ in 0..ITERATIONS {
        digest = Sha512::new()
            .chain_update(digest)
            .chain_update(identity_key)
            .finalize()
            .into();
    }
    digest
}

/// The safety number of two users: 60 digits in 12 groups of 5, the same
/// whichever side computes it.
pub fn safety_number(a: (&str, &[u8; 32]), b: (&str, &[u8; 32])) -> String {
    let (first, second) = if (a.0, a.1) <= (b.0, b.1) {
        (a, b)
    } else {
        (b, a)
    };
    let halves = [half(first.0, first.1), half(second.0, second.1)];
    let mut groups = Vec::with_capacity(GROUPS);
    for half in &halves {
        // Six groups from each side's half: 5 bytes -> 5 digits.
        for chunk in half.chunks(5).take(GROUPS / 2) {
            let value = chunk
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            groups.push(format!("{:05}", value % 100_000));
        }
    }
    groups.join(" ")
}
