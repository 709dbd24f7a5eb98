//! Linking a new device to an existing user.
//!
//! The new device, not yet enrolled, leaves a request; one of the user's
//! devices approves it, which registers the device and stores a bundle
//! sealed to it. Requests expire after a few minutes, and a user has only a
//! few pending at once, so that strangers cannot fill the store with them.

use super::engine::Batch;
use convene_proto::ids::UserId;

use super::keys::{self, DevicePublicKey};
use super::records::{DeviceRecord, LinkRecord, UserRecord};
use super::{encode, Store};
use crate::error::{Refusal, RelayResult};

/// Link requests a user may have waiting at once.
pub const MAX_PENDING_LINKS: usize = 3;

/// A link request to store.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub user_id: &'a UserId,
    pub device: DevicePublicKey,
    /// The new device's SPAKE2 message, opaque.
    pub pake_message: &'a [u8],
    pub ttl_ms: u64,
}

/// What the approving device leaves for the new one, both opaque.
#[derive(Debug, Clone, Copy)]
pub struct LinkAnswer<'a> {
    pub pake_message: &'a [u8],
    pub sealed: &'a [u8],
}

impl Store {
    /// Stores a link request and returns when it expires. Expired requests
    /// of the user are deleted on the way.
    pub fn request_link(&self, link: &NewLink<'_>, now: u64) -> RelayResult<u64> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let user: UserRecord = self
            .get(&keys::user(link.user_id))?
            .ok_or(Refusal::NotFound("user"))?;
        if user.suspended_at_ms != 0 {
            return Err(Refusal::Revoked.into());
        }
        if self.device(&link.device)?.is_some() || self.link(&link.device)?.is_some() {
            return Err(Refusal::AlreadyExists("device").into());
        }
        let mut batch = Batch::default();
        let mut pending = 0;
        for (device, record) in self.user_links(link.user_id)? {
            if now >= record.expires_at_ms {
                batch.remove(keys::link(&device));
                batch.remove(keys::user_link(link.user_id, &device));
            } else if record.approved_at_ms == 0 {
                pending += 1;
            }
        }
        if pending >= MAX_PENDING_LINKS {
            return Err(Refusal::QueueFull("this user's link requests").into());
        }
        let expires_at_ms = now.saturating_add(link.ttl_ms);
        let record = LinkRecord {
            user_id: link.user_id.to_string(),
            requested_at_ms: now,
            expires_at_ms,
            approved_at_ms: 0,
            sealed: Vec::new(),
            pake_request: link.pake_message.to_vec(),
            pake_answer: Vec::new(),
        };
        batch.insert(keys::link(&link.device), encode(&record));
        batch.insert(keys::user_link(link.user_id, &link.device), []);
        self.kv.apply_batch(batch)?;
        Ok(expires_at_ms)
    }

    /// The link request of this device, if any.
    pub fn link(&self, device: &DevicePublicKey) -> RelayResult<Option<LinkRecord>> {
        self.get(&keys::link(device))
    }

    /// Every link request of a user, expired or not, in device key order.
    pub fn user_links(&self, user_id: &UserId) -> RelayResult<Vec<(DevicePublicKey, LinkRecord)>> {
        let mut links = Vec::new();
        for item in self.kv.scan_prefix(keys::user_links_prefix(user_id)) {
            let (key, _) = item?;
            let device =
                keys::trailing_device(&key).ok_or_else(|| super::corrupt("user link key"))?;
            if let Some(record) = self.link(&device)? {
                links.push((device, record));
            }
        }
        Ok(links)
    }

    /// Approves `user_id`'s pending link of `device`: registers the device
    /// (its credential comes from the device itself once it has opened the
    /// bundle) and keeps `answer` for it, atomically.
    pub fn approve_link(
        &self,
        user_id: &UserId,
        device: &DevicePublicKey,
        answer: &LinkAnswer<'_>,
        now: u64,
    ) -> RelayResult<()> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut link = self
            .link(device)?
            .filter(|link| link.user_id == *user_id && now < link.expires_at_ms)
            .ok_or(Refusal::NotFound("link request"))?;
        if link.approved_at_ms != 0 || self.device(device)?.is_some() {
            return Err(Refusal::AlreadyExists("device").into());
        }
        link.approved_at_ms = now;
        link.sealed = answer.sealed.to_vec();
        link.pake_answer = answer.pake_message.to_vec();
        let record = DeviceRecord {
            user_id: user_id.to_string(),
            created_at_ms: now,
            credential: Vec::new(),
            revoked_at_ms: 0,
            continuity: Vec::new(),
            revoked_by: 0,
            // Seen when it first authenticates.
            last_seen_ms: 0,
            sealed_label: Vec::new(),
        };
        let mut batch = Batch::default();
        batch.insert(keys::link(device), encode(&link));
        batch.insert(keys::device(device), encode(&record));
        batch.insert(keys::user_device(user_id, device), []);
        self.kv.apply_batch(batch)?;
        Ok(())
    }

    /// Marks another device of `user_id` removed (by the user, from another
    /// of their devices). Idempotent.
    pub fn remove_own_device(
        &self,
        user_id: &UserId,
        device: &DevicePublicKey,
        now: u64,
    ) -> RelayResult<()> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        // As every write of a device's record, under its lock.
        let _device_guard = self.device_locks.lock(device);
        let mut record = self
            .device(device)?
            .filter(|record| record.user_id == *user_id)
            .ok_or(Refusal::NotFound("device"))?;
        if record.revoked_at_ms == 0 {
            record.revoked_at_ms = now;
            self.kv
                .insert(keys::device(device), encode::<DeviceRecord>(&record))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NewInvite, StoreOptions};
    use super::*;

    static ANN: std::sync::LazyLock<convene_proto::ids::UserId> =
        std::sync::LazyLock::new(|| crate::test_user_id("ann"));

    use crate::store::Enrolment;
    use convene_proto::relay::Role;

    fn store_with_ann() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let invite = NewInvite {
            role: Role::Leader,
            user_id: String::new(),
            display_name: String::new(),
            ttl_ms: 10_000,
            user_certificate: Vec::new(),
            created_by: None,
            delegation: Vec::new(),
        };
        store.create_invite(&[1; 32], &invite, 1_000).unwrap();
        let enrolment = Enrolment {
            invite_hash: [1; 32],
            user_id: "ann",
            display_name: "Ann",
            device: DevicePublicKey([1; 32]),
            credential: &[],
            authority_key: None,
        };
        store.enrol(&enrolment, 1_000).unwrap();
        (dir, store)
    }

    fn link(device: u8) -> NewLink<'static> {
        NewLink {
            user_id: &ANN,
            device: DevicePublicKey([device; 32]),
            pake_message: &[7; 33],
            ttl_ms: 1_000,
        }
    }

    #[test]
    fn an_approved_link_registers_the_device_once() {
        let (_dir, store) = store_with_ann();
        store.request_link(&link(2), 2_000).unwrap();
        assert_eq!(
            store
                .user_devices(&crate::test_user_id("ann"))
                .unwrap()
                .len(),
            1
        );
        let answer = LinkAnswer {
            pake_message: b"answer",
            sealed: b"sealed",
        };
        store
            .approve_link(
                &crate::test_user_id("ann"),
                &DevicePublicKey([2; 32]),
                &answer,
                2_100,
            )
            .unwrap();
        let devices = store.user_devices(&crate::test_user_id("ann")).unwrap();
        assert_eq!(devices.len(), 2);
        let link = store.link(&DevicePublicKey([2; 32])).unwrap().unwrap();
        assert_eq!(
            (link.sealed.as_slice(), link.pake_answer.as_slice()),
            (&b"sealed"[..], &b"answer"[..])
        );
        let again = store.approve_link(
            &crate::test_user_id("ann"),
            &DevicePublicKey([2; 32]),
            &answer,
            2_200,
        );
        assert!(again.is_err());
    }

    #[test]
    fn links_are_bounded_per_user_and_expire() {
        let (_dir, store) = store_with_ann();
        for device in 2..2 + MAX_PENDING_LINKS as u8 {
            store.request_link(&link(device), 2_000).unwrap();
        }
        let full = store.request_link(&link(9), 2_000).unwrap_err();
        assert!(matches!(
            full,
            crate::error::RelayError::Refused(Refusal::QueueFull(_))
        ));
        // Once the earlier ones expire, they make room and are deleted.
        store.request_link(&link(9), 3_500).unwrap();
        assert_eq!(
            store.user_links(&crate::test_user_id("ann")).unwrap().len(),
            1
        );
        let answer = LinkAnswer {
            pake_message: b"a",
            sealed: b"s",
        };
        let expired = store.approve_link(
            &crate::test_user_id("ann"),
            &DevicePublicKey([9; 32]),
            &answer,
            4_600,
        );
        assert!(expired.is_err());
    }

    #[test]
    fn another_users_device_cannot_be_removed() {
        let (_dir, store) = store_with_ann();
        assert!(store
            .remove_own_device(
                &crate::test_user_id("bob"),
                &DevicePublicKey([1; 32]),
                2_000
            )
            .is_err());
        store
            .remove_own_device(
                &crate::test_user_id("ann"),
                &DevicePublicKey([1; 32]),
                2_000,
            )
            .unwrap();
        assert_eq!(
            store
                .device(&DevicePublicKey([1; 32]))
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            2_000
        );
    }
}
