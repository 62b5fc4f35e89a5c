//! The process and its terminal: signals and job control, which only Unix has.

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
