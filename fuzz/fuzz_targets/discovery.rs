//! Arbitrary bytes as a discovery datagram: decoding never panics, and what decodes encodes
//! back to a datagram that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::protocol::discovery::Datagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = Datagram::decode(data) {
        let again = datagram.encode();
        assert!(again.len() <= tern::protocol::discovery::MAX_DATAGRAM);
        assert_eq!(Datagram::decode(&again).ok(), Some(datagram));
    }
});
