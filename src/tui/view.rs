//! `draw(&App, &mut Frame)`: layout only. Each pane is a widget in `view/`; all are pure
//! functions of the app state.

mod help;
mod input;
mod messages;
mod peers;
mod queue;
mod status;
mod theme;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};
use unicode_width::UnicodeWidthStr;

use super::app::App;
pub use theme::Theme;

/// Smallest terminal tern draws its layout in.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;

/// Columns of the peer list.
pub const SIDEBAR: u16 = 26;
/// The peer list shows on terminals at least this wide; narrower, it folds away (Ctrl-N / Ctrl-P
/// and Alt-1…9 still switch).
pub const SIDEBAR_FROM: u16 = 80;

/// Where each pane goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// The peer list, on terminals wide enough for it.
    pub peers: Option<Rect>,
    pub messages: Rect,
    pub queue: Rect,
    pub input: Rect,
    pub status: Rect,
}

/// The layout for a terminal of `area`, or `None` when it is too small to draw.
pub fn areas(area: Rect, queue_len: usize) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [body, input, status] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    let (peers, body) = if area.width >= SIDEBAR_FROM {
        let [p, b] = Layout::horizontal([Constraint::Length(SIDEBAR), Constraint::Min(MIN_WIDTH)])
            .areas(body);
        (Some(p), b)
    } else {
        (None, body)
    };
    let (messages, queue) = if body.width >= 90 {
        let [m, q] = Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
            .areas(body);
        (m, q)
    } else {
        // Stacked: the queue takes what its rows need, up to a third of the body.
        let want = (queue_len as u16)
            .saturating_mul(2)
            .saturating_add(2)
            .max(4);
        let cap = (body.height / 3).max(4);
        let [m, q] = Layout::vertical([Constraint::Min(3), Constraint::Length(want.min(cap))])
            .direction(Direction::Vertical)
            .areas(body);
        (m, q)
    };
    Some(Areas {
        peers,
        messages,
        queue,
        input,
        status,
    })
}

/// Inner size of a bordered pane.
pub fn inner(area: Rect) -> (u16, u16) {
    (area.width.saturating_sub(2), area.height.saturating_sub(2))
}

pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let theme = Theme::new(app.color);
    let Some(areas) = areas(area, app.conv().queue.len()) else {
        let text = vec![
            Line::from("Terminal too small for tern."),
            Line::from(format!(
                "Need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}.",
                area.width, area.height
            )),
            Line::from("Enlarge the window, or Ctrl-C to quit."),
        ];
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    };
    if let Some(peers) = areas.peers {
        frame.render_widget(&peers::PeerList { app, theme }, peers);
    }
    frame.render_widget(&messages::MessagesPane { app, theme }, areas.messages);
    frame.render_widget(&queue::QueuePane { app, theme }, areas.queue);
    let input = input::InputPane { app, theme };
    frame.render_widget(&input, areas.input);
    frame.render_widget(&status::StatusBar { app, theme }, areas.status);
    if app.help_open {
        frame.render_widget(&help::HelpOverlay { theme }, area);
    } else if app.confirm_quit {
        frame.render_widget(&help::ConfirmQuit { app, theme }, area);
    } else if app.focus == super::keymap::Focus::Input
        && let Some(pos) = input.cursor(areas.input)
    {
        frame.set_cursor_position(pos);
    }
}

/// A rectangle of at most `width` × `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Clear `rect` for an overlay drawn over the panes. A double-width character just left of it
/// whose second half falls inside would still be drawn by the terminal over the overlay's first
/// column (ratatui sends the character and skips the cell it covers), hiding the border there:
/// such a character is cut to a blank.
pub fn clear_for_overlay(rect: Rect, buf: &mut Buffer) {
    ratatui::widgets::Clear.render(rect, buf);
    let left = buf.area.x;
    for y in rect.top()..rect.bottom() {
        for x in left..rect.x {
            if let Some(cell) = buf.cell_mut((x, y))
                && usize::from(x) + cell.symbol().width() > usize::from(rect.x)
            {
                cell.set_symbol(" ");
            }
        }
    }
}
