//! A user's own devices in the user's groups: adding a device the user just
//! linked, and removing one the user lost.
//!
//! A linked device may not have put its KeyPackages on the relay yet when
//! it is approved, so adding it waits for them, a while, rather than
//! failing at once.

use convene_proto::ids::DevicePublicKey;
use std::time::Duration;

use openmls::prelude::KeyPackage;

use super::commit::Change;
use super::intents::{Attempt, Step};
use super::Engine;
use crate::error::{ClientError, GaveUp};
use crate::store::records::{DevicesIntent, IntentRecord};

/// How long adding a linked device waits for its KeyPackages.
const LINKED_DEVICE_PATIENCE_MS: u64 = 10 * 60 * 1000;
/// How often it looks for them meanwhile.
const KEY_PACKAGE_POLL: Duration = Duration::from_secs(1);

fn device_keys(intent: &DevicesIntent) -> Vec<DevicePublicKey> {
    intent
        .device_keys
        .iter()
        .filter_map(|d| DevicePublicKey::try_from(d.as_slice()).ok())
        .collect()
}

impl Engine {
    /// One attempt at adding this user's `devices` to a group (`add`), or
    /// removing them from it.
    pub(super) async fn step_own_devices(
        &mut self,
        intent: IntentRecord,
        devices: DevicesIntent,
        add: bool,
    ) -> Attempt {
        let in_group = self.member_devices(&intent.group()?)?;
        // What is still to do: the devices not in the group yet, or still in it.
        let left: Vec<DevicePublicKey> = device_keys(&devices)
            .into_iter()
            .filter(|d| in_group.contains(d) != add)
            .collect();
        if left.is_empty() {
            return self.drop_intent(&intent);
        }
        let change = if add {
            Change::AddDevices(left)
        } else {
            Change::Remove(left)
        };
        self.commit_step(intent, change).await
    }

    /// Claims KeyPackages of this user's `devices`; waits while none is on
    /// the relay yet.
    pub(super) async fn claim_own_devices(
        &mut self,
        intent: &IntentRecord,
        devices: &[DevicePublicKey],
    ) -> Result<Vec<KeyPackage>, Step> {
        let own = self.mls.user_id().to_string();
        let claimed = self
            .claim(&intent.group()?, Vec::new(), devices.to_vec())
            .await?;
        let key_packages: Vec<KeyPackage> = claimed
            .into_iter()
            .filter(|(user, _, _)| *user == own)
            .map(|(_, _, key_package)| key_package)
            .collect();
        if !key_packages.is_empty() {
            return Ok(key_packages);
        }
        if crate::now_ms().saturating_sub(intent.created_at_ms) > LINKED_DEVICE_PATIENCE_MS {
            return Err(Step::Failed(ClientError::GaveUp(
                GaveUp::LinkedDeviceAbsent,
            )));
        }
        Err(Step::RetryAfter(KEY_PACKAGE_POLL))
    }
}
