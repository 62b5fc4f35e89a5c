//! The record layer of protocol version 2: after the handshake every byte travels in records,
//! each a 2-byte big-endian length and that many bytes of AES-GCM ciphertext (the plaintext and
//! its 16-byte tag), at most 65,535 in all. Above it the frame codec runs unchanged: records
//! carry a byte stream, cut wherever the writer flushed.
//!
//! ```text
//! +--------+------------------------------+
//! | len:u16| ciphertext (len bytes)       |   len <= 65535, plaintext = len - 16
//! +--------+------------------------------+
//! ```
//!
//! Each direction counts its records; the count is the nonce, so a record replayed, dropped or
//! reordered fails to open. No I/O and no allocation per record: a record is sealed in place in
//! the caller's buffer, straight from the caller's slices, and opened in place where it was
//! read.
//!
//! This is Noise's transport phase, done with ring's AES-256-GCM on the keys the handshake split
//! (what snow's transport state does too, but through a copy per record each way): the nonce is
//! four zero bytes and the count as a big-endian `u64`, and there is no associated data. A test
//! below checks that snow opens what we seal and the other way round.

use std::io::IoSlice;

use bytes::{Buf, BytesMut};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// A record's bytes after its length, at most (Noise's limit).
pub const MAX_RECORD: usize = 65535;
/// The AEAD tag in each record.
pub const TAG_LEN: usize = 16;
/// Plaintext bytes per record, at most.
pub const MAX_PLAINTEXT: usize = MAX_RECORD - TAG_LEN;
/// The length prefix.
pub const LEN_PREFIX: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("an encrypted record that does not open (tampered with, replayed or out of order)")]
    Corrupt,
    #[error("an encrypted record of {0} bytes, too short to hold its tag")]
    Short(usize),
    #[error("more than 2^64 records in one direction")]
    Exhausted,
    #[error("cannot encrypt: {0}")]
    Seal(String),
}

/// The half that seals what we send and the half that opens what we receive, from the two keys
/// the handshake split (each side sends with the other's receiving key).
pub(super) fn halves(send: &[u8; 32], receive: &[u8; 32]) -> Result<(Sealer, Opener), RecordError> {
    let key = |bytes: &[u8; 32]| {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(LessSafeKey::new)
            .map_err(|_| RecordError::Seal("an AES-256-GCM key of the wrong length".into()))
    };
    Ok((
        Sealer {
            key: key(send)?,
            nonce: 0,
        },
        Opener {
            key: key(receive)?,
            nonce: 0,
        },
    ))
}

/// Noise's nonce for record `count`.
fn nonce(count: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&count.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The next count, or the end of the direction.
fn next(count: &mut u64) -> Result<u64, RecordError> {
    let now = *count;
    *count = count.checked_add(1).ok_or(RecordError::Exhausted)?;
    Ok(now)
}

/// Seals what we send into records.
pub struct Sealer {
    key: LessSafeKey,
    nonce: u64,
}

impl Sealer {
    /// `plain` as records appended to `out`: as many as it takes, each as full as it can be.
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), RecordError> {
        self.seal_slices(&[IoSlice::new(plain)], usize::MAX, out)
            .map(drop)
    }

    /// Up to `most` bytes of `bufs`, in order, as records appended to `out`, copied once
    /// (straight into `out`) and encrypted there. The number of bytes taken: all of `bufs`
    /// unless `most` is smaller. An empty input still makes one (empty) record.
    pub fn seal_slices(
        &mut self,
        bufs: &[IoSlice<'_>],
        most: usize,
        out: &mut BytesMut,
    ) -> Result<usize, RecordError> {
        let total = bufs.iter().map(|b| b.len()).sum::<usize>().min(most);
        out.reserve(total + total.div_ceil(MAX_PLAINTEXT).max(1) * (LEN_PREFIX + TAG_LEN));
        let mut slices = bufs.iter().map(|b| &b[..]);
        let mut current: &[u8] = &[];
        let mut taken = 0;
        loop {
            let piece = (total - taken).min(MAX_PLAINTEXT);
            let start = out.len();
            out.extend_from_slice(&((piece + TAG_LEN) as u16).to_be_bytes());
            let body = out.len();
            let mut want = piece;
            while want > 0 {
                if current.is_empty() {
                    current = slices.next().unwrap_or_default();
                    continue;
                }
                let n = want.min(current.len());
                out.extend_from_slice(&current[..n]);
                current = &current[n..];
                want -= n;
            }
            let count = next(&mut self.nonce)?;
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce(count), Aad::empty(), &mut out[body..])
                .map_err(|_| RecordError::Seal("AES-GCM refused the record".into()))?;
            out.extend_from_slice(tag.as_ref());
            debug_assert_eq!(out.len() - start, LEN_PREFIX + piece + TAG_LEN);
            taken += piece;
            if taken == total {
                return Ok(taken);
            }
        }
    }
}

/// Opens the records we receive.
pub struct Opener {
    key: LessSafeKey,
    nonce: u64,
}

impl Opener {
    /// The length of the first record in `input` (prefix included) if all of it is there.
    /// `Ok(None)`: not yet (room is reserved for the rest, once: a record is at most 64 KiB).
    pub fn whole_record(input: &mut BytesMut) -> Result<Option<usize>, RecordError> {
        if input.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        if len < TAG_LEN {
            return Err(RecordError::Short(len));
        }
        if input.len() < LEN_PREFIX + len {
            input.reserve(LEN_PREFIX + len - input.len());
            return Ok(None);
        }
        Ok(Some(LEN_PREFIX + len))
    }

    /// Open the whole record at the start of `record` (as [`Self::whole_record`] measured it)
    /// in place: its plaintext is then `record[LEN_PREFIX..LEN_PREFIX + n]`, `n` returned. A
    /// record that does not open is an error: the connection cannot be trusted from there on.
    pub fn open_in_place(&mut self, record: &mut [u8]) -> Result<usize, RecordError> {
        let count = self.nonce;
        let opened = self
            .key
            .open_in_place(nonce(count), Aad::empty(), &mut record[LEN_PREFIX..])
            .map_err(|_| RecordError::Corrupt)?
            .len();
        next(&mut self.nonce)?;
        Ok(opened)
    }

    /// Open the first whole record in `input` (taking it out) and append its plaintext to
    /// `plain`. `Ok(false)`: `input` holds no whole record yet.
    pub fn open(
        &mut self,
        input: &mut BytesMut,
        plain: &mut BytesMut,
    ) -> Result<bool, RecordError> {
        let Some(len) = Self::whole_record(input)? else {
            return Ok(false);
        };
        let n = self.open_in_place(&mut input[..len])?;
        plain.extend_from_slice(&input[LEN_PREFIX..LEN_PREFIX + n]);
        input.advance(len);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::noise::Secured;

    fn pair() -> anyhow::Result<(Secured, Secured)> {
        Ok(crate::harness::secured_pair())
    }

    fn open_all(opener: &mut Opener, wire: &mut BytesMut) -> Result<Vec<u8>, RecordError> {
        let mut plain = BytesMut::new();
        while opener.open(wire, &mut plain)? {}
        Ok(plain.to_vec())
    }

    #[test]
    fn what_is_sealed_opens_on_the_other_side_in_both_directions() -> anyhow::Result<()> {
        let (mut a, mut b) = pair()?;
        let mut wire = BytesMut::new();
        a.sealer.seal(b"hello bo", &mut wire)?;
        a.sealer.seal(b"", &mut wire)?;
        a.sealer.seal("你好".as_bytes(), &mut wire)?;
        assert!(
            !wire.windows(5).any(|w| w == b"hello"),
            "the wire is not plaintext"
        );
        assert_eq!(
            open_all(&mut b.opener, &mut wire)?,
            "hello bo你好".as_bytes()
        );
        let mut back = BytesMut::new();
        b.sealer.seal(b"hi ana", &mut back)?;
        assert_eq!(open_all(&mut a.opener, &mut back)?, b"hi ana");
        Ok(())
    }

    #[test]
    fn a_large_write_becomes_full_records_and_arrives_whole() -> anyhow::Result<()> {
        let (mut a, mut b) = pair()?;
        let data: Vec<u8> = (0..3 * MAX_PLAINTEXT + 100)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut wire = BytesMut::new();
        a.sealer.seal(&data, &mut wire)?;
        assert_eq!(wire.len(), data.len() + 4 * (LEN_PREFIX + TAG_LEN));
        assert_eq!(open_all(&mut b.opener, &mut wire)?, data);
        Ok(())
    }

    #[test]
    fn records_split_at_every_byte_still_open() -> anyhow::Result<()> {
        let (mut a, mut b) = pair()?;
        let mut sealed = BytesMut::new();
        a.sealer.seal(b"first", &mut sealed)?;
        a.sealer.seal(b"second record", &mut sealed)?;
        let all = sealed.to_vec();
        let mut input = BytesMut::new();
        let mut plain = BytesMut::new();
        for byte in all {
            input.extend_from_slice(&[byte]);
            while b.opener.open(&mut input, &mut plain)? {}
        }
        assert_eq!(&plain[..], b"firstsecond record");
        assert!(input.is_empty());
        Ok(())
    }

    #[test]
    fn tampered_replayed_reordered_or_short_records_are_refused() -> anyhow::Result<()> {
        // Tampered.
        let (mut a, mut b) = pair()?;
        let mut wire = BytesMut::new();
        a.sealer.seal(b"pay 10", &mut wire)?;
        let last = wire.len() - 1;
        wire[last] ^= 0x80;
        assert_eq!(
            open_all(&mut b.opener, &mut wire),
            Err(RecordError::Corrupt)
        );

        // Replayed.
        let (mut a, mut b) = pair()?;
        let mut one = BytesMut::new();
        a.sealer.seal(b"once", &mut one)?;
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        assert_eq!(
            open_all(&mut b.opener, &mut twice),
            Err(RecordError::Corrupt)
        );

        // Reordered.
        let (mut a, mut b) = pair()?;
        let (mut first, mut second) = (BytesMut::new(), BytesMut::new());
        a.sealer.seal(b"1", &mut first)?;
        a.sealer.seal(b"2", &mut second)?;
        second.extend_from_slice(&first);
        assert_eq!(
            open_all(&mut b.opener, &mut second),
            Err(RecordError::Corrupt)
        );

        // Too short to hold a tag; a length with nothing after it is only incomplete.
        let (_, mut b) = pair()?;
        let mut short = BytesMut::from(&[0u8, 5, 1, 2, 3, 4, 5][..]);
        assert_eq!(
            open_all(&mut b.opener, &mut short),
            Err(RecordError::Short(5))
        );
        let mut pending = BytesMut::from(&[0xffu8, 0xff, 0][..]);
        assert_eq!(open_all(&mut b.opener, &mut pending), Ok(Vec::new()));
        Ok(())
    }

    #[test]
    fn records_are_noise_transport_messages_that_snow_reads_and_writes() -> anyhow::Result<()> {
        use crate::crypto::Identity;
        use crate::crypto::noise::{Handshake, prologue};
        let (ana, bo) = (Identity::generate()?, Identity::generate()?);
        let p = prologue(b"c", b"l");
        let mut a = Handshake::initiator(&ana, &p)?;
        let mut b = Handshake::responder(&bo, &p)?;
        b.read(&a.write()?)?;
        a.read(&b.write()?)?;
        b.read(&a.write()?)?;
        let mut ours = a.finish()?;
        let theirs = b.into_snow_transport()?;
        // Ours to snow's.
        let mut wire = BytesMut::new();
        ours.sealer.seal(b"to snow", &mut wire)?;
        let mut plain = [0u8; 64];
        let n = theirs.read_message(0, &wire[LEN_PREFIX..], &mut plain)?;
        assert_eq!(&plain[..n], b"to snow");
        // Snow's to ours.
        let mut sealed = [0u8; 64];
        let n = theirs.write_message(0, b"from snow", &mut sealed)?;
        let mut wire = BytesMut::from(&(n as u16).to_be_bytes()[..]);
        wire.extend_from_slice(&sealed[..n]);
        assert_eq!(open_all(&mut ours.opener, &mut wire)?, b"from snow");
        Ok(())
    }

    #[test]
    fn slices_are_sealed_as_one_stream_of_full_records() -> anyhow::Result<()> {
        let (mut a, mut b) = pair()?;
        let pieces: Vec<Vec<u8>> = (0..50u32)
            .map(|i| vec![i as u8; 3000 + i as usize])
            .collect();
        let slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let all = pieces.concat();
        let mut wire = BytesMut::new();
        let most = all.len() - 10;
        assert_eq!(a.sealer.seal_slices(&slices, most, &mut wire)?, most);
        let records = most.div_ceil(MAX_PLAINTEXT);
        assert_eq!(wire.len(), most + records * (LEN_PREFIX + TAG_LEN));
        assert_eq!(open_all(&mut b.opener, &mut wire)?, &all[..most]);
        Ok(())
    }

    #[test]
    fn another_sessions_records_do_not_open() -> anyhow::Result<()> {
        let (mut a, _) = pair()?;
        let (_, mut other) = pair()?;
        let mut wire = BytesMut::new();
        a.sealer.seal(b"for b only", &mut wire)?;
        assert_eq!(
            open_all(&mut other.opener, &mut wire),
            Err(RecordError::Corrupt)
        );
        Ok(())
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn untrusted_bytes_never_panic_and_never_grow(data in proptest::collection::vec(any::<u8>(), 0..3000), sealed in any::<bool>()) {
            let plain = crate::harness::open_records(&data, sealed);
            prop_assert!(plain <= data.len());
        }

        #[test]
        fn untrusted_handshake_messages_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            crate::harness::handshake_messages(&data);
        }
    }
}
