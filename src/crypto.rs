//! Who this machine is, cryptographically: its long-term key pair and the fingerprint people
//! compare. (The Noise handshake and the record layer come here next: no sockets, bytes in and
//! out.)

pub mod identity;

pub use identity::{Fingerprint, Identity, IdentityError};
