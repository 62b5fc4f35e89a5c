//! Version 2's Noise handshake fed untrusted messages, on both sides.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern::harness::handshake_messages(data);
});
