//! Chains that already verified, so that the same member's chain is not
//! verified again for each of their messages.
//!
//! An entry is keyed by a hash of everything the verdict depends on (the
//! authority key, the chain's exact bytes and the device key) and holds
//! while the certificate is valid at the time asked, so a hit gives the same
//! answer a fresh verification would. Only successes are kept. The cache is shared
//! by the clients of a process and bounded.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::VerifiedDevice;

/// Entries kept before the cache starts over (a network of 1,200 users
/// with a few devices each fits).
const CAPACITY: usize = 8192;

type Entries = HashMap<[u8; 32], VerifiedDevice>;

fn entries() -> &'static Mutex<Entries> {
    static ENTRIES: OnceLock<Mutex<Entries>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(super) fn key(authority: &[u8; 32], chain: &[u8], device_key: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"convene/verified-chain/v1\0")
        .chain_update(authority)
        .chain_update((chain.len() as u64).to_be_bytes())
        .chain_update(chain)
        .chain_update(device_key)
        .finalize()
        .into()
}

pub(super) fn get(key: &[u8; 32], now_ms: u64) -> Option<VerifiedDevice> {
    let entries = entries().lock().unwrap_or_else(|p| p.into_inner());
    entries.get(key).filter(|hit| hit.valid_at(now_ms)).cloned()
}

pub(super) fn put(key: [u8; 32], verified: &VerifiedDevice) {
    let mut entries = entries().lock().unwrap_or_else(|p| p.into_inner());
    if entries.len() >= CAPACITY {
        entries.clear();
    }
    entries.insert(key, verified.clone());
}
