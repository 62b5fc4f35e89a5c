//! The input line: editing by grapheme, a cursor measured in terminal cells, and history.

use unicode_segmentation::UnicodeSegmentation;

use crate::text::width;

/// Most history entries kept.
const HISTORY_LEN: usize = 500;

#[derive(Debug, Default, Clone)]
pub struct InputLine {
    text: String,
    /// Byte index, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history (`None`: editing a new line).
    browsing: Option<usize>,
    /// What was being typed before browsing started.
    draft: String,
}

impl InputLine {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Cells from the start of the line to the cursor.
    pub fn cursor_cells(&self) -> usize {
        width(&self.text[..self.cursor])
    }

    pub fn insert_str(&mut self, s: &str) {
        // A line is one line: pasted newlines and tabs become spaces, other controls vanish.
        let s = s.replace("\r\n", "\n");
        let clean: String = s
            .chars()
            .filter_map(|c| match c {
                '\n' | '\r' | '\t' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect();
        self.text.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
    }

    pub fn insert_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.insert_str(c.encode_utf8(&mut buf));
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    pub fn backspace(&mut self) {
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    /// Take the line for sending, remembering it in history.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LEN {
                self.history.remove(0);
            }
        }
        line
    }

    pub fn history_up(&mut self) {
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.set(self.history[next].clone());
    }

    pub fn history_down(&mut self) {
        match self.browsing {
            None => {}
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                self.set(self.history[i + 1].clone());
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.set(draft);
            }
        }
    }

    fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_lands_after_wide_characters() {
        let mut input = InputLine::default();
        input.insert_str("你好a");
        assert_eq!(input.cursor_cells(), 5);
        input.left();
        assert_eq!(input.cursor_cells(), 4);
        input.left();
        assert_eq!(input.cursor_cells(), 2);
    }

    #[test]
    fn backspace_and_delete_remove_whole_graphemes() {
        let mut input = InputLine::default();
        // e + combining acute, then a family emoji made of several code points.
        input.insert_str("ae\u{301}👨‍👩‍👧b");
        input.left();
        input.backspace();
        assert_eq!(input.text(), "ae\u{301}b");
        input.left();
        input.delete();
        assert_eq!(input.text(), "ab");
        input.home();
        input.delete();
        assert_eq!(input.text(), "b");
        input.end();
        input.backspace();
        input.backspace();
        assert!(input.is_empty());
    }

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut input = InputLine::default();
        input.insert_str("one");
        input.take();
        input.insert_str("two");
        input.take();
        input.insert_str("dra");
        input.history_up();
        assert_eq!(input.text(), "two");
        input.history_up();
        assert_eq!(input.text(), "one");
        input.history_up();
        assert_eq!(input.text(), "one");
        input.history_down();
        input.history_down();
        assert_eq!(input.text(), "dra");
    }

    #[test]
    fn pasted_newlines_become_spaces() {
        let mut input = InputLine::default();
        input.insert_str("a\nb\tc\u{7}");
        assert_eq!(input.text(), "a b c");
    }
}
