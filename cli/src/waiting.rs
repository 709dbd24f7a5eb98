//! Saying what a command waits for, once the wait is long enough to
//! notice: a spinner on standard error after a second, on a terminal only
//! (never into a pipe, a file or `--json` output).

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::ProgressBar;

/// How long a wait goes unremarked.
const UNREMARKED: Duration = Duration::from_secs(1);

/// Runs `work`, showing `what` it waits for if it takes longer than a
/// second and `show` allows it.
pub async fn while_waiting<T>(show: bool, what: &str, work: impl Future<Output = T>) -> T {
    if !show || !std::io::stderr().is_terminal() {
        return work.await;
    }
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(UNREMARKED) => {}
    }
    let spinner = ProgressBar::new_spinner().with_message(what.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    let done = work.await;
    spinner.finish_and_clear();
    done
}
