//! A member's own state, driven as a tampered client would drive it: the
//! MLS operations of a stopped device, for tests that need a member to do
//! what no honest client does.

use anyhow::{Context, Result};
use convene_client::mls::MlsOps;
use convene_client::store::records::{identity_key, IdentityRecord};
use convene_client::store::LocalStore;
use convene_client::trust::TrustAnchor;
use convene_client::DeviceKey;
use openmls_rust_crypto::RustCrypto;

use crate::app::store_key;

/// Runs `f` with the MLS operations of a stopped device's state; what it
/// does is kept only if `keep` (a tampered client acts on its own state).
pub fn with_ops<T>(
    state_dir: &std::path::Path,
    user: &str,
    anchor: TrustAnchor,
    keep: bool,
    f: impl FnOnce(&MlsOps<'_>) -> Result<T>,
) -> Result<T> {
    let store = LocalStore::open(state_dir, &store_key(user))?;
    let identity: IdentityRecord = store
        .get_committed_record(&identity_key())?
        .context("no identity")?;
    let secret = zeroize::Zeroizing::new(identity.device_secret.clone());
    let key = DeviceKey::from_secret_bytes(secret.as_slice().try_into()?);
    let crypto = RustCrypto::default();
    let ops = MlsOps::new(&crypto, &store, &key, user, &identity.credential, anchor);
    let result = f(&ops);
    if keep && result.is_ok() {
        store.commit_durably()?;
    } else {
        store.rollback();
    }
    result
}
