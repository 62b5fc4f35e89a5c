//! A byte stream through the record layer, as two halves: what is written to the
//! [`EncryptedWriter`] is sealed into records and goes out on its inner stream; what the
//! [`EncryptedReader`] reads from its inner stream is opened and read as plain bytes. The
//! session's frame codec runs on top unchanged.
//!
//! Like a `BufWriter`, a write may leave sealed bytes waiting for the inner stream (a record
//! cannot be taken back once sealed): whoever writes must flush when it stops writing, or
//! watch [`EncryptedWriter::has_pending`]. What waits is bounded: past [`PENDING_LIMIT`] a
//! write waits for the inner stream instead of sealing more.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::record::{LEN_PREFIX, MAX_PLAINTEXT, MAX_RECORD, Opener, Sealer};

/// Sealed bytes that may wait for the inner stream before a write waits too.
pub const PENDING_LIMIT: usize = 4 * (MAX_RECORD + 2);

/// The receiving half: ciphertext in from `R`, plaintext out. Each record is opened in place
/// where it was read, and read from there.
pub struct EncryptedReader<R> {
    inner: R,
    opener: Opener,
    /// Ciphertext read; its first record may be opened already (`opened`).
    input: BytesMut,
    /// The record opened at the start of `input`: its length on the wire, and where in
    /// `input` its plaintext not yet read lies.
    opened: Option<Opened>,
    eof: bool,
}

struct Opened {
    len: usize,
    start: usize,
    end: usize,
}

/// The sending half: plaintext in, records out to `W`.
pub struct EncryptedWriter<W> {
    inner: W,
    sealer: Sealer,
    /// Sealed, not yet taken by the inner stream.
    out: BytesMut,
}

/// Both halves over one stream: the reader and the writer each own their half of the stream
/// and their half of the keys, so nothing is shared between them.
pub fn split<S: AsyncRead + AsyncWrite>(
    stream: S,
    sealer: Sealer,
    opener: Opener,
    leftover: BytesMut,
) -> (
    EncryptedReader<tokio::io::ReadHalf<S>>,
    EncryptedWriter<tokio::io::WriteHalf<S>>,
) {
    let (read, write) = tokio::io::split(stream);
    (
        EncryptedReader::new(read, opener, leftover),
        EncryptedWriter::new(write, sealer),
    )
}

impl<R> EncryptedReader<R> {
    /// `leftover`: ciphertext already read past the handshake.
    pub fn new(inner: R, opener: Opener, leftover: BytesMut) -> Self {
        let mut input = leftover;
        input.reserve(2 * MAX_RECORD);
        Self {
            inner,
            opener,
            input,
            opened: None,
            eof: false,
        }
    }
}

impl<W> EncryptedWriter<W> {
    pub fn new(inner: W, sealer: Sealer) -> Self {
        Self {
            inner,
            sealer,
            out: BytesMut::with_capacity(PENDING_LIMIT + MAX_RECORD),
        }
    }

    /// Sealed bytes wait for the inner stream: a flush would send them.
    pub fn has_pending(&self) -> bool {
        !self.out.is_empty()
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<W: AsyncWrite + Unpin> EncryptedWriter<W> {
    /// Hand the inner stream what is sealed, until it is all taken or the stream is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EncryptedReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(opened) = &mut this.opened {
                if opened.start < opened.end {
                    let n = (opened.end - opened.start).min(buf.remaining());
                    buf.put_slice(&this.input[opened.start..opened.start + n]);
                    opened.start += n;
                    return Poll::Ready(Ok(()));
                }
                this.input.advance(opened.len);
                this.opened = None;
            }
            if let Some(len) = Opener::whole_record(&mut this.input).map_err(invalid)? {
                let n = this
                    .opener
                    .open_in_place(&mut this.input[..len])
                    .map_err(invalid)?;
                this.opened = Some(Opened {
                    len,
                    start: LEN_PREFIX,
                    end: LEN_PREFIX + n,
                });
                continue;
            }
            if this.eof {
                if this.input.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended in the middle of an encrypted record",
                )));
            }
            if this.input.capacity() - this.input.len() < MAX_RECORD {
                this.input.reserve(MAX_RECORD);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.input
            ))?;
            if n == 0 {
                this.eof = true;
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for EncryptedWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if this.out.len() >= PENDING_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        // The slices sealed together, as full records, straight into `out`: a record per small
        // slice would cost a tag and a length each.
        let room = PENDING_LIMIT
            .saturating_sub(this.out.len())
            .max(MAX_PLAINTEXT);
        let taken = this
            .sealer
            .seal_slices(bufs, room, &mut this.out)
            .map_err(invalid)?;
        // Out as far as the inner stream takes it now; the rest waits for the next write or a
        // flush (the waker is registered either way).
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    type Reader = EncryptedReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>;
    type Writer = EncryptedWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>;

    /// Two ends of an in-memory pipe of `capacity` bytes, encrypted: ana's writer and bo's
    /// reader.
    fn pair(capacity: usize) -> anyhow::Result<(Writer, Reader)> {
        let (a, b) = crate::harness::secured_pair();
        let (x, y) = tokio::io::duplex(capacity);
        let (_, a_writer) = split(x, a.sealer, a.opener, BytesMut::new());
        let (b_reader, _) = split(y, b.sealer, b.opener, BytesMut::new());
        Ok((a_writer, b_reader))
    }

    #[tokio::test]
    async fn bytes_written_on_one_end_are_read_whole_on_the_other() -> anyhow::Result<()> {
        let (mut a, mut b) = pair(64 * 1024)?;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await?;
            a.write_all(b"").await?;
            a.shutdown().await?;
            anyhow::Ok(a)
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await?;
        assert_eq!(got.len(), data.len());
        assert!(got == data);
        let a = writer.await??;
        assert!(!a.has_pending());
        Ok(())
    }

    #[tokio::test]
    async fn vectored_writes_of_small_pieces_arrive_in_order() -> anyhow::Result<()> {
        let (mut a, mut b) = pair(1 << 20)?;
        let pieces: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let mut written = 0;
        let total: usize = pieces.iter().map(Vec::len).sum();
        while written < total {
            // Re-slice what is left (the writer may take part of it).
            let mut left = Vec::new();
            let mut skip = written;
            for p in &pieces {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                left.push(io::IoSlice::new(&p[skip..]));
                skip = 0;
            }
            written += a.write_vectored(&left).await?;
        }
        a.flush().await?;
        let mut got = vec![0u8; total];
        b.read_exact(&mut got).await?;
        assert_eq!(got, pieces.concat());
        Ok(())
    }

    #[tokio::test]
    async fn the_wire_carries_no_plaintext() -> anyhow::Result<()> {
        let (a, _) = crate::harness::secured_pair();
        let (x, mut y) = tokio::io::duplex(1 << 20);
        let mut enc = EncryptedWriter::new(x, a.sealer);
        enc.write_all(b"secret marker 7f3a").await?;
        enc.flush().await?;
        drop(enc);
        let mut wire = Vec::new();
        y.read_to_end(&mut wire).await?;
        assert!(!wire.windows(6).any(|w| w == b"secret"), "{wire:?}");
        assert_eq!(wire.len(), 2 + 18 + 16);
        Ok(())
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_record_or_tampered_with_is_an_error() -> anyhow::Result<()> {
        // Cut.
        let (mut a, b) = crate::harness::secured_pair();
        let mut sealed = BytesMut::new();
        a.sealer.seal(b"hello there", &mut sealed)?;
        let (mut x, y) = tokio::io::duplex(1 << 16);
        x.write_all(&sealed[..sealed.len() - 3]).await?;
        drop(x);
        let mut dec = EncryptedReader::new(y, b.opener, BytesMut::new());
        let mut got = Vec::new();
        let e = dec.read_to_end(&mut got).await.expect_err("cut");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");

        // Tampered.
        let (mut a, b) = crate::harness::secured_pair();
        let mut sealed = BytesMut::new();
        a.sealer.seal(b"pay 10", &mut sealed)?;
        sealed[4] ^= 1;
        let (mut x, y) = tokio::io::duplex(1 << 16);
        x.write_all(&sealed[2..]).await?;
        // The first two bytes arrive as if left over from the handshake.
        let mut dec = EncryptedReader::new(y, b.opener, BytesMut::from(&sealed[..2]));
        let mut got = [0u8; 6];
        let e = dec.read_exact(&mut got).await.expect_err("tampered");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        Ok(())
    }
}
