//! The frames of protocol version 1, as plain data.

use bytes::Bytes;

use crate::text::Encoding;

/// One protocol frame. `docs/PROTOCOL.md` gives each one's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello {
        capabilities: u32,
        name: String,
    },
    Text {
        encoding: Encoding,
        bytes: Bytes,
    },
    /// The sender's display name is now `name` (with `RENAME` negotiated).
    Rename {
        name: String,
    },
    Offer {
        id: u32,
        size: u64,
        path: String,
    },
    Accept {
        id: u32,
        offset: u64,
    },
    Reject {
        id: u32,
        reason: String,
    },
    Chunk {
        id: u32,
        offset: u64,
        data: Bytes,
    },
    FileEnd {
        id: u32,
        hash: [u8; 32],
    },
    Verdict {
        id: u32,
        ok: bool,
        message: String,
    },
    /// `by_sender`: the id is the canceller's own offer (else it is the peer's offer).
    Cancel {
        id: u32,
        by_sender: bool,
        reason: String,
    },
    /// The receiver allows chunk data of `id` up to byte `upto` (exclusive).
    Credit {
        id: u32,
        upto: u64,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Bye {
        reason: String,
    },
}

/// Frame tags on the wire.
pub(crate) mod tag {
    pub const HELLO: u8 = 0x01;
    pub const TEXT: u8 = 0x02;
    pub const RENAME: u8 = 0x03;
    pub const OFFER: u8 = 0x10;
    pub const ACCEPT: u8 = 0x11;
    pub const REJECT: u8 = 0x12;
    pub const CHUNK: u8 = 0x13;
    pub const FILE_END: u8 = 0x14;
    pub const VERDICT: u8 = 0x15;
    pub const CANCEL: u8 = 0x16;
    pub const CREDIT: u8 = 0x17;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
    pub const BYE: u8 = 0x2f;
}

impl Frame {
    pub(crate) fn tag(&self) -> u8 {
        match self {
            Frame::Hello { .. } => tag::HELLO,
            Frame::Text { .. } => tag::TEXT,
            Frame::Rename { .. } => tag::RENAME,
            Frame::Offer { .. } => tag::OFFER,
            Frame::Accept { .. } => tag::ACCEPT,
            Frame::Reject { .. } => tag::REJECT,
            Frame::Chunk { .. } => tag::CHUNK,
            Frame::FileEnd { .. } => tag::FILE_END,
            Frame::Verdict { .. } => tag::VERDICT,
            Frame::Cancel { .. } => tag::CANCEL,
            Frame::Credit { .. } => tag::CREDIT,
            Frame::Ping { .. } => tag::PING,
            Frame::Pong { .. } => tag::PONG,
            Frame::Bye { .. } => tag::BYE,
        }
    }

    /// A short name for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Text { .. } => "Text",
            Frame::Rename { .. } => "Rename",
            Frame::Offer { .. } => "Offer",
            Frame::Accept { .. } => "Accept",
            Frame::Reject { .. } => "Reject",
            Frame::Chunk { .. } => "Chunk",
            Frame::FileEnd { .. } => "FileEnd",
            Frame::Verdict { .. } => "Verdict",
            Frame::Cancel { .. } => "Cancel",
            Frame::Credit { .. } => "Credit",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::Bye { .. } => "Bye",
        }
    }
}
