//! The tern wire protocol: preamble, frames and their codec. No I/O lives here. Version 2 puts
//! the same frames inside the encrypted records of `crate::crypto`; version 1 sends them in clear.
//!
//! ```text
//! preamble:  89 54 45 52 4E 0D 0A 1A | version:u16          (connector first, then listener)
//! frame:     len:u32 | tag:u8 | body (len - 1 bytes)         (len counts tag + body)
//! ```
//!
//! `docs/PROTOCOL.md` is the full contract. Depends on `text` only.

pub mod codec;
pub mod discovery;
pub mod frame;

pub use codec::{FrameCodec, ProtocolError};
pub use frame::Frame;

/// First bytes a tern sends. Not ASCII, not a GBK lead byte, and with CR LF and ^Z inside, so a
/// text peer does not produce it by accident.
pub const MAGIC: [u8; 8] = [0x89, b'T', b'E', b'R', b'N', b'\r', b'\n', 0x1a];

/// The protocol version a tern speaks by default: frames inside encrypted records.
pub const VERSION: u16 = 2;

/// Frames in clear (`--insecure`), and the form of a refusal before any channel exists.
pub const PLAIN_VERSION: u16 = 1;

/// Magic plus version.
pub const PREAMBLE_LEN: usize = MAGIC.len() + 2;

/// Largest `len` a frame may claim; anything larger is refused before allocating.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024 + 64;

/// Largest data a `Chunk` may carry.
pub const MAX_CHUNK_LEN: usize = 1024 * 1024;

/// Capability bits of `Hello`.
pub mod caps {
    /// The side accepts file offers.
    pub const FILES: u32 = 1 << 0;
    /// `Accept.offset` may be non-zero: the receiver holds that prefix from an earlier attempt.
    pub const RESUME: u32 = 1 << 1;
    /// The receiver paces file data with `Credit` frames (see docs/PROTOCOL.md).
    pub const FLOW: u32 = 1 << 2;
    /// A side may announce a new display name mid-session with `Rename`.
    pub const RENAME: u32 = 1 << 3;
    /// What this build supports.
    pub const OURS: u32 = FILES | RESUME | FLOW | RENAME;
}

/// The bytes a tern sends before its `Hello`.
pub fn preamble(version: u16) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    out[MAGIC.len()..].copy_from_slice(&version.to_be_bytes());
    out
}

/// What the first bytes of a connection say about the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreambleCheck {
    /// Too few bytes to tell, and so far they match.
    NeedMore,
    /// A tern speaking `version`.
    Tern { version: u16 },
    /// Not tern's magic: a raw peer.
    NotTern,
}

/// Classify the first bytes read from a peer.
pub fn check_preamble(bytes: &[u8]) -> PreambleCheck {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return PreambleCheck::NotTern;
    }
    if bytes.len() < PREAMBLE_LEN {
        return PreambleCheck::NeedMore;
    }
    let version = u16::from_be_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
    PreambleCheck::Tern { version }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_is_recognised_byte_by_byte() {
        let p = preamble(VERSION);
        for cut in 0..PREAMBLE_LEN {
            assert_eq!(
                check_preamble(&p[..cut]),
                PreambleCheck::NeedMore,
                "cut {cut}"
            );
        }
        assert_eq!(check_preamble(&p), PreambleCheck::Tern { version: VERSION });
        assert_eq!(
            check_preamble(&preamble(7)),
            PreambleCheck::Tern { version: 7 }
        );
    }

    #[test]
    fn text_is_not_a_preamble() {
        assert_eq!(check_preamble(b"hello\n"), PreambleCheck::NotTern);
        let gbk = crate::text::encode("你好", crate::text::Encoding::Gbk);
        assert_eq!(check_preamble(&gbk), PreambleCheck::NotTern);
        assert_eq!(check_preamble(&[0x89, b'X']), PreambleCheck::NotTern);
    }
}
