//! Logs go to a file, never to the terminal: a TUI must not be printed over, and headless
//! stdout carries only messages.

use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Where the log file lives: `$TERN_LOG_DIR`, else the user's state (or cache) folder.
pub fn log_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TERN_LOG_DIR") {
        return Some(PathBuf::from(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "tern")?;
    Some(
        dirs.state_dir()
            .unwrap_or_else(|| dirs.cache_dir())
            .to_path_buf(),
    )
}

/// Start logging to `tern.log`; the filter comes from `TERN_LOG` (default `info`). Returns the
/// guard that flushes the log on drop, or `None` when no log file could be opened (tern then
/// runs without a log rather than failing).
pub fn init() -> Option<WorkerGuard> {
    let dir = log_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tern.log"))
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_env("TERN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}
