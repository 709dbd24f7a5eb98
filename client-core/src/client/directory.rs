//! The directory as the app reads it: searches over this device's verified
//! copy (no request leaves the device), and the user's own profile, signed
//! here with their identity key and stored by the relay.

use convene_proto::relay::{request, response, GetUser, SetProfile};
use prost::Message as _;
use tokio::sync::oneshot;

use super::Client;
use crate::directory::{
    sealed_profile, search, verify_user, DirectorySync, NetworkKeyRing, PeopleQuery, Person,
    ProfileDraft, SearchIndex,
};
use crate::engine::Command;
use crate::error::ClientError;
use crate::store::records::{self, DirectoryRecord, IdentityRecord};
use crate::trust::IdentityKey;

/// How far above the verified revision this device follows the relay's
/// (the relay refuses a write more than 1,000 above the one it holds).
const MAX_REVISION_STEP: u64 = 999;

impl Client {
    /// Brings this device's copy of the directory up to date with the
    /// relay now (it is also synced after every connection and every ten
    /// minutes). Fails if the relay cannot be reached.
    pub async fn sync_directory(&self) -> Result<DirectorySync, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::SyncDirectory { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    /// This device's copy of the directory, ready to search: every user it
    /// verified, suspended ones marked.
    pub fn directory(&self) -> Result<SearchIndex, ClientError> {
        let revocations = &self.inner.shared.revocations;
        let keys = self.network_key_ring()?;
        let people = self
            .store()
            .scan::<DirectoryRecord>(&records::directory_prefix())
            .map(|item| {
                item.map(|(_, record)| {
                    let suspended = revocations.covers(&record.user_id, &[]);
                    Person::from_record(&record, suspended, &keys)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchIndex::new(people))
    }

    /// The people matching `query`, best first (see [`crate::directory`]
    /// for how they are ranked).
    pub fn people(&self, query: &PeopleQuery) -> Result<Vec<Person>, ClientError> {
        let index = self.directory()?;
        Ok(search(&index, query).into_iter().cloned().collect())
    }

    /// One person of the directory, `None` if this device holds no
    /// verified entry for them.
    pub fn person(&self, user_id: &str) -> Result<Option<Person>, ClientError> {
        let record: Option<DirectoryRecord> = self
            .store()
            .get_committed_record(&records::directory_key(user_id))?;
        let keys = self.network_key_ring()?;
        Ok(record.map(|record| {
            let suspended = self.inner.shared.revocations.covers(user_id, &[]);
            Person::from_record(&record, suspended, &keys)
        }))
    }

    /// Writes this user's profile: `draft` applied to the profile the
    /// relay holds now (verified), at the next revision, sealed with the
    /// current network key, signed with the identity key and stored by the
    /// relay; then the directory is synced and this user's entry returned.
    ///
    /// # Errors
    /// [`ClientError::Forbidden`] on a device that does not hold the
    /// identity key, or before this device holds a network key (it comes
    /// with membership of the network channel);
    /// [`ClientError::InvalidArgument`] for a field out of bounds.
    pub async fn set_profile(&self, draft: &ProfileDraft) -> Result<Person, ClientError> {
        let identity_key = self.identity_key()?;
        let keys = self.network_key_ring()?;
        let Some(key) = keys.sealing_key() else {
            let why = if keys.current().is_none() {
                "your profile can be written once you are in the network channel (staff add \
                 every leader to it)"
            } else {
                "someone left the network channel and a new network key has not reached this \
                 device yet (a staff device hands it out); try again shortly"
            };
            return Err(ClientError::Forbidden(why.into()));
        };
        let own = self.user_id().to_string();
        let user = match self
            .relay(request::Kind::GetUser(GetUser {
                user_id: own.clone(),
            }))
            .await?
        {
            response::Result::User(user) => user,
            _ => return Err(ClientError::unexpected_response()),
        };
        let held: Option<DirectoryRecord> = self
            .store()
            .get_committed_record(&records::directory_key(&own))?;
        let anchor = self.anchor()?;
        let now = anchor.now_ms();
        let record = verify_user(&anchor, &user, held.as_ref(), now);
        let revision = record.as_ref().map_or(0, |r| r.profile_revision);
        // The relay refuses a revision not above the one it holds, even an
        // entry this device refused: the next is above both.
        let stored = convene_proto::trust::Signed::decode(user.profile.as_ref())
            .ok()
            .and_then(|s| convene_proto::trust::Profile::decode(s.body.as_slice()).ok())
            .map_or(0, |p| p.revision);
        let current = record
            .as_ref()
            .map(|r| Person::from_record(r, false, &keys))
            .and_then(|person| person.profile);
        if revision > 0 && current.is_none() {
            return Err(ClientError::Forbidden(
                "your profile is sealed with a network key this device does not hold yet; \
                 try again once it has caught up in the network channel"
                    .into(),
            ));
        }
        let text = draft
            .apply(current.as_ref())
            .map_err(ClientError::InvalidArgument)?;
        // The relay's number is unverified: trusted only as far as one
        // step above the verified one, so that a relay cannot make this
        // device sign a revision no later write can pass.
        let next = revision
            .max(stored.min(revision.saturating_add(MAX_REVISION_STEP)))
            .saturating_add(1);
        let profile =
            sealed_profile(&own, next, &text, key, now).map_err(ClientError::InvalidArgument)?;
        let signed = identity_key.sign_profile(&profile);
        match self
            .relay(request::Kind::SetProfile(SetProfile {
                profile: signed.encode_to_vec().into(),
            }))
            .await?
        {
            response::Result::ProfileSet(_) => {}
            _ => return Err(ClientError::unexpected_response()),
        }
        self.sync_directory().await?;
        self.person(&own)?.ok_or_else(|| {
            ClientError::Untrusted("your own directory entry does not verify".into())
        })
    }

    /// The network keys this device holds.
    fn network_key_ring(&self) -> Result<NetworkKeyRing, ClientError> {
        Ok(self
            .store()
            .get_committed_record(&records::network_keys_key())?
            .unwrap_or_default())
    }

    /// The user's identity key, if this device holds it.
    fn identity_key(&self) -> Result<IdentityKey, ClientError> {
        let mut identity: IdentityRecord = self
            .store()
            .get_committed_record(&records::identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let key = <&[u8; 32]>::try_from(identity.identity_secret.as_slice())
            .map(IdentityKey::from_secret_bytes);
        crate::settle::wipe_secrets(&mut identity);
        key.map_err(|_| {
            ClientError::Forbidden(
                "only a device that holds your identity key can change your profile".into(),
            )
        })
    }
}
