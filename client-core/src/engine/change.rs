//! The changes a commit of this device can make, and how each is built
//! with openmls: what an intent asks for, as still missing when the commit
//! is (re)built on the group's current epoch.

use convene_proto::ids::DevicePublicKey;

use crate::mls::{CommitBundle, MlsError};

/// The membership change an intent asks for, as still missing.
pub(super) enum Change {
    /// Add every device of these users (and this user's other devices that
    /// are not in the group yet).
    Add(Vec<String>),
    /// Add these devices of this device's own user.
    AddDevices(Vec<DevicePublicKey>),
    /// Remove these devices.
    Remove(Vec<DevicePublicKey>),
    /// Commit the proposals pending in the group.
    Proposals,
    /// Replace a member device's leaf with its new KeyPackage (it asked to
    /// be re-added): the device, its user, the KeyPackage.
    Readd(DevicePublicKey, String, Vec<u8>),
    /// Renew this device's own leaf.
    Update,
    /// Turn ordinary chat in the network channel on or off.
    NetworkChat(bool),
}

/// The commit `change` makes in `group`, with the KeyPackages it adds.
pub(super) fn commit_for(
    ops: &crate::mls::MlsOps<'_>,
    group: &mut openmls::group::MlsGroup,
    change: &Change,
    key_packages: Option<Vec<openmls::prelude::KeyPackage>>,
) -> Result<CommitBundle, MlsError> {
    match (change, key_packages) {
        (Change::Add(_) | Change::AddDevices(_), Some(key_packages)) => {
            ops.add(group, &key_packages)
        }
        (Change::Readd(device, ..), Some(mut key_packages)) => match key_packages.pop() {
            // Every member would refuse it now (the group moved on
            // since the device asked): it asks again.
            Some(key_package) if !crate::mls::rejoins(group, &key_package) => Err(
                MlsError::PolicyViolation("the request to be re-added is no longer current".into()),
            ),
            Some(key_package) => ops.readd(group, device, key_package),
            None => Err(MlsError::Operation(crate::mls::OperationError::described(
                "no KeyPackage",
            ))),
        },
        (Change::Remove(devices), _) => ops.remove(group, devices),
        (Change::Proposals, _) => ops.commit_pending(group),
        (Change::Update, _) => ops.update(group, None),
        (Change::NetworkChat(chat), _) => {
            // From the group's own state, so that a retry after another
            // commit keeps what that commit changed.
            let mut meta = crate::mls::group_meta(group)
                .ok_or_else(|| MlsError::PolicyViolation("the group has no metadata".into()))?;
            meta.network_policy = Some(convene_proto::content::NetworkPolicy { chat: *chat });
            ops.change_meta(group, &meta)
        }
        (Change::Add(_) | Change::AddDevices(_) | Change::Readd(..), None) => Err(
            MlsError::Operation(crate::mls::OperationError::described("no KeyPackages")),
        ),
    }
}
