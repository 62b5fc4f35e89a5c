//! A whole receiving session: a valid handshake, then arbitrary bytes where frames should be,
//! accepted offers writing into a temporary folder. The first byte picks the channel: the
//! frames inside records after an honest encrypted handshake, or in clear (`--insecure`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::harness::{Ended, Wire, feed_session, hello_then};
use tern::session::Role;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let (wire, input) = if pick % 2 == 0 {
        (Wire::Sealed, data.to_vec())
    } else {
        (Wire::Plain, hello_then(data))
    };
    let base = tempfile::tempdir().expect("temp dir");
    let inbox = base.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let ended = tern::harness::block_on(feed_session(Role::Listener, wire, input, &inbox));
    assert_ne!(ended, Ended::Hung, "the session hung");
    let beside = std::fs::read_dir(base.path()).expect("list").count();
    assert_eq!(
        beside, 1,
        "something was written outside the download folder"
    );
});
