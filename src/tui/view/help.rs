//! Overlays: the help screen and the quit confirmation.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

use super::{Theme, centered, clear_for_overlay};
use crate::tui::app::App;

/// Every key and command, as the help overlay lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send the message / run the command"),
    (
        "Tab / Shift-Tab",
        "move focus: input → messages → files → peers",
    ),
    (
        "Alt-1…9 Ctrl-N Ctrl-P",
        "switch conversation (Alt-0: Everyone)",
    ),
    ("Alt-A", "next conversation with unread messages"),
    (
        "↑ ↓ Enter (peers)",
        "open one; Enter dials a peer that left",
    ),
    ("← → Home End Bksp Del", "move and delete in the input line"),
    ("↑ ↓ (input)", "message history"),
    (
        "PgUp PgDn, wheel",
        "scroll messages (↑ ↓ Home End in their pane)",
    ),
    ("Ctrl-End", "back to the newest message, from any pane"),
    (
        "↑ ↓ → ← (files)",
        "select; show a folder's files; r retries",
    ),
    (
        "a / Enter (files)",
        "accept the selected offer (asks y / n)",
    ),
    ("d (files)", "decline the selected offer (asks y / n)"),
    (
        "x / Delete (files)",
        "cancel the selected transfer (asks y / n)",
    ),
    (
        "any other letter",
        "typed into the input line, from any pane",
    ),
    ("F1, ? (empty line)", "this help; Esc closes it"),
    ("Ctrl-C, /quit", "quit (asks while files move)"),
];

pub const COMMANDS: &[(&str, &str)] = &[
    ("/send PATH...", "send files or folders (quotes ok)"),
    ("/accept", "accept every waiting offer"),
    ("/encoding utf-8|gbk", "how your text is encoded"),
    ("/name NAME", "your display name"),
    ("/connect HOST[:PORT]", "add a peer (default port 8989)"),
    ("/peers", "list the terns found on the LAN, ask again"),
    ("/msg NAME TEXT", "a message to one peer, from anywhere"),
    ("/close", "end the open conversation's session"),
    ("/verify [DIGITS]", "compare the peer's digits with yours"),
    ("/trust", "accept the peer's changed key"),
    ("/search TEXT", "find messages in the history"),
    ("//text", "send a message starting with /"),
];

pub struct HelpOverlay {
    pub theme: Theme,
}

impl Widget for &HelpOverlay {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let theme = self.theme;
        let mut lines = vec![Line::from(Span::styled("Keys", theme.me()))];
        let entry = |(k, v): &(&str, &str)| {
            Line::from(vec![
                Span::styled(format!("  {k:<24}"), theme.key()),
                Span::raw(v.to_string()),
            ])
        };
        lines.extend(KEYS.iter().map(entry));
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled("Commands", theme.me())));
        lines.extend(COMMANDS.iter().map(entry));
        lines.push(Line::from(""));
        lines.push(Line::from(
            "Drag files from your file manager into the window to queue them.",
        ));
        let height = lines.len() as u16 + 2;
        let rect = centered(area, 72, height);
        clear_for_overlay(rect, buf);
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.border(true))
                    .title(" Help (Esc closes) "),
            )
            .render(rect, buf);
    }
}

pub struct ConfirmQuit<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for &ConfirmQuit<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let running = self.app.running_transfers();
        let text = vec![
            Line::from(format!("{running} transfer(s) still running.")),
            Line::from("Quit and cancel them? y / n"),
        ];
        let rect = centered(area, 44, 4);
        clear_for_overlay(rect, buf);
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(self.theme.error())
                    .title(" Quit? "),
            )
            .render(rect, buf);
    }
}
