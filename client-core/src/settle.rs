//! What enrolling and linking both do once a device has its identity:
//! store it, make its first KeyPackages and put them on the relay, so that
//! others can add the device before it first runs.

use std::sync::Arc;

use bytes::Bytes;
use convene_proto::relay::{request, UploadKeyPackages};
use zeroize::Zeroize;

use crate::error::ClientError;
use crate::lifecycle::KeyLifecycle;
use crate::mls::Mls;
use crate::store::records::{
    identity_key, key_packages_key, IdentityRecord, KeyPackageKey, KeyPackagesRecord,
};
use crate::store::LocalStore;
use crate::types::{Identity, Role};
use crate::DeviceKey;

/// KeyPackages uploaded at enrolment, so that others can add the new user
/// before the device first runs.
const INITIAL_KEY_PACKAGES: usize = 30;

/// Stores a newly enrolled or linked device's identity, and puts its first
/// KeyPackages on the relay so that others can add it before it first runs.
pub(crate) async fn settle_device(
    store: &Arc<LocalStore>,
    connection: &dyn crate::transport::Connection,
    key: DeviceKey,
    mut identity: IdentityRecord,
    lifecycle: &KeyLifecycle,
) -> Result<Identity, ClientError> {
    store.put_record(identity_key(), &identity);
    let mls = Mls::new(store.clone(), key, &identity, 0)?;
    wipe_secrets(&mut identity);
    let made =
        mls.ops()
            .key_packages_for(INITIAL_KEY_PACKAGES, true, lifecycle.key_package_lifetime)?;
    store.put_record(
        key_packages_key(),
        &KeyPackagesRecord {
            rotated_at_ms: crate::now_ms(),
            format: crate::engine::KEY_PACKAGE_FORMAT,
            keys: made
                .keys
                .into_iter()
                .map(|key| KeyPackageKey {
                    hash_ref: key.hash_ref,
                    expires_at_ms: key.expires_at_ms,
                })
                .collect(),
        },
    );
    // The identity and the KeyPackages' private keys are on disk before
    // the relay can hand the KeyPackages out.
    store.commit_durably()?;
    let upload = request::Kind::UploadKeyPackages(UploadKeyPackages {
        one_time: made.one_time.into_iter().map(Bytes::from).collect(),
        last_resort: made.last_resort.map(Bytes::from).unwrap_or_default(),
        replace_one_time: false,
    });
    if let Err(err) = connection.request(upload).await {
        // Not fatal: the device tops up its stock whenever it connects.
        tracing::warn!(
            error = &err as &dyn std::error::Error,
            "initial KeyPackages not uploaded"
        );
    }
    Ok(Identity {
        user_id: identity.user_id,
        display_name: identity.display_name,
        role: Role::from_wire(identity.role),
        device: mls.key().public().to_vec(),
        relay_url: identity.relay_url,
    })
}

/// Wipes the secret keys from an identity record that stays in memory.
pub(crate) fn wipe_secrets(identity: &mut IdentityRecord) {
    identity.device_secret.zeroize();
    identity.identity_secret.zeroize();
    identity.authority_secret.zeroize();
    identity.device_secret.clear();
    identity.identity_secret.clear();
    identity.authority_secret.clear();
}
