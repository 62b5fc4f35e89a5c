//! Entering and leaving the terminal's UI modes. Restoring is idempotent and also runs from the
//! panic hook, so no exit path leaves raw mode, the alternate screen, mouse capture or
//! bracketed paste behind.

use std::io::{self, Write};
use std::sync::Once;

#[cfg(not(windows))]
use crossterm::event::EnableBracketedPaste;
use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use ratatui::DefaultTerminal;

static HOOK: Once = Once::new();

/// Install the panic hook (first), then enter raw mode, the alternate screen, bracketed paste
/// and mouse capture.
pub fn enter() -> io::Result<DefaultTerminal> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    let terminal = ratatui::try_init()?;
    let mut out = io::stdout();
    // Windows consoles have no bracketed paste for a program reading console input (crossterm
    // reads key records, and refuses the mode on the classic console): a paste arrives as typed
    // keys, and a dropped file as its path typed into the input line (see
    // `paste::dropped_paths`).
    #[cfg(not(windows))]
    let modes = execute!(out, EnableBracketedPaste, EnableMouseCapture);
    #[cfg(windows)]
    let modes = execute!(out, EnableMouseCapture);
    if let Err(e) = modes {
        restore();
        return Err(e);
    }
    Ok(terminal)
}

/// Leave every mode `enter` set. Harmless when called twice or when nothing was entered.
pub fn restore() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        crossterm::cursor::Show
    );
    ratatui::restore();
    let _ = out.flush();
}
