//! tern: chat and move files between people on a LAN, many peers at once, a TCP connection each.
//!
//! Dependencies point one way:
//! `text ← protocol ← {crypto, transfer} ← session ← net ← {headless, tui, demo} ← main`,
//! with `history` beside `net`.
//!
//! - [`text`]: encodings (UTF-8, GBK) at the edge, cell widths.
//! - [`crypto`]: this machine's identity, the known peers, version 2's Noise handshake and
//!   records.
//! - [`protocol`]: the wire format: preamble, frames, codec; discovery's datagrams. No I/O.
//! - [`transfer`]: transfer states; reading files out, writing `.part` files in, safe names.
//! - [`session`]: one actor per connection, owning the socket; handles and events.
//! - [`net`]: the connection layer: the listener, dialling, every session by `PeerId`; LAN
//!   discovery (`net::discovery`).
//! - [`headless`]: `tern send` / `tern recv` / `tern peers`, driven by stdin and stdout.
//! - [`tui`]: the terminal UI: app state + update, views, the async loop.
//! - [`demo`]: a built-in peer for `tern demo`.
//! - [`history`]: conversations kept in SQLite, written off the session thread.
//! - [`harness`]: untrusted bytes into the decoder, a whole session and the record layer
//!   (fuzzing, properties).
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
