//! Who this machine is, and the encrypted channel of protocol version 2: all but [`stream`]
//! without I/O, bytes in and bytes out.
//!
//! - [`identity`]: the long-term key pair and the fingerprint people compare.
//! - [`known`]: the peers met, by key (trust on first use).
//! - [`noise`]: the Noise XX handshake (both static keys authenticated, the preambles bound in).
//! - [`record`]: the records everything travels in after it.
//! - [`stream`]: a byte stream through the records, for the session's codec to run on.

pub mod identity;
pub mod known;
pub mod noise;
pub mod record;
pub mod stream;

pub use identity::{ExpectedFingerprint, Fingerprint, Identity, IdentityError};
