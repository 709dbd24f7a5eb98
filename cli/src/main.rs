//! `convene`: the Convene command line, a thin face over
//! `convene-client-core`. Parsing and printing live here; everything else
//! is the library's.

mod asking;
mod call;
mod commands;
mod daemon;
mod execute;
mod output;
mod passphrase;
mod paths;
mod peer_args;
mod session;
mod shapes;
mod waiting;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use peer_args::{
    AskArgs, AskCommand, NetworkCommand, PeopleArgs, PeopleCommand, ProfileCommand, RequestsCommand,
};

/// Convene: end-to-end encrypted conversations for the leadership network.
///
/// Each device keeps its state (keys, groups, history) in a state directory;
/// messages are encrypted on the device and only ciphertext reaches the
/// relay.
#[derive(Debug, Parser)]
#[command(name = "convene", version, propagate_version = true)]
pub struct Cli {
    /// The relay's address, e.g. wss://relay.example.org or ws://127.0.0.1:7420.
    /// Rarely needed: an invite names its relay, and an enrolled device
    /// remembers it; give it to `link`, to `ping` before enrolling, or to
    /// reach a relay that moved.
    #[arg(long, global = true, env = "CONVENE_RELAY", value_name = "URL")]
    relay: Option<String>,

    /// Where this device's state lives [default: $XDG_DATA_HOME/convene].
    #[arg(long, global = true, env = "CONVENE_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// A command that prints the passphrase of this device's state (a
    /// password manager, say). Otherwise it comes from CONVENE_PASSPHRASE,
    /// or you are asked. Never give the passphrase itself as an argument.
    #[arg(
        long,
        global = true,
        env = "CONVENE_PASSPHRASE_COMMAND",
        value_name = "CMD"
    )]
    passphrase_command: Option<String>,

    /// Seconds to wait for the relay before giving up.
    #[arg(long, global = true, default_value_t = 20, value_name = "SECS")]
    timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that the relay is reachable and measure the round trip.
    Ping,
    /// Enrol this device with an invite from staff.
    Enrol {
        /// The invite code (cvn2_...). It names the relay to use.
        invite: String,
        /// Your user id (a-z, 0-9, '.', '_', '-'), unless the invite names one.
        #[arg(long, value_name = "ID")]
        user_id: Option<String>,
        /// Your name as others see it, unless the invite names one.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Trust exactly this certificate (PEM) for a wss:// relay.
        #[arg(long, value_name = "PEM")]
        pin_cert: Option<PathBuf>,
    },
    /// Show who this device belongs to.
    Whoami,
    /// List your groups and direct channels.
    Groups,
    /// Create and manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Send a message to another user, in your direct channel with them.
    Dm {
        /// The other user's id.
        user: String,
        /// The message.
        text: String,
    },
    /// Send a message to a group.
    Send {
        /// The group: its name, id (or id prefix), or a direct channel's user.
        group: String,
        /// The message.
        text: String,
    },
    /// Show a group's latest messages.
    Read {
        /// The group: its name, id (or id prefix), or a direct channel's user.
        group: String,
        /// How many messages, the latest (1 to 1000).
        #[arg(long, short = 'n', default_value_t = call::DEFAULT_READ_LIMIT, value_parser = read_limit)]
        limit: usize,
    },
    /// Hold this device's state and relay connection, and serve every other
    /// convene command for the same state directory (and other programs,
    /// in JSON-RPC 2.0: see docs/JSON-RPC.md) over a socket in it, until
    /// interrupted. Without a daemon, commands open the state themselves.
    Daemon,
    /// Print messages and changes as they arrive, until interrupted. While
    /// it listens, your other convene commands work beside it (through the
    /// daemon if one runs, or through this command).
    Listen {
        /// Stop after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
    },
    /// Create an invite for a new user (staff only).
    Invite(InviteArgs),
    /// Change what staff certify about a user: a new certificate for the
    /// same identity key, which everyone's directory shows from their next
    /// sync and the user's devices take up on their own (staff holding the
    /// organisation's authority key). Only the fields given change.
    Recertify(RecertifyArgs),
    /// List the users of the network.
    Users,
    /// Find people in the network: by name, organisation, what they can
    /// help with or work on (typos forgiven), and by sector, region,
    /// topic, programme or cohort. Searches this device's verified copy of
    /// the directory; the relay never learns what you looked for.
    #[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
    People {
        #[command(subcommand)]
        command: Option<PeopleCommand>,
        #[command(flatten)]
        search: PeopleArgs,
    },
    /// Introduce two or three leaders to each other (staff): a small group
    /// of their own with your note as its first message, which you leave
    /// at once, so that the conversation is theirs.
    Introduce {
        /// The leaders' user ids: 2 or 3.
        #[arg(required = true, num_args = 2..=3, value_name = "USER")]
        users: Vec<String>,
        /// Why they should talk (1 to 2,000 characters); each of them is
        /// shown it with your name.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Your cohort: the people you joined the programme with, each with
    /// their profile.
    Cohort,
    /// The network channel: one group of every leader and staff, where
    /// staff announce and leaders ask the network for help.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Show or write your profile: what you can help with, what you are
    /// working on, a short bio and how you prefer to be contacted. Your
    /// name, title, organisation, sector, region and cohort are certified
    /// by staff.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Ask the network for help: a request in the network channel that
    /// every leader sees, those it is aimed at first. Offers come to you
    /// privately. With --via-staff, a member of staff posts it for you and
    /// no-one else learns it was you.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        disable_help_subcommand = true
    )]
    Ask {
        #[command(subcommand)]
        command: Option<AskCommand>,
        #[command(flatten)]
        ask: AskArgs,
    },
    /// List the open help requests, those you can best answer first (your
    /// sector, region and topics), and your own with the offers they had.
    #[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
    Requests {
        #[command(subcommand)]
        command: Option<RequestsCommand>,
        /// Also list closed and expired requests.
        #[arg(long)]
        all: bool,
        /// Only your own requests.
        #[arg(long)]
        mine: bool,
    },
    /// Offer help with a request, privately: it goes to the one who asked
    /// (or to the staff member who posted it for them) in your direct
    /// channel, never to the network.
    Offer {
        /// The request: the first 4 or more digits of its id, as
        /// `convene requests` shows it.
        request: String,
        /// What you offer (1 to 4,000 characters).
        text: String,
    },
    /// Suspend a user (staff): the relay cuts off their devices at once and
    /// their groups remove them.
    Suspend {
        /// The user's id.
        user: String,
    },
    /// Let another staff member invite and certify users with their own
    /// key, for a year (staff holding the organisation's authority key).
    Delegate {
        /// The staff member's id.
        user: String,
        /// Let them invite staff too, not only leaders.
        #[arg(long)]
        may_certify_staff: bool,
    },
    /// Take back a staff member's delegation: the users they certified that
    /// the authority has not renewed yet are refused from then on.
    Undelegate {
        /// The staff member's id.
        user: String,
    },
    /// Change the passphrase that encrypts this device's state (the new one
    /// comes from CONVENE_NEW_PASSPHRASE, or you are asked twice).
    Passphrase,
    /// Link this device, not enrolled yet, to your existing account: it
    /// shows a code to type on one of your other devices, at the prompt of
    /// `convene devices approve`. Needs --relay.
    Link {
        /// Your user id.
        user: String,
        /// Trust exactly this certificate (PEM) for a wss:// relay.
        #[arg(long, value_name = "PEM")]
        pin_cert: Option<PathBuf>,
    },
    /// List your devices and the new ones waiting to be linked; approve or
    /// remove one.
    Devices {
        #[command(subcommand)]
        command: Option<DevicesCommand>,
    },
    /// Show the safety number you and another user can compare out of band.
    Verify {
        /// The other user's id.
        user: String,
    },
    /// Keep this copy of your device after the relay refused it as a copy
    /// (you restored it from a backup, and the old device is gone): the
    /// relay refuses any other copy from now on, and the groups this copy
    /// fell behind in are rejoined. If another copy may be in someone
    /// else's hands, link this device again instead and remove the old one.
    TakeOver,
    /// Print a shell completion script, to be sourced by the shell (e.g.
    /// `convene completions bash > ~/.local/share/bash-completion/completions/convene`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, in roff (e.g. `convene man | man -l -`).
    Man,
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// Link the new device that shows a code (typed at the prompt from the
    /// new device's screen; the relay never sees it): it joins all your
    /// groups.
    Approve {
        /// The 12-digit code the new device shows. Leave it out to be asked
        /// for it (which keeps it out of your shell's history).
        #[arg(num_args = 0..)]
        code: Vec<String>,
    },
    /// Name this device as your other devices list it (a device is named
    /// after its computer when it enrols or links). Only your devices can
    /// read the name: it is sealed before it reaches the relay.
    Name {
        /// The name, e.g. "Work laptop" (1 to 64 characters).
        name: String,
    },
    /// Remove another of your devices (a lost one): it is cut off and
    /// leaves all your groups.
    Remove {
        /// The device's key, in hex (a unique prefix will do).
        device: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a cohort group.
    Create {
        /// The group's name.
        name: String,
        /// A member to add (repeat for each).
        #[arg(long = "member", short = 'm', value_name = "USER")]
        members: Vec<String>,
    },
    /// Add users to a group.
    Add {
        /// The group: its name (any case), id or id prefix.
        group: String,
        /// The user ids to add, each with all of their devices.
        #[arg(required = true, value_name = "USER")]
        users: Vec<String>,
    },
    /// Remove users from a group.
    Remove {
        /// The group: its name (any case), id or id prefix.
        group: String,
        /// The user ids to remove, each with all of their devices.
        #[arg(required = true, value_name = "USER")]
        users: Vec<String>,
    },
    /// Show a group, its members and who manages it.
    Show {
        /// The group: its name (any case), id or id prefix, or a direct
        /// channel's user.
        group: String,
    },
    /// Leave a group you manage (staff) and keep managing it from outside:
    /// you can still add and remove members, but can no longer read it. Or
    /// leave an introduction you were put in (any member; another member's
    /// device commits it).
    Leave {
        /// The group: its name (any case), id or id prefix.
        group: String,
    },
}

#[derive(Debug, Args)]
struct InviteArgs {
    /// The new user's id (a-z, 0-9, '.', '_', '-').
    user_id: String,
    /// The new user's name as others see it; certified with the id.
    #[arg(long, value_name = "NAME")]
    name: String,
    #[command(flatten)]
    fields: CertifiedArgs,
    /// The new user's role.
    #[arg(long, value_enum, default_value_t = RoleArg::Leader)]
    role: RoleArg,
}

/// `convene recertify`'s arguments.
#[derive(Debug, Args)]
struct RecertifyArgs {
    /// The user's id.
    user_id: String,
    /// Their name as others see it.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    fields: CertifiedArgs,
}

/// What staff certify about a user beyond their id, name and role.
#[derive(Debug, Args)]
struct CertifiedArgs {
    /// Their sector, e.g. police, nhs, "fire and rescue", "local
    /// government" (see docs/DIRECTORY.md for the list).
    #[arg(long, value_name = "SECTOR")]
    sector: Option<String>,
    /// The ITL1 region or nation they work in, e.g. london, "north east",
    /// scotland.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Their job title, e.g. "Chief Fire Officer".
    #[arg(long, value_name = "TITLE")]
    title: Option<String>,
    /// Their organisation.
    #[arg(long, value_name = "ORGANISATION")]
    organisation: Option<String>,
    /// Their programme, e.g. "CEO programme 2026".
    #[arg(long, value_name = "PROGRAMME")]
    programme: Option<String>,
    /// Their cohort within the programme, e.g. "cohort 2".
    #[arg(long, value_name = "COHORT")]
    cohort: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Leader,
    Staff,
}

/// `--limit` of `read`: 1 to [`call::MAX_READ_LIMIT`].
fn read_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=call::MAX_READ_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("a number from 1 to {}", call::MAX_READ_LIMIT)),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    // Logs go to stderr, off unless asked for: output is for people and
    // scripts.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONVENE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::new(err).context("cannot start the async runtime");
            output::error(json, &err);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped reading: what was asked for was done.
        Err(err) if err.is::<output::OutputClosed>() => ExitCode::SUCCESS,
        Err(err) => {
            output::error(json, &err);
            ExitCode::FAILURE
        }
    }
}

/// A command line clap could not read: with `--json` anywhere on it, the
/// same `{"error": ...}` document as any other failure (code `usage`), so a
/// program driving the CLI reads one shape; otherwise clap's own message
/// (and `--help` and `--version` as clap prints them).
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let asked_for_json = std::env::args_os().any(|arg| arg == "--json");
    if !asked_for_json
        || matches!(
            err.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        err.exit();
    }
    let message = err.render().to_string();
    let document = serde_json::json!({ "error": { "code": "usage", "message": message.trim() } });
    // Nobody left to tell if standard output is closed: the status says it.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), format!("{document}\n").as_bytes());
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, with the command's path, that
    /// `--help` would show without a word on it.
    fn undocumented(command: &clap::Command, path: &str) -> Vec<String> {
        let path = format!("{path} {}", command.get_name());
        let mut missing: Vec<String> = command
            .get_arguments()
            .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
            .filter(|arg| arg.get_help().is_none() && arg.get_long_help().is_none())
            .map(|arg| format!("{path} <{}>", arg.get_id()))
            .collect();
        for sub in command.get_subcommands() {
            missing.extend(undocumented(sub, &path));
        }
        missing
    }

    #[test]
    fn every_argument_of_every_command_says_what_it_is() {
        let missing = undocumented(&super::Cli::command(), "");
        assert!(missing.is_empty(), "no help for: {missing:#?}");
    }
}
