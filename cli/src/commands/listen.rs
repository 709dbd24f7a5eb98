//! `convene listen`: prints messages and changes as they arrive. It
//! attaches to the daemon when one runs; otherwise it opens the state and
//! serves the daemon's socket itself while it listens, so that the same
//! person's `send`, `read` and `groups` work beside it.

use anyhow::{Context, Result};
use convene_client::{Client, ClientError, ConnectionStatus, Event, EventStream};
use tokio::sync::watch;

use crate::daemon::Daemon;
use crate::output;
use crate::session::Session;
use crate::shapes::{EventShape, GroupNames};

/// Prints events until interrupted (or `count` messages arrived), or
/// until whoever reads the output stops reading.
pub async fn listen(ctx: &Session, count: Option<usize>) -> Result<()> {
    if count == Some(0) {
        return Ok(());
    }
    if let Some(mut daemon) = Daemon::connect(&ctx.state_dir).await {
        daemon.subscribe().await?;
        if !ctx.json {
            output::note(
                "listening through the convene process that holds this state \
                 (`convene daemon` or another `listen`); Ctrl-C stops",
            );
        }
        return print_events(ctx, count, Source::Daemon(daemon)).await;
    }
    ctx.with_client(async |client| {
        // Ends with this command, however it ends.
        let serving = serve_beside(ctx, client);
        let source = Source::Local(Local::new(client)?);
        if !ctx.json {
            output::note(match serving {
                Some(_) => {
                    "listening; your other convene commands for this state directory go \
                     through this one while it runs; Ctrl-C stops"
                }
                None => "listening; Ctrl-C stops",
            });
        }
        let printed = print_events(ctx, count, source).await;
        if let Some(mut serving) = serving {
            serving.0.abort();
            // The socket is removed as the serving task ends.
            let _ = (&mut serving.0).await;
        }
        printed
    })
    .await
}

/// Serves the daemon's socket while this process holds the state; without
/// it (a socket that cannot be made), `listen` still works alone.
fn serve_beside(ctx: &Session, client: &Client) -> Option<crate::daemon::Task> {
    let path = crate::daemon::socket_path(&ctx.state_dir);
    match crate::daemon::Socket::bind(&ctx.state_dir, &path) {
        Ok(socket) => Some(crate::daemon::Task(tokio::spawn(crate::daemon::serve(
            socket,
            client.clone(),
            ctx.timeout,
        )))),
        Err(err) => {
            output::note(&format!(
                "other convene commands cannot run while this one listens: {err}"
            ));
            None
        }
    }
}

/// Where events come from.
enum Source {
    Daemon(Daemon),
    Local(Local),
}

/// This process's own client.
struct Local {
    client: Client,
    events: EventStream,
    status: watch::Receiver<ConnectionStatus>,
    names: GroupNames,
    told_copied: bool,
}

impl Local {
    fn new(client: &Client) -> Result<Local> {
        Ok(Local {
            client: client.clone(),
            events: client.events(),
            // A copy can be refused before the events were subscribed to:
            // the status tells it either way.
            status: client.watch_status(),
            names: GroupNames::of_groups(&client.groups()?),
            told_copied: false,
        })
    }

    async fn next(&mut self) -> Option<EventShape> {
        let event = tokio::select! {
            event = self.events.recv() => event,
            copied = self.status.wait_for(|s| s.copied), if !self.told_copied => {
                copied.ok().map(|_| Event::StateCopied)
            }
        }?;
        if matches!(event, Event::StateCopied) {
            self.told_copied = true;
        }
        self.names.learn_from(&event, &self.client);
        Some(EventShape::new(&event, &self.names))
    }
}

impl Source {
    async fn next(&mut self) -> Result<Option<EventShape>> {
        match self {
            Source::Daemon(daemon) => Ok(daemon.next_event().await?),
            Source::Local(local) => Ok(local.next().await),
        }
    }
}

async fn print_events(ctx: &Session, count: Option<usize>, mut source: Source) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let mut received = 0usize;
    loop {
        let event = tokio::select! {
            event = source.next() => event?,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let Some(event) = event else { break };
        let printed = match ctx.json {
            true => output::line(&serde_json::to_string(&event)?),
            false => match output::event_line(&event) {
                Some(line) => output::line(&line),
                None => Ok(()),
            },
        };
        // This copy stopped: listening on would show nothing, and the
        // command fails whether or not the line reached anyone.
        if matches!(event, EventShape::StateCopied) {
            return Err(ClientError::StateCopied.into());
        }
        printed?;
        if matches!(event, EventShape::Message { .. }) {
            received += 1;
            if count.is_some_and(|count| received >= count) {
                break;
            }
        }
    }
    Ok(())
}
