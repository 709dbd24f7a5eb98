//! `convene`: the Convene command line, a thin face over
//! `convene-client-core`.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use convene_client::{ConnectOptions, RelayConnection};
use convene_proto::relay::{request, Ping};

/// Convene: end-to-end encrypted conversations for the leadership network.
#[derive(Debug, Parser)]
#[command(name = "convene", version, propagate_version = true)]
struct Cli {
    /// The relay's address, e.g. wss://relay.example.org or ws://127.0.0.1:7420.
    #[arg(
        long,
        global = true,
        env = "CONVENE_RELAY",
        value_name = "URL",
        default_value = "ws://127.0.0.1:7420"
    )]
    relay: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that the relay is reachable and measure the round trip.
    Ping,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Ping => ping(&cli.relay).await,
        }
    })
}

async fn ping(url: &str) -> Result<()> {
    let started = Instant::now();
    let conn = RelayConnection::connect(url, &ConnectOptions::default()).await?;
    conn.request(request::Kind::Ping(Ping {})).await?;
    println!(
        "relay at {url} answered in {} ms",
        started.elapsed().as_millis()
    );
    conn.close().await;
    Ok(())
}
