//! Each command: open the device's client, ask the library, print.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use convene_client::trust::UserDetails;
use convene_client::{
    Client, ClientBuilder, ClientError, ConnectOptions, Event, GroupSummary, RelayConnection, Role,
};
use convene_proto::relay::{request, Ping};
use serde_json::json;

use crate::output::{self, print};
use crate::passphrase;
use crate::{Cli, Command, GroupCommand, InviteArgs, RoleArg};

/// The relay a new device enrols with when none is named.
const DEFAULT_RELAY: &str = "ws://127.0.0.1:7420";

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    let ctx = Session {
        state_dir: match cli.state_dir.clone() {
            Some(dir) => dir,
            None => crate::paths::default_state_dir()?,
        },
        relay: cli.relay.clone(),
        timeout: Duration::from_secs(cli.timeout),
        json,
        passphrase: passphrase::Source {
            command: cli.passphrase_command.clone(),
        },
    };
    match cli.command {
        Command::Ping => ping(&ctx).await,
        Command::Enrol {
            invite,
            user_id,
            name,
            pin_cert,
        } => enrol(&ctx, &invite, user_id, name, pin_cert).await,
        Command::Whoami => {
            let client = ctx.open().await?;
            let identity = client.identity();
            print(json, output::identity(&identity), || {
                output::identity_text(&identity)
            });
            client.shutdown().await;
            Ok(())
        }
        Command::Groups => {
            let client = ctx.open_synced().await?;
            let groups = client.groups()?;
            print(json, groups.iter().map(output::group).collect(), || {
                if groups.is_empty() {
                    "no groups yet".into()
                } else {
                    groups
                        .iter()
                        .map(output::group_line)
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
            client.shutdown().await;
            Ok(())
        }
        Command::Group(command) => group(&ctx, command).await,
        Command::Dm { user, text } => {
            let client = ctx.open_connected().await?;
            let result = ctx.within(client.send_direct(&user, &text)).await;
            client.shutdown().await;
            let message = result?;
            print(json, output::message(&message), || {
                format!("sent to {user}")
            });
            Ok(())
        }
        Command::Send { group, text } => {
            let client = ctx.open_connected().await?;
            let result = async {
                let group = find_group(&client, &group)?;
                ctx.within(client.send_text(&group.id, &text)).await
            }
            .await;
            client.shutdown().await;
            let message = result?;
            print(json, output::message(&message), || {
                format!("sent to {}", message.group)
            });
            Ok(())
        }
        Command::Read { group, limit } => {
            let client = ctx.open_synced().await?;
            let result = find_group(&client, &group).and_then(|g| client.history(&g.id, limit));
            client.shutdown().await;
            let messages = result?;
            print(json, messages.iter().map(output::message).collect(), || {
                if messages.is_empty() {
                    "no messages yet".into()
                } else {
                    messages
                        .iter()
                        .map(output::message_line)
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
            Ok(())
        }
        Command::Listen { count } => listen(&ctx, count).await,
        Command::Invite(args) => invite(&ctx, args).await,
        Command::Suspend { user } => {
            let client = ctx.open_connected().await?;
            let result = ctx.within(client.suspend_user(&user)).await;
            client.shutdown().await;
            result?;
            print(json, json!({ "suspended": user }), || {
                format!(
                    "{user} is suspended: their devices are cut off and removed from their groups."
                )
            });
            Ok(())
        }
        Command::Passphrase => {
            // Settles the current salt before a new one is written aside.
            let builder = ctx
                .unlock(|builder| async move {
                    match builder.is_enrolled().await? {
                        true => Ok(builder),
                        false => Err(ClientError::NotEnrolled),
                    }
                })
                .await?;
            let new_secret = passphrase::read_new()?;
            let salt = passphrase::next_salt(&ctx.state_dir)?;
            builder
                .change_store_key(&passphrase::derive(&new_secret, &salt)?)
                .await?;
            passphrase::promote_next_salt(&ctx.state_dir)?;
            print(json, json!({ "changed": true }), || {
                "The passphrase is changed: use the new one from now on.".into()
            });
            Ok(())
        }
        Command::Link { user, pin_cert } => crate::devices::link(&ctx, &user, pin_cert).await,
        Command::Devices { command } => crate::devices::devices(&ctx, command).await,
        Command::Delegate {
            user,
            may_certify_staff,
        } => crate::staff::delegate(&ctx, &user, may_certify_staff).await,
        Command::Undelegate { user } => crate::staff::undelegate(&ctx, &user).await,
        Command::TakeOver => crate::devices::take_over(&ctx).await,
        Command::Verify { user } => {
            let client = ctx.open_connected().await?;
            let result = ctx.within(client.safety_number(&user)).await;
            client.shutdown().await;
            let number = result?;
            print(
                json,
                json!({ "user_id": number.user_id, "display_name": number.display_name, "safety_number": number.number }),
                || {
                    format!(
                        "Safety number with {} ({}):\n  {}\nCompare it with theirs in person or on a call: \
                         if the digits match, no one stands between you.",
                        number.user_id,
                        output::safe(&number.display_name),
                        number.number
                    )
                },
            );
            Ok(())
        }
        Command::Users => {
            let client = ctx.open_connected().await?;
            let result = ctx.within(client.list_users()).await;
            client.shutdown().await;
            let users = result?;
            print(json, users.iter().map(output::user).collect(), || {
                users
                    .iter()
                    .map(|u| {
                        format!(
                            "{}  {} ({})",
                            u.user_id,
                            output::safe(&u.display_name),
                            u.role.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}

/// What every command needs to open the device.
pub(crate) struct Session {
    pub(crate) state_dir: PathBuf,
    pub(crate) relay: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    pub(crate) passphrase: passphrase::Source,
}

impl Session {
    pub(crate) fn builder(&self) -> ClientBuilder {
        let builder = ClientBuilder::new(&self.state_dir);
        match &self.relay {
            Some(url) => builder.relay_url(url),
            None => builder,
        }
    }

    fn not_enrolled(&self) -> anyhow::Error {
        anyhow::Error::new(ClientError::NotEnrolled).context(format!(
            "no device in {} (run `convene enrol <invite>` first)",
            self.state_dir.display()
        ))
    }

    /// Runs `attempt` with a builder holding the key derived from this
    /// device's passphrase: under the current salt, then under one left by
    /// an interrupted change of passphrase (which then becomes current).
    async fn unlock<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: Fn(ClientBuilder) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let salts = passphrase::salts(&self.state_dir)?;
        if salts.is_empty() {
            return Err(self.not_enrolled());
        }
        let secret = self
            .passphrase
            .read("Passphrase of this device's Convene state: ")?;
        for (salt, pending) in salts {
            let builder = self
                .builder()
                .store_key(passphrase::derive(&secret, &salt)?);
            match attempt(builder).await {
                Err(ClientError::WrongStoreKey) => continue,
                Err(ClientError::NotEnrolled) => return Err(self.not_enrolled()),
                Err(err) => return Err(err.into()),
                Ok(done) => {
                    if pending {
                        passphrase::promote_next_salt(&self.state_dir)?;
                    }
                    return Ok(done);
                }
            }
        }
        Err(ClientError::WrongStoreKey.into())
    }

    /// Opens the device without waiting for the relay.
    pub(crate) async fn open(&self) -> Result<Client> {
        self.unlock(ClientBuilder::open).await
    }

    /// Opens the device and waits until it has caught up with the relay.
    pub(crate) async fn open_connected(&self) -> Result<Client> {
        let client = self.open().await?;
        if let Err(err) = client.wait_caught_up(self.timeout).await {
            client.shutdown().await;
            return Err(err.into());
        }
        Ok(client)
    }

    /// Opens the device and catches up if the relay can be reached; if not,
    /// says so and goes on with what is stored.
    async fn open_synced(&self) -> Result<Client> {
        let client = self.open().await?;
        if let Err(err) = client.wait_caught_up(self.timeout).await {
            eprintln!("note: showing what this device has stored ({err})");
        }
        Ok(client)
    }

    /// Waits for an operation, at most the timeout. An operation that does
    /// not finish in time stays in the device's outbox.
    pub(crate) async fn within<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => Ok(result?),
            Err(_) => bail!(
                "not confirmed within {} s; the operation is kept on this device and completes the next time convene connects",
                self.timeout.as_secs()
            ),
        }
    }
}

fn find_group(client: &Client, query: &str) -> Result<GroupSummary, ClientError> {
    match client.find_group(query) {
        Ok(group) => Ok(group),
        Err(ClientError::UnknownGroup(_)) => {
            // A direct channel is found by the other user's id.
            match client.direct_channel(query)? {
                Some(id) => client
                    .group(&id)?
                    .ok_or_else(|| ClientError::UnknownGroup(query.to_string())),
                None => Err(ClientError::UnknownGroup(query.to_string())),
            }
        }
        Err(err) => Err(err),
    }
}

async fn ping(ctx: &Session) -> Result<()> {
    let url = ctx
        .relay
        .clone()
        .or_else(|| crate::paths::remembered_relay(&ctx.state_dir))
        .unwrap_or_else(|| DEFAULT_RELAY.to_string());
    let started = Instant::now();
    let conn = RelayConnection::connect(&url, &ConnectOptions::default()).await?;
    conn.request(request::Kind::Ping(Ping {})).await?;
    let ms = started.elapsed().as_millis();
    print(
        ctx.json,
        json!({ "relay": url, "round_trip_ms": ms }),
        || format!("relay at {url} answered in {ms} ms"),
    );
    conn.close().await;
    Ok(())
}

async fn enrol(
    ctx: &Session,
    invite: &str,
    user_id: Option<String>,
    name: Option<String>,
    pin_cert: Option<PathBuf>,
) -> Result<()> {
    // The invite names its relay; --relay overrides it.
    let salt = passphrase::salt_for_new_state(&ctx.state_dir)?;
    let secret = ctx.passphrase.choose()?;
    let mut builder =
        ClientBuilder::new(&ctx.state_dir).store_key(passphrase::derive(&secret, &salt)?);
    if let Some(url) = &ctx.relay {
        builder = builder.relay_url(url);
    }
    if let Some(path) = pin_cert {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the certificate {}", path.display()))?;
        builder = builder.pinned_certificate_pem(pem);
    }
    let user_id = user_id.unwrap_or_default();
    let name = name.unwrap_or_default();
    let identity = builder.enrol(invite, &user_id, &name).await?;
    crate::paths::remember_relay(&ctx.state_dir, &identity.relay_url)?;
    print(ctx.json, output::identity(&identity), || {
        format!(
            "Enrolled as {} ({}), {}. State kept in {}.",
            identity.user_id,
            output::safe(&identity.display_name),
            identity.role.as_str(),
            ctx.state_dir.display()
        )
    });
    Ok(())
}

async fn group(ctx: &Session, command: GroupCommand) -> Result<()> {
    let client = ctx.open_connected().await?;
    let result = async {
        match command {
            GroupCommand::Create { name, members } => {
                let group = ctx.within(client.create_group(&name, &members)).await?;
                print(ctx.json, output::group(&group), || {
                    format!("created {}", output::group_line(&group))
                });
            }
            GroupCommand::Add { group, users } => {
                let found = find_group(&client, &group)?;
                ctx.within(client.add_members(&found.id, &users)).await?;
                let after = client.group(&found.id)?.unwrap_or(found);
                print(ctx.json, output::group(&after), || {
                    output::group_line(&after)
                });
            }
            GroupCommand::Remove { group, users } => {
                let found = find_group(&client, &group)?;
                ctx.within(client.remove_members(&found.id, &users)).await?;
                let after = client.group(&found.id)?.unwrap_or(found);
                print(ctx.json, output::group(&after), || {
                    output::group_line(&after)
                });
            }
            GroupCommand::Show { group } => {
                let found = find_group(&client, &group)?;
                print(ctx.json, output::group(&found), || {
                    let mut text = output::group_line(&found);
                    for user in found.users() {
                        text.push_str(&format!("\n  {user}"));
                    }
                    text
                });
            }
            GroupCommand::Leave { group } => {
                let found = find_group(&client, &group)?;
                ctx.within(client.leave_group(&found.id)).await?;
                let after = client.group(&found.id)?.unwrap_or(found);
                print(ctx.json, output::group(&after), || {
                    output::group_line(&after)
                });
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    client.shutdown().await;
    result
}

async fn invite(ctx: &Session, args: InviteArgs) -> Result<()> {
    let client = ctx.open_connected().await?;
    let role = match args.role {
        RoleArg::Leader => Role::Leader,
        RoleArg::Staff => Role::Staff,
    };
    let user_id = args.user_id;
    let details = UserDetails {
        user_id: user_id.clone(),
        display_name: args.name,
        role,
        sector: args.sector.unwrap_or_default(),
    };
    let result = ctx.within(client.invite(&details)).await;
    client.shutdown().await;
    let invite = result?;
    let expires = std::time::UNIX_EPOCH + Duration::from_millis(invite.expires_at_ms);
    print(
        ctx.json,
        json!({ "code": invite.code, "expires_at_ms": invite.expires_at_ms, "role": role.as_str(), "user_id": user_id }),
        || {
            format!(
                "Invite for a new {} (one use, until {}):\n  {}\nHand it over privately: it works like a password.",
                role.as_str(),
                humantime::format_rfc3339_seconds(expires),
                invite.code
            )
        },
    );
    Ok(())
}

/// Prints events until interrupted (or `count` messages arrived).
async fn listen(ctx: &Session, count: Option<usize>) -> Result<()> {
    let client = ctx.open().await?;
    let mut events = client.events();
    let mut received = 0usize;
    if count == Some(0) {
        client.shutdown().await;
        return Ok(());
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    // A copy can be refused before the events were subscribed to: the
    // status tells it either way.
    let mut status = client.watch_status();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = status.wait_for(|s| s.copied) => Some(Event::StateCopied),
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let Some(event) = event else { break };
        let (value, line) = output::event(&event);
        if ctx.json {
            println!("{value}");
        } else if let Some(line) = line {
            println!("{line}");
        }
        // This copy stopped: listening on would show nothing.
        if matches!(event, Event::StateCopied) {
            client.shutdown().await;
            return Err(ClientError::StateCopied.into());
        }
        if matches!(event, Event::MessageReceived(_)) {
            received += 1;
            if count.is_some_and(|count| received >= count) {
                break;
            }
        }
    }
    client.shutdown().await;
    Ok(())
}
