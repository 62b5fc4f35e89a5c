//! Frames from the peer, read off the socket. Small frames are cut from one read buffer; the
//! data of a large file chunk is read straight into a pooled buffer of its own.
//!
//! Cutting big chunks from the shared read buffer (as a generic framed reader does) made the
//! buffer grow and move for every chunk: a new allocation, with its page faults, whenever the
//! disk thread still held the previous chunks, and a copy of each partial frame. Now a chunk's
//! data is copied at most once, from the socket, into memory that is already mapped.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use crate::protocol::codec::{CHUNK_HEADER_LEN, ChunkHead, chunk_head};
use crate::protocol::frame::tag;
use crate::protocol::{Frame, FrameCodec, MAX_FRAME_LEN, ProtocolError};
use crate::transfer::pool::BufferPool;

/// Room for small frames: many of them come in one read.
const READ_BUFFER: usize = 256 * 1024;
/// Chunks with at least this much data still to come go to a buffer of their own.
const DIRECT_MIN: usize = 32 * 1024;
/// The read after a large chunk: its header and a little of the next frame, so little data is
/// copied from the read buffer if that frame is the next large chunk.
const PEEK: usize = 16 * 1024;

pub(super) struct Inbound<R> {
    io: R,
    buffer: BytesMut,
    /// A large chunk whose data is being read into `data`.
    chunk: Option<(ChunkHead, BytesMut)>,
    /// The last frame was a large chunk: read little, as the next one probably is too.
    after_chunk: bool,
    pool: BufferPool,
    eof: bool,
    /// An error was returned: the stream is over.
    failed: bool,
}

impl<R: AsyncRead + Unpin> Inbound<R> {
    /// Frames from `io`, after those in `leftover` (read with the handshake).
    pub(super) fn new(io: R, leftover: BytesMut, pool: BufferPool) -> Self {
        let mut buffer = BytesMut::with_capacity(READ_BUFFER.max(leftover.len()));
        buffer.extend_from_slice(&leftover);
        Self {
            io,
            buffer,
            chunk: None,
            after_chunk: false,
            pool,
            eof: false,
            failed: false,
        }
    }

    /// The next frame from what is buffered, starting a large chunk's own buffer if one begins.
    fn decode(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if let Some(head) = chunk_head(&self.buffer)?
            && head.data_len >= DIRECT_MIN
        {
            self.buffer.advance(CHUNK_HEADER_LEN);
            let mut data = self.pool.take(head.data_len);
            let have = self.buffer.len().min(head.data_len);
            data.extend_from_slice(&self.buffer[..have]);
            self.buffer.advance(have);
            self.chunk = Some((head, data));
            return Ok(None);
        }
        if (5..CHUNK_HEADER_LEN).contains(&self.buffer.len()) && self.buffer[4] == tag::CHUNK {
            // Part of a chunk's header: the codec would make room for the whole chunk here. A
            // length it refuses goes on to it, to be refused now.
            let len = u32::from_be_bytes([
                self.buffer[0],
                self.buffer[1],
                self.buffer[2],
                self.buffer[3],
            ]) as usize;
            if (CHUNK_HEADER_LEN - 4..=MAX_FRAME_LEN).contains(&len) {
                return Ok(None);
            }
        }
        let frame = FrameCodec.decode(&mut self.buffer)?;
        if frame.is_some() {
            self.after_chunk = false;
        }
        Ok(frame)
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, ProtocolError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let next = self.poll_frame_inner(cx);
        if let Poll::Ready(Some(Err(_))) = next {
            self.failed = true;
        }
        next
    }

    fn poll_frame_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame, ProtocolError>>> {
        loop {
            if let Some((head, data)) = &mut self.chunk {
                let missing = head.data_len - data.len();
                if missing == 0 {
                    let (head, data) = self.chunk.take().expect("checked above");
                    self.after_chunk = true;
                    return Poll::Ready(Some(Ok(Frame::Chunk {
                        id: head.id,
                        offset: head.offset,
                        data: self.pool.freeze(data),
                    })));
                }
                let mut rest = data.limit(missing);
                let n = ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut rest))?;
                if n == 0 {
                    return Poll::Ready(Some(Err(ended_inside_a_frame())));
                }
                continue;
            }
            match self.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if self.chunk.is_some() => continue,
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            if self.eof {
                return Poll::Ready(if self.buffer.is_empty() {
                    None
                } else {
                    Some(Err(ended_inside_a_frame()))
                });
            }
            let room = if self.after_chunk { PEEK } else { READ_BUFFER };
            if self.buffer.capacity() - self.buffer.len() < room {
                self.buffer.reserve(room);
            }
            let n = ready!(poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut (&mut self.buffer).limit(room)
            ))?;
            if n == 0 {
                self.eof = true;
            }
        }
    }
}

fn ended_inside_a_frame() -> ProtocolError {
    ProtocolError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection ended in the middle of a frame",
    ))
}

impl<R: AsyncRead + Unpin> Stream for Inbound<R> {
    type Item = Result<Frame, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use futures::StreamExt;
    use futures::executor::block_on;
    use proptest::prelude::*;
    use tokio::io::ReadBuf;

    use super::*;
    use crate::protocol::codec::encode_frame;
    use crate::text::Encoding;

    /// A socket that hands out `data` in reads ending at `cuts`, as TCP may.
    struct Pieces {
        data: Vec<u8>,
        cuts: VecDeque<usize>,
        at: usize,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            while self.cuts.front().is_some_and(|&c| c <= self.at) {
                self.cuts.pop_front();
            }
            let end = self.cuts.front().copied().unwrap_or(self.data.len());
            let n = (end - self.at).min(buf.remaining());
            buf.put_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for frame in frames {
            encode_frame(frame, &mut out).expect("encodes");
        }
        out.to_vec()
    }

    fn read_all(
        data: Vec<u8>,
        mut cuts: Vec<usize>,
        leftover: usize,
    ) -> Vec<Result<Frame, String>> {
        cuts.sort_unstable();
        let leftover = BytesMut::from(&data[..leftover]);
        let rest = data[leftover.len()..].to_vec();
        let cuts = cuts
            .into_iter()
            .filter_map(|c| c.checked_sub(leftover.len()))
            .collect();
        let io = Pieces {
            data: rest,
            cuts,
            at: 0,
        };
        let inbound = Inbound::new(io, leftover, BufferPool::default());
        block_on(inbound.map(|r| r.map_err(|e| e.to_string())).collect())
    }

    fn chunk(id: u32, offset: u64, len: usize) -> Frame {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ id as u8).collect();
        Frame::Chunk {
            id,
            offset,
            data: Bytes::from(data),
        }
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u64>(),
                prop_oneof![
                    Just(0usize),
                    1..100usize,
                    Just(DIRECT_MIN - 1),
                    Just(DIRECT_MIN),
                    40_000..300_000usize
                ]
            )
                .prop_map(|(id, offset, len)| chunk(id, offset, len)),
            "[a-z ]{0,40}".prop_map(|t| Frame::Text {
                encoding: Encoding::Utf8,
                bytes: Bytes::from(t.into_bytes()),
            }),
            (any::<u32>(), any::<u64>()).prop_map(|(id, upto)| Frame::Credit { id, upto }),
            (any::<u32>(), any::<[u8; 32]>()).prop_map(|(id, hash)| Frame::FileEnd { id, hash }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn frames_come_out_whole_however_the_reads_fall(
            frames in proptest::collection::vec(arb_frame(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            leftover in any::<prop::sample::Index>(),
        ) {
            let data = wire(&frames);
            let cuts = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            // What came with the handshake is at most a read's worth.
            let leftover = leftover.index(data.len().min(64 * 1024) + 1);
            let got = read_all(data, cuts, leftover);
            let expected: Vec<Result<Frame, String>> = frames.into_iter().map(Ok).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_connection_ending_inside_a_large_chunk_is_an_error() {
        let mut data = wire(&[chunk(1, 0, 100_000)]);
        data.truncate(60_000);
        let got = read_all(data, vec![20, 30_000], 0);
        assert_eq!(got.len(), 1);
        let error = got[0].clone().expect_err("an error");
        assert!(error.contains("ended in the middle of a frame"), "{error}");
    }

    #[test]
    fn a_connection_ending_between_frames_just_ends() {
        let frames = [chunk(1, 0, 100_000), Frame::Ping { nonce: 7 }];
        let got = read_all(wire(&frames), vec![5, 17, 50_000], 3);
        assert_eq!(got, frames.map(Ok));
    }

    #[test]
    fn a_chunk_header_claiming_too_much_is_refused_before_its_data_arrives() {
        let mut data = wire(&[chunk(1, 0, 100_000)]);
        data[..4].copy_from_slice(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        data.truncate(5);
        let got = read_all(data, vec![], 0);
        let error = got[0].clone().expect_err("an error");
        assert!(error.contains("over the"), "{error}");
    }

    #[test]
    fn large_chunk_buffers_are_used_again() {
        let pool = BufferPool::default();
        let frames: Vec<Frame> = (0..4).map(|i| chunk(1, i * 100_000, 100_000)).collect();
        let data = wire(&frames);
        let frame_len = data.len() / 4;
        // Each chunk arrives in more than one read, as big ones do.
        let cuts = (0..4).map(|i| i * frame_len + 1000).collect();
        let io = Pieces { data, cuts, at: 0 };
        let mut inbound = Inbound::new(io, BytesMut::new(), pool.clone());
        let mut addresses = Vec::new();
        while let Some(frame) = block_on(inbound.next()) {
            let Ok(Frame::Chunk { data, .. }) = frame else {
                panic!("not a chunk: {frame:?}");
            };
            addresses.push(data.as_ptr());
            // Dropped here, as the disk thread drops a written chunk.
        }
        assert_eq!(addresses.len(), 4);
        assert!(
            addresses.windows(2).all(|w| w[0] == w[1]),
            "each chunk in the buffer the one before gave back: {addresses:?}"
        );
    }
}
