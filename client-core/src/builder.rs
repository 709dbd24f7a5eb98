//! Setting a client up: enrolling a device once, then opening it to run.
//!
//! Enrolment and running are separate steps because they are separate
//! moments in a user's life: a device is enrolled once, with an invite, and
//! then opened every time the app starts.

use std::path::PathBuf;
use std::sync::Arc;

use convene_proto::invite::Invite;
use tokio::sync::{broadcast, mpsc, watch};
use zeroize::Zeroize;

use crate::client::Client;
use crate::engine::{ConnectionStatus, Engine, Shared};
use crate::enrolment::{redeem, Enrolled};
use crate::error::ClientError;
use crate::lifecycle::KeyLifecycle;
use crate::link::PendingLink;
use crate::mls::Mls;
use crate::settle::{settle_device, wipe_secrets};
use crate::store::fresh::Before;
use crate::store::records::{identity_key, IdentityRecord};
use crate::store::{passphrase, LocalStore, StoreKey};
use crate::transport::{ConnectOptions, Connector, TrustRoots, WebSocketConnector};
use crate::types::Identity;
use crate::DeviceKey;

/// Events an app may fall behind by before it loses the oldest.
const EVENT_BUFFER: usize = 4096;

/// Builds a [`Client`] over a state directory.
///
/// ```no_run
/// # async fn run() -> Result<(), convene_client::ClientError> {
/// use convene_client::ClientBuilder;
/// let builder = ClientBuilder::new("/var/lib/my-app/convene").relay_url("wss://relay.example.org");
/// if !builder.is_enrolled().await? {
///     builder.clone().enrol("cvn2_...", "", "").await?;
/// }
/// let client = builder.open().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    state_dir: PathBuf,
    relay_url: Option<String>,
    pinned_certificate: Option<Vec<u8>>,
    connector: Option<Arc<dyn Connector>>,
    store_key: Option<StoreKey>,
    skip_local_policy: bool,
    clock_offset_ms: i64,
    lifecycle: KeyLifecycle,
    /// The state directory before this builder first wrote to it (a salt,
    /// the store): what a failed enrolment puts back.
    before_setup: Option<Before>,
}

impl ClientBuilder {
    /// A client keeping its state in `state_dir` (created if missing).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ClientBuilder {
            state_dir: state_dir.into(),
            relay_url: None,
            pinned_certificate: None,
            connector: None,
            store_key: None,
            skip_local_policy: false,
            clock_offset_ms: 0,
            lifecycle: KeyLifecycle::default(),
            before_setup: None,
        }
    }

    /// Notes what the state directory holds, before the first write.
    fn note_state_dir(&mut self) {
        if self.before_setup.is_none() {
            self.before_setup = Some(Before::of(&self.state_dir));
        }
    }

    /// The relay to enrol with (`wss://...`, or `ws://` on loopback). An
    /// enrolled device remembers it; given again, it replaces it.
    pub fn relay_url(mut self, url: impl Into<String>) -> Self {
        self.relay_url = Some(url.into());
        self
    }

    /// Trusts exactly this certificate (PEM) for a `wss://` relay instead of
    /// the public authorities. Remembered at enrolment.
    pub fn pinned_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.pinned_certificate = Some(pem.into());
        self
    }

    /// The key that encrypts the local state (required). Keep it in the
    /// platform's keystore, or let a passphrase make it
    /// ([`ClientBuilder::new_passphrase`], [`ClientBuilder::passphrase`]);
    /// without it the state reveals nothing.
    pub fn store_key(mut self, key: StoreKey) -> Self {
        self.store_key = Some(key);
        self
    }

    /// Locks a new state with a passphrase chosen for it: checks it
    /// ([`check_new_passphrase`]), makes the state directory and its salt,
    /// and derives the store key (argon2id; see [`crate::store::passphrase`]).
    /// Use instead of [`ClientBuilder::store_key`] before
    /// [`ClientBuilder::enrol`] or [`ClientBuilder::request_link`].
    ///
    /// # Errors
    /// [`ClientError::Passphrase`]: too weak, or the salt cannot be stored.
    ///
    /// [`check_new_passphrase`]: crate::store::check_new_passphrase
    pub fn new_passphrase(mut self, passphrase: &str) -> Result<Self, ClientError> {
        passphrase::check_new_passphrase(passphrase)?;
        self.note_state_dir();
        let salt = passphrase::salt_for_new_state(&self.state_dir)?;
        self.store_key = Some(passphrase::derive(passphrase, &salt)?);
        Ok(self)
    }

    /// Whether a passphrase was chosen for this state directory (it holds a
    /// salt). Cheap: it reads no state, so a caller can say "not enrolled"
    /// before asking for a passphrase.
    ///
    /// # Errors
    /// [`ClientError::Passphrase`] if a salt file cannot be read or is damaged.
    pub fn has_passphrase(&self) -> Result<bool, ClientError> {
        Ok(passphrase::has_salt(&self.state_dir)?)
    }

    /// Unlocks an existing state with its passphrase: tries the current
    /// salt, then one a change of passphrase left aside (which becomes
    /// current once it opens the state).
    ///
    /// # Errors
    /// [`ClientError::NotEnrolled`] if no passphrase was ever chosen here,
    /// [`ClientError::WrongStoreKey`] if the passphrase opens neither (with
    /// a single salt, from the first call that opens the state),
    /// [`ClientError::Storage`] or [`ClientError::Passphrase`] if the files
    /// fail.
    pub async fn passphrase(mut self, passphrase: &str) -> Result<Self, ClientError> {
        let salts = passphrase::salts(&self.state_dir)?;
        if salts.is_empty() {
            return Err(ClientError::NotEnrolled);
        }
        // With one salt there is nothing to choose: the key is tried when
        // the state is opened, which spares opening it twice.
        if let [only] = salts.as_slice() {
            if !only.pending {
                self.store_key = Some(passphrase::derive(passphrase, &only.salt)?);
                return Ok(self);
            }
        }
        for stored in salts {
            let key = passphrase::derive(passphrase, &stored.salt)?;
            match open_store(&self.state_dir, &key).await {
                Err(ClientError::WrongStoreKey) => continue,
                Err(err) => return Err(err),
                Ok(store) => drop(store),
            }
            if stored.pending {
                passphrase::promote_next_salt(&self.state_dir)?;
            }
            self.store_key = Some(key);
            return Ok(self);
        }
        Err(ClientError::WrongStoreKey)
    }

    /// Changes the passphrase of a state this builder unlocked
    /// ([`ClientBuilder::passphrase`]), crash-safely: the new salt is
    /// written aside first, the state re-encrypted, then the salt made
    /// current. The device must not be open.
    ///
    /// # Errors
    /// [`ClientError::Passphrase`] if `new` is too weak or a salt cannot be
    /// stored; [`ClientError::Storage`] if re-encrypting fails (the old
    /// passphrase still opens the state).
    pub async fn change_passphrase(&self, new: &str) -> Result<(), ClientError> {
        passphrase::check_new_passphrase(new)?;
        let salt = passphrase::next_salt(&self.state_dir)?;
        self.change_store_key(&passphrase::derive(new, &salt)?)
            .await?;
        Ok(passphrase::promote_next_salt(&self.state_dir)?)
    }

    /// Re-encrypts the local state under `new` (the device must not be
    /// open). From then on, open it with `new`.
    pub async fn change_store_key(&self, new: &StoreKey) -> Result<(), ClientError> {
        let old = self.key()?;
        // Waits for a client that is still closing to let go.
        drop(open_store(&self.state_dir, old).await?);
        LocalStore::change_key(&self.state_dir, old, new).map_err(Into::into)
    }

    fn key(&self) -> Result<&StoreKey, ClientError> {
        self.store_key.as_ref().ok_or_else(|| {
            ClientError::InvalidArgument(
                "the local state needs its key: ClientBuilder::store_key".into(),
            )
        })
    }

    /// Uses this transport instead of websockets (tests, custom stacks).
    pub fn connector(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Makes this client misbehave: it no longer checks the group's policy
    /// before committing a membership change, as a tampered client would
    /// not. Only for tests that check that the other members refuse such
    /// commits. Only with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn skip_local_policy_checks_for_adversarial_tests(mut self) -> Self {
        self.skip_local_policy = true;
        self
    }

    /// Makes this client read the time `offset_ms` ahead of the system's
    /// clock (behind, if negative) when it checks certificates and compares
    /// its clock with the relay's: for tests of clock skew. Only with the
    /// `testing` feature.
    #[cfg(feature = "testing")]
    pub fn clock_offset_for_tests(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    /// When this client renews its keys (leaf updates, KeyPackage lifetime
    /// and rotation); [`KeyLifecycle::default`] unless set.
    pub fn key_lifecycle(mut self, lifecycle: KeyLifecycle) -> Result<Self, ClientError> {
        lifecycle.check().map_err(ClientError::InvalidArgument)?;
        self.lifecycle = lifecycle;
        Ok(self)
    }

    /// Whether the state directory holds an enrolled device.
    pub async fn is_enrolled(&self) -> Result<bool, ClientError> {
        let store = open_store(&self.state_dir, self.key()?).await?;
        Ok(store
            .get_committed_record::<IdentityRecord>(&identity_key())?
            .is_some())
    }

    /// Enrols this device with an invite, as a new user. `user_id` and
    /// `display_name` are used when the invite does not name them. If it
    /// fails, the state directory is left as it was before this builder
    /// wrote to it (the salt of [`ClientBuilder::new_passphrase`] included).
    pub async fn enrol(
        mut self,
        invite: &str,
        user_id: &str,
        display_name: &str,
    ) -> Result<Identity, ClientError> {
        self.note_state_dir();
        let state_dir = self.state_dir.clone();
        let before = self.before_setup.clone();
        let enrolled = self.enrol_in_state(invite, user_id, display_name).await;
        if let (Err(err), Some(before)) = (&enrolled, before) {
            // An enrolled state is never undone; a refusal before the
            // store was even opened has nothing to undo but the salt.
            if !matches!(err, ClientError::AlreadyEnrolled(_)) {
                before.restore(&state_dir);
            }
        }
        enrolled
    }

    async fn enrol_in_state(
        self,
        invite: &str,
        user_id: &str,
        display_name: &str,
    ) -> Result<Identity, ClientError> {
        // A mistyped code is caught here, without spending a round trip.
        let invite =
            Invite::from_code(invite).map_err(|err| ClientError::InvalidInvite(err.into()))?;
        let store = Arc::new(open_store(&self.state_dir, self.key()?).await?);
        if let Some(existing) = store.get_committed_record::<IdentityRecord>(&identity_key())? {
            return Err(ClientError::AlreadyEnrolled(existing.user_id));
        }
        let relay_url = self
            .relay_url
            .clone()
            .or_else(|| invite.relay_url.clone())
            .ok_or_else(|| {
                ClientError::InvalidArgument("enrolling needs the relay's address".into())
            })?;
        let connector = self.make_connector(&relay_url)?;
        let (connection, _pushes) = connector.connect().await?;
        let key = DeviceKey::generate();
        let Enrolled { mut identity } =
            redeem(connection.as_ref(), &key, &invite, user_id, display_name).await?;
        identity.relay_url = relay_url;
        identity.pinned_certificate = self.pinned_certificate.clone().unwrap_or_default();
        settle_device(&store, connection.as_ref(), key, identity, &self.lifecycle).await
    }

    /// Asks to link this device, not enrolled yet, to `user_id`, an
    /// existing user: shows the code to confirm on one of the user's
    /// enrolled devices ([`Client::approve_link`]), then
    /// [`PendingLink::wait_for_approval`]. Needs the relay's address. If
    /// the request or the approval fails, the state directory is left as it
    /// was before this builder wrote to it.
    pub async fn request_link(mut self, user_id: &str) -> Result<PendingLink, ClientError> {
        convene_proto::ids::check_user_id(user_id)
            .map_err(|err| ClientError::InvalidArgument(err.to_string()))?;
        self.note_state_dir();
        let state_dir = self.state_dir.clone();
        let before = self.before_setup.clone();
        let requested = self.request_link_in_state(user_id).await;
        match (requested, before) {
            (Ok(pending), Some(before)) => Ok(pending.undo_on_failure(state_dir, before)),
            (Err(err), Some(before)) if !matches!(err, ClientError::AlreadyEnrolled(_)) => {
                before.restore(&state_dir);
                Err(err)
            }
            (requested, _) => requested,
        }
    }

    async fn request_link_in_state(self, user_id: &str) -> Result<PendingLink, ClientError> {
        let store = Arc::new(open_store(&self.state_dir, self.key()?).await?);
        if let Some(existing) = store.get_committed_record::<IdentityRecord>(&identity_key())? {
            return Err(ClientError::AlreadyEnrolled(existing.user_id));
        }
        let relay_url = self.relay_url.clone().ok_or_else(|| {
            ClientError::InvalidArgument("linking a device needs the relay's address".into())
        })?;
        let connector = self.make_connector(&relay_url)?;
        PendingLink::request(
            store,
            connector,
            relay_url,
            self.pinned_certificate.clone().unwrap_or_default(),
            user_id,
        )
        .await
    }

    /// Opens an enrolled device and starts it: the returned client connects
    /// (and reconnects) in the background. Needs a tokio runtime.
    pub async fn open(self) -> Result<Client, ClientError> {
        let store = Arc::new(open_store(&self.state_dir, self.key()?).await?);
        let mut identity: IdentityRecord = store
            .get_committed_record(&identity_key())?
            .ok_or(ClientError::NotEnrolled)?;
        let mut secret: [u8; 32] = identity.device_secret.as_slice().try_into().map_err(|_| {
            ClientError::Storage(crate::store::StoreError::Corrupt(
                "the device key is damaged".into(),
            ))
        })?;
        let key = DeviceKey::from_secret_bytes(&secret);
        secret.zeroize();
        if let Some(url) = &self.relay_url {
            identity.relay_url = url.clone();
        }
        let mut builder = self;
        if builder.pinned_certificate.is_none() && !identity.pinned_certificate.is_empty() {
            builder.pinned_certificate = Some(identity.pinned_certificate.clone());
        }
        let connector = builder.make_connector(&identity.relay_url)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (status, _) = watch::channel(ConnectionStatus::default());
        let mut shared_identity = identity.clone();
        wipe_secrets(&mut shared_identity);
        let device = key.public();
        let mls = Mls::new(store.clone(), key, &identity, builder.clock_offset_ms)?;
        let shared = Arc::new(Shared {
            store,
            identity: shared_identity,
            device,
            events,
            status,
            skip_local_policy: builder.skip_local_policy,
            clock_offset_ms: builder.clock_offset_ms,
            lifecycle: builder.lifecycle,
            revocations: mls.anchor().revocations().clone(),
        });
        let (commands, receiver) = mpsc::channel(64);
        wipe_secrets(&mut identity);
        // Every line the engine logs says whose it is.
        let span = tracing::info_span!(
            "engine",
            user = %shared.identity.user_id,
            device = %convene_proto::ids::hex_prefix(shared.device),
        );
        let engine = Engine::new(shared.clone(), mls, connector, receiver)?;
        let task = tokio::spawn(tracing::Instrument::instrument(engine.run(), span));
        Ok(Client::new(shared, commands, task))
    }

    fn make_connector(&self, url: &str) -> Result<Arc<dyn Connector>, ClientError> {
        if let Some(connector) = &self.connector {
            return Ok(connector.clone());
        }
        let mut options = ConnectOptions::default();
        if let Some(pem) = &self.pinned_certificate {
            options.trust = TrustRoots::pinned_pem(pem)?;
        }
        Ok(Arc::new(WebSocketConnector::new(url, options)))
    }
}

/// How long opening waits for a client of the same state that is still
/// closing to let go of it.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the local state, waiting briefly while another instance that was
/// just stopped releases it.
pub(crate) async fn open_store(
    dir: &std::path::Path,
    key: &StoreKey,
) -> Result<LocalStore, ClientError> {
    let deadline = tokio::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match LocalStore::open(dir, key) {
            Err(err) if err.is_locked() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            result => return result.map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use convene_proto::invite::{Invite, InviteSecret};
    use convene_proto::relay::{request, ErrorCode};

    use super::*;
    use crate::transport::scripted::{Answer, ScriptedRelay};
    use crate::transport::RelayRefusal;

    /// A relay that says every invite was used already.
    fn refusing_relay() -> ScriptedRelay {
        ScriptedRelay::new(|kind, _| match kind {
            request::Kind::GetInvite(_) => Answer::Refuse(RelayRefusal {
                code: ErrorCode::InviteUsed,
                message: "used".into(),
                current_epoch: 0,
                retry_after_ms: 0,
                revocation: Vec::new(),
            }),
            _ => Answer::Honest,
        })
    }

    fn invite() -> String {
        Invite {
            secret: InviteSecret::generate(),
            authority_fingerprint: None,
            relay_url: Some("ws://scripted.invalid".into()),
        }
        .to_code()
    }

    async fn enrol_with_passphrase(dir: &std::path::Path) -> Result<Identity, ClientError> {
        ClientBuilder::new(dir)
            .connector(Arc::new(refusing_relay()))
            .new_passphrase("correct horse battery staple")?
            .enrol(&invite(), "ana", "Ana")
            .await
    }

    #[tokio::test]
    async fn a_failed_enrolment_leaves_the_state_directory_as_it_was() {
        let root = tempfile::tempdir().unwrap();

        // A directory that was not there is not there afterwards.
        let absent = root.path().join("absent");
        let err = enrol_with_passphrase(&absent).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidInvite(_)), "{err:?}");
        assert!(!absent.exists(), "left behind: {absent:?}");

        // An empty directory stays empty.
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        enrol_with_passphrase(&empty).await.unwrap_err();
        let left: Vec<_> = std::fs::read_dir(&empty).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");

        // What was there before stays, untouched.
        let used = root.path().join("used");
        std::fs::create_dir(&used).unwrap();
        std::fs::write(used.join("notes.txt"), b"mine").unwrap();
        enrol_with_passphrase(&used).await.unwrap_err();
        let names: Vec<_> = std::fs::read_dir(&used)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["notes.txt"]);
        assert_eq!(std::fs::read(used.join("notes.txt")).unwrap(), b"mine");

        // And a retry with another passphrase works from the start.
        let err = ClientBuilder::new(&empty)
            .connector(Arc::new(refusing_relay()))
            .new_passphrase("another fine horse staple")
            .unwrap()
            .enrol(&invite(), "ana", "Ana")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::InvalidInvite(_)), "{err:?}");
    }
}
