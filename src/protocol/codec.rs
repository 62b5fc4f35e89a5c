//! `FrameCodec`: tokio-util `Decoder` + `Encoder` for [`Frame`]. Pure: no sockets here.
//!
//! ```text
//! +----------+--------+---------------------------+
//! | len: u32 | tag:u8 | body: len - 1 bytes       |
//! +----------+--------+---------------------------+
//! ```
//! `len` is checked against `MAX_FRAME_LEN` before anything is reserved for the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, tag};
use super::{MAX_CHUNK_LEN, MAX_FRAME_LEN};
use crate::text::Encoding;

/// Everything that can be wrong with the byte stream itself.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes is over the {max} byte limit", max = MAX_FRAME_LEN)]
    FrameTooLarge { len: usize },
    #[error("frame with length 0")]
    EmptyFrame,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownTag(u8),
    #[error("malformed {frame} frame: {why}")]
    Malformed {
        frame: &'static str,
        why: &'static str,
    },
    #[error("unknown text encoding label {0}")]
    UnknownEncoding(u8),
    #[error("{field} of {len} bytes does not fit a frame")]
    FieldTooLong { field: &'static str, len: usize },
}

/// Spare room kept in the read buffer when a frame is incomplete.
const READ_AHEAD: usize = 64 * 1024;

/// Length prefix + tag.
const HEADER_LEN: usize = 5;
/// Bytes of a `Chunk` before its data: header, id, offset.
pub const CHUNK_HEADER_LEN: usize = HEADER_LEN + 4 + 8;

#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < 4 {
            // Room for a good read: with small frames, a read per frame would dominate.
            src.reserve(READ_AHEAD);
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len == 0 {
            return Err(ProtocolError::EmptyFrame);
        }
        if len > MAX_FRAME_LEN {
            return Err(ProtocolError::FrameTooLarge { len });
        }
        if src.len() < 4 + len {
            src.reserve((4 + len - src.len()).max(READ_AHEAD));
            return Ok(None);
        }
        src.advance(4);
        let body = src.split_to(len).freeze();
        parse(body).map(Some)
    }
}

/// The header of a `Chunk` whose data has not all arrived yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHead {
    pub id: u32,
    pub offset: u64,
    /// Bytes of data the frame carries in all.
    pub data_len: usize,
}

/// If `src` starts with a `Chunk` whose header is complete but whose data is not, its header:
/// the reader can then take the data into a buffer of its own instead of growing `src` to
/// hold it. `None` for any other frame, or a chunk that is already whole. A header that
/// `decode` would refuse is refused here with the same error.
pub fn chunk_head(src: &[u8]) -> Result<Option<ChunkHead>, ProtocolError> {
    if src.len() < CHUNK_HEADER_LEN || src[4] != tag::CHUNK {
        return Ok(None);
    }
    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(ProtocolError::FrameTooLarge { len });
    }
    if 4 + len <= src.len() {
        return Ok(None);
    }
    // Not underflowing: the frame ends past `src`, which holds a whole header.
    let data_len = 4 + len - CHUNK_HEADER_LEN;
    if data_len > MAX_CHUNK_LEN {
        return Err(ProtocolError::Malformed {
            frame: "Chunk",
            why: "chunk data over 1 MiB",
        });
    }
    let id = u32::from_be_bytes([src[5], src[6], src[7], src[8]]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&src[9..17]);
    Ok(Some(ChunkHead {
        id,
        offset: u64::from_be_bytes(offset),
        data_len,
    }))
}

/// Reads the fields of one frame body, failing with the frame's name.
struct Fields {
    frame: &'static str,
    body: Bytes,
}

impl Fields {
    fn need(&self, n: usize) -> Result<(), ProtocolError> {
        if self.body.remaining() < n {
            Err(ProtocolError::Malformed {
                frame: self.frame,
                why: "body too short",
            })
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        self.need(1)?;
        Ok(self.body.get_u8())
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.need(4)?;
        Ok(self.body.get_u32())
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.need(8)?;
        Ok(self.body.get_u64())
    }

    fn hash(&mut self) -> Result<[u8; 32], ProtocolError> {
        self.need(32)?;
        let mut out = [0u8; 32];
        self.body.copy_to_slice(&mut out);
        Ok(out)
    }

    fn str16(&mut self) -> Result<String, ProtocolError> {
        self.need(2)?;
        let len = self.body.get_u16() as usize;
        self.need(len)?;
        let raw = self.body.split_to(len);
        String::from_utf8(raw.to_vec()).map_err(|_| ProtocolError::Malformed {
            frame: self.frame,
            why: "string is not UTF-8",
        })
    }

    fn rest(&mut self) -> Bytes {
        self.body.split_to(self.body.len())
    }

    fn done(self) -> Result<(), ProtocolError> {
        if self.body.has_remaining() {
            Err(ProtocolError::Malformed {
                frame: self.frame,
                why: "trailing bytes",
            })
        } else {
            Ok(())
        }
    }
}

fn parse(mut body: Bytes) -> Result<Frame, ProtocolError> {
    let t = body.get_u8();
    let frame = match t {
        tag::HELLO => "Hello",
        tag::TEXT => "Text",
        tag::RENAME => "Rename",
        tag::OFFER => "Offer",
        tag::ACCEPT => "Accept",
        tag::REJECT => "Reject",
        tag::CHUNK => "Chunk",
        tag::FILE_END => "FileEnd",
        tag::VERDICT => "Verdict",
        tag::CANCEL => "Cancel",
        tag::CREDIT => "Credit",
        tag::PING => "Ping",
        tag::PONG => "Pong",
        tag::BYE => "Bye",
        other => return Err(ProtocolError::UnknownTag(other)),
    };
    let mut f = Fields { frame, body };
    let parsed = match t {
        tag::HELLO => Frame::Hello {
            capabilities: f.u32()?,
            name: f.str16()?,
        },
        tag::TEXT => {
            let label = f.u8()?;
            let encoding =
                Encoding::from_label(label).ok_or(ProtocolError::UnknownEncoding(label))?;
            Frame::Text {
                encoding,
                bytes: f.rest(),
            }
        }
        tag::RENAME => Frame::Rename { name: f.str16()? },
        tag::OFFER => Frame::Offer {
            id: f.u32()?,
            size: f.u64()?,
            path: f.str16()?,
        },
        tag::ACCEPT => Frame::Accept {
            id: f.u32()?,
            offset: f.u64()?,
        },
        tag::REJECT => Frame::Reject {
            id: f.u32()?,
            reason: f.str16()?,
        },
        tag::CHUNK => {
            let id = f.u32()?;
            let offset = f.u64()?;
            let data = f.rest();
            if data.len() > MAX_CHUNK_LEN {
                return Err(ProtocolError::Malformed {
                    frame,
                    why: "chunk data over 1 MiB",
                });
            }
            Frame::Chunk { id, offset, data }
        }
        tag::FILE_END => Frame::FileEnd {
            id: f.u32()?,
            hash: f.hash()?,
        },
        tag::VERDICT => {
            let id = f.u32()?;
            let ok = match f.u8()? {
                0 => false,
                1 => true,
                _ => {
                    return Err(ProtocolError::Malformed {
                        frame,
                        why: "verdict is neither 0 nor 1",
                    });
                }
            };
            Frame::Verdict {
                id,
                ok,
                message: f.str16()?,
            }
        }
        tag::CANCEL => {
            let id = f.u32()?;
            let by_sender = match f.u8()? {
                0 => false,
                1 => true,
                _ => {
                    return Err(ProtocolError::Malformed {
                        frame,
                        why: "side is neither 0 nor 1",
                    });
                }
            };
            Frame::Cancel {
                id,
                by_sender,
                reason: f.str16()?,
            }
        }
        tag::CREDIT => Frame::Credit {
            id: f.u32()?,
            upto: f.u64()?,
        },
        tag::PING => Frame::Ping { nonce: f.u64()? },
        tag::PONG => Frame::Pong { nonce: f.u64()? },
        tag::BYE => Frame::Bye { reason: f.str16()? },
        // The first match returned for every other tag.
        _ => return Err(ProtocolError::UnknownTag(t)),
    };
    f.done()?;
    Ok(parsed)
}

fn put_str16(dst: &mut BytesMut, field: &'static str, s: &str) -> Result<(), ProtocolError> {
    let len = u16::try_from(s.len()).map_err(|_| ProtocolError::FieldTooLong {
        field,
        len: s.len(),
    })?;
    dst.put_u16(len);
    dst.put_slice(s.as_bytes());
    Ok(())
}

/// Write the header of a `Chunk` carrying `data_len` bytes; the caller appends the data. This
/// lets the sender read a file straight into the output buffer, with no copy in between.
pub fn put_chunk_header(dst: &mut BytesMut, id: u32, offset: u64, data_len: usize) {
    debug_assert!(data_len <= MAX_CHUNK_LEN);
    dst.put_u32((CHUNK_HEADER_LEN - 4 + data_len) as u32);
    dst.put_u8(tag::CHUNK);
    dst.put_u32(id);
    dst.put_u64(offset);
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_frame(&frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_frame(frame, dst)
    }
}

/// Append `frame` to `dst`. On error `dst` is left as it was.
pub fn encode_frame(frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    let start = dst.len();
    dst.put_u32(0); // patched below, once the body length is known
    dst.put_u8(frame.tag());
    let body = (|| {
        match frame {
            Frame::Hello { capabilities, name } => {
                dst.put_u32(*capabilities);
                put_str16(dst, "name", name)?;
            }
            Frame::Text { encoding, bytes } => {
                dst.put_u8(encoding.label());
                dst.put_slice(bytes);
            }
            Frame::Offer { id, size, path } => {
                dst.put_u32(*id);
                dst.put_u64(*size);
                put_str16(dst, "path", path)?;
            }
            Frame::Accept { id, offset } | Frame::Credit { id, upto: offset } => {
                dst.put_u32(*id);
                dst.put_u64(*offset);
            }
            Frame::Reject { id, reason } => {
                dst.put_u32(*id);
                put_str16(dst, "reason", reason)?;
            }
            Frame::Cancel {
                id,
                by_sender,
                reason,
            } => {
                dst.put_u32(*id);
                dst.put_u8(u8::from(*by_sender));
                put_str16(dst, "reason", reason)?;
            }
            Frame::Chunk { id, offset, data } => {
                if data.len() > MAX_CHUNK_LEN {
                    return Err(ProtocolError::FieldTooLong {
                        field: "chunk",
                        len: data.len(),
                    });
                }
                dst.put_u32(*id);
                dst.put_u64(*offset);
                dst.put_slice(data);
            }
            Frame::FileEnd { id, hash } => {
                dst.put_u32(*id);
                dst.put_slice(hash);
            }
            Frame::Verdict { id, ok, message } => {
                dst.put_u32(*id);
                dst.put_u8(u8::from(*ok));
                put_str16(dst, "message", message)?;
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => dst.put_u64(*nonce),
            Frame::Bye { reason } => put_str16(dst, "reason", reason)?,
            Frame::Rename { name } => put_str16(dst, "name", name)?,
        }
        Ok(())
    })();
    let len = dst.len() - start - 4;
    if let Err(e) = body {
        dst.truncate(start);
        return Err(e);
    }
    if len > MAX_FRAME_LEN {
        dst.truncate(start);
        return Err(ProtocolError::FieldTooLong {
            field: frame.kind(),
            len,
        });
    }
    dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}
