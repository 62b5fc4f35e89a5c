//! Names from a peer, checked before anything is made under them: a relative path of plain
//! names that the receiving system can hold as they are. A name is refused with its reason,
//! never repaired: one that needs repair came from a buggy or hostile peer (or a system whose
//! names this one cannot hold), and the user should hear about it.

use std::path::Path;

use super::incoming::PARTIAL_SUFFIX;

/// Longest path component accepted from a peer, in bytes. Leaves room for ` (NNN)` within the
/// 255 bytes most file systems allow.
pub const MAX_COMPONENT_LEN: usize = 240;
/// Longest relative path accepted from a peer, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Deepest folder nesting accepted from a peer.
pub const MAX_DEPTH: usize = 64;
/// The longest whole path Windows programs can open (`MAX_PATH`, 260 UTF-16 units with the
/// terminating NUL). tern itself could write longer ones (`\\?\` paths), but Explorer and most
/// programs could then neither open nor delete them.
pub const WINDOWS_MAX_PATH: usize = 259;
/// Room kept in a Windows path for the ` (NNN)` a taken name gets.
const NUMBER_ROOM: usize = " (999)".len();

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("path component {0:?} is not allowed")]
    Component(String),
    #[error("name contains a control or bidirectional-override character")]
    Control,
    #[error("name component longer than {} bytes", MAX_COMPONENT_LEN)]
    TooLong,
    #[error(
        "path longer than {} bytes or deeper than {} folders",
        MAX_PATH_LEN,
        MAX_DEPTH
    )]
    PathTooLong,
    #[error("{0:?} contains ':' (a drive letter, or an NTFS alternate data stream, on Windows)")]
    Colon(String),
    #[error("{0:?} is a reserved device name on Windows")]
    Reserved(String),
    #[error("names ending in {PARTIAL_SUFFIX} are tern's own partial files")]
    Partial,
    #[error("{0:?} contains a character Windows does not allow in file names (< > \" | ? *)")]
    WindowsCharacter(String),
    #[error("{0:?} ends in a dot or a space, which Windows drops from file names")]
    WindowsTrailing(String),
    #[error(
        "saved here the path would be {0} characters long: over {limit}, the 260 a Windows \
         program can open less room for a \" (n)\" if the name is taken",
        limit = WINDOWS_MAX_PATH - NUMBER_ROOM
    )]
    WindowsPathTooLong(usize),
}

/// Whose file names a path must be valid for: the receiving system's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRules {
    /// Linux and macOS. Device names and `:` are refused here too: a peer has no business
    /// sending them, and a shared folder may be read from Windows.
    Unix,
    /// Also refuses what Windows cannot hold or would alter: `< > " | ? *`, a trailing dot or
    /// space, and whole paths over [`WINDOWS_MAX_PATH`].
    Windows,
}

impl NameRules {
    /// The rules of the system tern runs on.
    pub const HOST: Self = if cfg!(windows) {
        Self::Windows
    } else {
        Self::Unix
    };
}

/// A relative path from a peer that has passed every check: each component is a plain name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafePath {
    components: Vec<String>,
}

impl SafePath {
    /// Check a peer's path against the rules of the system tern runs on.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        Self::parse_with(raw, NameRules::HOST)
    }

    /// Check a peer's path for a file to be saved under `root` here: [`SafePath::parse`], and
    /// on Windows a whole path short enough to open.
    pub fn for_download(raw: &str, root: &Path) -> Result<Self, NameError> {
        let path = Self::parse(raw)?;
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        path.fits_under(&root, NameRules::HOST)?;
        Ok(path)
    }

    /// Check a peer's path against `rules`.
    pub fn parse_with(raw: &str, rules: NameRules) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(NameError::PathTooLong);
        }
        if raw.starts_with('/') || raw.starts_with('\\') {
            return Err(NameError::Absolute);
        }
        // Bidirectional overrides make a name read otherwise than it is: an override before
        // "fdp.exe" shows it as "exe.pdf".
        if raw.chars().any(crate::text::unsafe_on_terminal) {
            return Err(NameError::Control);
        }
        let components: Vec<String> = raw.split(['/', '\\']).map(str::to_string).collect();
        if components.len() > MAX_DEPTH {
            return Err(NameError::PathTooLong);
        }
        for c in &components {
            check_component(c, rules)?;
        }
        Ok(Self { components })
    }

    /// Under `rules`, whether the whole path under `root`, an absolute path (and a ` (NNN)`
    /// it may get), is one the receiving system's programs can open.
    pub fn fits_under(&self, root: &Path, rules: NameRules) -> Result<(), NameError> {
        if rules != NameRules::Windows {
            return Ok(());
        }
        let units = |s: &str| s.encode_utf16().count();
        let root_len = units(&root.to_string_lossy().replace('/', "\\"));
        let root_len = root_len + usize::from(!root.to_string_lossy().ends_with(['\\', '/']));
        let relative: usize = self.components.iter().map(|c| units(c)).sum::<usize>()
            + self.components.len().saturating_sub(1);
        let len = root_len + relative;
        if len + NUMBER_ROOM > WINDOWS_MAX_PATH {
            return Err(NameError::WindowsPathTooLong(len));
        }
        Ok(())
    }

    pub fn file_name(&self) -> &str {
        // `parse` guarantees at least one component.
        self.components.last().map(String::as_str).unwrap_or("")
    }

    pub fn folders(&self) -> &[String] {
        &self.components[..self.components.len().saturating_sub(1)]
    }
}

impl std::fmt::Display for SafePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

fn check_component(c: &str, rules: NameRules) -> Result<(), NameError> {
    if c.is_empty() || c == "." || c == ".." {
        return Err(NameError::Component(c.to_string()));
    }
    if c.len() > MAX_COMPONENT_LEN {
        return Err(NameError::TooLong);
    }
    if c.contains(':') {
        return Err(NameError::Colon(c.to_string()));
    }
    if c.ends_with(PARTIAL_SUFFIX) {
        return Err(NameError::Partial);
    }
    if is_reserved_device(c) {
        return Err(NameError::Reserved(c.to_string()));
    }
    if rules == NameRules::Windows {
        if c.contains(['<', '>', '"', '|', '?', '*']) {
            return Err(NameError::WindowsCharacter(c.to_string()));
        }
        if c.ends_with(['.', ' ']) {
            return Err(NameError::WindowsTrailing(c.to_string()));
        }
    }
    Ok(())
}

/// Names Windows maps to devices, with any extension (`nul.txt` is `NUL`) and any spaces
/// before it: `CON`, `PRN`, `AUX`, `NUL`, `CONIN$`, `CONOUT$`, and `COM`/`LPT` with a digit
/// (superscript ¹ ² ³ included).
fn is_reserved_device(c: &str) -> bool {
    let stem = c.split('.').next().unwrap_or(c).trim_end().to_uppercase();
    if matches!(
        stem.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    let Some(digit) = stem
        .strip_prefix("COM")
        .or_else(|| stem.strip_prefix("LPT"))
    else {
        return false;
    };
    let mut chars = digit.chars();
    matches!(
        (chars.next(), chars.next()),
        (Some('0'..='9' | '¹' | '²' | '³'), None)
    )
}

/// `name (n).ext` for `n > 0`, keeping the extension where a reader expects it.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_nested_names_pass() {
        let p = SafePath::parse("photos/2024/我的 照片.jpg").expect("valid");
        assert_eq!(p.file_name(), "我的 照片.jpg");
        assert_eq!(p.folders(), ["photos", "2024"]);
    }

    #[test]
    fn hostile_names_are_refused() {
        let hostile = [
            "",
            "..",
            ".",
            "../x",
            "../../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "\\windows\\x",
            "C:\\x",
            "c:x",
            "a.txt:evil",
            "a\0b",
            "a\nb",
            "a\u{1b}[2J",
            "invoice\u{202e}fdp.exe",
            "a\u{2066}b",
            "a//b",
            "a/./b",
            "CON",
            "aux.txt",
            "com1",
            "nul.tar.gz",
            "Lpt9 .log",
            "COM¹",
            "conin$",
            "dir/",
            &"x".repeat(1000),
        ];
        for rules in [NameRules::Unix, NameRules::Windows] {
            for name in hostile {
                assert!(
                    SafePath::parse_with(name, rules).is_err(),
                    "{name:?} should be refused under {rules:?}"
                );
            }
        }
    }

    #[test]
    fn names_windows_cannot_hold_are_refused_there_only() {
        let cases = [
            ("what?.txt", "character Windows does not allow"),
            ("a<b>.txt", "character Windows does not allow"),
            ("say \"hi\".txt", "character Windows does not allow"),
            ("pipe|x", "character Windows does not allow"),
            ("star*", "character Windows does not allow"),
            ("dir./x.txt", "ends in a dot or a space"),
            ("trailing.", "ends in a dot or a space"),
            ("trailing ", "ends in a dot or a space"),
            ("folder /x", "ends in a dot or a space"),
        ];
        for (name, reason) in cases {
            let e = SafePath::parse_with(name, NameRules::Windows).expect_err(name);
            assert!(e.to_string().contains(reason), "{name:?}: {e}");
            assert!(
                SafePath::parse_with(name, NameRules::Unix).is_ok(),
                "{name:?}"
            );
        }
        // Not devices: the device name must be the whole stem.
        for name in [
            "CONTRACT.pdf",
            "com10",
            "LPT",
            "auxiliary",
            "nul_.txt",
            "COM1x",
        ] {
            assert!(
                SafePath::parse_with(name, NameRules::Windows).is_ok(),
                "{name:?}"
            );
        }
        let e = SafePath::parse_with("a.txt:evil", NameRules::Unix).expect_err(":");
        assert!(e.to_string().contains("alternate data stream"), "{e}");
    }

    #[test]
    fn a_windows_path_must_fit_in_260_characters_with_room_for_a_number() {
        let root = Path::new("C:\\Users\\ana\\Downloads");
        let fits = |name: &str| {
            SafePath::parse_with(name, NameRules::Windows)
                .expect("valid")
                .fits_under(root, NameRules::Windows)
        };
        // Root, a separator, the name and " (999)": 259 exactly.
        let longest = 259 - root.as_os_str().len() - 1 - NUMBER_ROOM;
        assert_eq!(fits(&"a".repeat(longest)), Ok(()));
        assert_eq!(
            fits(&"a".repeat(longest + 1)),
            Err(NameError::WindowsPathTooLong(254))
        );
        // Counted in UTF-16 units, as Windows does, not in bytes: 汉 is 3 bytes but 1 unit.
        let folders = ["汉".repeat(60), "字".repeat(60), "漢".repeat(60)].join("/");
        let cjk = format!("{folders}/{}", "文".repeat(longest - 183));
        assert_eq!(cjk.encode_utf16().count(), longest);
        assert_eq!(fits(&cjk), Ok(()));
        assert!(fits(&format!("{cjk}文")).is_err());
        let nested = format!("{}/{}", "d".repeat(100), "f".repeat(longest - 101));
        assert_eq!(fits(&nested), Ok(()));
        let e = fits(&format!("{nested}x")).expect_err("too long");
        assert!(e.to_string().contains("over 253"), "{e}");
        // Unix has no such limit for a path tern opens folder by folder.
        let long = SafePath::parse_with(&"a".repeat(200), NameRules::Unix).expect("valid");
        assert_eq!(long.fits_under(root, NameRules::Unix), Ok(()));
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a.txt", 0), "a.txt");
        assert_eq!(numbered("a.txt", 1), "a (1).txt");
        assert_eq!(numbered("archive.tar.gz", 2), "archive.tar (2).gz");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
        assert_eq!(numbered("README", 3), "README (3)");
    }
}
