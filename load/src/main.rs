//! `convene-load`: drives the relay, then a minimal in-memory baseline,
//! with the same load, and reports both with their ratio.
//!
//! Build and run in release mode, for example:
//!
//! ```sh
//! cargo build --release -p convene-server -p convene-load
//! target/release/convene-load fanout --groups 36 --group-size 33
//! target/release/convene-load --json day > day.json
//! ```

use anyhow::Result;
use clap::{Parser, Subcommand};
use convene_load::{self as load, Common, Scenario};

#[derive(Debug, Parser)]
#[command(name = "convene-load", version, about = "Load generator for the Convene relay", long_about = None)]
struct Cli {
    /// Print the report as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Bytes of opaque ciphertext per message.
    #[arg(long, global = true, default_value_t = 256)]
    size: usize,
    /// Messages each device may have in flight (sent, not yet accepted).
    #[arg(long, global = true, default_value_t = 32)]
    window: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// Runs the baseline server (the generator starts it itself).
    #[command(hide = true)]
    BaselineServe,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_file_limit();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::BaselineServe => runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("baseline listening on ws://{}", listener.local_addr()?);
            load::baseline::serve(listener).await;
            Ok(())
        }),
        Command::Scenario(scenario) => {
            let common = Common {
                size: cli.size,
                window: cli.window.max(1),
            };
            let report = runtime.block_on(load::run(&scenario, common))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(())
        }
    }
}

/// Thousands of connections need thousands of descriptors: take the hard
/// limit.
fn raise_file_limit() {
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::increase_nofile_limit(hard);
    }
}
