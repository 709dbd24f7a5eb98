//! `convene daemon`: one process holds a device's state and its relay
//! connection, and serves every other `convene` command for that state
//! directory over a local socket, in JSON-RPC 2.0 (docs/JSON-RPC.md), in
//! the manner of signal-cli's daemon. Without it, only one command at a
//! time can open the state; with it, `listen` and `send` run together.
//! `listen` serves the socket itself when no daemon runs.

use std::path::{Path, PathBuf};

mod remote;
pub mod rpc;
mod server;

pub use remote::Daemon;
pub use server::{serve, Socket, Task};

/// The socket's file name in the state directory.
const SOCKET_FILE: &str = "daemon.sock";

/// Where the daemon of `state_dir` listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}
