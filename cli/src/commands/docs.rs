//! What the command line says about itself: shell completions
//! (`clap_complete`) and its manual page (`clap_mangen`), both made from the
//! same definition as `--help`, so that they never disagree with it.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::Cli;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "convene", &mut script);
    print_text(script)
}

/// Prints the manual page, in roff.
pub fn man_page() -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("cannot render the manual page")?;
    print_text(page)
}

fn print_text(bytes: Vec<u8>) -> Result<()> {
    let text = String::from_utf8(bytes).context("the generated text is not UTF-8")?;
    crate::output::line(text.trim_end())
}
