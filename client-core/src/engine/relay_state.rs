//! Where the engine stands with the relay, as one state.
//!
//! Everything that only means something while connected (the connection,
//! its pushes, whether the backlog is processed, when it was last used)
//! lives in [`Online`]; the timing of the next attempt lives in
//! [`Offline`]; a device the relay refuses for good is [`RelayState::ShutOut`]
//! and schedules nothing until the user acts. No I/O here: the engine's
//! session (`session.rs`) makes the transitions.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::transport::{Connection, PushReceiver};

/// First wait after a connection is lost.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connected client that has been quiet this long pings the relay.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(60);

/// The engine's connection to the relay.
pub(super) enum RelayState {
    /// Not connected; the next attempt is scheduled.
    Offline(Offline),
    /// Connected and authenticated.
    Online(Online),
    /// The relay refuses this device until the user acts: a revocation the
    /// authority signed names it, or its state is a copy another copy has
    /// moved past. Nothing is attempted (`Client::take_over` leaves it).
    ShutOut {
        /// The app was told the connection is lost before it was shut out.
        told_lost: bool,
    },
}

/// Waiting to connect.
pub(super) struct Offline {
    /// When the next attempt is made.
    pub(super) retry_at: Instant,
    /// The wait after that attempt, should it fail (doubling up to
    /// [`MAX_BACKOFF`]).
    pub(super) backoff: Duration,
    /// The app was told the connection is lost, so the next connection is
    /// announced as restored.
    pub(super) told_lost: bool,
}

/// Connected and authenticated.
pub(super) struct Online {
    /// The authenticated connection.
    pub(super) conn: Arc<dyn Connection>,
    /// What the relay pushes on it.
    pub(super) pushes: PushReceiver,
    /// Everything the relay held when this connection was made is
    /// processed (the relay said `CaughtUp`).
    pub(super) caught_up: bool,
    /// When a request was last sent or a push received.
    pub(super) last_activity: Instant,
    /// When this connection was made, ms since the Unix epoch.
    pub(super) since_ms: u64,
    /// The wait before reconnecting should this connection drop: reset to
    /// [`MIN_BACKOFF`] only once caught up, so a relay that drops every
    /// connection right after authenticating is not hammered.
    pub(super) backoff: Duration,
}

impl RelayState {
    /// A new engine: it connects at once, and has told the app nothing.
    pub(super) fn starting() -> RelayState {
        RelayState::Offline(Offline {
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            told_lost: false,
        })
    }

    /// The connection, if there is one.
    pub(super) fn online(&self) -> Option<&Online> {
        match self {
            RelayState::Online(online) => Some(online),
            _ => None,
        }
    }

    /// The connection, if there is one, to change.
    pub(super) fn online_mut(&mut self) -> Option<&mut Online> {
        match self {
            RelayState::Online(online) => Some(online),
            _ => None,
        }
    }

    /// Connected, with the relay's backlog processed: the outbox and the key
    /// lifecycle may run.
    pub(super) fn caught_up(&self) -> bool {
        self.online().is_some_and(|online| online.caught_up)
    }

    /// When the connection next needs the engine: an attempt to connect, or
    /// a keepalive. `None` when shut out.
    pub(super) fn due_at(&self) -> Option<Instant> {
        match self {
            RelayState::Offline(offline) => Some(offline.retry_at),
            RelayState::Online(online) => Some(online.last_activity + KEEPALIVE),
            RelayState::ShutOut { .. } => None,
        }
    }

    /// The backoff the next failure would start from.
    fn backoff(&self) -> Duration {
        match self {
            RelayState::Offline(offline) => offline.backoff,
            RelayState::Online(online) => online.backoff,
            RelayState::ShutOut { .. } => MIN_BACKOFF,
        }
    }

    /// Goes (or stays) offline after a failure: the next attempt waits the
    /// backoff, which doubles. Returns whether the app has yet to be told
    /// the connection is lost (it is marked told).
    pub(super) fn failed(&mut self) -> bool {
        let backoff = self.backoff();
        let told = matches!(
            self,
            RelayState::Offline(Offline {
                told_lost: true,
                ..
            })
        );
        *self = RelayState::Offline(Offline {
            retry_at: Instant::now() + backoff,
            backoff: (backoff * 2).min(MAX_BACKOFF),
            told_lost: true,
        });
        !told
    }

    /// Stops trying: the relay refuses this device until the user acts.
    /// Whether the app was told the connection is lost is kept, so that a
    /// connection after taking over is announced as restored only then.
    pub(super) fn shut_out(&mut self) {
        let told_lost = matches!(
            self,
            RelayState::Offline(Offline {
                told_lost: true,
                ..
            }) | RelayState::ShutOut { told_lost: true }
        );
        *self = RelayState::ShutOut { told_lost };
    }

    /// Makes the next attempt at once (a user taking over this device's
    /// state); a connection already made stays.
    pub(super) fn retry_now(&mut self) {
        match self {
            RelayState::Offline(offline) => offline.retry_at = Instant::now(),
            RelayState::ShutOut { told_lost } => {
                *self = RelayState::Offline(Offline {
                    retry_at: Instant::now(),
                    backoff: MIN_BACKOFF,
                    told_lost: *told_lost,
                })
            }
            RelayState::Online(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_the_wait_up_to_the_bound_and_are_told_once() {
        let mut state = RelayState::starting();
        assert!(state.failed(), "the first failure is told");
        let mut waits = Vec::new();
        for _ in 0..12 {
            let RelayState::Offline(offline) = &state else {
                panic!("a failure leaves the state offline")
            };
            waits.push(offline.backoff);
            assert!(!state.failed(), "a failure already told is not told again");
        }
        assert_eq!(waits[0], MIN_BACKOFF * 2);
        assert_eq!(waits[1], MIN_BACKOFF * 4);
        assert_eq!(waits.last(), Some(&MAX_BACKOFF));
    }

    #[test]
    fn a_shut_out_device_schedules_nothing_until_it_takes_over() {
        let mut state = RelayState::starting();
        state.shut_out();
        assert_eq!(state.due_at(), None);
        assert!(!state.caught_up());
        state.retry_now();
        let due = state.due_at().expect("an attempt is scheduled");
        assert!(due <= Instant::now());
    }

    #[test]
    fn taking_over_announces_a_restored_connection_only_after_a_lost_one() {
        // Refused as a copy at the very first attempt: nothing was lost.
        let mut first = RelayState::starting();
        first.shut_out();
        first.retry_now();
        assert!(matches!(
            first,
            RelayState::Offline(Offline {
                told_lost: false,
                ..
            })
        ));
        // Refused after the app heard the connection was lost.
        let mut later = RelayState::starting();
        later.failed();
        later.shut_out();
        later.retry_now();
        assert!(matches!(
            later,
            RelayState::Offline(Offline {
                told_lost: true,
                ..
            })
        ));
    }
}
