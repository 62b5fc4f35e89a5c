//! Pasted text → paths. Dragging files onto a terminal makes it paste their paths, each
//! terminal in its own dialect: shell-quoted (`'My File.txt'`, `My\ File.txt`), `file://` URIs
//! with percent-encoding, one per line, or separated by spaces.

use std::path::{Path, PathBuf};

/// Every path `text` names, if it names only existing files or folders; `None` means the
/// paste is ordinary text for the input line.
pub fn existing_paths(text: &str, home: Option<&Path>) -> Option<Vec<PathBuf>> {
    let exists = |paths: &Vec<PathBuf>| !paths.is_empty() && paths.iter().all(|p| p.exists());
    let words = parse_paths(text, home);
    if exists(&words) {
        return Some(words);
    }
    // Unquoted paths with spaces, one per line.
    let lines = parse_lines(text, home);
    exists(&lines).then_some(lines)
}

/// The paths in `text`, read as this system's consoles quote them (see [`split_words`]), or
/// as URIs.
pub fn parse_paths(text: &str, home: Option<&Path>) -> Vec<PathBuf> {
    // Some terminals end each pasted line with CR LF; CR is not white space to a shell.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    split_words(text.trim())
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| to_path(w, home))
        .collect()
}

/// Unix terminals paste shell words: quotes and backslash escapes.
#[cfg(not(windows))]
fn split_words(text: &str) -> Vec<String> {
    shell_words::split(text).unwrap_or_else(|_| {
        // Unbalanced quotes: fall back to plain whitespace.
        text.split_whitespace().map(str::to_string).collect()
    })
}

#[cfg(windows)]
fn split_words(text: &str) -> Vec<String> {
    split_windows(text)
}

/// Windows consoles (Windows Terminal, the classic console) type a dropped path as it is, in
/// double quotes when it holds a space: a backslash is a separator, not an escape.
pub fn split_windows(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// On Windows, a line of nothing but existing absolute paths: what a console types into the
/// input line when files are dropped on its window, for there is no bracketed paste there.
/// `None` for anything else, and always elsewhere (where a drop arrives as a paste).
pub fn dropped_paths(line: &str) -> Option<Vec<PathBuf>> {
    if !cfg!(windows) {
        return None;
    }
    let paths: Vec<PathBuf> = split_windows(line).into_iter().map(PathBuf::from).collect();
    let dropped = !paths.is_empty() && paths.iter().all(|p| p.is_absolute() && p.exists());
    dropped.then_some(paths)
}

/// Each non-empty line of `text` as one path.
pub fn parse_lines(text: &str, home: Option<&Path>) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| to_path(l, home))
        .collect()
}

fn to_path(word: &str, home: Option<&Path>) -> PathBuf {
    if let Some(rest) = word.strip_prefix("file://") {
        // `file:///p` or `file://localhost/p`; other hosts are not ours to read.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
        return path_from_bytes(bytes);
    }
    match (word, home) {
        ("~", Some(home)) => home.to_path_buf(),
        (w, Some(home)) if w.starts_with("~/") => home.join(&w[2..]),
        (w, _) => PathBuf::from(w),
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(windows))]
    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[cfg(not(windows))]
    #[test]
    fn what_terminals_paste_parses_to_paths() {
        let home = Path::new("/home/me");
        let table: &[(&str, &[&str])] = &[
            ("/tmp/a.txt", &["/tmp/a.txt"]),
            ("/tmp/a.txt ", &["/tmp/a.txt"]),
            ("/tmp/a.txt\n", &["/tmp/a.txt"]),
            ("/tmp/a.txt /tmp/b.txt", &["/tmp/a.txt", "/tmp/b.txt"]),
            ("/tmp/a.txt\n/tmp/b.txt\n", &["/tmp/a.txt", "/tmp/b.txt"]),
            ("'/tmp/My File.txt'", &["/tmp/My File.txt"]),
            (
                "'/tmp/My File.txt' '/tmp/b c'",
                &["/tmp/My File.txt", "/tmp/b c"],
            ),
            ("\"/tmp/My File.txt\"", &["/tmp/My File.txt"]),
            ("/tmp/My\\ File.txt", &["/tmp/My File.txt"]),
            ("/tmp/it\\'s.txt", &["/tmp/it's.txt"]),
            ("'/tmp/it'\\''s.txt'", &["/tmp/it's.txt"]),
            ("/tmp/say\\\"hi\\\".txt", &["/tmp/say\"hi\".txt"]),
            ("file:///home/me/a%20b.txt", &["/home/me/a b.txt"]),
            ("file://localhost/tmp/x.txt", &["/tmp/x.txt"]),
            ("file:///tmp/%E4%BD%A0%E5%A5%BD.txt", &["/tmp/你好.txt"]),
            (
                "file:///tmp/a.txt\r\nfile:///tmp/b%20c.txt\r\n",
                &["/tmp/a.txt", "/tmp/b c.txt"],
            ),
            ("~/notes.txt", &["/home/me/notes.txt"]),
            ("~", &["/home/me"]),
            ("'/tmp/照片 2024.jpg'", &["/tmp/照片 2024.jpg"]),
            ("  /tmp/a.txt\t", &["/tmp/a.txt"]),
        ];
        for (paste, want) in table {
            let got = parse_paths(paste, Some(home));
            let want: Vec<PathBuf> = want.iter().map(|s| p(s)).collect();
            assert_eq!(got, want, "paste {paste:?}");
        }
    }

    #[test]
    fn unquoted_paths_with_spaces_one_per_line_are_found() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let a = tmp.path().join("My File.txt");
        let b = tmp.path().join("other one.txt");
        std::fs::write(&a, b"a")?;
        std::fs::write(&b, b"b")?;
        let paste = format!("{}\n{}\n", a.display(), b.display());
        assert_eq!(existing_paths(&paste, None), Some(vec![a, b]));
        Ok(())
    }

    #[cfg(not(windows))]
    #[test]
    fn a_paste_is_paths_only_when_every_item_exists() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let a = tmp.path().join("a.txt");
        std::fs::write(&a, b"a")?;
        let dir = tmp.path().join("folder");
        std::fs::create_dir(&dir)?;
        let both = format!("'{}' '{}'", a.display(), dir.display());
        assert_eq!(existing_paths(&both, None), Some(vec![a.clone(), dir]));
        let mixed = format!("{} /no/such/thing", a.display());
        assert_eq!(existing_paths(&mixed, None), None);
        assert_eq!(existing_paths("hello world", None), None);
        assert_eq!(existing_paths("", None), None);
        Ok(())
    }

    #[test]
    fn windows_consoles_quote_dropped_paths_with_double_quotes_only() {
        let table: &[(&str, &[&str])] = &[
            (r"C:\Users\me\a.txt", &[r"C:\Users\me\a.txt"]),
            (
                r#""C:\Users\me\My File.txt""#,
                &[r"C:\Users\me\My File.txt"],
            ),
            (
                r#""C:\My Files\照片 2024.jpg" D:\b.txt "\\server\share\c d""#,
                &[
                    r"C:\My Files\照片 2024.jpg",
                    r"D:\b.txt",
                    r"\\server\share\c d",
                ],
            ),
            ("  C:\\x  ", &[r"C:\x"]),
            ("", &[]),
        ];
        for (typed, want) in table {
            assert_eq!(split_windows(typed), *want, "typed {typed:?}");
        }
    }

    #[cfg(windows)]
    #[test]
    fn a_line_of_existing_absolute_paths_is_a_drop() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let a = tmp.path().join("My File.txt");
        std::fs::write(&a, b"a")?;
        let line = format!("\"{}\"", a.display());
        assert_eq!(dropped_paths(&line), Some(vec![a.clone()]));
        assert_eq!(dropped_paths(&format!("{line} C:\\no\\such")), None);
        assert_eq!(dropped_paths("a.txt"), None, "relative: typed, not dropped");
        assert_eq!(dropped_paths("hello"), None);
        Ok(())
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_a_typed_path_is_text() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        assert_eq!(dropped_paths(&tmp.path().display().to_string()), None);
        Ok(())
    }

    #[cfg(not(windows))]
    #[test]
    fn unbalanced_quotes_do_not_lose_the_paste() {
        assert_eq!(parse_paths("'/tmp/a b", None), vec![p("'/tmp/a"), p("b")]);
    }
}
