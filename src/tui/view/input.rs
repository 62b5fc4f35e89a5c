//! The input line, scrolled sideways so the cursor stays in view.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};
use unicode_segmentation::UnicodeSegmentation;

use super::Theme;
use crate::text::width;
use crate::tui::app::App;
use crate::tui::keymap::Focus;

pub struct InputPane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl InputPane<'_> {
    /// Cells hidden on the left so that the cursor fits in `inner_w` cells.
    fn scroll(&self, inner_w: usize) -> usize {
        let cursor = self.app.input.cursor_cells();
        (cursor + 1).saturating_sub(inner_w)
    }

    /// Where the terminal cursor goes, inside the pane at `area`.
    pub fn cursor(&self, area: Rect) -> Option<Position> {
        let inner_w = area.width.checked_sub(2)? as usize;
        if inner_w == 0 || area.height < 3 {
            return None;
        }
        let col = self.app.input.cursor_cells() - self.scroll(inner_w);
        Some(Position::new(area.x + 1 + col as u16, area.y + 1))
    }
}

impl Widget for &InputPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, theme) = (self.app, self.theme);
        let text = app.input.text();
        let title = if text.starts_with('/') && !text.starts_with("//") {
            " Command "
        } else {
            " Message "
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(app.focus == Focus::Input))
            .title(title)
            .title(
                Line::from(Span::styled(
                    format!(" {} ", app.conv().encoding),
                    theme.dim(),
                ))
                .right_aligned(),
            );
        let inner = block.inner(area);
        block.render(area, buf);
        let inner_w = inner.width as usize;
        if inner_w == 0 {
            return;
        }
        if text.is_empty() {
            let hint = if app.focus == Focus::Input {
                "Type a message, /help for commands, or drop files here"
            } else {
                "Start typing (or Esc) to write a message"
            };
            Paragraph::new(Span::styled(hint, theme.dim())).render(inner, buf);
            return;
        }
        // Drop whole graphemes from the left until the cursor fits.
        let skip = self.scroll(inner_w);
        let mut skipped = 0;
        let mut start = 0;
        for (i, g) in text.grapheme_indices(true) {
            if skipped >= skip {
                start = i;
                break;
            }
            skipped += width(g);
            start = i + g.len();
        }
        Paragraph::new(Line::from(&text[start..])).render(inner, buf);
    }
}
