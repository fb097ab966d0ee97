//! The RFC 6455 §1.3 and §5.7 examples as test vectors.

use crate::core::*;

/// The masking key used by the §5.7 masked examples.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn read_all(ws: &mut WebSocket, input: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut pos = 0;
    loop {
        let n = ws.handle_read(&input[pos..]).expect("valid input");
        pos += n;
        match ws.poll_event() {
            Some(e) => events.push(e),
            None if n == 0 || pos == input.len() => break,
            None => {}
        }
    }
    events
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
    let mut ws = WebSocket::client(Limits::default(), 7);
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
