//! Who may hold a slot for a connection that has not authenticated yet.
//!
//! Such connections cost the relay and prove nothing, so they are bounded:
//! `max_unauthenticated` in all, and `max_unauthenticated_per_address` from
//! one address (an IPv4 address, or an IPv6 /64, which one machine can
//! spread itself over), so that one address cannot fill every slot and
//! lock everyone else out. A refused connection is not logged a line each
//! (a flood would fill the disk): refusals are counted and summarised at
//! most once per [`SUMMARY_EVERY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest a refusal waits to be told in the log.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// An address as unauthenticated connections are counted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl AddressKey {
    fn of(address: IpAddr) -> AddressKey {
        match address {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    AddressKey::V6(prefix)
                }
            },
        }
    }
}

type PerAddress = Arc<Mutex<HashMap<AddressKey, u32>>>;

/// The bounds on unauthenticated connections.
pub struct Admission {
    global: Arc<Semaphore>,
    per_address: PerAddress,
    max_per_address: u32,
    refused: Mutex<Refusals>,
}

/// Refusals not yet told in the log.
struct Refusals {
    count: u64,
    since: Instant,
}

/// A held slot, given back when the connection authenticates or closes.
pub struct UnauthenticatedSlot {
    _global: OwnedSemaphorePermit,
    address: AddressKey,
    per_address: PerAddress,
}

impl Drop for UnauthenticatedSlot {
    fn drop(&mut self) {
        let mut table = self
            .per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = table.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.remove(&self.address);
            }
        }
    }
}

impl Admission {
    /// At most `max_in_all` unauthenticated connections, and
    /// `max_per_address` from one address.
    pub fn new(max_in_all: u32, max_per_address: u32) -> Admission {
        Admission {
            global: Arc::new(Semaphore::new(max_in_all as usize)),
            per_address: Arc::default(),
            max_per_address,
            refused: Mutex::new(Refusals {
                count: 0,
                since: Instant::now(),
            }),
        }
    }

    /// A slot for a new connection from `peer`, or `None` (counted for the
    /// summary) when its address or everyone is at the bound.
    pub fn admit(&self, peer: IpAddr) -> Option<UnauthenticatedSlot> {
        let address = AddressKey::of(peer);
        let slot = {
            let mut table = self
                .per_address
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let held = table.get(&address).copied().unwrap_or(0);
            match self.global.clone().try_acquire_owned() {
                Ok(permit) if held < self.max_per_address => {
                    table.insert(address, held + 1);
                    Some(UnauthenticatedSlot {
                        _global: permit,
                        address,
                        per_address: self.per_address.clone(),
                    })
                }
                _ => None,
            }
        };
        if slot.is_none() {
            self.note_refused();
        }
        slot
    }

    fn note_refused(&self) {
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        refused.count += 1;
        if refused.since.elapsed() >= SUMMARY_EVERY {
            tracing::warn!(
                refused = refused.count,
                seconds = refused.since.elapsed().as_secs(),
                "refused connections: too many not authenticated (in all, or from one address)"
            );
            refused.count = 0;
            refused.since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let admission = Admission::new(4, 2);
        let flood: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..10).filter_map(|_| admission.admit(flood)).collect();
        assert_eq!(held.len(), 2);
        let theirs = admission.admit(other);
        assert!(theirs.is_some());
        drop(held);
        assert!(admission.admit(flood).is_some(), "slots come back");
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let admission = Admission::new(8, 1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = admission.admit(a).unwrap();
        assert!(admission.admit(b).is_none());
        assert!(admission.admit(c).is_some());
    }
}
