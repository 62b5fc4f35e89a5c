//! The status bar: who we talk to and how, throughput, key hints; or the question about a file
//! that waits for y / n.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::Theme;
use crate::text::width;
use crate::transfer::human_size;
use crate::tui::app::{App, FileAction, Link, Listening, Prompt};
use crate::tui::wrap::{truncate, truncate_start};

pub struct StatusBar<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for &StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, theme) = (self.app, self.theme);
        if let Some(prompt) = &app.prompt {
            let line = Line::from(question(prompt, area.width as usize));
            Paragraph::new(line).style(theme.ask()).render(area, buf);
            return;
        }
        let mut parts = Vec::new();
        let conv = app.conv();
        if !conv.everyone {
            parts.push(match &conv.link {
                Link::Idle | Link::Disconnected(_) if conv.lan.is_some() => {
                    let at = conv.lan.as_ref().map(|f| f.target()).unwrap_or_default();
                    format!("{}: on the LAN at {at}, Enter connects", conv.name)
                }
                Link::Idle => format!("{}: not connected", conv.name),
                Link::Connecting(target) => format!("connecting to {target}"),
                Link::Handshaking(addr) => format!("identifying {addr}"),
                Link::Connected(peer) => {
                    let addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
                    if peer.raw {
                        format!("raw peer {addr}")
                    } else {
                        format!("connected: {} ({addr})", peer.name)
                    }
                }
                Link::Disconnected(_) => format!("{}: disconnected", conv.name),
            });
        }
        let (up, down) = app.throughput();
        if let Some(Listening { addresses, port }) = &app.listening {
            let addr = addresses.first().map_or("0.0.0.0", String::as_str);
            parts.push(format!("listening on {addr}:{port}"));
        }
        let connected = app.connected();
        parts.push(match connected {
            1 => "1 peer".to_string(),
            n => format!("{n} peers"),
        });
        if !app.arriving.is_empty() {
            parts.push(format!("{} identifying", app.arriving.len()));
        }
        parts.push(if conv.everyone {
            app.encoding.to_string()
        } else {
            conv.encoding.to_string()
        });
        if up > 0.0 || down > 0.0 {
            parts.push(format!(
                "↑ {}/s ↓ {}/s",
                human_size(up as u64),
                human_size(down as u64)
            ));
        }
        let left = format!(" {}", parts.join(" │ "));
        let hints = "Tab focus · F1 help · Ctrl-C quit ";
        let w = area.width as usize;
        let line = if width(&left) + width(hints) < w {
            let pad = w - width(&left) - width(hints);
            Line::from(vec![
                Span::raw(left),
                Span::raw(" ".repeat(pad)),
                Span::raw(hints),
            ])
        } else {
            Line::from(truncate(&left, w))
        };
        Paragraph::new(line).style(theme.status()).render(area, buf);
    }
}

/// ` Decline PATH? y declines · n keeps it`, the path shortened from the left to fit `w` cells.
fn question(prompt: &Prompt, w: usize) -> String {
    let (verb, answers) = match prompt.action {
        FileAction::Accept => ("Accept", "y accepts · n leaves it waiting"),
        FileAction::Decline => ("Decline", "y declines · n keeps it"),
        FileAction::Cancel => ("Cancel", "y cancels · n keeps it"),
    };
    let frame = width(verb) + width(answers) + 5;
    let path = truncate_start(&prompt.path, w.saturating_sub(frame).max(8));
    truncate(&format!(" {verb} {path}? {answers} "), w)
}
