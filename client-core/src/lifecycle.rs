//! How often a device renews its keys, so that post-compromise security is
//! real and nothing it published expires unrenewed.
//!
//! - Its leaf in each group: an MLS update commit (RFC 9420, section 12.4)
//!   soon after joining (which also drops the lifetime its KeyPackage gave
//!   the leaf), then at least every [`KeyLifecycle::update_interval`] while
//!   the device is online, and at once after one of its user's devices was
//!   removed or when the app suspects a compromise
//!   ([`crate::Client::renew_keys`]).
//! - Its KeyPackages on the relay (RFC 9420, section 10): each valid for
//!   [`KeyLifecycle::key_package_lifetime`], the whole stock (the
//!   last-resort one included) replaced every
//!   [`KeyLifecycle::key_package_rotation`], and the private keys of
//!   replaced ones deleted once they can no longer be used.
//! - User certificates: staff's devices renew every user's certificate once
//!   less than [`KeyLifecycle::certificate_renewal`] of it remains, and each
//!   of the user's devices certifies itself under the new one and renews
//!   its leaves with it.

use std::time::Duration;

/// The longest KeyPackage lifetime openmls accepts (84 days).
pub const MAX_KEY_PACKAGE_LIFETIME: Duration = Duration::from_secs(84 * 24 * 3600);

/// When keys are renewed. [`Default`] is what a deployment wants; tests
/// shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLifecycle {
    /// A member renews its leaf in each group at least this often while it
    /// is online (default 7 days).
    pub update_interval: Duration,
    /// After joining a group, the first renewal comes within this delay,
    /// spread so that a whole cohort joining at once does not commit at
    /// once (default 1 hour).
    pub first_update_within: Duration,
    /// How long each KeyPackage is valid (default and at most 84 days).
    pub key_package_lifetime: Duration,
    /// The stock on the relay is replaced once it is this old (default 28
    /// days; less than the lifetime).
    pub key_package_rotation: Duration,
    /// A replaced KeyPackage's private key is kept this long after it
    /// expires, for a Welcome that used it and waited in the inbox
    /// (default 30 days, the relay's default retention).
    pub key_package_grace: Duration,
    /// How long a user certificate staff issue or renew is valid (default
    /// 2 years).
    pub certificate_validity: Duration,
    /// Staff renew a user's certificate once less than this remains of it
    /// (default 90 days), without anything asked of the user but to be
    /// online.
    pub certificate_renewal: Duration,
    /// How often certificates are looked at: by staff for the ones to
    /// renew, by every device for its own renewed one (default 1 hour).
    pub certificate_check: Duration,
}

impl Default for KeyLifecycle {
    fn default() -> Self {
        KeyLifecycle {
            update_interval: Duration::from_secs(7 * 24 * 3600),
            first_update_within: Duration::from_secs(3600),
            key_package_lifetime: MAX_KEY_PACKAGE_LIFETIME,
            key_package_rotation: Duration::from_secs(28 * 24 * 3600),
            key_package_grace: Duration::from_secs(30 * 24 * 3600),
            certificate_validity: Duration::from_secs(2 * 365 * 24 * 3600),
            certificate_renewal: Duration::from_secs(90 * 24 * 3600),
            certificate_check: Duration::from_secs(3600),
        }
    }
}

impl KeyLifecycle {
    /// Why these settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.key_package_lifetime > MAX_KEY_PACKAGE_LIFETIME
            || self.key_package_lifetime < Duration::from_secs(2)
        {
            return Err("a KeyPackage lifetime is 2 seconds to 84 days".into());
        }
        if self.key_package_rotation >= self.key_package_lifetime {
            return Err("KeyPackages must be rotated before they expire".into());
        }
        if self.update_interval.is_zero()
            || self.key_package_rotation.is_zero()
            || self.certificate_check.is_zero()
        {
            return Err("renewal intervals must be more than zero".into());
        }
        if self.certificate_renewal >= self.certificate_validity {
            return Err("certificates must be renewed before they expire".into());
        }
        Ok(())
    }
}
