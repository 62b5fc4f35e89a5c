//! The file-queue pane: two lines per file — name and size, then state or a progress gauge
//! with percent, speed and ETA.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use super::Theme;
use crate::text::width;
use crate::transfer::{Direction, TransferState, human_size};
use crate::tui::app::{App, Folder, Item, Row, Tally, count};
use crate::tui::keymap::Focus;
use crate::tui::wrap::{truncate, truncate_start};

pub struct QueuePane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

/// `m:ss` or `h:mm:ss`.
pub fn clock_time(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn state_style(state: &TransferState, theme: Theme) -> Style {
    match state {
        TransferState::Verified => theme.ok(),
        TransferState::Failed(_) => theme.error(),
        TransferState::Rejected(_) | TransferState::Cancelled(_) => theme.dim(),
        TransferState::AwaitingDecision => theme.key(),
        _ => theme.busy(),
    }
}

/// A file's two lines: arrow, name and size; then its state or progress. `indent` puts a
/// folder's file under it.
fn file_lines(row: &Row, indent: &str, w: usize, theme: Theme) -> (Line<'static>, Line<'static>) {
    let arrow = match row.direction() {
        Direction::Outgoing => "↑ ",
        Direction::Incoming => "↓ ",
    };
    let size = format!(" {}", human_size(row.progress.total));
    let name_w = w.saturating_sub(indent.len() + 2 + width_of(&size));
    // Under its folder, the folder's name is said already.
    let path = match (indent.is_empty(), row.path.split_once('/')) {
        (false, Some((_, rest))) => rest,
        _ => row.path.as_str(),
    };
    let name = truncate_start(path, name_w);
    let pad = " ".repeat(name_w.saturating_sub(width_of(&name)));
    let first = Line::from(vec![
        Span::raw(indent.to_string()),
        Span::styled(arrow, state_style(&row.state, theme)),
        Span::raw(name),
        Span::raw(pad),
        Span::styled(size, theme.dim()),
    ]);
    (first, second_line(row, &format!("{indent}  "), w, theme))
}

/// A folder's two lines: its name, file count and size; then what its files add up to.
fn folder_lines(
    folder: &Folder,
    tally: &Tally,
    w: usize,
    theme: Theme,
) -> (Line<'static>, Line<'static>) {
    let arrow = match folder.direction {
        Direction::Outgoing => "↑ ",
        Direction::Incoming => "↓ ",
    };
    let mark = if folder.expanded { "▾ " } else { "▸ " };
    let files = match tally.files {
        1 => " 1 file".to_string(),
        n => format!(" {} files", count(n)),
    };
    let size = format!(" {}", human_size(tally.bytes));
    let name_w = w.saturating_sub(4 + width_of(&files) + width_of(&size));
    let name = truncate_start(&folder.name, name_w);
    let pad = " ".repeat(name_w.saturating_sub(width_of(&name)));
    let style = if tally.failed > 0 {
        theme.error()
    } else if tally.waiting > 0 {
        theme.key()
    } else if tally.verified == tally.files {
        theme.ok()
    } else {
        theme.busy()
    };
    let first = Line::from(vec![
        Span::styled(mark, theme.dim()),
        Span::styled(arrow, style),
        Span::raw(name),
        Span::styled(files, theme.dim()),
        Span::raw(pad),
        Span::styled(size, theme.dim()),
    ]);
    let indent = "  ";
    let avail = w.saturating_sub(indent.len());
    let text = if tally.waiting > 0 {
        "offered: a accept · d decline · → files".to_string()
    } else if tally.settled == tally.files {
        let mut parts = vec![format!("{} verified", count(tally.verified))];
        if tally.failed > 0 {
            parts.push(format!("{} failed", count(tally.failed)));
        }
        if tally.dropped > 0 {
            parts.push(format!("{} declined or cancelled", count(tally.dropped)));
        }
        if tally.verified == tally.files {
            "all verified".to_string()
        } else {
            parts.join(", ")
        }
    } else {
        let fraction = if tally.bytes == 0 {
            0.0
        } else {
            tally.done_bytes as f64 / tally.bytes as f64
        };
        let tail = format!(" {}/{} files", count(tally.settled), count(tally.files));
        let bar_w = avail.saturating_sub(width_of(&tail)).min(30);
        if bar_w >= 4 {
            let filled = ((fraction * bar_w as f64).round() as usize).min(bar_w);
            return (
                first,
                Line::from(vec![
                    Span::raw(indent),
                    Span::styled("█".repeat(filled), theme.gauge()),
                    Span::styled("░".repeat(bar_w - filled), theme.dim()),
                    Span::raw(truncate(&tail, avail.saturating_sub(bar_w))),
                ]),
            );
        }
        tail.trim_start().to_string()
    };
    let second = Line::from(vec![
        Span::raw(indent),
        Span::styled(truncate(&text, avail), style),
    ]);
    (first, second)
}

fn second_line(row: &Row, indent: &str, width: usize, theme: Theme) -> Line<'static> {
    let indent = indent.to_string();
    let avail = width.saturating_sub(indent.len());
    if row.state == TransferState::Transferring {
        let pct = (row.progress.fraction() * 100.0).floor().min(100.0) as u64;
        let mut tail = format!(" {pct:>3}%");
        if row.speed > 0.0 {
            tail.push_str(&format!(" {}/s", human_size(row.speed as u64)));
        }
        if let Some(eta) = row.eta_secs() {
            tail.push_str(&format!(" {}", clock_time(eta)));
        }
        let bar_w = avail.saturating_sub(width_of(&tail)).min(30);
        if bar_w >= 4 {
            let filled = ((row.progress.fraction() * bar_w as f64).round() as usize).min(bar_w);
            return Line::from(vec![
                Span::raw(indent),
                Span::styled("█".repeat(filled), theme.gauge()),
                Span::styled("░".repeat(bar_w - filled), theme.dim()),
                Span::raw(truncate(&tail, avail.saturating_sub(bar_w))),
            ]);
        }
        return Line::from(vec![
            Span::raw(indent),
            Span::raw(truncate(tail.trim_start(), avail)),
        ]);
    }
    let text = match (&row.state, row.direction()) {
        (TransferState::AwaitingDecision, _) => "offered: a accept · d decline".to_string(),
        (TransferState::Verified, Direction::Incoming) => "verified, saved".to_string(),
        (TransferState::Rejected(_), Direction::Incoming) if row.declined_by_you => {
            "declined by you".to_string()
        }
        (state, _) => state.to_string(),
    };
    Line::from(vec![
        Span::raw(indent),
        Span::styled(truncate(&text, avail), state_style(&row.state, theme)),
    ])
}

fn width_of(s: &str) -> usize {
    width(s)
}

impl Widget for &QueuePane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, theme) = (self.app, self.theme);
        let conv = app.conv();
        let active = conv.queue.iter().filter(|r| !r.state.is_final()).count();
        let title = if conv.queue.is_empty() {
            " Files ".to_string()
        } else {
            format!(" Files {active}/{} ", conv.queue.len())
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(app.focus == Focus::Queue))
            .title(title);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width == 0 || inner.height == 0 {
            return;
        }
        if conv.queue.is_empty() {
            let hint = vec![
                Line::from(Span::styled("No files yet.", theme.dim())),
                Line::from(Span::styled("Drag files here, or /send PATH.", theme.dim())),
            ];
            Paragraph::new(hint).render(inner, buf);
            return;
        }
        let w = inner.width as usize;
        let rows_fit = (inner.height as usize / 2).max(1);
        let items = conv.items();
        let selected = conv.selected.min(items.len().saturating_sub(1));
        let first = selected.saturating_sub(rows_fit - 1);
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate().skip(first).take(rows_fit) {
            let (mut first_line, second) = match *item {
                Item::File(r) => file_lines(&conv.queue[r], "", w, theme),
                Item::Member(r) => file_lines(&conv.queue[r], "  ", w, theme),
                Item::Folder(f) => {
                    let folder = &conv.folders[f];
                    folder_lines(folder, &conv.tally(folder.id), w, theme)
                }
            };
            if i == selected && app.focus == Focus::Queue {
                first_line = first_line.style(theme.selected());
            }
            lines.push(first_line);
            lines.push(second);
        }
        Paragraph::new(lines).render(inner, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::clock_time;

    #[test]
    fn eta_reads_as_a_clock() {
        assert_eq!(clock_time(7), "0:07");
        assert_eq!(clock_time(75), "1:15");
        assert_eq!(clock_time(3661), "1:01:01");
    }
}
