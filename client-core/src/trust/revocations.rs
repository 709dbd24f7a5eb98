//! The revocations this device has verified, held where every chain
//! verification sees them.
//!
//! Staff revoke a device (lost, stolen) or a whole user (suspended) with a
//! signed revocation; the relay refuses revoked devices itself, but a relay
//! that ignored a revocation could still pass on their KeyPackages, commits
//! and messages. So a client consults this set whenever it verifies a
//! chain ([`super::TrustAnchor::verify`]): a revoked device is not
//! accepted as a member, a sender, a committer or a KeyPackage's owner,
//! whatever the relay does.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// A revoked user (empty device key) or one device of a user.
type Revoked = (String, Vec<u8>);

/// A shared, growing set of revoked devices and users. Cloning shares it.
#[derive(Clone, Default)]
pub struct Revocations(Arc<RwLock<HashSet<Revoked>>>);

impl Revocations {
    /// Records that `device_key` of `user_id` is revoked, or (with an
    /// empty `device_key`) every device of the user.
    pub fn add(&self, user_id: &str, device_key: &[u8]) {
        let mut set = self.0.write().unwrap_or_else(|p| p.into_inner());
        set.insert((user_id.to_string(), device_key.to_vec()));
    }

    /// Whether `device_key` of `user_id` is revoked (on its own, or with
    /// its user).
    pub fn covers(&self, user_id: &str, device_key: &[u8]) -> bool {
        let set = self.0.read().unwrap_or_else(|p| p.into_inner());
        if set.is_empty() {
            return false;
        }
        set.contains(&(user_id.to_string(), device_key.to_vec()))
            || set.contains(&(user_id.to_string(), Vec::new()))
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Revocations({})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_or_its_whole_user_is_covered_and_clones_share() {
        let revocations = Revocations::default();
        let shared = revocations.clone();
        assert!(!revocations.covers("ann", &[1; 32]));
        shared.add("ann", &[1; 32]);
        assert!(revocations.covers("ann", &[1; 32]));
        assert!(!revocations.covers("ann", &[2; 32]));
        shared.add("ben", &[]);
        assert!(revocations.covers("ben", &[7; 32]));
        assert!(!revocations.covers("bent", &[7; 32]));
    }
}
