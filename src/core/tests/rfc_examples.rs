//! The RFC 6455 §1.3 and §5.7 examples as test vectors, checked both ways: the
//! core decodes the RFC's bytes and encodes the RFC's bytes. Must never open a socket.

use crate::core::*;

/// The masking key used by the §5.7 masked examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn read_all(ws: &mut WebSocket, input: &[u8]) -> Vec<Event> {
    let n = ws.handle_read(input).expect("valid input");
    assert_eq!(n, input.len());
    std::iter::from_fn(|| ws.poll_event()).collect()
}

#[test]
fn accept_key_matches_rfc_example() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn masked_hello_from_client_is_a_text_message() {
    let mut ws = WebSocket::server(Limits::default());
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let events = read_all(&mut ws, &frame);
    assert_eq!(
        events,
        vec![Event::Message(Message {
            kind: MessageKind::Text,
            data: b"Hello".to_vec()
        })]
    );
    let mut masked = Vec::new();
    encode_frame(&mut masked, true, OpCode::Text, b"Hello", Some(KEY));
    assert_eq!(masked, frame);
}

#[test]
fn unmasked_hello_from_server_is_a_text_message() {
    let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut ws = WebSocket::client(Limits::default(), [7; 32]);
    let events = read_all(&mut ws, &frame);
    assert_eq!(
        events,
        vec![Event::Message(Message {
            kind: MessageKind::Text,
            data: b"Hello".to_vec()
        })]
    );
    let mut out = Vec::new();
    WebSocket::server(Limits::default())
        .send(MessageKind::Text, b"Hello", &mut out)
        .unwrap();
    assert_eq!(out, frame);
}

#[test]
fn fragmented_unmasked_hello_is_one_text_message() {
    let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
    let second = [0x80, 0x02, 0x6c, 0x6f];
    let mut ws = WebSocket::client(Limits::default(), [7; 32]);
    assert_eq!(read_all(&mut ws, &first), vec![]);
    assert_eq!(
        read_all(&mut ws, &second),
        vec![Event::Message(Message {
            kind: MessageKind::Text,
            data: b"Hello".to_vec()
        })]
    );
    let mut out = Vec::new();
    encode_frame(&mut out, false, OpCode::Text, b"Hel", None);
    encode_frame(&mut out, true, OpCode::Continuation, b"lo", None);
    assert_eq!(out, [&first[..], &second[..]].concat());
}

#[test]
fn unmasked_ping_is_answered_with_a_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut ws = WebSocket::client(Limits::default(), [7; 32]);
    assert_eq!(
        read_all(&mut ws, &ping),
        vec![Event::Ping(b"Hello".to_vec())]
    );
    let mut pong = Vec::new();
    ws.poll_transmit(&mut pong);
    // The client picks its own key; with it, the pong is the §5.7 pong.
    assert_eq!(pong.len(), 11);
    assert_eq!(pong[..2], [0x8a, 0x85]);
    let key = [pong[2], pong[3], pong[4], pong[5]];
    let mut expected = Vec::new();
    encode_frame(&mut expected, true, OpCode::Pong, b"Hello", Some(key));
    assert_eq!(pong, expected);

    // The §5.7 masked pong, byte for byte, is what a server reads as a pong.
    let rfc_pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut encoded = Vec::new();
    encode_frame(&mut encoded, true, OpCode::Pong, b"Hello", Some(KEY));
    assert_eq!(encoded, rfc_pong);
    let mut server = WebSocket::server(Limits::default());
    assert_eq!(
        read_all(&mut server, &rfc_pong),
        vec![Event::Pong(b"Hello".to_vec())]
    );
    assert!(!server.has_transmit());
}

#[test]
fn binary_of_256_bytes_uses_a_16_bit_length() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    WebSocket::server(Limits::default())
        .send(MessageKind::Binary, &payload, &mut out)
        .unwrap();
    assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(&out[4..], &payload[..]);
    let mut ws = WebSocket::client(Limits::default(), [7; 32]);
    assert_eq!(
        read_all(&mut ws, &out),
        vec![Event::Message(Message {
            kind: MessageKind::Binary,
            data: payload
        })]
    );
}

#[test]
fn binary_of_64_kib_uses_a_64_bit_length() {
    let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    WebSocket::server(Limits::default())
        .send(MessageKind::Binary, &payload, &mut out)
        .unwrap();
    assert_eq!(
        out[..10],
        [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
    );
    assert_eq!(&out[10..], &payload[..]);
    let mut ws = WebSocket::client(Limits::default(), [7; 32]);
    assert_eq!(
        read_all(&mut ws, &out),
        vec![Event::Message(Message {
            kind: MessageKind::Binary,
            data: payload
        })]
    );
}
