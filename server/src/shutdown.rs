//! Listens for the relay's shutdown signal (after mini-redis's `Shutdown`).
//!
//! The server holds a broadcast sender; every connection and background task
//! holds one of these. Dropping the sender, or sending on it, tells them all
//! to finish: stop reading, close their websocket with 1001, and return.

use tokio::sync::broadcast;

#[derive(Debug)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    pub fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify,
        }
    }

    /// Waits for the shutdown signal (returns at once if already received).
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // A closed or lagged channel also means shutdown.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}
