//! Bytes from a peer inside the encrypted channel: garbage, truncated records, records over the
//! limit, and honest records with bits flipped. The first byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    tern::harness::open_records(rest, pick % 2 == 0);
});
