//! The handshake from both sides and in both versions: the first byte picks the role and
//! whether the session encrypts (version 2, the default) or runs `--insecure` (version 1). As
//! listener the input follows tern's magic (so the version, the Noise messages or the Hello,
//! and what follows are what varies); as connector the input is the whole answer of the peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::harness::{Ended, Wire, feed_session};
use tern::protocol::MAGIC;
use tern::session::Role;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let wire = if pick & 2 == 0 { Wire::Bytes } else { Wire::Plain };
    let (role, input) = if pick % 2 == 0 {
        let mut input = MAGIC.to_vec();
        input.extend_from_slice(rest);
        (Role::Listener, input)
    } else {
        (Role::Connector, rest.to_vec())
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ended = tern::harness::block_on(feed_session(role, wire, input, dir.path()));
    assert_ne!(ended, Ended::Hung, "the session hung");
});
