//! The arguments of the commands for the peer network: the directory
//! (`people`, `profile`, `network`) and asking it for help (`ask`,
//! `requests`). `main.rs` holds the rest of the command line.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create the network channel (staff, once): every leader and staff
    /// member is added to it, and everyone enrolled later, by staff's
    /// devices on their own.
    Create {
        /// The channel's name.
        #[arg(default_value = "Network")]
        name: String,
    },
    /// Turn ordinary chat in the network channel on or off (staff). Off,
    /// the default, leaves it to staff announcements and help requests;
    /// every member's client holds every other to it.
    Chat {
        /// `on` or `off`.
        #[arg(value_enum)]
        state: OnOff,
    },
}

/// A setting turned on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

#[derive(Debug, Args)]
pub(crate) struct AskArgs {
    /// A short title (1 to 120 characters), e.g. "Cyber instructors for
    /// further education". A title of the single word "close" reads as
    /// `ask close`: say more.
    #[arg(value_name = "TITLE", required = true)]
    pub(crate) title: Option<String>,
    /// What you need, in a few sentences (at most 4,000 characters).
    #[arg(value_name = "TEXT")]
    pub(crate) text: Option<String>,
    /// What it is about (repeat, or separate with commas): at most 8.
    #[arg(long = "topic", value_name = "TOPIC", value_delimiter = ',')]
    pub(crate) topics: Vec<String>,
    /// A sector it is mostly for, e.g. education, police (repeat for
    /// several; leave out for every sector). Its leaders see it first.
    #[arg(long = "sector", value_name = "SECTOR")]
    pub(crate) sectors: Vec<String>,
    /// An ITL1 region or nation it is mostly for, e.g. "north east"
    /// (repeat for several; leave out for everywhere).
    #[arg(long = "region", value_name = "REGION")]
    pub(crate) regions: Vec<String>,
    /// How many days it stays open: 1 to 90.
    #[arg(long, value_name = "DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..=90))]
    pub(crate) days: u32,
    /// Ask through this member of staff (their user id; `convene users`
    /// shows who is staff): they post it for you, pass the offers on to
    /// you, and no-one else learns who asked.
    #[arg(long, value_name = "STAFF_USER")]
    pub(crate) via_staff: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AskCommand {
    /// Close your request when you have the help you need: every client
    /// shows it closed.
    Close {
        /// The request: the first 4 or more digits of its id.
        request: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RequestsCommand {
    /// Show one request whole, with the offers it had if it is yours.
    Show {
        /// The request: the first 4 or more digits of its id.
        request: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeopleCommand {
    /// Show one person's whole profile.
    Show {
        /// Their user id.
        user: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PeopleArgs {
    /// Words to look for (all must match): names, organisations, titles,
    /// topics, what people work on. Leave out to list everyone.
    #[arg(value_name = "QUERY")]
    pub(crate) query: Vec<String>,
    /// Only this sector, e.g. police, "fire and rescue", nhs (see
    /// docs/DIRECTORY.md for the list).
    #[arg(long, value_name = "SECTOR")]
    pub(crate) sector: Option<String>,
    /// Only this ITL1 region or nation, e.g. london, "north east", wales.
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// Only people who can help with this topic.
    #[arg(long, value_name = "TOPIC")]
    pub(crate) topic: Option<String>,
    /// Only this programme, e.g. "CEO programme 2026".
    #[arg(long, value_name = "PROGRAMME")]
    pub(crate) programme: Option<String>,
    /// Only this cohort, e.g. "cohort 2".
    #[arg(long, value_name = "COHORT")]
    pub(crate) cohort: Option<String>,
    /// Also list suspended people.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Show your profile as the network sees it, and the topics others
    /// list most.
    Show,
    /// Change your profile; what you leave out stays as it is. Only a
    /// device that holds your identity key (the one you enrolled) can.
    Set {
        /// A topic you can help with (repeat, or separate with commas);
        /// replaces the list. At most 12, each at most 40 characters.
        #[arg(long = "topic", value_name = "TOPIC", value_delimiter = ',')]
        topics: Option<Vec<String>>,
        /// What you are working on (at most 500 characters).
        #[arg(long, value_name = "TEXT")]
        working_on: Option<String>,
        /// A short bio (at most 1,000 characters).
        #[arg(long, value_name = "TEXT")]
        bio: Option<String>,
        /// How you prefer to be contacted (at most 200 characters).
        #[arg(long, value_name = "TEXT")]
        contact: Option<String>,
    },
}
