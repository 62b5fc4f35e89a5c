//! `tern send` and `tern recv`: sessions driven by stdin and stdout, netcat-style.
//!
//! stdout carries only the peers' messages, one per line, flushed at once (with `--json`, one
//! JSON object per event instead); everything else (connections, offers, progress, errors)
//! goes to stderr prefixed with `tern:`.
//!
//! - `lines`: stdin, read line by line.
//! - `notes`: what goes to stderr.
//! - `driver`: one session driven to its end, its events printed and counted.
//! - `json`: the `--json` event lines.
//! - `send`, `recv`: the two commands.
//! - `peers`: `tern peers`, discovery's answers.

mod driver;
mod json;
mod lines;
mod notes;
mod peers;
mod recv;
mod send;

pub use peers::peers;
pub use recv::recv;
pub use send::send;

use tokio_util::sync::CancellationToken;

/// Cancel `token` when tern is asked to end (Ctrl-C, SIGTERM; on Windows also Ctrl-Break or
/// the console closing), so sessions can say goodbye.
fn watch_signals(token: CancellationToken) {
    tokio::spawn(async move {
        crate::platform::process::end_requested(false).await;
        token.cancel();
    });
}
