//! The process and its terminal: how the user or the system asks tern to end, and job control
//! (Unix only).

/// Under a file-size limit (`ulimit -f`), a write past it raises SIGXFSZ, which kills the
/// process by default. Ignored, the write fails with EFBIG instead: one transfer fails, tern
/// goes on. Windows has neither the limit nor the signal.
pub fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts; SIG_IGN installs no handler
    // code, so nothing runs in signal context. Neither rustix nor any signal crate sets a
    // disposition without `unsafe`: it is process-wide state.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Whether this process may read its terminal without being stopped for it: a Unix job in the
/// background is stopped (SIGTTIN) when it reads. Windows has no job control: always.
pub fn in_terminal_foreground() -> bool {
    #[cfg(unix)]
    {
        match rustix::termios::tcgetpgrp(std::io::stdin()) {
            Ok(foreground) => foreground == rustix::process::getpgrp(),
            // Not our controlling terminal, which stops nobody who reads it.
            Err(_) => true,
        }
    }
    #[cfg(not(unix))]
    true
}

/// Resolves when the user or the system asks tern to end, so that sessions say goodbye and the
/// terminal is restored: Ctrl-C (when the terminal sends it as a signal) and SIGTERM, and
/// SIGHUP too when `hangup` (the TUI, whose terminal went away; headless leaves SIGHUP alone,
/// for `nohup`). On Windows: Ctrl-C, Ctrl-Break, the console window closing and the system
/// shutting down. Never resolves if none of them can be watched.
pub async fn end_requested(hangup: bool) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        let mut hup = hangup.then(|| signal(SignalKind::hangup()).ok()).flatten();
        let hung_up = async {
            match &mut hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hung_up => {}
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
        let _ = hangup;
        let (Ok(mut brk), Ok(mut close), Ok(mut shutdown)) =
            (ctrl_break(), ctrl_close(), ctrl_shutdown())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = brk.recv() => {}
            _ = close.recv() => {}
            _ = shutdown.recv() => {}
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = hangup;
        let _ = tokio::signal::ctrl_c().await;
    }
}
