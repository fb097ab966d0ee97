//! Reading whole messages in place (`WebSocket::read_in_place`) beside the
//! event queue (`handle_read`): the caller may mix the two, and whatever it
//! does the peer's messages, replies and errors come out exactly as through
//! the queue alone. Declined input is left untouched.
//!
//! These tests must never open a socket or read a clock.

use proptest::collection::vec;
use proptest::prelude::*;

use super::support::*;
use crate::core::*;

/// Drives `ws` as the server does: whole messages at the front of the buffer
/// in place, the rest through `handle_read`, with the same bookkeeping as
/// [`drive`] so the two outcomes compare directly.
fn drive_in_place<'a>(ws: &mut WebSocket, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut out = Outcome::default();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        while let Some((kind, data, n)) = ws.read_in_place(&mut buf[pos..]) {
            let data = data.to_vec();
            out.events.push(Event::Message(Message { kind, data }));
            pos += n;
        }
        let result = ws.handle_read(&buf[pos..]);
        while let Some(e) = ws.poll_event() {
            out.events.push(e);
            ws.poll_transmit(&mut out.transmit);
        }
        ws.poll_transmit(&mut out.transmit);
        match result {
            Ok(n) => {
                buf.drain(..pos + n);
            }
            Err(e) => {
                // After an error the input is dead; what is left is not compared.
                out.error = Some(e);
                return out;
            }
        }
    }
    out.leftover = buf;
    out
}

#[test]
fn a_whole_masked_message_is_unmasked_where_it_lies() {
    let mut ws = server();
    let mut input = cf(FIN | TEXT, b"hello");
    input.extend(cf(FIN | BIN, &[1, 2, 3]));
    let (kind, data, n) = ws.read_in_place(&mut input).unwrap();
    assert_eq!((kind, data, n), (MessageKind::Text, &b"hello"[..], 11));
    let (kind, data, n) = ws.read_in_place(&mut input[11..]).unwrap();
    assert_eq!((kind, data, n), (MessageKind::Binary, &[1u8, 2, 3][..], 9));
    assert_eq!(ws.read_in_place(&mut []), None);
}

#[test]
fn a_client_reads_unmasked_server_messages_in_place() {
    let mut ws = client();
    let mut input = sf(FIN | BIN, &[9; 200]);
    let (kind, data, n) = ws.read_in_place(&mut input).unwrap();
    assert_eq!(
        (kind, data.len(), n),
        (MessageKind::Binary, 200, input.len())
    );
}

#[test]
fn everything_else_is_declined_and_left_as_it_was() {
    let big = Limits {
        max_frame_size: 8,
        max_message_size: 8,
    };
    let cases: Vec<(&str, WebSocket, Vec<u8>)> = vec![
        ("a first fragment", server(), cf(TEXT, b"hel")),
        ("a continuation", server(), cf(FIN, b"lo")),
        ("a ping", server(), cf(FIN | PING, b"p")),
        (
            "a close",
            server(),
            cf(FIN | CLOSE, &close_payload(1000, b"")),
        ),
        ("RSV1 without deflate", server(), cf(FIN | 0x40 | BIN, b"x")),
        ("an unmasked client frame", server(), sf(FIN | BIN, b"x")),
        ("a masked server frame", client(), cf(FIN | BIN, b"x")),
        (
            "over the frame limit",
            WebSocket::server(big),
            cf(FIN | BIN, &[0; 9]),
        ),
        (
            "a partial payload",
            server(),
            cf(FIN | BIN, b"abc")[..8].to_vec(),
        ),
        (
            "a partial header",
            server(),
            cf(FIN | BIN, b"abc")[..3].to_vec(),
        ),
        ("invalid UTF-8", server(), cf(FIN | TEXT, b"ok \xff")),
        (
            "text cut inside a character",
            server(),
            cf(FIN | TEXT, &"é".as_bytes()[..1]),
        ),
    ];
    for (what, mut ws, input) in cases {
        let mut copy = input.clone();
        assert_eq!(ws.read_in_place(&mut copy), None, "{what}");
        assert_eq!(copy, input, "{what}: the bytes were changed");
    }
}

#[test]
fn invalid_utf8_still_fails_with_1007_through_the_queue() {
    let mut input = cf(FIN | TEXT, b"fine");
    input.extend(cf(FIN | TEXT, b"bad \xc3\x28"));
    let out = drive_in_place(&mut server(), [input.as_slice()]);
    assert_eq!(out.events, vec![text("fine")]);
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
    assert_eq!(sent_frames(&out.transmit)[0].close_code(), Some(1007));
}

#[test]
fn nothing_is_read_in_place_while_the_queue_holds_something() {
    let mut ws = server();
    let mut first = cf(BIN, b"par");
    assert_eq!(ws.read_in_place(&mut first), None);
    assert_eq!(ws.handle_read(&first).unwrap(), first.len());
    // A whole message now would overtake the fragmented one: declined.
    let mut ping = cf(FIN | PING, b"");
    assert_eq!(ws.read_in_place(&mut ping), None);
    let mut whole = cf(FIN | BIN, b"x");
    assert_eq!(ws.read_in_place(&mut whole), None);
}

#[test]
fn after_a_close_is_sent_messages_are_declined_and_dropped_by_the_queue() {
    let mut ws = server();
    ws.close(CloseCode::NORMAL, "", &mut Vec::new()).unwrap();
    let mut input = cf(FIN | BIN, b"late");
    assert_eq!(ws.read_in_place(&mut input), None);
    let out = drive_whole(&mut ws, &input);
    assert!(out.events.is_empty(), "{:?}", out.events);
}

/// Frames of every kind, valid or not: data and control, final or not, masked
/// or not, reserved bits now and then, text that is sometimes not UTF-8.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    let b0 = prop_oneof![
        Just(FIN | TEXT),
        Just(FIN | BIN),
        Just(TEXT),
        Just(BIN),
        Just(0u8),
        Just(FIN),
        Just(FIN | PING),
        Just(FIN | PONG),
        Just(FIN | 0x40 | BIN),
    ];
    let payload = prop_oneof![
        vec(any::<u8>(), 0..300),
        ".{0,60}".prop_map(String::into_bytes),
    ];
    frame_of(b0, payload)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn in_place_and_queued_reading_give_the_same_outcome(
        frames in vec(any_frame(), 1..12),
        cuts in vec(any::<usize>(), 0..6),
        small_limits in any::<bool>(),
    ) {
        let wire = frames.concat();
        let limits = if small_limits {
            Limits { max_frame_size: 100, max_message_size: 200 }
        } else {
            Limits::default()
        };
        let mut queued = drive(&mut WebSocket::server(limits), cut(&wire, &cuts));
        if queued.error.is_some() {
            queued.leftover.clear();
        }
        let in_place = drive_in_place(&mut WebSocket::server(limits), cut(&wire, &cuts));
        prop_assert_eq!(in_place, queued);
    }
}
