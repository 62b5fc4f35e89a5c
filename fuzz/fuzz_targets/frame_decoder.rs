//! Arbitrary bytes into the frame decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern::harness::decode_all(data);
});
