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

/// The paths in `text`, read as shell words (quotes and backslash escapes) or URIs.
pub fn parse_paths(text: &str, home: Option<&Path>) -> Vec<PathBuf> {
    // Some terminals end each pasted line with CR LF; CR is not white space to a shell.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let words = shell_words::split(text.trim()).unwrap_or_else(|_| {
        // Unbalanced quotes: fall back to plain whitespace.
        text.split_whitespace().map(str::to_string).collect()
    });
    words
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| to_path(w, home))
        .collect()
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

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

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
    fn unbalanced_quotes_do_not_lose_the_paste() {
        assert_eq!(parse_paths("'/tmp/a b", None), vec![p("'/tmp/a"), p("b")]);
    }
}
