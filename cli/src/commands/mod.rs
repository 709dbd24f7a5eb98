//! One function per command that is more than a call: each opens what it
//! needs through [`Session`] and prints through [`crate::output`]. Every
//! other command is a [`Call`], run through the daemon or here by
//! [`Session::run_call`].

mod account;
mod daemon;
mod devices;
mod docs;
mod listen;

use std::time::Duration;

use anyhow::Result;

use crate::call::Call;
use crate::passphrase;
use crate::session::Session;
use crate::{Cli, Command, DevicesCommand};

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    // What is printed about the command line itself needs no state.
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man => return docs::man_page(),
        _ => {}
    }
    let ctx = Session {
        state_dir: match cli.state_dir.clone() {
            Some(dir) => dir,
            None => crate::paths::default_state_dir()?,
        },
        relay: cli.relay.clone(),
        timeout: Duration::from_secs(cli.timeout),
        json: cli.json,
        passphrase: passphrase::Source {
            command: cli.passphrase_command.clone(),
        },
    };
    if let Some(call) = Call::of_command(&cli.command) {
        return ctx.run_call(call).await;
    }
    match cli.command {
        Command::Ping => account::ping(&ctx).await,
        Command::Enrol {
            invite,
            user_id,
            name,
            pin_cert,
        } => account::enrol(&ctx, &invite, user_id, name, pin_cert).await,
        Command::Passphrase => account::change_passphrase(&ctx).await,
        Command::Listen { count } => listen::listen(&ctx, count).await,
        Command::Daemon => daemon::daemon(&ctx).await,
        Command::Link { user, pin_cert } => devices::link(&ctx, &user, pin_cert).await,
        Command::Devices {
            command: Some(DevicesCommand::Approve { code }),
        } => devices::approve(&ctx, code).await,
        // Every other command is a call, run above.
        command => Err(anyhow::anyhow!(
            "internal error: `{command:?}` is neither a call nor a command of its own"
        )),
    }
}
