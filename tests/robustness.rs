//! Untrusted bytes at every entry point, as property tests: the frame decoder, the listener's
//! handshake, and a whole receiving session fed arbitrary bytes or arbitrary sequences of valid
//! frames. Whatever arrives, the session ends cleanly (never hangs, never panics) and nothing is
//! written outside its download folder. The fuzz targets in fuzz/ drive the same entry points.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tern::harness::{Ended, Wire, decode_all, feed_session, hello_then};
use tern::protocol::codec::encode_frame;
use tern::protocol::{Frame, MAGIC};
use tern::session::Role;
use tern::text::Encoding;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Feed `input` to a session; it must end, and leave nothing beside its download folder.
fn ends_cleanly(role: Role, wire: Wire, input: Vec<u8>) -> Result<(), TestCaseError> {
    let base = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let inbox = base.path().join("inbox");
    std::fs::create_dir_all(&inbox).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ended = runtime().block_on(feed_session(role, wire, input, &inbox));
    prop_assert_ne!(ended, Ended::Hung);
    let beside: Vec<_> = std::fs::read_dir(base.path())
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "inbox")
        .collect();
    prop_assert!(
        beside.is_empty(),
        "written outside the download folder: {:?}",
        beside
    );
    Ok(())
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a.txt".to_string()),
        Just("dir/b.bin".to_string()),
        Just("../escape".to_string()),
        Just("/etc/passwd".to_string()),
        Just("C:\\x".to_string()),
        Just("报告.pdf".to_string()),
        Just("x\0y".to_string()),
        proptest::string::string_regex("[a-z./\\\\]{0,12}").expect("regex"),
    ]
}

/// Valid frames with small ids, so offers, chunks and ends meet each other.
fn transfer_frames() -> impl Strategy<Value = Frame> {
    let id = 0u32..4;
    let data = proptest::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from);
    prop_oneof![
        (id.clone(), 0u64..2000, names()).prop_map(|(id, size, path)| Frame::Offer {
            id,
            size,
            path
        }),
        (id.clone(), 0u64..3000, data.clone()).prop_map(|(id, offset, data)| Frame::Chunk {
            id,
            offset,
            data
        }),
        (id.clone(), any::<[u8; 32]>()).prop_map(|(id, hash)| Frame::FileEnd { id, hash }),
        (id.clone(), 0u64..100).prop_map(|(id, offset)| Frame::Accept { id, offset }),
        (id.clone(), any::<bool>()).prop_map(|(id, by_sender)| Frame::Cancel {
            id,
            by_sender,
            reason: "x".into()
        }),
        (id.clone(), any::<bool>()).prop_map(|(id, ok)| Frame::Verdict {
            id,
            ok,
            message: String::new()
        }),
        (id.clone(), ".{0,8}").prop_map(|(id, reason)| Frame::Reject { id, reason }),
        data.prop_map(|bytes| Frame::Text {
            encoding: Encoding::Gbk,
            bytes
        }),
        (id, 0u64..4000).prop_map(|(id, upto)| Frame::Credit { id, upto }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        Just(Frame::Hello {
            capabilities: 3,
            name: "again".into()
        }),
        Just(Frame::Bye {
            reason: String::new()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_all(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_listener_survives_any_bytes_after_the_magic(version in any::<u16>(), rest in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut input = MAGIC.to_vec();
        input.extend_from_slice(&version.to_be_bytes());
        input.extend_from_slice(&rest);
        ends_cleanly(Role::Listener, Wire::Bytes, input.clone())?;
        ends_cleanly(Role::Listener, Wire::Plain, input)?;
    }

    #[test]
    fn a_listener_survives_any_first_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        ends_cleanly(Role::Listener, Wire::Bytes, input.clone())?;
        ends_cleanly(Role::Listener, Wire::Plain, input)?;
    }

    #[test]
    fn a_connector_survives_any_answer(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        ends_cleanly(Role::Connector, Wire::Bytes, input.clone())?;
        ends_cleanly(Role::Connector, Wire::Plain, input)?;
    }

    #[test]
    fn a_session_survives_any_bytes_after_the_handshake(rest in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ends_cleanly(Role::Listener, Wire::Plain, hello_then(&rest))?;
    }

    #[test]
    fn a_session_survives_any_bytes_inside_the_encrypted_channel(rest in proptest::collection::vec(any::<u8>(), 0..2048)) {
        ends_cleanly(Role::Listener, Wire::Sealed, rest)?;
    }

    #[test]
    fn a_session_survives_any_sequence_of_valid_frames(frames in proptest::collection::vec(transfer_frames(), 0..24)) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            encode_frame(frame, &mut wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        ends_cleanly(Role::Listener, Wire::Sealed, wire.to_vec())?;
    }
}
