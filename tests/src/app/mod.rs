//! Real `client-core` clients for end-to-end tests, each with its own state
//! directory, talking to a real relay.

mod state;

pub use state::{authority_of, continuity_of, copy_dir, device_key_of, store_key};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use convene_client::trust::UserDetails;
use convene_client::{
    Client, ClientBuilder, ConnectionState, Connector, Event, EventStream, GroupId, GroupSummary,
    KeyLifecycle, Message, Role,
};

use crate::PATIENCE;

/// A client as an app runs it, with the events it has seen.
pub struct App {
    pub client: Client,
    pub user: String,
    pub state_dir: PathBuf,
    relay_url: String,
    events: EventStream,
    _dir: Option<tempfile::TempDir>,
}

impl App {
    /// Enrols a new device for `user` with `invite` and opens it.
    pub async fn enrol(relay_url: &str, invite: &str, user: &str) -> Result<App> {
        let dir = tempfile::tempdir()?;
        let state_dir = dir.path().join("state");
        ClientBuilder::new(&state_dir)
            .store_key(store_key(user))
            .relay_url(relay_url)
            .enrol(invite, user, &display_name(user))
            .await?;
        let mut app = App::open(relay_url, state_dir, user).await?;
        app._dir = Some(dir);
        Ok(app)
    }

    /// Links a new device to `approver`'s user: the new device asks, the
    /// approver confirms its code (and adds it to every group), and the new
    /// device is opened.
    pub async fn link(relay_url: &str, approver: &App) -> Result<App> {
        let dir = tempfile::tempdir()?;
        let state_dir = dir.path().join("state");
        let user = approver.user.clone();
        let pending = ClientBuilder::new(&state_dir)
            .store_key(store_key(&user))
            .relay_url(relay_url)
            .request_link(&user)
            .await?;
        let code = pending.code().to_string();
        let (approved, linked) = tokio::join!(
            approver.client.approve_link(&code),
            pending.wait_for_approval(PATIENCE)
        );
        let linked = linked?;
        ensure!(approved? == linked.device, "another device was approved");
        let mut app = App::open(relay_url, state_dir, &user).await?;
        app._dir = Some(dir);
        Ok(app)
    }

    /// This device's key.
    pub fn device(&self) -> Vec<u8> {
        self.client.identity().device
    }

    /// Opens an enrolled state directory and waits until it is caught up.
    pub async fn open(relay_url: &str, state_dir: PathBuf, user: &str) -> Result<App> {
        App::open_with(relay_url, state_dir, user, None).await
    }

    /// [`App::open`] over a transport of the test's choosing.
    pub async fn open_with(
        relay_url: &str,
        state_dir: PathBuf,
        user: &str,
        connector: Option<Arc<dyn Connector>>,
    ) -> Result<App> {
        let mut builder = ClientBuilder::new(&state_dir)
            .store_key(store_key(user))
            .relay_url(relay_url);
        if let Some(connector) = connector {
            builder = builder.connector(connector);
        }
        App::open_builder(builder, relay_url, state_dir, user).await
    }

    async fn open_builder(
        builder: ClientBuilder,
        relay_url: &str,
        state_dir: PathBuf,
        user: &str,
    ) -> Result<App> {
        let app = App::start_builder(builder, relay_url, state_dir, user).await?;
        app.client.wait_caught_up(PATIENCE).await?;
        Ok(app)
    }

    /// Opens a client without waiting for it to connect.
    async fn start_builder(
        builder: ClientBuilder,
        relay_url: &str,
        state_dir: PathBuf,
        user: &str,
    ) -> Result<App> {
        let client = builder.open().await?;
        let events = client.events();
        Ok(App {
            client,
            user: user.to_string(),
            state_dir,
            relay_url: relay_url.to_string(),
            events,
            _dir: None,
        })
    }

    /// Stops the client and opens its state again, as a restarted process
    /// would.
    pub async fn restart(self) -> Result<App> {
        self.stop().await.resume().await
    }

    /// Stops the client and opens it again over `connector`.
    pub async fn reopen_with(self, connector: Arc<dyn Connector>) -> Result<App> {
        let stopped = self.stop().await;
        let mut app = App::open_with(
            &stopped.relay_url,
            stopped.state_dir.clone(),
            &stopped.user,
            Some(connector),
        )
        .await?;
        app._dir = stopped.dir;
        Ok(app)
    }

    /// Stops the client and opens it again as a tampered client would run:
    /// without checking the group's policy before it commits.
    pub async fn reopen_misbehaving(self) -> Result<App> {
        self.reopen_configured(|b| Ok(b.skip_local_policy_checks_for_adversarial_tests()))
            .await
    }

    /// Stops the client and opens it again with its clock `offset_ms`
    /// ahead of the system's (behind, if negative).
    pub async fn reopen_with_clock(self, offset_ms: i64) -> Result<App> {
        self.reopen_configured(|b| Ok(b.clock_offset_for_tests(offset_ms)))
            .await
    }

    /// Stops the client and opens it again renewing its keys on
    /// `lifecycle`.
    pub async fn reopen_with_lifecycle(self, lifecycle: KeyLifecycle) -> Result<App> {
        self.reopen_configured(|b| Ok(b.key_lifecycle(lifecycle)?))
            .await
    }

    /// Stops the client and opens it again with its builder changed by
    /// `configure`.
    pub async fn reopen_configured(
        self,
        configure: impl FnOnce(ClientBuilder) -> Result<ClientBuilder>,
    ) -> Result<App> {
        let stopped = self.stop().await;
        let builder = configure(
            ClientBuilder::new(&stopped.state_dir)
                .store_key(store_key(&stopped.user))
                .relay_url(&stopped.relay_url),
        )?;
        let mut app = App::open_builder(
            builder,
            &stopped.relay_url,
            stopped.state_dir.clone(),
            &stopped.user,
        )
        .await?;
        app._dir = stopped.dir;
        Ok(app)
    }

    /// Stops the client, keeping its state directory for [`App::resume`].
    /// The state is released once every clone of the client is dropped.
    pub async fn stop(mut self) -> StoppedApp {
        self.client.shutdown().await;
        StoppedApp {
            user: self.user.clone(),
            state_dir: self.state_dir.clone(),
            relay_url: self.relay_url.clone(),
            dir: self._dir.take(),
        }
    }

    /// Waits until this app holds a message with `text` in `group`, from
    /// `sender`.
    pub async fn hears(&self, group: &GroupId, sender: &str, text: &str) -> Result<()> {
        wait_until(&format!("{} to hear {text:?}", self.user), || async {
            let history = self.client.history(group, 100).ok()?;
            history
                .iter()
                .any(|m| m.text == text && m.sender == sender)
                .then_some(())
        })
        .await
    }

    /// Waits until the group's history holds at least `n` messages, and
    /// returns them all.
    pub async fn wait_history(&self, group: &GroupId, n: usize) -> Result<Vec<Message>> {
        let client = self.client.clone();
        let group = group.clone();
        wait_until(&format!("{} to hold {n} messages", self.user), move || {
            let client = client.clone();
            let group = group.clone();
            async move {
                let history = client.history(&group, usize::MAX).ok()?;
                (history.len() >= n).then_some(history)
            }
        })
        .await
    }

    /// Waits until this device is in `group` and `check` holds for it.
    pub async fn wait_group(
        &self,
        group: &GroupId,
        check: impl Fn(&GroupSummary) -> bool,
    ) -> Result<GroupSummary> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(summary) = self.client.group(group)? {
                if check(&summary) {
                    return Ok(summary);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{}: the group {group} never reached the expected state: {:?}",
                    self.user,
                    self.client.group(group)?
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next event matching `pick`, waiting at most [`PATIENCE`].
    pub async fn wait_event<T>(&mut self, pick: impl Fn(&Event) -> Option<T>) -> Result<T> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| anyhow!("{}: the expected event never came", self.user))?
                .ok_or_else(|| anyhow!("the client stopped"))?;
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
        }
    }

    /// Messages from others as the app hears them: waits for `n`
    /// `MessageReceived` events and returns them. Other events are
    /// consumed.
    pub async fn received_messages(&mut self, n: usize) -> Result<Vec<Message>> {
        let mut received = Vec::new();
        while received.len() < n {
            let message = self
                .wait_event(|e| match e {
                    Event::MessageReceived(m) => Some(m.clone()),
                    _ => None,
                })
                .await?;
            received.push(message);
        }
        Ok(received)
    }

    /// `MessageReceived` events that arrived and were not consumed yet
    /// (after [`App::received_messages`], a duplicate would be one).
    pub fn extra_messages(&mut self) -> Vec<Message> {
        self.drain_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::MessageReceived(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Every event that has arrived and was not consumed yet.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.events.try_recv()).collect()
    }

    /// Whether the client is connected and caught up.
    pub fn caught_up(&self) -> bool {
        self.client.status().state == ConnectionState::CaughtUp
    }
}

/// A client that was stopped; its state directory is kept.
pub struct StoppedApp {
    pub user: String,
    pub state_dir: PathBuf,
    relay_url: String,
    dir: Option<tempfile::TempDir>,
}

impl StoppedApp {
    /// Opens the client again and waits until it has caught up.
    pub async fn resume(self) -> Result<App> {
        let mut app = App::open(&self.relay_url, self.state_dir.clone(), &self.user).await?;
        app._dir = self.dir;
        Ok(app)
    }

    /// Opens the client again expecting the relay to refuse its state as
    /// a copy (`StateCopied`); returns it refused, not connected.
    pub async fn resume_refused_as_copy(self) -> Result<App> {
        let builder = ClientBuilder::new(&self.state_dir)
            .store_key(store_key(&self.user))
            .relay_url(&self.relay_url);
        let mut app =
            App::start_builder(builder, &self.relay_url, self.state_dir.clone(), &self.user)
                .await?;
        app._dir = self.dir;
        match app.client.wait_caught_up(PATIENCE).await {
            Err(convene_client::ClientError::StateCopied) => Ok(app),
            other => bail!(
                "{}: expected to be refused as a copy, got {other:?}",
                app.user
            ),
        }
    }

    /// A copy of the state directory as it is now (a backup).
    pub fn snapshot(&self) -> Result<tempfile::TempDir> {
        let copy = tempfile::tempdir()?;
        copy_dir(&self.state_dir, copy.path())?;
        Ok(copy)
    }

    /// The same device run from a [`StoppedApp::snapshot`] in its own
    /// directory: a second copy of the device.
    pub fn copy_from(&self, snapshot: tempfile::TempDir) -> StoppedApp {
        StoppedApp {
            user: self.user.clone(),
            state_dir: snapshot.path().to_path_buf(),
            relay_url: self.relay_url.clone(),
            dir: Some(snapshot),
        }
    }

    /// Puts a [`StoppedApp::snapshot`] back in place of the state
    /// directory (a restore from backup).
    pub fn restore(&self, snapshot: &tempfile::TempDir) -> Result<()> {
        std::fs::remove_dir_all(&self.state_dir)?;
        copy_dir(snapshot.path(), &self.state_dir)
    }
}

/// A display name for a test user.
pub fn display_name(user: &str) -> String {
    format!("Test {user}")
}

/// The first staff member, enrolled with the relay's bootstrap invite.
pub async fn staff_app(relay: &impl crate::RelayUnderTest) -> Result<App> {
    let invite = relay
        .bootstrap_invite()
        .ok_or_else(|| anyhow!("the relay printed no bootstrap invite"))?;
    App::enrol(relay.url(), invite, "staff").await
}

/// Leaders invited by `staff` and enrolled, one client each.
pub async fn leader_apps(
    relay: &impl crate::RelayUnderTest,
    staff: &App,
    names: &[String],
) -> Result<Vec<App>> {
    invited_apps(relay, staff, names, Role::Leader).await
}

/// Users with `role` invited by `staff` and enrolled, one client each.
pub async fn invited_apps(
    relay: &impl crate::RelayUnderTest,
    staff: &App,
    names: &[String],
    role: Role,
) -> Result<Vec<App>> {
    let mut apps = Vec::new();
    for name in names {
        let invite = staff
            .client
            .invite(&UserDetails {
                user_id: name.clone(),
                display_name: display_name(name),
                role,
                sector: "education".into(),
                certified: Default::default(),
            })
            .await?;
        apps.push(App::enrol(relay.url(), &invite.code, name).await?);
    }
    Ok(apps)
}

/// A user invited by `staff` whose device speaks the relay protocol
/// directly ([`TestDevice`]): it holds no MLS state of ours, as a device the
/// relay made up, or a test's own claimer, would not.
pub async fn raw_device(
    relay: &impl crate::RelayUnderTest,
    staff: &App,
    user_id: &str,
    role: Role,
) -> Result<crate::TestDevice> {
    let invite = staff
        .client
        .invite(&UserDetails {
            user_id: user_id.into(),
            display_name: display_name(user_id),
            role,
            sector: String::new(),
            certified: Default::default(),
        })
        .await?;
    crate::TestDevice::enrol(relay.url(), &invite.code, user_id).await
}

/// Polls `probe` until it yields a value, for at most [`PATIENCE`].
pub async fn wait_until<T, F, Fut>(what: &str, probe: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
