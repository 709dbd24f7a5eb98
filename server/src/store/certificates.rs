//! Renewed certificates: a user's certificate replaced by staff before it
//! expires, and a device's credential chain replaced by the device once it
//! has certified itself under the new one. Both are opaque to the relay
//! beyond what it checks in the handlers; every client verifies them.

use super::{encode, keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};
use convene_proto::ids::UserId;

/// How far one profile write may raise the revision.
pub const MAX_PROFILE_REVISION_STEP: u64 = 1_000;

impl Store {
    /// Replaces a user's certificate with one that expires at
    /// `expires_at_ms`, unless the one held lasts as long or longer, or
    /// (with `replaces`, a SHA-256) is not the one the caller read.
    pub fn renew_certificate(
        &self,
        user_id: &UserId,
        certificate: &[u8],
        expires_at_ms: u64,
        replaces: Option<[u8; 32]>,
    ) -> RelayResult<()> {
        use sha2::{Digest, Sha256};
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut user = self.user(user_id)?.ok_or(Refusal::NotFound("user"))?;
        if replaces.is_some_and(|read| <[u8; 32]>::from(Sha256::digest(&user.certificate)) != read)
        {
            return Err(Refusal::InvalidArgument(
                "the user's certificate changed since it was read: read it again".into(),
            )
            .into());
        }
        if expires_at_ms <= user.certificate_expires_at_ms {
            return Err(Refusal::InvalidArgument(
                "the renewed certificate does not outlast the one it replaces".into(),
            )
            .into());
        }
        user.certificate = certificate.to_vec();
        user.certificate_expires_at_ms = expires_at_ms;
        // Renewals are the authority's own signature.
        user.certified_by_delegate = false;
        self.kv.insert(keys::user(user_id), encode(&user))?;
        Ok(())
    }

    /// Keeps the delegation the authority signed for staff member
    /// `user_id` (the newest replaces the one before).
    pub fn set_delegation(&self, user_id: &UserId, delegation: &[u8]) -> RelayResult<()> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut user = self.user(user_id)?.ok_or(Refusal::NotFound("user"))?;
        user.delegation = delegation.to_vec();
        self.kv.insert(keys::user(user_id), encode(&user))?;
        Ok(())
    }

    /// Stores a user's own profile of `revision`, unless the one held is
    /// of that revision or later.
    pub fn set_profile(&self, user_id: &UserId, profile: &[u8], revision: u64) -> RelayResult<()> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut user = self.user(user_id)?.ok_or(Refusal::NotFound("user"))?;
        // Never lower (a rollback), and never far higher, so that no write
        // can take the revision out of reach of the next.
        if revision <= user.profile_revision
            || revision
                > user
                    .profile_revision
                    .saturating_add(MAX_PROFILE_REVISION_STEP)
        {
            return Err(Refusal::InvalidArgument(format!(
                "the profile's revision must be above {} and at most {} above it",
                user.profile_revision, MAX_PROFILE_REVISION_STEP
            ))
            .into());
        }
        user.profile = profile.to_vec();
        user.profile_revision = revision;
        self.kv.insert(keys::user(user_id), encode(&user))?;
        Ok(())
    }

    /// Replaces a device's credential chain.
    pub fn update_credential(
        &self,
        device: &DevicePublicKey,
        credential: &[u8],
    ) -> RelayResult<()> {
        let _guard = self.device_locks.lock(device);
        let mut record = self.device(device)?.ok_or(Refusal::NotFound("device"))?;
        record.credential = credential.to_vec();
        self.kv.insert(keys::device(device), encode(&record))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::group_tests::fixture;
    use super::MAX_PROFILE_REVISION_STEP;

    /// Never lower (a rollback), and never so far up that no later write
    /// could pass it.
    #[test]
    fn a_profile_revision_only_rises_and_by_a_bounded_step() {
        let f = fixture();
        let user = crate::test_user_id("user1");
        f.store.set_profile(&user, b"first", 1).unwrap();
        assert!(f.store.set_profile(&user, b"again", 1).is_err());
        let too_far = 2 + MAX_PROFILE_REVISION_STEP;
        assert!(f.store.set_profile(&user, b"far", too_far).is_err());
        f.store
            .set_profile(&user, b"next", 1 + MAX_PROFILE_REVISION_STEP)
            .unwrap();
        assert!(f.store.set_profile(&user, b"max", u64::MAX).is_err());
    }
}
