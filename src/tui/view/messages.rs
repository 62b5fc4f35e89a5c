//! The message pane: the conversation, wrapped by cells, with a marker for unseen messages.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use super::Theme;
use crate::tui::app::{App, Link, Listening, Standing};
use crate::tui::keymap::{self, Focus, Intent};
use crate::tui::transcript::MessageKind;

pub struct MessagesPane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for &MessagesPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, theme) = (self.app, self.theme);
        let mut block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(app.focus == Focus::Messages))
            .title(title(app));
        let transcript = &app.conv().transcript;
        if transcript.offset() > 0 {
            // The key that jumps down from the pane that has the keys now.
            let key = keymap::key_for(Intent::Bottom, app.focus).unwrap_or_default();
            let marker = match transcript.unseen() {
                0 => format!(" ↓ more below ({key}) "),
                1 => format!(" ↓ 1 new message ({key}) "),
                n => format!(" ↓ {n} new messages ({key}) "),
            };
            block =
                block.title_bottom(Line::from(Span::styled(marker, theme.key())).right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width == 0 || inner.height == 0 {
            return;
        }
        if transcript.messages().is_empty() {
            Paragraph::new(welcome(app, theme))
                .wrap(ratatui::widgets::Wrap { trim: false })
                .render(inner, buf);
            return;
        }
        let lines = transcript.visible(inner.width as usize, inner.height as usize);
        let messages = transcript.messages();
        let rendered: Vec<Line> = lines
            .into_iter()
            .map(|l| {
                let msg = &messages[l.msg];
                let body_style = match msg.kind {
                    MessageKind::Mine | MessageKind::Peer => ratatui::style::Style::default(),
                    MessageKind::System => theme.system(),
                    MessageKind::Error => theme.error(),
                };
                let mut spans = Vec::new();
                if let Some(header) = l.header {
                    let time_len = msg.time.len().min(header.len());
                    let (time, who) = header.split_at(time_len);
                    spans.push(Span::styled(time.to_string(), theme.time()));
                    let who_style = match msg.kind {
                        MessageKind::Mine => theme.me(),
                        MessageKind::Peer => theme.peer(),
                        MessageKind::System => theme.system(),
                        MessageKind::Error => theme.error(),
                    };
                    spans.push(Span::styled(who.to_string(), who_style));
                } else if l.indent > 0 {
                    spans.push(Span::raw(" ".repeat(l.indent)));
                }
                spans.push(Span::styled(l.body, body_style));
                Line::from(spans)
            })
            .collect();
        Paragraph::new(rendered).render(inner, buf);
    }
}

/// ` Messages · ana · verified `: whose conversation this is, and how far its peer
/// is trusted (` Messages · Everyone ` at the top of the list); ` Messages · ana · on the LAN `
/// for a peer found there without a session.
fn title(app: &App) -> String {
    let conv = app.conv();
    let name = crate::tui::wrap::truncate(&conv.name, 40);
    match &conv.link {
        Link::Connected(info) => {
            format!(" Messages · {name} · {} ", Standing::of(info).words())
        }
        _ if conv.lan.is_some() && !conv.link.is_live() => {
            format!(" Messages · {name} · on the LAN ")
        }
        _ => format!(" Messages · {name} "),
    }
}

/// What an empty conversation shows: how to get a peer.
fn welcome(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(Span::styled("Welcome to tern.", theme.me())),
        Line::from(""),
    ];
    match (&app.conv().link, &app.listening) {
        (Link::Connecting(target), _) => lines.push(Line::from(format!("Connecting to {target}…"))),
        (Link::Idle | Link::Disconnected(_), _) if app.conv().lan.is_some() => {
            if let Some(found) = &app.conv().lan {
                lines.push(Line::from(format!(
                    "{} is on the LAN at {}, key {}.",
                    app.conv().name,
                    found.target(),
                    found.fingerprint
                )));
                lines.push(Line::from(Span::styled(
                    "Enter connects (here, or on it in the peer list).",
                    theme.key(),
                )));
            }
        }
        (_, Some(Listening { addresses, port })) if app.conv().everyone => {
            lines.push(Line::from(format!("Waiting for peers on port {port}.")));
            lines.push(Line::from("On another machine, run one of:"));
            if addresses.is_empty() {
                lines.push(Line::from(format!("  tern connect THIS-HOST:{port}")));
            }
            for addr in addresses {
                lines.push(Line::from(Span::styled(
                    format!("  tern connect {addr}:{port}"),
                    theme.key(),
                )));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(
                "Or dial out yourself: /connect HOST[:PORT]. Try it alone: tern demo.",
            ));
        }
        _ => {}
    }
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Type a message and press Enter. Drag files into this window to send them.",
    ));
    lines.push(Line::from("F1 or ? shows every key and command."));
    lines
}
