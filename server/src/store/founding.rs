//! The invite whose redeemer founds the organisation: the first staff
//! member, who creates its authority key on their own device. There are two
//! ways to get one, made here alike: the relay's bootstrap invite, shown at
//! each start while nobody has enrolled, and one the operator asks for with
//! the relay stopped (`convene-server invite`).

use convene_proto::invite::{lookup_hash, Invite, InviteSecret};
use convene_proto::relay::Role;

use super::{NewInvite, Store};
use crate::error::RelayResult;

/// Which founding invite to make.
#[derive(Debug, Clone)]
pub enum Founding<'a> {
    /// The relay's own: replaces the one it showed at its last start, and
    /// names the relay, so its redeemer needs nothing else.
    Bootstrap {
        /// The relay's address as devices reach it.
        relay_url: &'a str,
    },
    /// The operator's, made offline; it may name whom it is for (empty
    /// fields let the redeemer choose).
    Offline {
        /// The founder's user id, or empty.
        user_id: String,
        /// The founder's display name, or empty.
        display_name: String,
    },
}

impl Store {
    /// Makes a founding invite valid for `ttl_ms` from `now` (ms since the
    /// Unix epoch), durable before it is returned. It names no authority:
    /// its redeemer creates one. Callers check that the organisation has no
    /// founder yet.
    pub fn issue_founding_invite(
        &self,
        founding: Founding<'_>,
        ttl_ms: u64,
        now: u64,
    ) -> RelayResult<Invite> {
        let relay_url = match &founding {
            Founding::Bootstrap { relay_url } => Some(relay_url.to_string()),
            Founding::Offline { .. } => None,
        };
        let invite = Invite {
            secret: InviteSecret::generate(),
            authority_fingerprint: None,
            relay_url,
        };
        let hash = lookup_hash(&invite.secret.relay_token());
        match founding {
            Founding::Bootstrap { .. } => {
                self.replace_bootstrap_invite(&hash, ttl_ms, now)?;
            }
            Founding::Offline {
                user_id,
                display_name,
            } => {
                let founder = NewInvite {
                    role: Role::Staff,
                    user_id,
                    display_name,
                    ttl_ms,
                    user_certificate: Vec::new(),
                    created_by: None,
                    delegation: Vec::new(),
                };
                self.create_invite(&hash, &founder, now)?;
            }
        }
        self.flush()?;
        Ok(invite)
    }
}
