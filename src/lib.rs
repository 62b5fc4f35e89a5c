//! tern: chat and move files between two machines over one TCP connection.
//!
//! Dependencies point one way: `text ← protocol ← transfer ← session ← {headless, tui, demo} ← main`.
//!
//! - [`text`]: encodings (UTF-8, GBK) at the edge, cell widths.
//! - [`crypto`]: this machine's identity (key pair, fingerprint).
//! - [`protocol`]: the wire format: preamble, frames, codec. No I/O.
//! - [`transfer`]: transfer states; reading files out, writing `.part` files in, safe names.
//! - [`session`]: one actor per connection, owning the socket; handles and events.
//! - [`net`]: the connection layer: the listener, dialling, every session by `PeerId`.
//! - [`headless`]: `tern send` / `tern recv`, driven by stdin and stdout.
//! - [`tui`]: the terminal UI: app state + update, views, the async loop.
//! - [`demo`]: a built-in peer for `tern demo`.
//! - [`harness`]: untrusted bytes into the decoder and a whole session (fuzzing, properties).
//! - [`cli`]: the command-line contract.
//! - [`platform`]: what differs between Linux, macOS and Windows, one module per concern.

pub mod cli;
pub mod crypto;
pub mod demo;
pub mod harness;
pub mod headless;
pub mod history;
pub mod logging;
pub mod net;
pub mod platform;
pub mod protocol;
pub mod session;
pub mod text;
pub mod transfer;
pub mod tui;
