//! The handshake from both sides: the first byte picks the role. As listener the input follows
//! tern's magic (so the version, Hello and what follows are what varies); as connector the
//! input is the whole answer of the peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::harness::{Ended, feed_session};
use tern::protocol::MAGIC;
use tern::session::Role;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (role, input) = if pick % 2 == 0 {
        let mut input = MAGIC.to_vec();
        input.extend_from_slice(rest);
        (Role::Listener, input)
    } else {
        (Role::Connector, rest.to_vec())
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ended = tern::harness::block_on(feed_session(role, input, dir.path()));
    assert_ne!(ended, Ended::Hung, "the session hung");
});
