//! `convene daemon`: holds this device's state and relay connection and
//! serves other `convene` commands, and other programs, over the state
//! directory's socket until interrupted.

use anyhow::{Context, Result};
use serde_json::json;

use crate::daemon::{serve, socket_path, Socket};
use crate::output::{self, print};
use crate::session::Session;

/// Serves the state directory until SIGINT or SIGTERM.
pub async fn daemon(ctx: &Session) -> Result<()> {
    ctx.no_daemon("start another daemon").await?;
    ctx.with_client(async |client| {
        let path = socket_path(&ctx.state_dir);
        let socket = Socket::bind(&ctx.state_dir, &path)?;
        let user = client.identity().user_id;
        let shown = path.display().to_string();
        print(
            ctx.json,
            &json!({ "socket": shown, "user_id": user }),
            || {
                Ok(format!(
                    "Serving {user}'s device on {shown}: other convene commands for this state \
                     directory go through here. Stop with Ctrl-C."
                ))
            },
        )?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        tokio::select! {
            () = serve(socket, client.clone(), ctx.timeout) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if !ctx.json {
            output::note("the daemon stopped");
        }
        Ok(())
    })
    .await
}
