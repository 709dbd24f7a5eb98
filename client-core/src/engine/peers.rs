//! Remembering each peer's identity key, to notice when it changes.
//!
//! Every key is certified by the organisation's authority, so a change is
//! legitimate only when staff re-issue a user's identity; it is also what
//! a compromised authority impersonating someone would look like. The
//! first key seen for a user is kept, and a different one later raises
//! [`Event::IdentityChanged`] (and becomes the one kept).

use super::Engine;
use crate::events::Event;
use crate::store::records;
use crate::types::GroupId;

impl Engine {
    /// Compares the identity keys of a group's members with the ones known,
    /// in the open operation.
    pub(super) fn note_identities(
        &mut self,
        group_id: &GroupId,
        identities: &[(String, [u8; 32])],
    ) {
        let own = self.mls.user_id().to_string();
        for (user, key) in identities {
            if *user == own {
                continue;
            }
            let slot = records::peer_identity_key(user);
            let known = match self.store().get(&slot) {
                Ok(known) => known,
                Err(err) => {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "cannot read a known identity key"
                    );
                    continue;
                }
            };
            match known {
                Some(known) if known.as_slice() == key.as_slice() => {}
                Some(_) => {
                    self.store().put(slot, key.to_vec());
                    self.emit(Event::IdentityChanged {
                        user_id: user.clone(),
                        group: group_id.clone(),
                    });
                }
                None => self.store().put(slot, key.to_vec()),
            }
        }
    }
}
