//! A server's echo of whole messages where they lie (`WebSocket::echo_in_place`):
//! what it echoes is exactly what echoing each message through the event queue
//! would send, it stops at everything else, and it never changes its input.
//!
//! These tests must never open a socket or read a clock.

use proptest::collection::vec;
use proptest::prelude::*;

use super::support::*;
use crate::core::deflate::{DeflateParams, DeflateSettings, PerMessageDeflate};
use crate::core::*;

/// Drives `ws` through the event queue alone, echoing each message (with
/// [`WebSocket::send`]) in its place among the automatic replies.
fn drive_echoing<'a>(ws: &mut WebSocket, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut out = Outcome::default();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let result = ws.handle_read(&buf);
        poll_echoing(ws, &mut out);
        match result {
            Ok(n) => {
                buf.drain(..n);
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
    out.leftover = buf;
    out
}

/// Polls every event, echoing messages, then the last automatic replies.
fn poll_echoing(ws: &mut WebSocket, out: &mut Outcome) {
    while let Some(e) = ws.poll_event() {
        if let Event::Message(m) = &e {
            let _ = ws.send(m.kind, &m.data, &mut out.transmit);
        }
        out.events.push(e);
        ws.poll_transmit(&mut out.transmit);
    }
    ws.poll_transmit(&mut out.transmit);
}

/// Drives `ws` as the server's echo route does: `echo_in_place` first, then
/// whatever it left through `read_in_place` and the queue.
fn drive_echo_in_place<'a>(
    ws: &mut WebSocket,
    chunks: impl IntoIterator<Item = &'a [u8]>,
    max_payload: usize,
) -> Outcome {
    let mut out = Outcome::default();
    let mut buf: Vec<u8> = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let before = buf.clone();
        let echoed = ws.echo_in_place(&buf, &mut out.transmit, max_payload);
        assert_eq!(buf, before, "echo_in_place changed its input");
        let mut pos = echoed.consumed;
        while let Some((kind, data, n)) = ws.read_in_place(&mut buf[pos..]) {
            let data = data.to_vec();
            let _ = ws.send(kind, &data, &mut out.transmit);
            out.events.push(Event::Message(Message { kind, data }));
            pos += n;
        }
        let result = ws.handle_read(&buf[pos..]);
        poll_echoing(ws, &mut out);
        match result {
            Ok(n) => {
                buf.drain(..pos + n);
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
    out.leftover = buf;
    out
}

#[test]
fn whole_messages_come_back_unmasked_and_the_input_is_untouched() {
    let ws = server();
    let mut input = cf(FIN | TEXT, b"hello");
    input.extend(cf(FIN | BIN, &[1, 2, 3, 4, 5, 6, 7, 8, 9]));
    input.extend(cf(FIN | BIN, &[]));
    let copy = input.clone();
    let mut out = vec![0xee];
    let echoed = ws.echo_in_place(&input, &mut out, usize::MAX);
    assert_eq!(
        echoed,
        Echoed {
            consumed: input.len(),
            messages: 3,
            payload_bytes: 14
        }
    );
    let mut want = vec![0xee];
    want.extend(sf(FIN | TEXT, b"hello"));
    want.extend(sf(FIN | BIN, &[1, 2, 3, 4, 5, 6, 7, 8, 9]));
    want.extend(sf(FIN | BIN, &[]));
    assert_eq!(out, want);
    assert_eq!(input, copy);
}

#[test]
fn it_stops_before_the_first_frame_it_does_not_take() {
    let ws = server();
    let mut input = cf(FIN | BIN, b"one");
    let first = input.len();
    input.extend(cf(FIN | PING, b"p"));
    input.extend(cf(FIN | BIN, b"two"));
    let mut out = Vec::new();
    let echoed = ws.echo_in_place(&input, &mut out, usize::MAX);
    assert_eq!((echoed.consumed, echoed.messages), (first, 1));
    assert_eq!(out, sf(FIN | BIN, b"one"));
}

#[test]
fn everything_else_is_left_for_the_general_way() {
    let small = Limits {
        max_frame_size: 8,
        max_message_size: 8,
    };
    let deflating = server().with_deflate(PerMessageDeflate::new(
        Role::Server,
        &DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: None,
            client_max_window_bits: None,
        },
        DeflateSettings::default(),
        16,
    ));
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
        ("the client side", client(), sf(FIN | BIN, b"x")),
        ("permessage-deflate on", deflating, cf(FIN | BIN, b"x")),
        (
            "over the frame limit",
            WebSocket::server(small),
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
    for (what, ws, input) in cases {
        let mut out = vec![1, 2, 3];
        let echoed = ws.echo_in_place(&input, &mut out, usize::MAX);
        assert_eq!(echoed, Echoed::default(), "{what}");
        assert_eq!(out, [1, 2, 3], "{what}: output was left behind");
    }
}

#[test]
fn a_payload_over_the_callers_maximum_is_left_for_the_general_way() {
    let ws = server();
    let mut input = cf(FIN | BIN, &[7; 10]);
    input.extend(cf(FIN | BIN, &[8; 11]));
    let mut out = Vec::new();
    let echoed = ws.echo_in_place(&input, &mut out, 10);
    assert_eq!(echoed.messages, 1);
    assert_eq!(out, sf(FIN | BIN, &[7; 10]));
}

#[test]
fn invalid_utf8_after_good_messages_still_fails_with_1007() {
    let mut input = cf(FIN | TEXT, b"fine");
    input.extend(cf(FIN | TEXT, b"bad \xc3\x28"));
    let out = drive_echo_in_place(&mut server(), [input.as_slice()], usize::MAX);
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
    let frames = sent_frames(&out.transmit);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].payload, b"fine");
    assert_eq!(frames[1].close_code(), Some(1007));
}

#[test]
fn nothing_is_echoed_while_the_queue_holds_a_fragmented_message() {
    let mut ws = server();
    let first = cf(BIN, b"par");
    assert_eq!(ws.handle_read(&first).unwrap(), first.len());
    let whole = cf(FIN | BIN, b"x");
    let echoed = ws.echo_in_place(&whole, &mut Vec::new(), usize::MAX);
    assert_eq!(echoed, Echoed::default());
}

#[test]
fn after_a_close_is_sent_nothing_is_echoed() {
    let mut ws = server();
    ws.close(CloseCode::NORMAL, "", &mut Vec::new()).unwrap();
    let input = cf(FIN | BIN, b"late");
    assert_eq!(
        ws.echo_in_place(&input, &mut Vec::new(), usize::MAX),
        Echoed::default()
    );
}

/// Frames of every kind, valid or not (as in `in_place.rs`), and payloads on
/// both sides of the word-wise unmasking's threshold.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    let b0 = prop_oneof![
        4 => Just(FIN | TEXT),
        4 => Just(FIN | BIN),
        1 => Just(TEXT),
        1 => Just(BIN),
        1 => Just(0u8),
        1 => Just(FIN),
        1 => Just(FIN | PING),
        1 => Just(FIN | PONG),
        1 => Just(FIN | 0x40 | BIN),
    ];
    let payload = prop_oneof![
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 0..600),
        ".{0,60}".prop_map(String::into_bytes),
    ];
    frame_of(b0, payload)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn echoing_in_place_sends_what_echoing_each_event_sends(
        frames in vec(any_frame(), 1..12),
        cuts in vec(any::<usize>(), 0..6),
        small_limits in any::<bool>(),
        max_payload in prop_oneof![Just(usize::MAX), 0usize..700],
    ) {
        let wire = frames.concat();
        let limits = if small_limits {
            Limits { max_frame_size: 100, max_message_size: 200 }
        } else {
            Limits::default()
        };
        let queued = drive_echoing(&mut WebSocket::server(limits), cut(&wire, &cuts));
        let in_place =
            drive_echo_in_place(&mut WebSocket::server(limits), cut(&wire, &cuts), max_payload);
        prop_assert_eq!(&in_place.transmit, &queued.transmit);
        prop_assert_eq!(&in_place.error, &queued.error);
        if queued.error.is_none() {
            prop_assert_eq!(&in_place.leftover, &queued.leftover);
        }
    }
}
