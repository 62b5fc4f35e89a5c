//! Discovery datagrams: how a listening tern says it is there, asks who else is, and says
//! goodbye. Pure bytes in and out; the sockets are `crate::net::discovery`'s.
//!
//! ```text
//! every datagram:  "tern" | format:u8 (1) | kind:u8 | instance:u64
//! announce adds:   port:u16 | version:u16 | caps:u32 | interval:u16 (seconds)
//!                  | fp_len:u8 | fingerprint (ASCII) | name_len:u8 | name (UTF-8)
//! probe, goodbye:  nothing more
//! ```
//!
//! All integers big-endian. Bytes after the last field are ignored (room for later fields);
//! a datagram longer than [`MAX_DATAGRAM`] is refused whole. `docs/PROTOCOL.md` section 6 is
//! the contract.

use thiserror::Error;

/// The UDP port discovery uses, whatever TCP port a tern listens on.
pub const PORT: u16 = 8989;

/// The link-local multicast group announces and probes go to (TTL 1: never routed).
pub const GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 189);

/// First bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"tern";

/// The datagram format this build writes and reads.
pub const FORMAT: u8 = 1;

/// Longest datagram written or read.
pub const MAX_DATAGRAM: usize = 512;

/// Longest display name carried, in characters (as `Hello`'s).
pub const MAX_NAME_CHARS: usize = 64;

/// Longest fingerprint carried, in bytes.
pub const MAX_FINGERPRINT: usize = 40;

const HEADER_LEN: usize = MAGIC.len() + 2 + 8;

mod kind {
    pub const ANNOUNCE: u8 = 1;
    pub const PROBE: u8 = 2;
    pub const GOODBYE: u8 = 3;
}

/// Capability bits of an announce.
pub mod caps {
    /// It takes file offers (a `tern recv` without `--yes` declines them all).
    pub const FILES: u32 = 1 << 0;
    /// It has a terminal UI (someone may be reading).
    pub const UI: u32 = 1 << 1;
}

/// A random number a tern draws when it starts: its own datagrams come back to it, and a new
/// one from the same address is a restart.
pub type Instance = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// "I am here": sent on start, on request, periodically, and in answer to a probe.
    Announce(Announce),
    /// "Who is there?": every listening tern that hears it answers with an announce.
    Probe { instance: Instance },
    /// "I am leaving": forget this instance now.
    Goodbye { instance: Instance },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    pub instance: Instance,
    /// Where its tern listens for TCP, at the address the datagram came from.
    pub port: u16,
    /// The session protocol it speaks (`super::VERSION`, or `super::PLAIN_VERSION` under
    /// `--insecure`).
    pub version: u16,
    pub caps: u32,
    /// Seconds until its next announce, at most: a peer silent for a few times this is gone.
    pub interval: u16,
    /// Its identity's fingerprint, as `tern id` prints it: a hint (the handshake proves it).
    pub fingerprint: String,
    pub name: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DatagramError {
    #[error("not a tern datagram")]
    NotTern,
    #[error("datagram format {0}, this build reads {FORMAT}")]
    Format(u8),
    #[error("unknown datagram kind {0}")]
    Kind(u8),
    #[error("datagram too long ({0} bytes, at most {MAX_DATAGRAM})")]
    TooLong(usize),
    #[error("datagram cut short")]
    Short,
    #[error("the fingerprint is not base32 in groups")]
    Fingerprint,
    #[error("the name is not UTF-8")]
    Name,
}

impl Datagram {
    pub fn instance(&self) -> Instance {
        match self {
            Datagram::Announce(a) => a.instance,
            Datagram::Probe { instance } | Datagram::Goodbye { instance } => *instance,
        }
    }

    /// The datagram's bytes. A name too long is cut to [`MAX_NAME_CHARS`] characters and a
    /// fingerprint too long is left out, so the result always fits [`MAX_DATAGRAM`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        let kind = match self {
            Datagram::Announce(_) => kind::ANNOUNCE,
            Datagram::Probe { .. } => kind::PROBE,
            Datagram::Goodbye { .. } => kind::GOODBYE,
        };
        out.push(kind);
        out.extend_from_slice(&self.instance().to_be_bytes());
        if let Datagram::Announce(a) = self {
            out.extend_from_slice(&a.port.to_be_bytes());
            out.extend_from_slice(&a.version.to_be_bytes());
            out.extend_from_slice(&a.caps.to_be_bytes());
            out.extend_from_slice(&a.interval.to_be_bytes());
            let fingerprint = if valid_fingerprint(a.fingerprint.as_bytes()) {
                a.fingerprint.as_bytes()
            } else {
                b""
            };
            put_short(&mut out, fingerprint);
            put_short(&mut out, cut_name(&a.name).as_bytes());
        }
        out
    }

    /// The datagram in `bytes`, or why it is not one this build reads. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, DatagramError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DatagramError::TooLong(bytes.len()));
        }
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(DatagramError::NotTern);
        }
        let mut r = Reader(&bytes[MAGIC.len()..]);
        let format = r.u8()?;
        if format != FORMAT {
            return Err(DatagramError::Format(format));
        }
        let kind = r.u8()?;
        let instance = u64::from_be_bytes(r.array()?);
        match kind {
            kind::PROBE => Ok(Datagram::Probe { instance }),
            kind::GOODBYE => Ok(Datagram::Goodbye { instance }),
            kind::ANNOUNCE => {
                let port = u16::from_be_bytes(r.array()?);
                let version = u16::from_be_bytes(r.array()?);
                let caps = u32::from_be_bytes(r.array()?);
                let interval = u16::from_be_bytes(r.array()?);
                let fingerprint = r.short()?;
                if !valid_fingerprint(fingerprint) {
                    return Err(DatagramError::Fingerprint);
                }
                let name = std::str::from_utf8(r.short()?).map_err(|_| DatagramError::Name)?;
                Ok(Datagram::Announce(Announce {
                    instance,
                    port,
                    version,
                    caps,
                    interval,
                    // Checked above: ASCII only.
                    fingerprint: String::from_utf8_lossy(fingerprint).into_owned(),
                    name: cut_name(name).to_string(),
                }))
            }
            other => Err(DatagramError::Kind(other)),
        }
    }
}

/// At most [`MAX_NAME_CHARS`] characters of `name`, and at most 255 bytes (its length byte).
fn cut_name(name: &str) -> &str {
    let mut end = match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => end,
        None => name.len(),
    };
    while end > 255 || !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Base32 letters and digits in groups: what `tern id` prints, and nothing a terminal would
/// act on. Empty is allowed (a tern without an identity).
fn valid_fingerprint(bytes: &[u8]) -> bool {
    bytes.len() <= MAX_FINGERPRINT
        && bytes
            .iter()
            .all(|&b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'-')
}

/// A length byte, then the bytes (at most 255 of them).
fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DatagramError> {
        if self.0.len() < n {
            return Err(DatagramError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DatagramError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DatagramError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn short(&mut self) -> Result<&'a [u8], DatagramError> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
}

const _: () = assert!(HEADER_LEN + 12 + 1 + MAX_FINGERPRINT + 1 + 255 <= MAX_DATAGRAM);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn announce(name: &str) -> Announce {
        Announce {
            instance: 0x0123_4567_89ab_cdef,
            port: 9000,
            version: 2,
            caps: caps::FILES,
            interval: 30,
            fingerprint: "ABCD-EFGH-IJKL-MNOP-QR23".into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let bytes = Datagram::Announce(announce("ana")).encode();
        let mut want = b"tern\x01\x01".to_vec();
        want.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        want.extend_from_slice(&[0x23, 0x28, 0, 2, 0, 0, 0, 1, 0, 30, 24]);
        want.extend_from_slice(b"ABCD-EFGH-IJKL-MNOP-QR23");
        want.extend_from_slice(b"\x03ana");
        assert_eq!(bytes, want);
        let probe = Datagram::Probe { instance: 7 }.encode();
        assert_eq!(probe, b"tern\x01\x02\0\0\0\0\0\0\0\x07");
    }

    #[test]
    fn the_longest_name_still_fits_and_is_cut_at_a_character() {
        let long = "𝄞".repeat(500);
        let bytes = Datagram::Announce(announce(&long)).encode();
        assert!(bytes.len() <= MAX_DATAGRAM, "{}", bytes.len());
        let Ok(Datagram::Announce(back)) = Datagram::decode(&bytes) else {
            panic!("not an announce");
        };
        // 63 four-byte characters fill the 255 bytes a name may take.
        assert_eq!(back.name.chars().count(), 63);
        let long = "名".repeat(500);
        let bytes = Datagram::Announce(announce(&long)).encode();
        let Ok(Datagram::Announce(back)) = Datagram::decode(&bytes) else {
            panic!("not an announce");
        };
        assert_eq!(back.name.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn what_is_not_ours_is_refused_by_name() {
        let good = Datagram::Announce(announce("ana")).encode();
        assert_eq!(Datagram::decode(b"hello"), Err(DatagramError::NotTern));
        let mut other = good.clone();
        other[4] = 2;
        assert_eq!(Datagram::decode(&other), Err(DatagramError::Format(2)));
        let mut kind = good.clone();
        kind[5] = 9;
        assert_eq!(Datagram::decode(&kind), Err(DatagramError::Kind(9)));
        assert_eq!(
            Datagram::decode(&good[..good.len() - 1]),
            Err(DatagramError::Short)
        );
        let mut long = good.clone();
        long.resize(MAX_DATAGRAM + 1, 0);
        assert_eq!(
            Datagram::decode(&long),
            Err(DatagramError::TooLong(MAX_DATAGRAM + 1))
        );
        let mut escape = good.clone();
        let at = good
            .windows(4)
            .position(|w| w == b"ABCD")
            .expect("fingerprint");
        escape[at] = 0x1b;
        assert_eq!(Datagram::decode(&escape), Err(DatagramError::Fingerprint));
        let mut bad_name = good.clone();
        let last = bad_name.len() - 1;
        bad_name[last] = 0xff;
        assert_eq!(Datagram::decode(&bad_name), Err(DatagramError::Name));
    }

    #[test]
    fn later_fields_are_ignored() {
        let mut bytes = Datagram::Announce(announce("ana")).encode();
        bytes.extend_from_slice(b"\x05more");
        assert_eq!(
            Datagram::decode(&bytes),
            Ok(Datagram::Announce(announce("ana")))
        );
    }

    fn any_datagram() -> impl Strategy<Value = Datagram> {
        let announce = (
            any::<u64>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            "[A-Z2-7]{4}(-[A-Z2-7]{4}){0,4}",
            "\\PC{0,63}",
        )
            .prop_map(
                |(instance, port, version, caps, interval, fingerprint, name)| {
                    Datagram::Announce(Announce {
                        instance,
                        port,
                        version,
                        caps,
                        interval,
                        fingerprint,
                        name,
                    })
                },
            );
        prop_oneof![
            announce,
            any::<u64>().prop_map(|instance| Datagram::Probe { instance }),
            any::<u64>().prop_map(|instance| Datagram::Goodbye { instance }),
        ]
    }

    proptest! {
        #[test]
        fn every_datagram_round_trips_within_the_limit(d in any_datagram()) {
            let bytes = d.encode();
            prop_assert!(bytes.len() <= MAX_DATAGRAM);
            prop_assert_eq!(Datagram::decode(&bytes), Ok(d));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = Datagram::decode(&bytes);
        }

        #[test]
        fn any_bytes_after_the_magic_decode_or_fail_without_panic(
            rest in proptest::collection::vec(any::<u8>(), 0..600)
        ) {
            let mut bytes = b"tern\x01".to_vec();
            bytes.extend_from_slice(&rest);
            if let Ok(Datagram::Announce(a)) = Datagram::decode(&bytes) {
                prop_assert!(valid_fingerprint(a.fingerprint.as_bytes()));
                prop_assert!(a.name.chars().count() <= MAX_NAME_CHARS);
            }
        }
    }
}
