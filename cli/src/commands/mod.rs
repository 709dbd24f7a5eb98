//! One function per command: each opens what it needs through
//! [`Session`], asks client-core, and prints through [`crate::output`].

mod account;
mod conversation;
mod devices;
mod docs;
mod staff;

use std::time::Duration;

use anyhow::Result;

use crate::passphrase;
use crate::session::Session;
use crate::{Cli, Command};

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
    match cli.command {
        Command::Ping => account::ping(&ctx).await,
        Command::Enrol {
            invite,
            user_id,
            name,
            pin_cert,
        } => account::enrol(&ctx, &invite, user_id, name, pin_cert).await,
        Command::Whoami => account::whoami(&ctx).await,
        Command::Passphrase => account::change_passphrase(&ctx).await,
        Command::Verify { user } => account::verify(&ctx, &user).await,
        Command::Users => account::users(&ctx).await,
        Command::Groups => conversation::groups(&ctx).await,
        Command::Group(command) => conversation::group(&ctx, command).await,
        Command::Dm { user, text } => conversation::dm(&ctx, &user, &text).await,
        Command::Send { group, text } => conversation::send(&ctx, &group, &text).await,
        Command::Read { group, limit } => conversation::read(&ctx, &group, limit).await,
        Command::Listen { count } => conversation::listen(&ctx, count).await,
        Command::Invite(args) => staff::invite(&ctx, args).await,
        Command::Suspend { user } => staff::suspend(&ctx, &user).await,
        Command::Delegate {
            user,
            may_certify_staff,
        } => staff::delegate(&ctx, &user, may_certify_staff).await,
        Command::Undelegate { user } => staff::undelegate(&ctx, &user).await,
        Command::Link { user, pin_cert } => devices::link(&ctx, &user, pin_cert).await,
        Command::Devices { command } => devices::devices(&ctx, command).await,
        Command::TakeOver => devices::take_over(&ctx).await,
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}
