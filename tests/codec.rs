//! The frame codec on hard cases: every split point, several frames per read, truncation,
//! oversize and unknown frames, and property tests (round trip; arbitrary bytes never panic).

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tern::protocol::codec::{ChunkHead, chunk_head, encode_frame};
use tern::protocol::{Frame, FrameCodec, MAX_FRAME_LEN, ProtocolError};
use tern::text::Encoding;
use tokio_util::codec::{Decoder, Encoder};

fn samples() -> Vec<Frame> {
    vec![
        Frame::Hello {
            capabilities: 1,
            name: "小黑@laptop".into(),
        },
        Frame::Text {
            encoding: Encoding::Gbk,
            bytes: Bytes::from(tern::text::encode("你好服务端", Encoding::Gbk)),
        },
        Frame::Text {
            encoding: Encoding::Utf8,
            bytes: Bytes::new(),
        },
        Frame::Offer {
            id: 7,
            size: u64::MAX,
            path: "photos/2024/我的 照片.jpg".into(),
        },
        Frame::Accept { id: 7, offset: 0 },
        Frame::Reject {
            id: 8,
            reason: "no thanks".into(),
        },
        Frame::Chunk {
            id: 7,
            offset: 1 << 40,
            data: Bytes::from(vec![0xab; 3000]),
        },
        Frame::FileEnd {
            id: 7,
            hash: [9; 32],
        },
        Frame::Verdict {
            id: 7,
            ok: false,
            message: "BLAKE3 mismatch".into(),
        },
        Frame::Cancel {
            id: 7,
            by_sender: true,
            reason: String::new(),
        },
        Frame::Credit {
            id: 7,
            upto: 2 << 20,
        },
        Frame::Ping { nonce: 42 },
        Frame::Pong { nonce: 42 },
        Frame::Bye {
            reason: "bye".into(),
        },
        Frame::Rename {
            name: "小黑".into(),
        },
    ]
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        FrameCodec
            .encode(f, &mut buf)
            .expect("sample frames encode");
    }
    buf
}

/// Feed `wire` to a decoder in pieces cut at `cuts`, collecting every frame.
fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Result<Vec<Frame>, ProtocolError> {
    let mut codec = FrameCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        buf.extend_from_slice(&wire[start..cut]);
        start = cut;
        while let Some(frame) = codec.decode(&mut buf)? {
            out.push(frame);
        }
    }
    assert!(buf.is_empty(), "bytes left over after the last frame");
    Ok(out)
}

#[test]
fn every_frame_survives_a_split_at_every_byte() {
    for frame in samples() {
        let wire = encode_all(std::slice::from_ref(&frame));
        for cut in 0..=wire.len() {
            let got = decode_in_pieces(&wire, &[cut]).expect("valid frame");
            assert_eq!(got, vec![frame.clone()], "split at {cut}");
        }
    }
}

#[test]
fn several_frames_in_one_read_all_come_out_in_order() {
    let frames = samples();
    let wire = encode_all(&frames);
    assert_eq!(decode_in_pieces(&wire, &[]).expect("valid"), frames);
}

#[test]
fn byte_at_a_time_decoding_gives_the_same_frames() {
    let frames = samples();
    let wire = encode_all(&frames);
    let cuts: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(decode_in_pieces(&wire, &cuts).expect("valid"), frames);
}

#[test]
fn a_stream_ending_mid_frame_is_an_error_at_eof() {
    let wire = encode_all(&[Frame::Ping { nonce: 1 }]);
    let mut codec = FrameCodec;
    let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    // tokio-util reports leftover bytes at EOF as an error.
    assert!(codec.decode_eof(&mut buf).is_err());
}

#[test]
fn an_oversize_length_is_refused_before_allocating() {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    buf.put_u8(0x13);
    let err = FrameCodec.decode(&mut buf).expect_err("oversize must fail");
    assert!(matches!(err, ProtocolError::FrameTooLarge { .. }), "{err}");
    assert!(
        buf.capacity() < 1024 * 1024,
        "reserved {} bytes",
        buf.capacity()
    );

    let mut buf = BytesMut::new();
    buf.put_u32((MAX_FRAME_LEN + 1) as u32);
    assert!(FrameCodec.decode(&mut buf).is_err());
}

#[test]
fn an_unknown_tag_is_an_error() {
    let mut buf = BytesMut::new();
    buf.put_u32(1);
    buf.put_u8(0x7e);
    let err = FrameCodec.decode(&mut buf).expect_err("unknown tag");
    assert!(matches!(err, ProtocolError::UnknownTag(0x7e)), "{err}");
}

#[test]
fn a_zero_length_frame_is_an_error() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
    assert!(FrameCodec.decode(&mut buf).is_err());
}

#[test]
fn short_and_long_bodies_are_errors() {
    // Accept needs 12 body bytes.
    let mut buf = BytesMut::new();
    buf.put_u32(1 + 11);
    buf.put_u8(0x11);
    buf.put_slice(&[0; 11]);
    assert!(FrameCodec.decode(&mut buf).is_err());
    let mut buf = BytesMut::new();
    buf.put_u32(1 + 13);
    buf.put_u8(0x11);
    buf.put_slice(&[0; 13]);
    assert!(FrameCodec.decode(&mut buf).is_err());
}

#[test]
fn an_unknown_encoding_label_is_an_error() {
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    buf.put_u8(0x02);
    buf.put_u8(9);
    buf.put_u8(b'a');
    assert!(matches!(
        FrameCodec.decode(&mut buf),
        Err(ProtocolError::UnknownEncoding(9))
    ));
}

#[test]
fn a_string_too_long_for_its_field_is_refused_and_leaves_the_buffer_intact() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let frame = Frame::Offer {
        id: 1,
        size: 1,
        path: "x".repeat(70_000),
    };
    assert!(encode_frame(&frame, &mut buf).is_err());
    assert_eq!(&buf[..], b"keep");
}

fn arb_string() -> impl Strategy<Value = String> {
    proptest::string::string_regex(".{0,40}").expect("valid regex")
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Bytes::from);
    prop_oneof![
        (any::<u32>(), arb_string())
            .prop_map(|(capabilities, name)| Frame::Hello { capabilities, name }),
        (any::<bool>(), bytes.clone()).prop_map(|(gbk, bytes)| Frame::Text {
            encoding: if gbk { Encoding::Gbk } else { Encoding::Utf8 },
            bytes
        }),
        (any::<u32>(), any::<u64>(), arb_string()).prop_map(|(id, size, path)| Frame::Offer {
            id,
            size,
            path
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(id, offset)| Frame::Accept { id, offset }),
        (any::<u32>(), arb_string()).prop_map(|(id, reason)| Frame::Reject { id, reason }),
        (any::<u32>(), any::<u64>(), bytes).prop_map(|(id, offset, data)| Frame::Chunk {
            id,
            offset,
            data
        }),
        (any::<u32>(), any::<[u8; 32]>()).prop_map(|(id, hash)| Frame::FileEnd { id, hash }),
        (any::<u32>(), any::<bool>(), arb_string()).prop_map(|(id, ok, message)| Frame::Verdict {
            id,
            ok,
            message
        }),
        (any::<u32>(), any::<bool>(), arb_string()).prop_map(|(id, by_sender, reason)| {
            Frame::Cancel {
                id,
                by_sender,
                reason,
            }
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(id, upto)| Frame::Credit { id, upto }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        arb_string().prop_map(|reason| Frame::Bye { reason }),
        arb_string().prop_map(|name| Frame::Rename { name }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(arb_frame(), 1..6), cut in any::<prop::sample::Index>()) {
        let wire = encode_all(&frames);
        let cut = cut.index(wire.len() + 1);
        let got = decode_in_pieces(&wire, &[cut]).expect("encoded frames decode");
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut codec = FrameCodec;
        let mut buf = BytesMut::from(&bytes[..]);
        // Decode until it needs more, fails, or runs out; any of those is fine, a panic is not.
        for _ in 0..bytes.len() + 1 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn arbitrary_bodies_after_a_valid_header_never_panic(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32 + 1);
        buf.put_u8(tag);
        buf.put_slice(&body);
        let _ = FrameCodec.decode(&mut buf);
    }

    #[test]
    fn chunk_head_names_exactly_the_chunks_still_arriving(frame in arb_frame(), cut in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        encode_frame(&frame, &mut wire).expect("encodes");
        let cut = cut.index(wire.len() + 1);
        let head = chunk_head(&wire[..cut]).expect("a valid frame's prefix is not an error");
        let expected = match &frame {
            Frame::Chunk { id, offset, data } if cut >= 17 && cut < wire.len() => Some(ChunkHead {
                id: *id,
                offset: *offset,
                data_len: data.len(),
            }),
            _ => None,
        };
        prop_assert_eq!(head, expected);
    }

    #[test]
    fn chunk_head_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = chunk_head(&bytes);
    }
}

/// The tag byte of a `Chunk`, as the encoder writes it.
fn chunk_tag() -> u8 {
    let mut wire = BytesMut::new();
    let empty = Frame::Chunk {
        id: 0,
        offset: 0,
        data: Bytes::new(),
    };
    encode_frame(&empty, &mut wire).expect("encodes");
    wire[4]
}

#[test]
fn chunk_head_refuses_what_decode_refuses() {
    let mut oversize = BytesMut::new();
    oversize.put_u32(MAX_FRAME_LEN as u32 + 1);
    oversize.put_u8(chunk_tag());
    oversize.put_slice(&[0; 12]);
    assert!(matches!(
        chunk_head(&oversize),
        Err(ProtocolError::FrameTooLarge { .. })
    ));

    let mut too_much_data = BytesMut::new();
    too_much_data.put_u32(13 + 1024 * 1024 + 1);
    too_much_data.put_u8(chunk_tag());
    too_much_data.put_slice(&[0; 12]);
    assert!(chunk_head(&too_much_data).is_err());
    let mut codec = FrameCodec;
    let mut whole = too_much_data.clone();
    whole.resize(4 + 13 + 1024 * 1024 + 1, 0);
    assert!(codec.decode(&mut whole).is_err());
}
