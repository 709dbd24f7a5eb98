//! Reading and writing: `groups`, `group ...`, `dm`, `send`, `read` and
//! `listen`.

use anyhow::{Context, Result};
use convene_client::{Client, ClientError, Event, GroupSummary};

use crate::output::{self, print};
use crate::session::{Open, Session};
use crate::GroupCommand;

/// Lists this device's groups and direct channels.
pub async fn groups(ctx: &Session) -> Result<()> {
    let groups = ctx
        .with_client(Open::Synced, async |client| Ok(client.groups()?))
        .await?;
    print(ctx.json, groups.iter().map(output::group).collect(), || {
        output::lines_or(&groups, "no groups yet", output::group_line)
    })
}

/// Creates, changes, shows or leaves a group.
pub async fn group(ctx: &Session, command: GroupCommand) -> Result<()> {
    // What is printed after: the group as it is now, said as the command
    // asked for it.
    let (group, said) = ctx
        .with_client(Open::Connected, async |client| match command {
            GroupCommand::Create { name, members } => {
                let group = ctx.within(client.create_group(&name, &members)).await?;
                Ok((group, Said::Created))
            }
            GroupCommand::Add { group, users } => {
                let found = find_group(client, &group)?;
                ctx.within(client.add_members(&found.id, &users)).await?;
                Ok((client.group(&found.id)?.unwrap_or(found), Said::Line))
            }
            GroupCommand::Remove { group, users } => {
                let found = find_group(client, &group)?;
                ctx.within(client.remove_members(&found.id, &users)).await?;
                Ok((client.group(&found.id)?.unwrap_or(found), Said::Line))
            }
            GroupCommand::Show { group } => Ok((find_group(client, &group)?, Said::WithMembers)),
            GroupCommand::Leave { group } => {
                let found = find_group(client, &group)?;
                ctx.within(client.leave_group(&found.id)).await?;
                Ok((client.group(&found.id)?.unwrap_or(found), Said::Line))
            }
        })
        .await?;
    print(ctx.json, output::group(&group), || {
        let line = output::group_line(&group);
        match said {
            Said::Line => line,
            Said::Created => format!("created {line}"),
            Said::WithMembers => {
                let mut text = line;
                for user in group.users() {
                    text.push_str(&format!("\n  {user}"));
                }
                text
            }
        }
    })
}

/// How a `group` command shows the group for people.
enum Said {
    Line,
    Created,
    WithMembers,
}

/// Sends a message in the direct channel with `user`.
pub async fn dm(ctx: &Session, user: &str, text: &str) -> Result<()> {
    let message = ctx
        .with_client(Open::Connected, async |client| {
            ctx.within(client.send_direct(user, text)).await
        })
        .await?;
    print(ctx.json, output::message(&message), || {
        format!("sent to {user}")
    })
}

/// Sends a message to a group.
pub async fn send(ctx: &Session, group: &str, text: &str) -> Result<()> {
    let (message, group) = ctx
        .with_client(Open::Connected, async |client| {
            let group = find_group(client, group)?;
            let message = ctx.within(client.send_text(&group.id, text)).await?;
            Ok((message, group))
        })
        .await?;
    print(ctx.json, output::message(&message), || {
        format!("sent to {}", output::shown_name(&group))
    })
}

/// Shows a group's latest messages.
pub async fn read(ctx: &Session, group: &str, limit: usize) -> Result<()> {
    let messages = ctx
        .with_client(Open::Synced, async |client| {
            let group = find_group(client, group)?;
            Ok(client.history(&group.id, limit)?)
        })
        .await?;
    print(
        ctx.json,
        messages.iter().map(output::message).collect(),
        || output::lines_or(&messages, "no messages yet", output::message_line),
    )
}

/// Prints events until interrupted (or `count` messages arrived), or
/// until whoever reads the output stops reading.
pub async fn listen(ctx: &Session, count: Option<usize>) -> Result<()> {
    ctx.with_client(Open::Stored, async |client| {
        if count == Some(0) {
            return Ok(());
        }
        let mut events = client.events();
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        // A copy can be refused before the events were subscribed to: the
        // status tells it either way.
        let mut status = client.watch_status();
        let mut received = 0usize;
        let mut names = output::GroupNames::of_groups(&client.groups()?);
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = status.wait_for(|s| s.copied) => Some(Event::StateCopied),
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
            };
            let Some(event) = event else { break };
            if let Event::GroupCreated(group) | Event::JoinedGroup(group) = &event {
                names.learn(group);
            }
            let (value, line) = output::event(&event, &names);
            let printed = match (ctx.json, line) {
                (true, _) => output::line(&value.to_string()),
                (false, Some(line)) => output::line(&line),
                (false, None) => Ok(()),
            };
            // This copy stopped: listening on would show nothing, and the
            // command fails whether or not the line reached anyone.
            if matches!(event, Event::StateCopied) {
                return Err(ClientError::StateCopied.into());
            }
            printed?;
            if matches!(event, Event::MessageReceived(_)) {
                received += 1;
                if count.is_some_and(|count| received >= count) {
                    break;
                }
            }
        }
        Ok(())
    })
    .await
}

/// The group `query` names: by name, id or id prefix, or the other user of
/// a direct channel.
fn find_group(client: &Client, query: &str) -> Result<GroupSummary, ClientError> {
    match client.find_group(query) {
        Ok(group) => Ok(group),
        Err(unknown @ ClientError::NoGroupMatches { .. }) => match client.direct_channel(query)? {
            Some(id) => client.group(&id)?.ok_or(unknown),
            None => Err(unknown),
        },
        Err(err) => Err(err),
    }
}
