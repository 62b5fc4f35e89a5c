//! What goes to stderr: notes prefixed `tern:`, written in bursts, and a one-line progress
//! that the next note clears.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::transfer::{Direction, TransferUpdate, human_size};

/// A progress line is on stderr (a terminal) and must be cleared before the next note.
static PROGRESS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Notes not yet written: a burst of them (ten thousand small files) goes out in one write.
static NOTES: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

pub(super) fn note(message: impl std::fmt::Display) {
    let clear = if PROGRESS_SHOWN.swap(false, Ordering::Relaxed) {
        "\r\x1b[K"
    } else {
        ""
    };
    if let Ok(mut notes) = NOTES.lock() {
        notes.push_str(&format!("{clear}tern: {message}\n"));
        if BATCHING.load(Ordering::Relaxed) && notes.len() < 64 * 1024 {
            return;
        }
    }
    flush_notes();
}

/// Set while `drive` handles a burst of events; otherwise each note is written at once.
pub(super) static BATCHING: AtomicBool = AtomicBool::new(false);

/// Write the notes gathered so far (`drive` calls this each turn, and at the end).
pub(super) fn flush_notes() {
    let text = match NOTES.lock() {
        Ok(mut notes) if !notes.is_empty() => std::mem::take(&mut *notes),
        _ => return,
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn stderr_is_terminal() -> bool {
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// Redraw the one-line progress of a moving file, when stderr is a terminal (a log file gets
/// only the notes).
pub(super) fn show_progress(update: &TransferUpdate, started: Option<&Instant>) {
    if !stderr_is_terminal() {
        return;
    }
    let p = update.progress;
    let rate = started
        .map(|t| t.elapsed().as_secs_f64())
        .filter(|s| *s > 0.2)
        .map(|s| format!(" {}/s", human_size((p.done as f64 / s) as u64)))
        .unwrap_or_default();
    let arrow = match update.id.direction {
        Direction::Outgoing => "↑",
        Direction::Incoming => "↓",
    };
    let line = format!(
        "\r\x1b[Ktern: {arrow} {} {:>3.0}% of {}{rate}",
        update.path,
        p.fraction() * 100.0,
        human_size(p.total)
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    PROGRESS_SHOWN.store(true, Ordering::Relaxed);
}
