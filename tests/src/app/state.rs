//! What a test reads from, or does to, a client's state directory while
//! the client is stopped: its store key, its device and authority keys, its
//! continuity token, a copy of the whole directory.

use anyhow::{anyhow, Result};
use convene_client::StoreKey;

/// Copies a directory tree (a state directory, say).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The key of a test user's local store (tests need to know it; an app
/// keeps its own in a keystore or derives it from a passphrase).
pub fn store_key(user: &str) -> StoreKey {
    let mut key = [0x5a; 32];
    for (i, byte) in user.bytes().enumerate().take(32) {
        key[i] ^= byte;
    }
    StoreKey::from_bytes(key)
}

/// The device key kept in a stopped client's state directory.
pub fn device_key_of(state_dir: &std::path::Path, user: &str) -> Result<convene_client::DeviceKey> {
    let store = convene_client::store::LocalStore::open(state_dir, &store_key(user))?;
    let identity: convene_client::store::records::IdentityRecord = store
        .get_committed_record(&convene_client::store::records::identity_key())?
        .ok_or_else(|| anyhow!("no identity in {}", state_dir.display()))?;
    let secret = zeroize::Zeroizing::new(identity.device_secret);
    let secret: &[u8; 32] = secret.as_slice().try_into()?;
    Ok(convene_client::DeviceKey::from_secret_bytes(secret))
}

/// The organisation's authority key kept in a stopped staff device's state
/// (what a test plays a compromised authority or a staff tool with).
pub fn authority_of(state_dir: &std::path::Path) -> Result<convene_client::trust::Authority> {
    let store = convene_client::store::LocalStore::open(state_dir, &store_key("staff"))?;
    let identity: convene_client::store::records::IdentityRecord = store
        .get_committed_record(&convene_client::store::records::identity_key())?
        .ok_or_else(|| anyhow!("no identity in {}", state_dir.display()))?;
    let secret = zeroize::Zeroizing::new(identity.authority_secret);
    let secret: &[u8; 32] = secret.as_slice().try_into()?;
    Ok(convene_client::trust::Authority::from_secret_bytes(secret))
}

/// The continuity token a stopped client's state will name next time.
pub fn continuity_of(state_dir: &std::path::Path, user: &str) -> Result<Vec<u8>> {
    let store = convene_client::store::LocalStore::open(state_dir, &store_key(user))?;
    let record: convene_client::store::records::ContinuityRecord = store
        .get_committed_record(&convene_client::store::records::continuity_key())?
        .unwrap_or_default();
    Ok(record.confirmed)
}
