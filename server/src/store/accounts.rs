//! Invites, users and their devices.
//!
//! Invites are stored under a hash of their secret only. Redeeming one
//! creates the user and the first device and marks the invite used, in one
//! batch, so an invite can never make two users.

use super::engine::Batch;
use convene_proto::ids::{check_display_name, UserId};
use convene_proto::relay::Role;
use convene_proto::trust::{chain_user_certificate, read_user_certificate};

/// How finely a device's last authentication is kept.
const SEEN_RESOLUTION_MS: u64 = 60_000;

use super::records::{DeviceRecord, InviteRecord, UserRecord};
use super::{corrupt, encode, keys, DevicePublicKey, Store};
use crate::error::{Refusal, RelayResult};

/// An invite to create.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub role: Role,
    /// The handle the invitee will have; empty lets them choose.
    pub user_id: String,
    /// The invitee's display name; empty lets them choose.
    pub display_name: String,
    /// How long the invite is valid, in milliseconds.
    pub ttl_ms: u64,
    /// The invitee's signed user certificate (opaque; may be empty).
    pub user_certificate: Vec<u8>,
    /// The staff device that created it; `None` for the bootstrap invite.
    pub created_by: Option<DevicePublicKey>,
    /// The delegation under which staff certified the invitee (opaque; may
    /// be empty).
    pub delegation: Vec<u8>,
}

/// Meta key of the organisation's authority key.
const AUTHORITY_KEY: &str = "authority_key";

/// A request to redeem an invite.
#[derive(Debug, Clone)]
pub struct Enrolment<'a> {
    pub invite_hash: [u8; 32],
    /// Used when the invite does not name a handle.
    pub user_id: &'a str,
    /// Used when the invite does not name a display name.
    pub display_name: &'a str,
    pub device: DevicePublicKey,
    /// The device's credential chain (opaque).
    pub credential: &'a [u8],
    /// The organisation's authority key, set by the first staff member
    /// through a bootstrap invite.
    pub authority_key: Option<[u8; 32]>,
}

impl Store {
    /// Stores a new invite under the hash of its secret and returns when it
    /// expires.
    pub fn create_invite(&self, hash: &[u8; 32], invite: &NewInvite, now: u64) -> RelayResult<u64> {
        if !invite.user_id.is_empty() && self.user(&UserId::parse(&invite.user_id)?)?.is_some() {
            return Err(Refusal::AlreadyExists("user id").into());
        }
        if !invite.display_name.is_empty() {
            check_display_name(&invite.display_name)?;
        }
        let expires_at_ms = now.saturating_add(invite.ttl_ms);
        let record = InviteRecord {
            role: invite.role as i32,
            user_id: invite.user_id.clone(),
            display_name: invite.display_name.clone(),
            created_at_ms: now,
            expires_at_ms,
            created_by: invite.created_by.map(|d| d.to_vec()).unwrap_or_default(),
            redeemed_at_ms: 0,
            user_certificate: invite.user_certificate.clone(),
            delegation: invite.delegation.clone(),
        };
        self.kv.insert(keys::invite(hash), encode(&record))?;
        Ok(expires_at_ms)
    }

    /// Whether any user has enrolled yet.
    pub fn has_users(&self) -> RelayResult<bool> {
        Ok(self
            .kv
            .scan_prefix([keys::USER])
            .next()
            .transpose()?
            .is_some())
    }

    /// Replaces the bootstrap staff invite (the one that lets the first staff
    /// member enrol) with a new one, so that each start of an empty relay
    /// shows a fresh, valid invite and the earlier ones stop working.
    pub fn replace_bootstrap_invite(
        &self,
        hash: &[u8; 32],
        ttl_ms: u64,
        now: u64,
    ) -> RelayResult<u64> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Batch::default();
        if let Some(old) = self.kv.get(keys::meta("bootstrap_invite"))? {
            let old: [u8; 32] = old
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("bootstrap invite hash"))?;
            batch.remove(keys::invite(&old));
        }
        let expires_at_ms = now.saturating_add(ttl_ms);
        let record = InviteRecord {
            role: Role::Staff as i32,
            created_at_ms: now,
            expires_at_ms,
            ..Default::default()
        };
        batch.insert(keys::invite(hash), encode(&record));
        batch.insert(keys::meta("bootstrap_invite"), hash.as_slice());
        self.kv.apply_batch(batch)?;
        Ok(expires_at_ms)
    }

    /// Redeems an invite: creates the user and the device, and marks the
    /// invite used, atomically.
    pub fn enrol(&self, enrolment: &Enrolment<'_>, now: u64) -> RelayResult<UserRecord> {
        let _guard = self.enrol_lock.lock().unwrap_or_else(|p| p.into_inner());
        let invite_key = keys::invite(&enrolment.invite_hash);
        let mut invite: InviteRecord = self.get(&invite_key)?.ok_or(Refusal::InviteUnknown)?;
        if invite.redeemed_at_ms != 0 {
            return Err(Refusal::InviteUsed.into());
        }
        if now >= invite.expires_at_ms {
            return Err(Refusal::InviteExpired.into());
        }
        let user_id = if invite.user_id.is_empty() {
            enrolment.user_id
        } else {
            &invite.user_id
        };
        // Nobody named: the handle stands in for the name.
        let display_name = match (invite.display_name.as_str(), enrolment.display_name) {
            ("", "") => user_id,
            ("", chosen) => chosen,
            (invited, _) => invited,
        };
        let checked = UserId::parse(user_id)?;
        check_display_name(display_name)?;
        if self.user(&checked)?.is_some() {
            return Err(Refusal::AlreadyExists("user id").into());
        }
        if self.device(&enrolment.device)?.is_some() {
            return Err(Refusal::AlreadyExists("device").into());
        }
        let recorded_authority = self.authority_key()?;
        if let Some(key) = enrolment.authority_key {
            if !invite.created_by.is_empty() {
                return Err(Refusal::InvalidArgument(
                    "only a bootstrap invite may set the authority key".into(),
                )
                .into());
            }
            if recorded_authority.is_some_and(|recorded| recorded != key) {
                return Err(Refusal::InvalidArgument(
                    "the organisation's authority key is already set".into(),
                )
                .into());
            }
        }
        // The bootstrap staff member certifies itself: its certificate is
        // the one in its chain.
        let certificate = if invite.user_certificate.is_empty() {
            chain_user_certificate(enrolment.credential).unwrap_or_default()
        } else {
            invite.user_certificate.clone()
        };
        let certificate_expires_at_ms =
            read_user_certificate(&certificate).map_or(0, |c| c.not_after_ms);
        let user = UserRecord {
            user_id: user_id.to_string(),
            display_name: display_name.to_string(),
            role: invite.role,
            created_at_ms: now,
            suspended_at_ms: 0,
            certificate,
            certificate_expires_at_ms,
            delegation: Vec::new(),
            certified_by_delegate: !invite.delegation.is_empty(),
            suspended_by: 0,
            profile: Vec::new(),
            profile_revision: 0,
        };
        let device = DeviceRecord {
            user_id: user.user_id.clone(),
            created_at_ms: now,
            credential: enrolment.credential.to_vec(),
            revoked_at_ms: 0,
            continuity: Vec::new(),
            revoked_by: 0,
            // It is connected as it enrols.
            last_seen_ms: now,
            sealed_label: Vec::new(),
        };
        invite.redeemed_at_ms = now;

        let mut batch = Batch::default();
        batch.insert(keys::user(&user.user_id), encode(&user));
        batch.insert(keys::device(&enrolment.device), encode(&device));
        batch.insert(keys::user_device(&user.user_id, &enrolment.device), []);
        batch.insert(invite_key, encode(&invite));
        if let (Some(key), None) = (enrolment.authority_key, recorded_authority) {
            batch.insert(keys::meta(AUTHORITY_KEY), key.as_slice());
        }
        self.kv.apply_batch(batch)?;
        Ok(user)
    }

    /// The invite stored under this hash, if any.
    pub fn invite(&self, hash: &[u8; 32]) -> RelayResult<Option<InviteRecord>> {
        self.get(&keys::invite(hash))
    }

    /// The organisation's authority key, once the first staff member set it.
    pub fn authority_key(&self) -> RelayResult<Option<[u8; 32]>> {
        match self.kv.get(keys::meta(AUTHORITY_KEY))? {
            None => Ok(None),
            Some(raw) => raw
                .as_slice()
                .try_into()
                .map(Some)
                .map_err(|_| corrupt("authority key")),
        }
    }

    pub fn user(&self, user_id: &UserId) -> RelayResult<Option<UserRecord>> {
        self.get(&keys::user(user_id))
    }

    pub fn device(&self, device: &DevicePublicKey) -> RelayResult<Option<DeviceRecord>> {
        self.get(&keys::device(device))
    }

    /// Checks the continuity of a device's state at authentication (see
    /// `Authenticate` in the protocol) and moves its token on to `next`:
    /// `continuity` must name the token of its last authentication, or
    /// `next` the one recorded by an authentication whose answer it never
    /// saw; `take_over` accepts either way.
    pub fn pass_continuity(
        &self,
        device: &DevicePublicKey,
        continuity: &[u8],
        next: &[u8],
        take_over: bool,
    ) -> RelayResult<()> {
        let _guard = self.device_locks.lock(device);
        let mut record = self.device(device)?.ok_or(Refusal::AuthenticationFailed)?;
        let recorded = record.continuity.as_slice();
        // A device that never named a token (a client that predates them)
        // is not checked; once one is recorded, it must be named.
        if recorded.is_empty() && continuity.is_empty() && next.is_empty() {
            return Ok(());
        }
        let continuous =
            recorded.is_empty() || recorded == continuity || (!next.is_empty() && recorded == next);
        if !continuous && !take_over {
            return Err(Refusal::StateCopied.into());
        }
        if next.is_empty() || recorded == next {
            return Ok(());
        }
        record.continuity = next.to_vec();
        self.kv.insert(keys::device(device), encode(&record))?;
        Ok(())
    }

    /// Records that `device` authenticated at `now_ms`. Kept to the
    /// minute, so that a device reconnecting often writes once a minute
    /// at most.
    pub fn record_seen(&self, device: &DevicePublicKey, now_ms: u64) -> RelayResult<()> {
        let _guard = self.device_locks.lock(device);
        let Some(mut record) = self.device(device)? else {
            return Ok(());
        };
        if now_ms.saturating_sub(record.last_seen_ms) < SEEN_RESOLUTION_MS {
            return Ok(());
        }
        record.last_seen_ms = now_ms - now_ms % SEEN_RESOLUTION_MS;
        self.kv.insert(keys::device(device), encode(&record))?;
        Ok(())
    }

    /// Stores `device`'s sealed label (opaque), replacing the one before.
    pub fn set_device_label(&self, device: &DevicePublicKey, sealed: &[u8]) -> RelayResult<()> {
        let _guard = self.device_locks.lock(device);
        let mut record = self.device(device)?.ok_or(Refusal::NotFound("device"))?;
        record.sealed_label = sealed.to_vec();
        self.kv.insert(keys::device(device), encode(&record))?;
        Ok(())
    }

    /// The devices of a user, in key order.
    pub fn user_devices(
        &self,
        user_id: &UserId,
    ) -> RelayResult<Vec<(DevicePublicKey, DeviceRecord)>> {
        let mut devices = Vec::new();
        for item in self.kv.scan_prefix(keys::user_devices_prefix(user_id)) {
            let (key, _) = item?;
            let device = keys::trailing_device(&key).ok_or_else(|| corrupt("user device key"))?;
            if let Some(record) = self.device(&device)? {
                devices.push((device, record));
            }
        }
        Ok(devices)
    }

    /// A page of users ordered by id, starting after `after`, and whether
    /// more follow.
    pub fn list_users(&self, after: &str, limit: usize) -> RelayResult<(Vec<UserRecord>, bool)> {
        let start = keys::user(after);
        let end = [keys::USER + 1];
        let mut users = Vec::with_capacity(limit.min(256));
        for item in self.kv.range(start.as_slice()..end.as_slice()) {
            let (key, raw) = item?;
            if key.as_slice() == start.as_slice() {
                continue;
            }
            if users.len() == limit {
                return Ok((users, true));
            }
            users.push(prost::Message::decode(raw.as_ref())?);
        }
        Ok((users, false))
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreOptions;
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        (dir, store)
    }

    fn invite(store: &Store, hash: [u8; 32], ttl_ms: u64) {
        let new = NewInvite {
            user_certificate: Vec::new(),
            role: Role::Leader,
            user_id: String::new(),
            display_name: String::new(),
            ttl_ms,
            created_by: None,
            delegation: Vec::new(),
        };
        store.create_invite(&hash, &new, 1_000).unwrap();
    }

    fn enrolment(hash: [u8; 32], user: &str, device: u8) -> Enrolment<'_> {
        Enrolment {
            credential: &[],
            authority_key: None,
            invite_hash: hash,
            user_id: user,
            display_name: "Someone",
            device: DevicePublicKey([device; 32]),
        }
    }

    #[test]
    fn an_invite_makes_one_user_only() {
        let (_dir, store) = store();
        invite(&store, [1; 32], 10_000);
        let user = store.enrol(&enrolment([1; 32], "ann", 1), 2_000).unwrap();
        assert_eq!(user.user_id, "ann");
        let again = store
            .enrol(&enrolment([1; 32], "bob", 2), 2_001)
            .unwrap_err();
        assert!(matches!(
            again,
            crate::error::RelayError::Refused(Refusal::InviteUsed)
        ));
        assert!(store.user(&crate::test_user_id("bob")).unwrap().is_none());
        assert_eq!(
            store
                .user_devices(&crate::test_user_id("ann"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn expired_and_unknown_invites_are_refused() {
        let (_dir, store) = store();
        invite(&store, [1; 32], 10);
        let expired = store
            .enrol(&enrolment([1; 32], "ann", 1), 5_000)
            .unwrap_err();
        assert!(matches!(
            expired,
            crate::error::RelayError::Refused(Refusal::InviteExpired)
        ));
        let unknown = store
            .enrol(&enrolment([9; 32], "ann", 1), 1_001)
            .unwrap_err();
        assert!(matches!(
            unknown,
            crate::error::RelayError::Refused(Refusal::InviteUnknown)
        ));
    }

    #[test]
    fn bootstrap_invite_replacement_revokes_the_old_one() {
        let (_dir, store) = store();
        store
            .replace_bootstrap_invite(&[1; 32], 10_000, 1_000)
            .unwrap();
        store
            .replace_bootstrap_invite(&[2; 32], 10_000, 1_000)
            .unwrap();
        let old = store
            .enrol(&enrolment([1; 32], "ann", 1), 2_000)
            .unwrap_err();
        assert!(matches!(
            old,
            crate::error::RelayError::Refused(Refusal::InviteUnknown)
        ));
        let user = store.enrol(&enrolment([2; 32], "ann", 1), 2_000).unwrap();
        assert_eq!(user.role, Role::Staff as i32);
    }

    #[test]
    fn a_state_older_than_the_last_authentication_is_refused_as_a_copy() {
        let (_dir, store) = store();
        invite(&store, [1; 32], 10_000);
        store.enrol(&enrolment([1; 32], "ann", 1), 2_000).unwrap();
        let device = DevicePublicKey([1; 32]);
        let copied = |result: RelayResult<()>| {
            matches!(
                result,
                Err(crate::error::RelayError::Refused(Refusal::StateCopied))
            )
        };
        // First authentication: no token yet.
        store.pass_continuity(&device, &[], b"A", false).unwrap();
        // The device goes on: it names A, and B next.
        store.pass_continuity(&device, b"A", b"B", false).unwrap();
        // A crash before it recorded B: it names A again with B next.
        store.pass_continuity(&device, b"A", b"B", false).unwrap();
        store.pass_continuity(&device, b"B", b"C", false).unwrap();
        // A copy saved when the token was A or B is refused.
        assert!(copied(store.pass_continuity(&device, b"A", b"X", false)));
        assert!(copied(store.pass_continuity(&device, b"B", b"Y", false)));
        // Unless it takes over; then the other copy is the one refused.
        store.pass_continuity(&device, b"B", b"Z", true).unwrap();
        assert!(copied(store.pass_continuity(&device, b"C", b"D", false)));
        store.pass_continuity(&device, b"Z", b"E", false).unwrap();
        // Once a token is recorded, naming none is no way round it.
        assert!(copied(store.pass_continuity(&device, &[], &[], false)));
        // Naming the current token as the next keeps it where it is.
        store.pass_continuity(&device, b"E", b"E", false).unwrap();
        store.pass_continuity(&device, b"E", b"F", false).unwrap();
    }

    #[test]
    fn users_page_in_order() {
        let (_dir, store) = store();
        for (i, name) in ["cat", "ann", "bob"].iter().enumerate() {
            invite(&store, [i as u8; 32], 10_000);
            store
                .enrol(&enrolment([i as u8; 32], name, i as u8), 2_000)
                .unwrap();
        }
        let (page, more) = store.list_users("", 2).unwrap();
        let ids: Vec<_> = page.iter().map(|u| u.user_id.as_str()).collect();
        assert_eq!(ids, ["ann", "bob"]);
        assert!(more);
        let (page, more) = store.list_users("bob", 2).unwrap();
        assert_eq!(page.len(), 1);
        assert!(!more);
    }
}
