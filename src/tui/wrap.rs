//! Wrapping and truncating text by terminal cells, never by bytes: a CJK character takes two
//! cells and is never cut in half.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Break `text` into lines of at most `width` cells, at spaces where possible. Newlines in the
/// text start new lines; a character too wide for `width` alone is replaced by `?`.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut line_w = 0usize;
        // Byte index in `line` just after the last space, and the width before it.
        let mut last_space: Option<(usize, usize)> = None;
        for g in para.graphemes(true) {
            let g = if g == "\t" { " " } else { g };
            let mut w = g.width();
            let mut g = g;
            if w > width {
                g = "?";
                w = 1;
            }
            if line_w + w > width {
                match last_space {
                    Some((cut, cut_w)) if cut < line.len() || g != " " => {
                        let rest = line.split_off(cut);
                        lines.push(line.trim_end().to_string());
                        line = rest;
                        line_w -= cut_w;
                    }
                    _ => {
                        lines.push(std::mem::take(&mut line));
                        line_w = 0;
                    }
                }
                last_space = None;
                if g == " " && line.is_empty() {
                    continue;
                }
            }
            line.push_str(g);
            line_w += w;
            if g == " " {
                last_space = Some((line.len(), line_w));
            }
        }
        lines.push(line);
    }
    lines
}

/// Cut `text` to at most `width` cells, ending with `…` when something was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for g in text.graphemes(true) {
        let gw = g.width();
        if w + gw > width - 1 {
            break;
        }
        out.push_str(g);
        w += gw;
    }
    out.push('…');
    out
}

/// Keep the end of `text` (a path's file name matters most), starting with `…` when cut.
pub fn truncate_start(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut w = 0;
    for g in text.graphemes(true).rev() {
        let gw = g.width();
        if w + gw > width - 1 {
            break;
        }
        kept.push(g);
        w += gw;
    }
    kept.reverse();
    format!("…{}", kept.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(lines: &[String]) -> Vec<usize> {
        lines.iter().map(|l| l.width()).collect()
    }

    #[test]
    fn english_wraps_at_spaces() {
        assert_eq!(
            wrap("the quick brown fox jumps", 10),
            ["the quick", "brown fox", "jumps"]
        );
    }

    #[test]
    fn cjk_wraps_by_cells_and_never_overflows() {
        let lines = wrap("你好服务端,我是客户端小黑!", 7);
        assert!(widths(&lines).iter().all(|&w| w <= 7), "{lines:?}");
        assert_eq!(lines.concat(), "你好服务端,我是客户端小黑!");
        assert_eq!(lines[0], "你好服");
    }

    #[test]
    fn a_long_word_is_broken_hard() {
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn newlines_start_new_lines() {
        assert_eq!(wrap("a\nb", 10), ["a", "b"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn mixed_text_keeps_every_character() {
        let text = "mixed 中文 and English 文字混排 test";
        for width in 2..30 {
            let lines = wrap(text, width);
            assert!(
                widths(&lines).iter().all(|&w| w <= width),
                "{width}: {lines:?}"
            );
            let joined: String = lines.concat().chars().filter(|c| *c != ' ').collect();
            let want: String = text.chars().filter(|c| *c != ' ').collect();
            assert_eq!(joined, want, "width {width}");
        }
    }

    #[test]
    fn a_wide_character_too_wide_for_the_line_is_replaced_not_overflowed() {
        assert_eq!(wrap("你", 1), ["?"]);
    }

    #[test]
    fn truncation_counts_cells() {
        assert_eq!(truncate("你好世界", 5), "你好…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate_start("dir/你好.txt", 9), "…你好.txt");
        assert_eq!(truncate_start("dir/你好.txt", 8), "…好.txt");
    }
}
