//! The handshake of protocol version 2: `Noise_XX_25519_AESGCM_SHA256`, both static keys
//! authenticated, the two preambles bound in as the prologue (a peer cannot be talked into
//! another version, or into plaintext, without the handshake failing). No I/O: messages in,
//! messages out; the caller frames each with a 2-byte length, as records are.
//!
//! XX: `-> e`, `<- e, ee, s, es`, `-> s, se`. The connector is the initiator. After the third
//! message both sides know the other's static key, and the handshake hash, which both sides
//! share and no one in the middle can make equal on both ends, gives the short authentication
//! string people compare (`/verify`).

use snow::params::NoiseParams;

use super::identity::{Fingerprint, Identity};
use super::record::{Opener, Sealer};

/// The protocol: X25519, AES-GCM (hardware-accelerated through ring where the CPU has AES-NI
/// or ARMv8 crypto, as every machine tern targets does), SHA-256.
pub const PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Longest handshake message: the second, `e, ee, s, es` with an empty payload: 32 + 48 + 16.
pub const MAX_HANDSHAKE_MESSAGE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    #[error("the encrypted handshake failed: {0}")]
    Handshake(String),
    #[error("a handshake message out of turn")]
    OutOfTurn,
}

fn failed(e: snow::Error) -> NoiseError {
    NoiseError::Handshake(e.to_string())
}

/// What is bound into the handshake: the connector's preamble, then the listener's.
pub fn prologue(connector: &[u8], listener: &[u8]) -> Vec<u8> {
    let mut out = b"tern v2 prologue\0".to_vec();
    out.extend_from_slice(
        &u16::try_from(connector.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(connector);
    out.extend_from_slice(
        &u16::try_from(listener.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(listener);
    out
}

/// One side of the handshake in progress.
pub struct Handshake {
    state: snow::HandshakeState,
}

/// A finished handshake: the two record halves, and who the peer proved to be.
pub struct Secured {
    pub sealer: Sealer,
    pub opener: Opener,
    /// The peer's static public key.
    pub peer_key: [u8; 32],
    /// Both sides' handshake hash: equal on both ends only without a man in the middle.
    pub handshake_hash: [u8; 32],
}

impl Secured {
    pub fn peer_fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.peer_key)
    }

    /// The short authentication string both users read to each other: 6 digits in two groups
    /// (`123 456`), from the handshake hash. A man in the middle holds two handshakes with two
    /// hashes, so the two ends show different strings.
    pub fn authentication_string(&self) -> String {
        let digest = blake3::derive_key(
            "tern 2026-12 short authentication string",
            &self.handshake_hash,
        );
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
        format!("{:03} {:03}", n / 1000, n % 1000)
    }
}

impl Handshake {
    /// The connector's side.
    pub fn initiator(identity: &Identity, prologue: &[u8]) -> Result<Self, NoiseError> {
        Self::build(identity, prologue, true)
    }

    /// The listener's side.
    pub fn responder(identity: &Identity, prologue: &[u8]) -> Result<Self, NoiseError> {
        Self::build(identity, prologue, false)
    }

    fn build(identity: &Identity, prologue: &[u8], initiator: bool) -> Result<Self, NoiseError> {
        let params: NoiseParams = PARAMS.parse().map_err(failed)?;
        let builder = snow::Builder::new(params)
            .local_private_key(identity.private())
            .map_err(failed)?
            .prologue(prologue)
            .map_err(failed)?;
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(failed)?;
        Ok(Self { state })
    }

    /// Our turn to send.
    pub fn is_my_turn(&self) -> bool {
        !self.state.is_handshake_finished() && self.state.is_my_turn()
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// Our next message (no payload: `Hello` travels in the first record).
    pub fn write(&mut self) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        let mut message = vec![0u8; MAX_HANDSHAKE_MESSAGE];
        let n = self
            .state
            .write_message(&[], &mut message)
            .map_err(failed)?;
        message.truncate(n);
        Ok(message)
    }

    /// The peer's next message. A payload, which tern never sends in the handshake, is refused.
    pub fn read(&mut self, message: &[u8]) -> Result<(), NoiseError> {
        if self.is_my_turn() || self.is_finished() {
            return Err(NoiseError::OutOfTurn);
        }
        if message.len() > MAX_HANDSHAKE_MESSAGE {
            return Err(NoiseError::Handshake(format!(
                "a handshake message of {} bytes (at most {MAX_HANDSHAKE_MESSAGE})",
                message.len()
            )));
        }
        let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE];
        let n = self
            .state
            .read_message(message, &mut payload)
            .map_err(failed)?;
        if n != 0 {
            return Err(NoiseError::Handshake(
                "a handshake message with a payload".into(),
            ));
        }
        Ok(())
    }

    /// snow's own transport state, for a test that checks our records against it.
    #[cfg(test)]
    pub(crate) fn into_snow_transport(self) -> Result<snow::StatelessTransportState, NoiseError> {
        self.state.into_stateless_transport_mode().map_err(failed)
    }

    /// The keys for the records, once the handshake is over.
    pub fn finish(self) -> Result<Secured, NoiseError> {
        if !self.is_finished() {
            return Err(NoiseError::OutOfTurn);
        }
        let peer_key: [u8; 32] = self
            .state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| NoiseError::Handshake("the peer's key is missing".into()))?;
        let handshake_hash: [u8; 32] =
            self.state.get_handshake_hash().try_into().map_err(|_| {
                NoiseError::Handshake("a handshake hash of the wrong length".into())
            })?;
        let mut state = self.state;
        // The first key carries the initiator's records, the second the responder's.
        let (to_responder, to_initiator) = state.dangerously_get_raw_split();
        let (send, receive) = if state.is_initiator() {
            (to_responder, to_initiator)
        } else {
            (to_initiator, to_responder)
        };
        let (sealer, opener) = super::record::halves(&send, &receive)
            .map_err(|e| NoiseError::Handshake(e.to_string()))?;
        Ok(Secured {
            sealer,
            opener,
            peer_key,
            handshake_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::harness::handshake;

    #[test]
    fn both_sides_learn_the_others_key_and_agree_on_the_hash() -> anyhow::Result<()> {
        let (ana, bo) = (Identity::generate()?, Identity::generate()?);
        let p = prologue(b"conn", b"list");
        let (a, b) = handshake(&ana, &bo, (&p, &p))?;
        assert_eq!(&a.peer_key, bo.public());
        assert_eq!(&b.peer_key, ana.public());
        assert_eq!(a.peer_fingerprint(), bo.fingerprint());
        assert_eq!(a.handshake_hash, b.handshake_hash);
        assert_eq!(a.authentication_string(), b.authentication_string());
        let sas = a.authentication_string();
        assert!(sas.len() == 7 && sas.as_bytes()[3] == b' ', "{sas}");
        Ok(())
    }

    #[test]
    fn different_prologues_fail_the_handshake() -> anyhow::Result<()> {
        let (ana, bo) = (Identity::generate()?, Identity::generate()?);
        let ours = prologue(b"tern v2", b"tern v2");
        let downgraded = prologue(b"tern v1", b"tern v2");
        assert!(handshake(&ana, &bo, (&ours, &downgraded)).is_err());
        Ok(())
    }

    #[test]
    fn a_man_in_the_middle_is_seen_in_the_keys_and_the_string() -> anyhow::Result<()> {
        let (ana, bo, mallory) = (
            Identity::generate()?,
            Identity::generate()?,
            Identity::generate()?,
        );
        let p = prologue(b"c", b"l");
        // Mallory answers ana as the listener and dials bo as a connector: two handshakes.
        let (ana_side, _mallory_to_ana) = handshake(&ana, &mallory, (&p, &p))?;
        let (_mallory_to_bo, bo_side) = handshake(&mallory, &bo, (&p, &p))?;
        assert_ne!(
            &ana_side.peer_key,
            bo.public(),
            "ana sees mallory's key, not bo's"
        );
        assert_eq!(ana_side.peer_fingerprint(), mallory.fingerprint());
        assert_ne!(ana_side.handshake_hash, bo_side.handshake_hash);
        assert_ne!(
            ana_side.authentication_string(),
            bo_side.authentication_string(),
            "the strings read aloud differ"
        );
        Ok(())
    }

    #[test]
    fn a_tampered_message_fails_and_messages_out_of_turn_are_refused() -> anyhow::Result<()> {
        let (ana, bo) = (Identity::generate()?, Identity::generate()?);
        let p = prologue(b"c", b"l");
        let mut a = Handshake::initiator(&ana, &p)?;
        let mut b = Handshake::responder(&bo, &p)?;
        assert!(matches!(b.write(), Err(NoiseError::OutOfTurn)));
        b.read(&a.write()?)?;
        let mut second = b.write()?;
        let last = second.len() - 1;
        second[last] ^= 1;
        assert!(a.read(&second).is_err());
        assert!(a.read(&[0u8; MAX_HANDSHAKE_MESSAGE + 1]).is_err());
        Ok(())
    }
}
