//! Text encodings at the edge of the program.
//!
//! Only this module knows GBK: everything inside tern is a `String`. Depends on nothing else in
//! the crate.

use std::fmt;
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
    fn cjk_takes_two_cells() {
        assert_eq!(width("你好a"), 5);
    }
}
