//! What the relay served about a user, verified: the certified part from
//! the authority's signature and the identity key the user's device chains
//! agree on, the written part from the identity key's signature. A part
//! that fails keeps what this device accepted before, and says why: the
//! relay can withhold a change, but not forge one, alter one, or roll one
//! back.

use convene_proto::relay::User;
use convene_proto::trust::{Signed, UserCertificate};
use prost::Message;
use sha2::{Digest, Sha256};

use super::network_key::MAX_SEALED_PROFILE_BYTES;
use super::KEY_ID_LEN;
use crate::store::records::DirectoryRecord;
use crate::trust::{certified_fields, verified_profile, TrustAnchor};

/// Verifies `user` as the relay served it, against what this device held
/// (`held`), at `now_ms`: the record the directory now holds for the user
/// (new, or the one held with the part that failed refused: see its
/// `refused`), or `None` when nothing of the user verifies and nothing was
/// held (they are not listed).
pub fn verify_user(
    anchor: &TrustAnchor,
    user: &User,
    held: Option<&DirectoryRecord>,
    now_ms: u64,
) -> Option<DirectoryRecord> {
    let certified = match certified_part(anchor, user, now_ms) {
        Ok(certified) => certified,
        Err(why) => return held.map(|held| refused(held, user, why)),
    };
    // An older certificate than the one relied on is a rollback, with the
    // same identity key or another (an old identity's chains, unrevoked,
    // would otherwise reset the entry and its profile).
    if let Some(held) = held {
        if certified.certificate_from_ms < held.certificate_from_ms {
            return Some(refused(
                held,
                user,
                "the relay served an older certificate than the one this device holds",
            ));
        }
    }
    let mut record = match held {
        Some(held) if held.identity_key == certified.identity_key => DirectoryRecord {
            profile_revision: held.profile_revision,
            profile_key_id: held.profile_key_id.clone(),
            profile_sealed: held.profile_sealed.clone(),
            profile_written_at_ms: held.profile_written_at_ms,
            profile_digest: held.profile_digest.clone(),
            ..certified
        },
        // A new user, or one enrolled again with a new identity key: what
        // the old key signed says nothing about the new one.
        _ => certified,
    };
    record.stamp = user.directory_stamp.to_vec();
    record.refused.clear();
    if let Err(why) = take_profile(&mut record, &user.profile) {
        record.refused = why;
    }
    Some(record)
}

/// The held record, noting why the relay's newest was refused.
fn refused(held: &DirectoryRecord, user: &User, why: impl Into<String>) -> DirectoryRecord {
    DirectoryRecord {
        refused: why.into(),
        // Fetched, so not fetched again until the relay's entry changes.
        stamp: user.directory_stamp.to_vec(),
        ..held.clone()
    }
}

/// The certified part: the identity key every verifying device chain of
/// the user names, and the newest user certificate for it, the one the
/// relay holds for the user if the authority signed it for that key.
fn certified_part(
    anchor: &TrustAnchor,
    user: &User,
    now_ms: u64,
) -> Result<DirectoryRecord, String> {
    let chains: Vec<_> = user
        .devices
        .iter()
        .filter(|d| !d.revoked)
        .filter_map(|d| anchor.verify(&d.credential, &d.device_key, now_ms).ok())
        .filter(|v| v.user_id == user.user_id)
        .collect();
    let Some(newest) = chains.iter().max_by_key(|v| v.valid_from_ms) else {
        return Err("no device of theirs has a chain that verifies".into());
    };
    if chains
        .iter()
        .any(|v| v.identity_key != newest.identity_key || v.role != newest.role)
    {
        return Err("their devices are certified for different identity keys or roles".into());
    }
    let mut record = DirectoryRecord {
        user_id: user.user_id.clone(),
        display_name: newest.display_name.clone(),
        role: newest.role.to_wire() as i32,
        sector: newest.sector.clone(),
        job_title: newest.certified.job_title.clone(),
        organisation: newest.certified.organisation.clone(),
        region: newest.certified.region.clone(),
        programme: newest.certified.programme.clone(),
        cohort: newest.certified.cohort.clone(),
        identity_key: newest.identity_key.to_vec(),
        certificate_from_ms: newest.valid_from_ms,
        ..Default::default()
    };
    // Staff re-certify a user with a certificate for their identity key;
    // the user's devices take it up when next online. Until then the
    // relay's copy is the newer word.
    if let Some(current) = relay_certificate(anchor, user, &newest.identity_key, now_ms) {
        if current.not_before_ms >= record.certificate_from_ms
            && crate::types::Role::from_wire(current.role) == newest.role
        {
            let fields = certified_fields(&current);
            record.display_name = current.display_name;
            record.sector = current.sector;
            record.job_title = fields.job_title;
            record.organisation = fields.organisation;
            record.region = fields.region;
            record.programme = fields.programme;
            record.cohort = fields.cohort;
            record.certificate_from_ms = current.not_before_ms;
        }
    }
    Ok(record)
}

/// The user certificate the relay holds for the user, if the authority
/// itself signed it for `identity_key` and it is valid now.
pub(crate) fn relay_certificate(
    anchor: &TrustAnchor,
    user: &User,
    identity_key: &[u8; 32],
    now_ms: u64,
) -> Option<UserCertificate> {
    let signed = Signed::decode(user.user_certificate.as_ref()).ok()?;
    let certificate = anchor.verify_user_certificate(&signed, None, now_ms).ok()?;
    (certificate.user_id == user.user_id
        && !certificate.bound_by_invite
        && certificate.subject_key.as_slice() == identity_key)
        .then_some(certificate)
}

/// Takes the served profile into `record` if it is signed by the record's
/// identity key, within bounds, and newer than the one held.
fn take_profile(record: &mut DirectoryRecord, served: &[u8]) -> Result<(), String> {
    if served.is_empty() {
        // Nothing served: a profile never written, or one withheld; the
        // held one stays either way.
        return Ok(());
    }
    let identity_key: [u8; 32] = record
        .identity_key
        .as_slice()
        .try_into()
        .map_err(|_| "no identity key".to_string())?;
    let signed =
        Signed::decode(served).map_err(|_| "the profile is not a signed message".to_string())?;
    let profile = verified_profile(&identity_key, &signed)
        .map_err(|_| "the profile is not signed by their identity key".to_string())?;
    if profile.user_id != record.user_id {
        return Err("the profile describes another user".into());
    }
    if profile.version != 1 {
        return Err(format!("profile layout {} is not read", profile.version));
    }
    if profile.key_id.len() != KEY_ID_LEN || profile.sealed.len() > MAX_SEALED_PROFILE_BYTES {
        return Err("the profile is out of bounds".into());
    }
    let digest = Sha256::digest(served).to_vec();
    if profile.revision < record.profile_revision {
        return Err(format!(
            "the relay served an older profile (version {}) than the one this device holds (version {})",
            profile.revision, record.profile_revision
        ));
    }
    if profile.revision == record.profile_revision {
        if digest == record.profile_digest {
            return Ok(());
        }
        return Err(format!(
            "the relay served a different profile with the same version ({})",
            profile.revision
        ));
    }
    record.profile_revision = profile.revision;
    record.profile_key_id = profile.key_id;
    record.profile_sealed = profile.sealed;
    record.profile_written_at_ms = profile.written_at_ms;
    record.profile_digest = digest;
    Ok(())
}
