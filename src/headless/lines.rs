//! Stdin, read line by line on a thread of its own: what `tern send` and `tern recv` say.

use std::io::{BufRead, IsTerminal};

use tokio::sync::mpsc;

use crate::text;

/// Lines of stdin, for the peers to be told.
pub(super) struct Lines {
    pub(super) rx: mpsc::Receiver<String>,
    pub(super) ended: bool,
}

impl Lines {
    /// Read stdin line by line in the background, a terminal included (as nc does: lines typed
    /// until Ctrl-D). A process started in the background (`tern recv &`) leaves the terminal
    /// alone: reading it would stop the process (SIGTTIN).
    pub(super) fn stdin() -> Self {
        let (tx, rx) = mpsc::channel(64);
        let stdin = std::io::stdin();
        if stdin.is_terminal() && !crate::platform::process::in_terminal_foreground() {
            tracing::info!("started in the background: the terminal is not read");
            return Self { rx, ended: true };
        }
        // A thread of its own, not tokio's blocking pool: a read blocked on a terminal can be
        // neither cancelled nor waited for, and the runtime waits for its pool when it stops.
        let reader = std::thread::Builder::new()
            .name("tern-stdin".into())
            .spawn(move || read_lines(&tx));
        if let Err(e) = reader {
            tracing::warn!(error = %e, "cannot start the stdin reader");
            return Self { rx, ended: true };
        }
        Self { rx, ended: false }
    }
}

/// Send each line of stdin to `tx` until stdin or `tx` ends.
fn read_lines(tx: &mpsc::Sender<String>) {
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                // Stdin may be GBK (a legacy file): UTF-8 if valid, else GBK.
                let decoded = text::decode_detected(bytes);
                if tx.blocking_send(decoded.text).is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin");
                break;
            }
        }
    }
}
