//! The peer list: Everyone, then each peer with its number (Alt-1…9), its state and how many of
//! its messages are unread. The open conversation is marked. A connected peer's mark says how
//! far it is trusted: ✓ verified, ● encrypted, ! key changed, and ● in the busy colour for a
//! session that is not encrypted. A peer found on the LAN without a session is ◇ (Enter
//! connects), with its address on a line of its own.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use super::Theme;
use crate::text::width;
use crate::tui::app::{App, Conversation, Link, Standing};
use crate::tui::keymap::Focus;
use crate::tui::wrap::truncate;

pub struct PeerList<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

/// The state's mark, and its style.
fn mark(conv: &Conversation, theme: Theme) -> (&'static str, ratatui::style::Style) {
    match &conv.link {
        Link::Connected(info) => match Standing::of(info) {
            Standing::Verified => ("✓", theme.ok()),
            Standing::Known | Standing::FirstContact => ("●", theme.ok()),
            Standing::KeyChanged => ("!", theme.error().add_modifier(Modifier::BOLD)),
            Standing::NotEncrypted => ("●", theme.busy()),
        },
        Link::Connecting(_) | Link::Handshaking(_) => ("◌", theme.busy()),
        Link::Disconnected(_) | Link::Idle if conv.lan.is_some() => ("◇", theme.ok()),
        Link::Disconnected(_) => ("○", theme.dim()),
        Link::Idle => ("·", theme.dim()),
    }
}

impl Widget for &PeerList<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, theme) = (self.app, self.theme);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(app.focus == Focus::Peers))
            .title(" Peers ");
        let inner = block.inner(area);
        block.render(area, buf);
        let w = inner.width as usize;
        if w < 6 || inner.height == 0 {
            return;
        }
        // Each conversation's lines; a peer found on the LAN without a session has a second,
        // its address.
        let mut lines = Vec::new();
        let mut open_last = 0;
        for (i, conv) in app.conversations.iter().enumerate() {
            let number = match i {
                0 => "0".to_string(),
                1..=9 => i.to_string(),
                _ => " ".to_string(),
            };
            let (glyph, glyph_style) = if conv.everyone {
                ("*", theme.key())
            } else {
                mark(conv, theme)
            };
            let unread = if conv.unread > 0 {
                format!(" {}", conv.unread.min(999))
            } else {
                String::new()
            };
            let name_w = w.saturating_sub(4 + width(&unread));
            let name = truncate(&conv.name, name_w);
            let pad = " ".repeat(name_w.saturating_sub(width(&name)));
            let mut line = Line::from(vec![
                Span::styled(number, theme.dim()),
                Span::raw(" "),
                Span::styled(glyph, glyph_style),
                Span::raw(" "),
                Span::raw(name),
                Span::raw(pad),
                Span::styled(unread, theme.key().add_modifier(Modifier::BOLD)),
            ]);
            let address = conv
                .lan
                .as_ref()
                .filter(|_| !conv.link.is_live())
                .map(|found| {
                    let text = truncate(&found.target(), w.saturating_sub(4));
                    Line::from(vec![Span::raw("    "), Span::styled(text, theme.dim())])
                });
            if i == app.open {
                line = line.style(theme.selected());
            }
            lines.push(line);
            if let Some(mut address) = address {
                if i == app.open {
                    address = address.style(theme.selected());
                }
                lines.push(address);
            }
            if i == app.open {
                open_last = lines.len() - 1;
            }
        }
        // The open entry stays in view.
        let rows = inner.height as usize;
        let first = (open_last + 1).saturating_sub(rows);
        let lines: Vec<Line> = lines.into_iter().skip(first).take(rows).collect();
        Paragraph::new(lines).render(inner, buf);
    }
}
