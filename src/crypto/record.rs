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
//! reordered fails to open. No I/O and no allocation per record: sealing appends to the
//! caller's buffer, opening decrypts into the caller's buffer.

use std::sync::Arc;

use bytes::{Buf, BytesMut};

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

/// Both directions' keys, shared by the two halves.
type Keys = Arc<snow::StatelessTransportState>;

/// Split a finished handshake's keys into the half that seals what we send and the half that
/// opens what we receive.
pub(super) fn halves(transport: snow::StatelessTransportState) -> (Sealer, Opener) {
    let keys: Keys = Arc::new(transport);
    (
        Sealer {
            keys: Arc::clone(&keys),
            nonce: 0,
        },
        Opener { keys, nonce: 0 },
    )
}

/// Seals what we send into records.
pub struct Sealer {
    keys: Keys,
    nonce: u64,
}

impl Sealer {
    /// `plain` as records appended to `out`: as many as it takes, each as full as it can be.
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), RecordError> {
        for piece in plain.chunks(MAX_PLAINTEXT) {
            let len = piece.len() + TAG_LEN;
            let start = out.len();
            out.resize(start + LEN_PREFIX + len, 0);
            out[start..start + LEN_PREFIX].copy_from_slice(&(len as u16).to_be_bytes());
            let nonce = self.next_nonce()?;
            let written = self
                .keys
                .write_message(nonce, piece, &mut out[start + LEN_PREFIX..])
                .map_err(|e| RecordError::Seal(e.to_string()))?;
            debug_assert_eq!(written, len);
        }
        Ok(())
    }

    fn next_nonce(&mut self) -> Result<u64, RecordError> {
        let nonce = self.nonce;
        self.nonce = self.nonce.checked_add(1).ok_or(RecordError::Exhausted)?;
        Ok(nonce)
    }
}

/// Opens the records we receive.
pub struct Opener {
    keys: Keys,
    nonce: u64,
}

impl Opener {
    /// Open the first whole record in `input` (taking it out) and append its plaintext to
    /// `plain`. `Ok(false)`: `input` holds no whole record yet. A record that does not open is
    /// an error: the connection cannot be trusted from there on.
    pub fn open(
        &mut self,
        input: &mut BytesMut,
        plain: &mut BytesMut,
    ) -> Result<bool, RecordError> {
        if input.len() < LEN_PREFIX {
            return Ok(false);
        }
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        if len < TAG_LEN {
            return Err(RecordError::Short(len));
        }
        if input.len() < LEN_PREFIX + len {
            // Room for the rest, once: a record is at most 64 KiB.
            input.reserve(LEN_PREFIX + len - input.len());
            return Ok(false);
        }
        let start = plain.len();
        plain.resize(start + len - TAG_LEN, 0);
        let nonce = self.nonce;
        let opened = self.keys.read_message(
            nonce,
            &input[LEN_PREFIX..LEN_PREFIX + len],
            &mut plain[start..],
        );
        match opened {
            Ok(n) => {
                plain.truncate(start + n);
                input.advance(LEN_PREFIX + len);
                self.nonce = self.nonce.checked_add(1).ok_or(RecordError::Exhausted)?;
                Ok(true)
            }
            Err(_) => {
                plain.truncate(start);
                Err(RecordError::Corrupt)
            }
        }
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
