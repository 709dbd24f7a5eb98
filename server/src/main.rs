//! `convene-server`: the Convene relay's command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use convene_proto::invite::Invite;
use convene_server::config::{Config, TlsConfig};
use convene_server::relay::Relay;
use convene_server::store::{now_ms, Founding, Store, StoreOptions};
use convene_server::{server, tls};
use tracing_subscriber::EnvFilter;

/// The Convene relay: stores and forwards end-to-end encrypted messages
/// between Convene devices. It never sees their content.
#[derive(Debug, Parser)]
#[command(name = "convene-server", version, propagate_version = true)]
struct Cli {
    /// TOML configuration file (every key is optional; see README.md).
    #[arg(long, global = true, env = "CONVENE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Options of `serve`, the command run when none is given.
    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay. With no configuration: plain websockets on
    /// 127.0.0.1:7420, data in ./convene-data.
    Serve(ServeArgs),
    /// Create a first-staff invite while the relay is stopped (e.g. when the
    /// bootstrap invite was lost), before anyone created the organisation's
    /// authority. Prints the invite code.
    Invite(InviteArgs),
    /// Write a self-signed TLS certificate and key for development.
    GenCert(GenCertArgs),
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// Address to listen on. Non-loopback addresses require TLS.
    #[arg(long, env = "CONVENE_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the relay's data (created if missing).
    #[arg(long, env = "CONVENE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(
        long,
        env = "CONVENE_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "CONVENE_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// These options, each falling back to `other`'s (the options given
    /// before the `serve` command, or with no command at all).
    fn or(self, other: ServeArgs) -> ServeArgs {
        ServeArgs {
            listen: self.listen.or(other.listen),
            data_dir: self.data_dir.or(other.data_dir),
            tls_cert: self.tls_cert.or(other.tls_cert),
            tls_key: self.tls_key.or(other.tls_key),
        }
    }
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(ServeArgs::default())
    }
}

#[derive(Debug, clap::Args)]
struct InviteArgs {
    /// The handle the invitee will have (otherwise they choose).
    #[arg(long, value_name = "HANDLE")]
    user_id: Option<String>,
    /// The invitee's display name (otherwise they choose).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Directory of the relay's data.
    #[arg(long, env = "CONVENE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct GenCertArgs {
    /// Host names the certificate is for.
    #[arg(long = "host", value_name = "NAME", default_values_t = [String::from("localhost")])]
    hosts: Vec<String>,
    /// Directory to write cert.pem and key.pem into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// The log filter when `CONVENE_LOG` is not set: the relay's own news, and
/// only warnings from the storage engines, whose routine recovery and
/// compaction lines say nothing an operator acts on.
const DEFAULT_LOG: &str = "info,fjall=warn,lsm_tree=warn,sled=warn";

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CONVENE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => serve(config, args.or(cli.serve)),
        Command::Invite(mut args) => {
            // `--data-dir` given before the command names the same store.
            args.data_dir = args.data_dir.or(cli.serve.data_dir);
            offline_invite(config, args)
        }
        Command::GenCert(args) => {
            let (cert, key) = tls::write_dev_certificate(&args.hosts, &args.out)?;
            println!("wrote {} and {}", cert.display(), key.display());
            Ok(())
        }
    }
}

fn serve(mut config: Config, args: ServeArgs) -> Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsConfig { cert, key });
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> Result<()> {
    let acceptor = match &config.tls {
        Some(tls) => Some(tls::acceptor(&tls.cert, &tls.key)?),
        None => None,
    };
    let scheme = if acceptor.is_some() { "wss" } else { "ws" };
    let data_dir = config.data_dir.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let relay = Relay::open(config)?;
    let url = format!("{scheme}://{addr}");
    if let Some((invite, ttl_secs)) = relay.bootstrap_invite(&url)? {
        print_bootstrap(&invite, ttl_secs);
    }
    // Last, so that scripts can wait for this line: the relay is ready.
    println!(
        "Convene relay listening on {url} (data in {})",
        data_dir.display()
    );
    tracing::info!(%url, "listening");
    server::run(relay, listener, acceptor, shutdown_signal()).await;
    Ok(())
}

/// The bootstrap invite goes to standard output for the operator, never
/// through the log. It names the relay, so enrolling needs no `--relay`.
fn print_bootstrap(invite: &Invite, ttl_secs: u32) {
    let code = invite.to_code();
    println!(
        "No one has enrolled yet. Bootstrap staff invite (one use, valid {} hours):",
        ttl_secs / 3600
    );
    println!("  {code}");
    println!("Enrol the first staff member with:");
    println!("  convene enrol {code} --user-id <handle> --name \"<Your Name>\"");
    println!("Each start of an empty relay replaces this invite with a new one.");
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

fn offline_invite(config: Config, args: InviteArgs) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or(config.data_dir);
    if !Path::new(&data_dir).exists() {
        bail!(
            "no relay data in {} (the relay creates it at its first start; name the relay's \
             own with --data-dir or CONVENE_DATA_DIR)",
            data_dir.display()
        );
    }
    let store = Store::open(&data_dir, StoreOptions::default())
        .context("cannot open the relay's data (is the relay still running? stop it first)")?;
    if store.authority_key()?.is_some() {
        bail!(
            "this relay's organisation has an authority key, and only staff holding it can \
             certify new users: create invites with `convene invite`"
        );
    }
    let invite = store.issue_founding_invite(
        Founding::Offline {
            user_id: args.user_id.unwrap_or_default(),
            display_name: args.name.unwrap_or_default(),
        },
        u64::from(config.limits.invite_ttl_secs) * 1000,
        now_ms(),
    )?;
    println!("{}", invite.to_code());
    Ok(())
}
