//! Text encodings at the edge of the program.
//!
//! Only this module knows GBK: everything inside tern is a `String`. Depends on nothing else in
//! the crate.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// How text is encoded on the wire (framed `Text` label, or a raw peer's bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    Gbk,
}

impl Encoding {
    /// The wire label of a `Text` frame.
    pub fn label(self) -> u8 {
        match self {
            Encoding::Utf8 => 0,
            Encoding::Gbk => 1,
        }
    }

    pub fn from_label(label: u8) -> Option<Self> {
        match label {
            0 => Some(Encoding::Utf8),
            1 => Some(Encoding::Gbk),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Gbk => "gbk",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown encoding {0:?}: use utf-8 or gbk")]
pub struct UnknownEncoding(String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "gbk" | "cp936" | "gb2312" => Ok(Encoding::Gbk),
            _ => Err(UnknownEncoding(s.to_string())),
        }
    }
}

/// Text decoded from bytes; `lossy` says some bytes were invalid and became U+FFFD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub lossy: bool,
}

/// Encode `text` for the wire. A character GBK cannot hold is encoded as GB18030 would (a superset
/// that GBK decoders in tern accept), rather than as an HTML entity.
pub fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Gbk => {
            let (bytes, _, had_errors) = encoding_rs::GBK.encode(text);
            if had_errors {
                let (bytes, _, _) = encoding_rs::GB18030.encode(text);
                bytes.into_owned()
            } else {
                bytes.into_owned()
            }
        }
    }
}

/// Decode bytes labelled with `encoding`; invalid sequences become U+FFFD, never an error.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Decoded {
    // No BOM sniffing: a UTF-8 BOM must not silently switch a GBK label to UTF-8.
    let (text, lossy) = match encoding {
        Encoding::Utf8 => encoding_rs::UTF_8.decode_without_bom_handling(bytes),
        Encoding::Gbk => encoding_rs::GBK.decode_without_bom_handling(bytes),
    };
    Decoded {
        text: text.into_owned(),
        lossy,
    }
}

/// Which encoding a raw peer's bytes are in: UTF-8 when they are valid UTF-8, else GBK.
/// Pure ASCII says nothing either way, so it answers `None`.
pub fn detect(bytes: &[u8]) -> Option<Encoding> {
    if bytes.is_ascii() {
        None
    } else if std::str::from_utf8(bytes).is_ok() {
        Some(Encoding::Utf8)
    } else {
        Some(Encoding::Gbk)
    }
}

/// Like [`detect`] for a stream still arriving: a UTF-8 sequence cut off at the end of `bytes`
/// still counts as UTF-8.
pub fn detect_prefix(bytes: &[u8]) -> Option<Encoding> {
    if bytes.is_ascii() {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => Some(Encoding::Utf8),
        // Cut off mid-character: judge by what is complete so far.
        Err(e) if e.error_len().is_none() => detect(&bytes[..e.valid_up_to()]),
        Err(_) => Some(Encoding::Gbk),
    }
}

/// Decode bytes of unknown encoding (a raw peer, or stdin): UTF-8 if valid, else GBK.
pub fn decode_detected(bytes: &[u8]) -> Decoded {
    decode(bytes, detect(bytes).unwrap_or(Encoding::Utf8))
}

/// `text` made safe for a terminal: every string a peer controls (its messages, name, file
/// names, reasons) passes through here before it reaches a screen, a log line on stderr or
/// the TUI. C0 and C1 control characters (escape sequences, backspace, a carriage return that
/// would overwrite a line, a newline that would forge one) and the bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069, which make text display in another order than it
/// reads) are removed; a tab, newline or carriage return becomes a space, so words stay apart.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_on_terminal) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .filter_map(|c| match c {
                '\t' | '\n' | '\r' => Some(' '),
                c if unsafe_on_terminal(c) => None,
                c => Some(c),
            })
            .collect(),
    )
}

/// A character [`for_terminal`] takes out (or makes a space): a control character or a
/// bidirectional override or isolate.
pub fn unsafe_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A string that has been through [`for_terminal`]: the only kind the session hands the UIs
/// for anything a peer said or named, so none can reach a terminal uncleaned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shown(String);

impl Shown {
    pub fn new(text: impl AsRef<str>) -> Self {
        Self(for_terminal(text.as_ref()).into_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// At most `max` characters.
    pub fn truncated(mut self, max: usize) -> Self {
        if let Some((cut, _)) = self.0.char_indices().nth(max) {
            self.0.truncate(cut);
        }
        self
    }
}

impl Deref for Shown {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Shown {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Shown {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

/// A message as the peer sent it. It has no `Display`: a terminal gets [`PeerText::shown`],
/// and only a pipe that promised to pass text on byte for byte (headless stdout) gets
/// [`PeerText::raw`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerText(String);

impl PeerText {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// For a pipe, exactly as sent.
    pub fn raw(&self) -> &str {
        &self.0
    }

    /// For a terminal.
    pub fn shown(&self) -> Shown {
        Shown::new(&self.0)
    }

    /// For a terminal, one [`Shown`] per line of the message.
    pub fn shown_lines(&self) -> impl Iterator<Item = Shown> + '_ {
        self.0.split('\n').map(Shown::new)
    }
}

/// How many terminal cells `text` takes (a CJK character takes two).
pub fn width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &str = "你好服务端,我是客户端小黑!";

    #[test]
    fn gbk_round_trips_the_tutorial_greeting() {
        let bytes = encode(GREETING, Encoding::Gbk);
        assert_ne!(bytes, GREETING.as_bytes());
        assert_eq!(bytes.len(), 26);
        let back = decode(&bytes, Encoding::Gbk);
        assert_eq!(back.text, GREETING);
        assert!(!back.lossy);
    }

    #[test]
    fn the_shipped_gbk_sample_decodes_to_the_greeting() {
        let bytes = include_bytes!("../assets/greeting.gbk.txt");
        assert_eq!(detect(bytes), Some(Encoding::Gbk));
        let decoded = decode(bytes, Encoding::Gbk);
        assert_eq!(decoded.text.trim_end(), GREETING);
        assert!(!decoded.lossy);
        let utf8 = include_bytes!("../assets/greeting.utf8.txt");
        assert_eq!(decode_detected(utf8).text, decoded.text);
    }

    #[test]
    fn detect_tells_gbk_from_utf8() {
        assert_eq!(
            detect(&encode(GREETING, Encoding::Gbk)),
            Some(Encoding::Gbk)
        );
        assert_eq!(detect(GREETING.as_bytes()), Some(Encoding::Utf8));
        assert_eq!(detect(b"hello"), None);
    }

    #[test]
    fn a_utf8_character_cut_at_the_end_is_still_utf8() {
        let bytes = "你好".as_bytes();
        assert_eq!(detect_prefix(&bytes[..4]), Some(Encoding::Utf8));
        assert_eq!(detect_prefix(&bytes[..1]), None);
        assert_eq!(
            detect_prefix(&encode("你", Encoding::Gbk)),
            Some(Encoding::Gbk)
        );
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_are_flagged() {
        let decoded = decode(&[0x61, 0xff, 0xfe, 0x62], Encoding::Utf8);
        assert!(decoded.lossy);
        assert!(decoded.text.contains('\u{fffd}'));
        let decoded = decode(&[0x81], Encoding::Gbk);
        assert!(decoded.lossy);
        assert_eq!(decoded.text, "\u{fffd}");
    }

    #[test]
    fn a_utf8_bom_does_not_switch_a_gbk_label() {
        // With BOM sniffing these bytes would decode as UTF-8 to "A".
        let decoded = decode(&[0xef, 0xbb, 0xbf, 0x41], Encoding::Gbk);
        assert_ne!(decoded.text, "A");
        assert!(!decoded.text.contains('\u{feff}'));
    }

    #[test]
    fn characters_outside_gbk_survive_as_gb18030() {
        let bytes = encode("a😀b", Encoding::Gbk);
        assert!(!bytes.contains(&b'&'));
        assert_eq!(decode(&bytes, Encoding::Gbk).text, "a😀b");
    }

    #[test]
    fn encoding_names_parse() {
        assert_eq!("GBK".parse::<Encoding>().ok(), Some(Encoding::Gbk));
        assert_eq!("utf8".parse::<Encoding>().ok(), Some(Encoding::Utf8));
        assert!("latin1".parse::<Encoding>().is_err());
    }

    #[test]
    fn terminal_text_loses_controls_and_bidi_overrides() {
        assert_eq!(for_terminal("plain 你好"), Cow::Borrowed("plain 你好"));
        assert_eq!(
            for_terminal("a\u{1b}[2Jb\u{7}c\u{7f}d\u{9b}31me"),
            "a[2Jbcd31me"
        );
        assert_eq!(
            for_terminal("one\ntern: forged\r\tx"),
            "one tern: forged  x"
        );
        assert_eq!(
            for_terminal("evil\u{202e}fdp.exe\u{2066}\u{2069}"),
            "evilfdp.exe"
        );
        for c in (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain(0x202a..0x202f)
            .chain(0x2066..0x206a)
        {
            let c = char::from_u32(c).expect("a char");
            let shown = Shown::new(format!("x{c}y"));
            assert!(shown.len() <= 3 && !shown.contains(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn peer_text_is_raw_for_pipes_and_clean_for_terminals() {
        let text = PeerText::new("hi\u{1b}]0;owned\u{7}\nline two".into());
        assert_eq!(text.raw(), "hi\u{1b}]0;owned\u{7}\nline two");
        assert_eq!(text.shown().as_str(), "hi]0;owned line two");
        let lines: Vec<Shown> = text.shown_lines().collect();
        assert_eq!(lines, [Shown::new("hi]0;owned"), Shown::new("line two")]);
    }

    #[test]
    fn cjk_takes_two_cells() {
        assert_eq!(width("你好a"), 5);
    }
}
