//! permessage-deflate in the state machine (RFC 7692): RSV1 rules, inflating
//! whole and fragmented messages within the limits, compressing what is sent,
//! and which contexts a connection holds.

use super::support::*;
use crate::core::deflate::backend::{new_decompressor, DeflateSettings};
use crate::core::deflate::{DeflateParams, PerMessageDeflate};
use crate::core::*;

const RSV1: u8 = 0x40;

const SHARED: DeflateParams = DeflateParams {
    server_no_context_takeover: true,
    client_no_context_takeover: true,
    server_max_window_bits: None,
    client_max_window_bits: None,
};

const TAKEOVER: DeflateParams = DeflateParams {
    server_no_context_takeover: false,
    client_no_context_takeover: false,
    server_max_window_bits: None,
    client_max_window_bits: None,
};

fn deflate_server(params: DeflateParams, limits: Limits) -> WebSocket {
    WebSocket::server(limits).with_deflate(PerMessageDeflate::new(
        Role::Server,
        &params,
        DeflateSettings::default(),
        16,
    ))
}

fn deflate_client(params: DeflateParams) -> WebSocket {
    client().with_deflate(PerMessageDeflate::new(
        Role::Client,
        &params,
        DeflateSettings::default(),
        0,
    ))
}

/// Inflates a payload as an independent receiver would: the tail appended, a
/// fresh raw-DEFLATE stream with a `window_bits` window.
fn inflate_raw(payload: &[u8], window_bits: u8) -> Vec<u8> {
    let mut d = new_decompressor(window_bits).unwrap();
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::new();
    let mut rest = &input[..];
    loop {
        let step = d
            .inflate(rest, &mut out, 1 << 16)
            .expect("valid deflate data");
        rest = &rest[step.consumed..];
        if rest.is_empty() && out.capacity() > out.len() || step.ended {
            return out;
        }
    }
}

#[test]
fn the_rfc_7692_examples_inflate_whole_and_fragmented() {
    // §7.2.3.1: "Hello" in one compressed frame.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut ws = deflate_server(SHARED, Limits::default());
    let out = drive_bytewise(&mut ws, &cf(FIN | RSV1 | TEXT, &hello));
    assert_eq!(out.error, None);
    assert_eq!(out.events, vec![text("Hello")]);
    // §7.2.3.2: the same split over two frames; RSV1 on the first only.
    let mut input = cf(RSV1 | TEXT, &hello[..3]);
    input.extend(cf(FIN | CONT, &hello[3..]));
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.events, vec![text("Hello")]);
    // An uncompressed message (RSV1 clear) is still just a message.
    let out = drive_whole(&mut ws, &cf(FIN | TEXT, b"plain"));
    assert_eq!(out.events, vec![text("plain")]);
}

#[test]
fn an_empty_compressed_message_is_an_empty_message() {
    let mut ws = deflate_server(SHARED, Limits::default());
    let out = drive_whole(&mut ws, &cf(FIN | RSV1 | BIN, &[0x00]));
    assert_eq!(out.events, vec![binary(b"")]);
    let out = drive_whole(&mut ws, &cf(FIN | RSV1 | TEXT, &[]));
    assert_eq!(out.events, vec![text("")]);
}

#[test]
fn rsv1_outside_a_first_data_frame_is_a_protocol_error() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let cases: Vec<(Vec<u8>, u8)> = vec![
        // On a continuation frame.
        ([cf(TEXT, b"a"), cf(FIN | RSV1 | CONT, b"b")].concat(), 4),
        // On control frames.
        (cf(FIN | RSV1 | PING, b""), 4),
        (cf(FIN | RSV1 | CLOSE, &close_payload(1000, b"")), 4),
        // RSV2 and RSV3 stay reserved.
        (cf(FIN | 0x20 | TEXT, &hello), 2),
        (cf(FIN | 0x60 | TEXT, &hello), 6),
    ];
    for (input, rsv) in cases {
        let mut ws = deflate_server(SHARED, Limits::default());
        let out = drive_whole(&mut ws, &input);
        assert_failed(&ws, &out, ProtocolError::ReservedBitsSet { rsv }, 1002);
    }
    // Without the extension, RSV1 is reserved like the others.
    let mut ws = server();
    let out = drive_whole(&mut ws, &cf(FIN | RSV1 | TEXT, &hello));
    assert_failed(&ws, &out, ProtocolError::ReservedBitsSet { rsv: 4 }, 1002);
}

#[test]
fn a_compression_bomb_is_closed_with_1009_at_the_limit() {
    let limits = Limits {
        max_frame_size: 1 << 20,
        max_message_size: 1 << 20,
    };
    let mut sender = deflate_client(SHARED);
    let mut wire = Vec::new();
    sender
        .send(MessageKind::Binary, &vec![0u8; 64 << 20], &mut wire)
        .unwrap();
    // Under the frame limit on the wire, 64 times the message limit inflated.
    assert!(
        wire.len() < 1 << 20,
        "64 MiB of zeros: {} bytes",
        wire.len()
    );
    let mut ws = deflate_server(SHARED, limits);
    let out = drive_whole(&mut ws, &wire);
    let Some(ProtocolError::MessageTooBig { len, max }) = out.error.clone() else {
        panic!("{:?}", out.error)
    };
    assert_eq!(max, 1 << 20);
    assert!(len <= (1 << 20) + 1, "stopped at the limit, not at {len}");
    assert_failed(&ws, &out, ProtocolError::MessageTooBig { len, max }, 1009);
}

#[test]
fn inflated_text_must_be_utf8_and_data_must_be_deflate() {
    let mut sender = deflate_client(SHARED);
    let mut wire = Vec::new();
    // Compressed by the core's own sender as text: the receiver must catch it.
    sender
        .send(MessageKind::Text, b"caf\xc3", &mut wire)
        .unwrap();
    let mut ws = deflate_server(SHARED, Limits::default());
    let out = drive_whole(&mut ws, &wire);
    assert_failed(&ws, &out, ProtocolError::InvalidUtf8, 1007);

    let mut ws = deflate_server(SHARED, Limits::default());
    let out = drive_whole(&mut ws, &cf(FIN | RSV1 | BIN, &[0xff, 0xff, 0xff, 0xff]));
    assert_failed(&ws, &out, ProtocolError::InvalidCompressedData, 1007);
}

#[test]
fn sent_messages_are_compressed_from_the_threshold_on() {
    let mut ws = deflate_server(SHARED, Limits::default());
    let long = "{\"user\":\"ada\",\"text\":\"hello hello hello hello\"}".repeat(10);
    let mut out = Vec::new();
    ws.send(MessageKind::Text, b"short", &mut out).unwrap();
    ws.send(MessageKind::Text, long.as_bytes(), &mut out)
        .unwrap();
    let owned = ws
        .send_owned(MessageKind::Binary, long.clone().into_bytes())
        .unwrap();
    out.extend_from_slice(owned.head.as_bytes());
    out.extend_from_slice(&owned.payload);
    let frames = sent_frames(&out);
    assert_eq!(frames.len(), 3);
    assert_eq!((frames[0].rsv, &frames[0].payload[..]), (0, &b"short"[..]));
    for f in &frames[1..] {
        assert_eq!(f.rsv, 4, "RSV1 on a compressed message");
        assert!(f.payload.len() < long.len() / 4);
        assert_eq!(inflate_raw(&f.payload, 15), long.as_bytes());
    }
}

#[test]
fn shared_frames_match_what_each_connection_would_send() {
    let ws = deflate_server(SHARED, Limits::default());
    let long = vec![b'x'; 1000];
    let Some(encoding) = ws.shared_encoding(long.len()) else {
        panic!("no context takeover: shared frames allowed")
    };
    assert!(matches!(encoding, Encoding::Deflate(_)));
    assert_eq!(ws.shared_encoding(3), Some(Encoding::Plain));
    let frame = encode_shared(encoding, MessageKind::Binary, &long);
    let sent = sent_frames(&frame);
    assert_eq!(sent[0].rsv, 4);
    assert_eq!(inflate_raw(&sent[0].payload, 15), long);
    // A compressor with history of its own never takes a shared frame.
    let dedicated = deflate_server(TAKEOVER, Limits::default());
    assert_eq!(dedicated.shared_encoding(long.len()), None);
    assert_eq!(dedicated.shared_encoding(3), Some(Encoding::Plain));
}

#[test]
fn context_takeover_carries_history_and_holds_memory_only_when_agreed() {
    for (params, keeps_history) in [(TAKEOVER, true), (SHARED, false)] {
        let mut client = deflate_client(params);
        let mut server = deflate_server(params, Limits::default());
        let message = "{\"type\":\"chat\",\"text\":\"the same words again\"}".repeat(4);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut wire = Vec::new();
            client
                .send(MessageKind::Text, message.as_bytes(), &mut wire)
                .unwrap();
            sizes.push(wire.len());
            let out = drive_whole(&mut server, &wire);
            assert_eq!(out.events, vec![text(&message)]);
            let mut back = Vec::new();
            server
                .send(MessageKind::Text, message.as_bytes(), &mut back)
                .unwrap();
            let out = drive_whole(&mut client, &back);
            assert_eq!(out.events, vec![text(&message)]);
        }
        assert_eq!(
            sizes[1] < sizes[0],
            keeps_history,
            "a repeat is cheaper only with history: {sizes:?}"
        );
        let holds = server.deflate().is_some_and(|d| d.holds_contexts());
        assert_eq!(holds, keeps_history, "{params:?}");
    }
}

#[test]
fn a_server_told_eight_bits_writes_what_an_eight_bit_window_reads() {
    let params = DeflateParams {
        server_max_window_bits: Some(8),
        ..SHARED
    };
    let mut ws = deflate_server(params, Limits::default());
    let message: Vec<u8> = (0..5000u32)
        .flat_map(|i| {
            format!(
                "row {:04} | {}\n",
                i % 200,
                "abcdefgh".repeat(1 + i as usize % 5)
            )
            .into_bytes()
        })
        .collect();
    let mut out = Vec::new();
    ws.send(MessageKind::Binary, &message, &mut out).unwrap();
    let frames = sent_frames(&out);
    assert_eq!(frames[0].rsv, 4);
    assert!(frames[0].payload.len() < message.len() / 3);
    assert_eq!(inflate_raw(&frames[0].payload, 8), message);
}
