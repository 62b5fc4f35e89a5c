//! The conversation: messages, how they wrap at a width, and where the view is scrolled.
//!
//! Scrolling is kept as an offset in lines from the bottom. While the user is scrolled up, a new
//! message raises the offset by its own height, so the view does not move under them.
//! Line counts are cached per width, so scrolling a long history does not re-wrap all of it.

use super::wrap::wrap;
use crate::text::width;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Sent by us.
    Mine,
    /// From the peer.
    Peer,
    /// Connection, transfer and encoding news.
    System,
    /// Something went wrong.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `HH:MM` local time.
    pub time: String,
    pub kind: MessageKind,
    pub sender: String,
    pub text: String,
}

impl Message {
    /// The header before the text: `12:04 ana ` or `12:04 * `.
    pub fn header(&self) -> String {
        match self.kind {
            MessageKind::Mine | MessageKind::Peer => format!("{} {} ", self.time, self.sender),
            MessageKind::System | MessageKind::Error => format!("{} * ", self.time),
        }
    }
}

/// One screen line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisualLine {
    pub msg: usize,
    /// Only on a message's first line.
    pub header: Option<String>,
    /// Spaces before `body` on continuation lines.
    pub indent: usize,
    pub body: String,
}

/// A message laid out at `total_width` cells.
pub fn layout(msg: &Message, index: usize, total_width: usize) -> Vec<VisualLine> {
    let header = msg.header();
    let header_w = width(&header);
    let indent = if header_w * 2 <= total_width {
        header_w
    } else {
        2.min(total_width.saturating_sub(1))
    };
    let body_w = total_width.saturating_sub(indent).max(1);
    if header_w * 2 <= total_width {
        wrap(&msg.text, body_w)
            .into_iter()
            .enumerate()
            .map(|(i, body)| VisualLine {
                msg: index,
                header: (i == 0).then(|| header.clone()),
                indent: if i == 0 { 0 } else { indent },
                body,
            })
            .collect()
    } else {
        // Too narrow for a side-by-side header: header on its own line.
        let mut lines = vec![VisualLine {
            msg: index,
            header: Some(super::wrap::truncate(&header, total_width)),
            indent: 0,
            body: String::new(),
        }];
        lines.extend(wrap(&msg.text, body_w).into_iter().map(|body| VisualLine {
            msg: index,
            header: None,
            indent,
            body,
        }));
        lines
    }
}

/// Messages kept; the oldest go beyond (see `Transcript::forget_oldest`).
const KEEP_MESSAGES: usize = 100_000;
/// Bytes of message text kept.
const KEEP_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Transcript {
    messages: Vec<Message>,
    /// Bytes of text in `messages`.
    bytes: usize,
    /// Lines from the bottom of the transcript to the bottom of the view.
    offset: usize,
    /// Messages that arrived while scrolled up and are still below the view.
    unseen: usize,
    width: usize,
    counts: Vec<usize>,
    total: usize,
    /// Messages forgotten so far (see [`Transcript::mark`]).
    forgotten: usize,
}

impl Transcript {
    /// Where the next message will go, as a mark that stays true when old messages are
    /// forgotten.
    pub fn mark(&self) -> usize {
        self.forgotten + self.messages.len()
    }

    /// Put `messages` where [`Transcript::mark`] was taken (the top, if that has been
    /// forgotten since), before what came after it.
    pub fn insert_at(&mut self, mark: usize, messages: Vec<Message>) {
        let at = mark.saturating_sub(self.forgotten).min(self.messages.len());
        self.bytes += messages.iter().map(|m| m.text.len()).sum::<usize>();
        self.messages.splice(at..at, messages);
        if self.width > 0 {
            // Laid out again from scratch: rare (a peer connecting), and the layout of each
            // message depends on its place.
            let width = std::mem::take(&mut self.width);
            self.set_width(width);
        }
        self.forget_oldest();
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Messages below the view that the user has not scrolled down to yet.
    pub fn unseen(&self) -> usize {
        self.unseen
    }

    pub fn push(&mut self, msg: Message) {
        let index = self.messages.len();
        self.bytes += msg.text.len();
        self.messages.push(msg);
        if self.width > 0 {
            let n = layout(&self.messages[index], index, self.width).len();
            self.counts.push(n);
            self.total += n;
            if self.offset > 0 {
                self.offset += n;
                self.unseen += 1;
            }
        }
        self.forget_oldest();
    }

    /// Past the limits, the oldest messages go: a peer may send messages without end, and
    /// the transcript must not keep them all. Trimmed in batches, so a full transcript does
    /// not shift its whole list for every message.
    fn forget_oldest(&mut self) {
        let over_count = self.messages.len() > KEEP_MESSAGES + KEEP_MESSAGES / 8;
        if !over_count && self.bytes <= KEEP_BYTES {
            return;
        }
        let mut n = 0;
        while n < self.messages.len()
            && (self.messages.len() - n > KEEP_MESSAGES || self.bytes > KEEP_BYTES / 8 * 7)
        {
            self.bytes -= self.messages[n].text.len();
            n += 1;
        }
        self.messages.drain(..n);
        self.forgotten += n;
        if self.width > 0 {
            self.total -= self.counts.drain(..n).sum::<usize>();
        }
        self.offset = self.offset.min(self.total);
        self.unseen = self.unseen.min(self.messages.len());
    }

    /// Set the width the cache and offsets are measured at.
    pub fn set_width(&mut self, width: usize) {
        if width == self.width || width == 0 {
            return;
        }
        self.width = width;
        self.counts = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| layout(m, i, width).len())
            .collect();
        self.total = self.counts.iter().sum();
        self.offset = self.offset.min(self.total);
    }

    fn max_offset(&self, height: usize) -> usize {
        self.total.saturating_sub(height)
    }

    pub fn scroll_up(&mut self, lines: usize, height: usize) {
        self.offset = (self.offset + lines).min(self.max_offset(height));
    }

    pub fn scroll_down(&mut self, lines: usize) {
        self.offset = self.offset.saturating_sub(lines);
        if self.offset == 0 {
            self.unseen = 0;
        } else {
            self.unseen = self.unseen.min(self.messages_below());
        }
    }

    pub fn to_top(&mut self, height: usize) {
        self.offset = self.max_offset(height);
    }

    pub fn to_bottom(&mut self) {
        self.offset = 0;
        self.unseen = 0;
    }

    /// Messages entirely below the view.
    fn messages_below(&self) -> usize {
        let mut skipped = 0;
        let mut n = 0;
        for &c in self.counts.iter().rev() {
            if skipped + c > self.offset {
                break;
            }
            skipped += c;
            n += 1;
        }
        n
    }

    /// The lines in view at `width` × `height`, top to bottom.
    pub fn visible(&self, width: usize, height: usize) -> Vec<VisualLine> {
        let cached = width == self.width;
        let mut skip = self.offset;
        let mut out: Vec<VisualLine> = Vec::with_capacity(height);
        for index in (0..self.messages.len()).rev() {
            if out.len() >= height {
                break;
            }
            if cached && skip >= self.counts[index] {
                skip -= self.counts[index];
                continue;
            }
            let lines = layout(&self.messages[index], index, width);
            for line in lines.into_iter().rev() {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if out.len() >= height {
                    break;
                }
                out.push(line);
            }
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message {
            time: "12:00".into(),
            kind: MessageKind::Peer,
            sender: "ana".into(),
            text: text.into(),
        }
    }

    #[test]
    fn messages_inserted_at_a_mark_go_before_what_came_after_it() {
        let mut t = Transcript::default();
        t.set_width(40);
        t.push(msg("connected"));
        let mark = t.mark();
        t.push(msg("new"));
        t.insert_at(mark, vec![msg("old 1"), msg("old 2")]);
        let texts: Vec<&str> = t.messages().iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["connected", "old 1", "old 2", "new"]);
        assert_eq!(
            t.total,
            t.messages()
                .iter()
                .enumerate()
                .map(|(i, m)| layout(m, i, 40).len())
                .sum::<usize>()
        );
        // A mark whose place was forgotten meanwhile inserts at the top.
        let mut t = Transcript::default();
        let mark = t.mark();
        for i in 0..KEEP_MESSAGES + KEEP_MESSAGES / 8 + 1 {
            t.push(msg(&i.to_string()));
        }
        t.insert_at(mark, vec![msg("old")]);
        assert_eq!(t.messages()[0].text, "old");
        assert!(t.messages().len() <= KEEP_MESSAGES + KEEP_MESSAGES / 8 + 1);
    }

    fn bodies(t: &Transcript, w: usize, h: usize) -> Vec<String> {
        t.visible(w, h).into_iter().map(|l| l.body).collect()
    }

    #[test]
    fn a_flood_of_messages_keeps_the_newest_within_bounds() {
        // Not laid out (no width yet): only what is kept is under test.
        let mut t = Transcript::default();
        let big = "x".repeat(1 << 20);
        for _ in 0..200 {
            t.push(msg(&big));
        }
        assert!(t.bytes <= KEEP_BYTES, "{} bytes kept", t.bytes);
        assert!(t.messages().len() < 200);
        let mut t = Transcript::default();
        t.set_width(40);
        for i in 0..KEEP_MESSAGES + KEEP_MESSAGES / 4 {
            t.push(msg(&format!("m{i}")));
        }
        assert!(t.messages().len() <= KEEP_MESSAGES + KEEP_MESSAGES / 8);
        assert_eq!(t.total, t.counts.iter().sum::<usize>());
        let last = KEEP_MESSAGES + KEEP_MESSAGES / 4 - 1;
        assert_eq!(bodies(&t, 40, 1), [format!("m{last}")]);
    }

    #[test]
    fn the_view_follows_the_bottom_by_default() {
        let mut t = Transcript::default();
        t.set_width(40);
        for i in 0..10 {
            t.push(msg(&format!("m{i}")));
        }
        assert_eq!(bodies(&t, 40, 3), ["m7", "m8", "m9"]);
    }

    #[test]
    fn new_messages_do_not_move_a_scrolled_view_and_are_counted() {
        let mut t = Transcript::default();
        t.set_width(40);
        for i in 0..10 {
            t.push(msg(&format!("m{i}")));
        }
        t.scroll_up(4, 3);
        let before = bodies(&t, 40, 3);
        assert_eq!(before, ["m3", "m4", "m5"]);
        t.push(msg("new one"));
        t.push(msg("another"));
        assert_eq!(bodies(&t, 40, 3), before);
        assert_eq!(t.unseen(), 2);
        t.to_bottom();
        assert_eq!(t.unseen(), 0);
        assert_eq!(bodies(&t, 40, 3), ["m9", "new one", "another"]);
    }

    #[test]
    fn scrolling_stops_at_the_top() {
        let mut t = Transcript::default();
        t.set_width(40);
        for i in 0..5 {
            t.push(msg(&format!("m{i}")));
        }
        t.scroll_up(100, 3);
        assert_eq!(bodies(&t, 40, 3), ["m0", "m1", "m2"]);
        t.scroll_down(1);
        assert_eq!(bodies(&t, 40, 3), ["m1", "m2", "m3"]);
    }

    #[test]
    fn wide_messages_wrap_within_the_width() {
        let mut t = Transcript::default();
        t.set_width(20);
        t.push(msg("你好服务端,我是客户端小黑!你好服务端"));
        for line in t.visible(20, 10) {
            let w = line.header.as_deref().map_or(0, width) + line.indent + width(&line.body);
            assert!(w <= 20, "{line:?}");
        }
    }
}
