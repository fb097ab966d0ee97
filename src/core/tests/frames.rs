//! Frame and message rules (RFC 6455 §5, §8.1): reserved bits and opcodes,
//! masking by role, control-frame rules, fragmentation, size limits checked from the
//! header alone, fail-fast UTF-8, and automatic pongs.
//!
//! Every violation is checked as the `ProtocolError` variant AND the close frame
//! queued for `poll_transmit`. These tests must never open a socket.

use super::support::*;
use crate::core::*;

fn small_limits() -> Limits {
    Limits {
        max_frame_size: 1000,
        max_message_size: 4000,
    }
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

/// Feeds `input` to a fresh server and asserts it fails with `expected` / `code`.
fn server_fails(input: &[u8], expected: ProtocolError, code: u16) {
    let mut ws = server();
    let out = drive_whole(&mut ws, input);
    assert_failed(&ws, &out, expected, code);
    assert!(out.events.is_empty(), "{out:?}");
}

#[test]
fn every_reserved_bit_combination_is_closed_with_1002() {
    for rsv in 1..8u8 {
        let frame = cf(FIN | (rsv << 4) | TEXT, b"x");
        server_fails(&frame, ProtocolError::ReservedBitsSet { rsv }, 1002);
    }
}

#[test]
fn every_reserved_opcode_is_closed_with_1002_from_the_first_byte() {
    for op in (3..=7).chain(11..=15) {
        // Only the first byte is fed: it alone already breaks the rule.
        server_fails(&[FIN | op], ProtocolError::ReservedOpcode(op), 1002);
        let mut ws = client();
        let out = drive_whole(&mut ws, &sf(op, b""));
        assert_failed(&ws, &out, ProtocolError::ReservedOpcode(op), 1002);
    }
}

#[test]
fn unmasked_client_frame_is_closed_with_1002() {
    for b0 in [FIN | TEXT, FIN | BIN, FIN | PING, TEXT, FIN | CLOSE] {
        server_fails(&sf(b0, b"hi"), ProtocolError::UnmaskedClientFrame, 1002);
    }
}

#[test]
fn masked_frame_to_a_client_is_closed_with_a_masked_1002() {
    let mut ws = client();
    let out = drive_whole(&mut ws, &cf(FIN | TEXT, b"hi"));
    assert_failed(&ws, &out, ProtocolError::MaskedServerFrame, 1002);
}

#[test]
fn control_frame_of_126_bytes_is_closed_with_1002() {
    for op in [PING, PONG, CLOSE] {
        // The 2-byte header alone (length 126, extended) is enough to refuse it.
        let frame = cf(FIN | op, &[b'a'; 126]);
        server_fails(
            &frame[..2],
            ProtocolError::ControlFrameTooLong { len: 126 },
            1002,
        );
        server_fails(
            &frame,
            ProtocolError::ControlFrameTooLong { len: 126 },
            1002,
        );
    }
    // 125 bytes is the largest allowed.
    let mut ws = server();
    let out = drive_whole(&mut ws, &cf(FIN | PING, &[b'a'; 125]));
    assert_eq!(out.events, vec![Event::Ping(vec![b'a'; 125])]);
    assert_eq!(out.error, None);
}

#[test]
fn fragmented_ping_is_closed_with_1002() {
    for op in [PING, PONG, CLOSE] {
        server_fails(&cf(op, b"p"), ProtocolError::FragmentedControlFrame, 1002);
    }
}

#[test]
fn length_with_the_top_bit_set_is_closed_with_1002_from_the_header() {
    for len in [1u64 << 63, u64::MAX] {
        let header = raw_header(FIN | BIN, Some(KEY), len);
        assert_eq!(header.len(), 14);
        // The error comes as soon as the 8 length bytes are in, before the key.
        server_fails(&header[..10], ProtocolError::LengthOutOfRange, 1002);
        server_fails(&header, ProtocolError::LengthOutOfRange, 1002);
    }
}

#[test]
fn continuation_with_no_message_started_is_closed_with_1002() {
    server_fails(
        &cf(FIN | CONT, b"lo"),
        ProtocolError::UnexpectedContinuation,
        1002,
    );
    // Also after a complete message: the message is over.
    let input = concat(&[cf(FIN | TEXT, b"Hel"), cf(FIN | CONT, b"lo")]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.events, vec![text("Hel")]);
    assert_failed(&ws, &out, ProtocolError::UnexpectedContinuation, 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_is_closed_with_1002() {
    for b0 in [TEXT, FIN | TEXT, FIN | BIN, BIN] {
        let input = concat(&[cf(TEXT, b"Hel"), cf(b0, b"lo")]);
        server_fails(&input, ProtocolError::ExpectedContinuation, 1002);
    }
}

#[test]
fn frame_over_max_frame_size_is_1009_from_the_header_alone() {
    let limits = small_limits();
    // Exactly the limit is fine.
    let mut ws = WebSocket::server(limits);
    let out = drive_whole(&mut ws, &cf(FIN | BIN, &[7; 1000]));
    assert_eq!(out.events, vec![binary(&[7; 1000])]);
    assert_eq!(out.error, None);

    for role in [Role::Server, Role::Client] {
        let (mut ws, mask) = match role {
            Role::Server => (WebSocket::server(limits), Some(KEY)),
            Role::Client => (WebSocket::client(limits, [1; 32]), None),
        };
        // Only the header, no payload: the error is already there.
        let out = drive_whole(&mut ws, &raw_header(FIN | BIN, mask, 1001));
        assert_failed(
            &ws,
            &out,
            ProtocolError::FrameTooBig {
                len: 1001,
                max: 1000,
            },
            1009,
        );
    }
    // A huge declared length costs nothing before it is refused.
    let mut ws = WebSocket::server(limits);
    let out = drive_whole(&mut ws, &raw_header(FIN | TEXT, Some(KEY), 1 << 40));
    assert_failed(
        &ws,
        &out,
        ProtocolError::FrameTooBig {
            len: 1 << 40,
            max: 1000,
        },
        1009,
    );
}

#[test]
fn message_over_max_message_size_is_1009_from_the_header_alone() {
    let limits = small_limits();
    let fragments = concat(&[
        cf(BIN, &[1; 1000]),
        cf(CONT, &[2; 1000]),
        cf(CONT, &[3; 1000]),
        cf(CONT, &[4; 999]),
    ]);
    // 3999 bytes so far, then a 2-byte fragment: over 4000 before its payload.
    let mut input = fragments.clone();
    input.extend_from_slice(&raw_header(FIN | CONT, Some(KEY), 2));
    let mut ws = WebSocket::server(limits);
    let out = drive_whole(&mut ws, &input);
    assert!(out.events.is_empty());
    assert_failed(
        &ws,
        &out,
        ProtocolError::MessageTooBig {
            len: 4001,
            max: 4000,
        },
        1009,
    );

    // A 1-byte last fragment makes exactly 4000: accepted.
    let mut input = fragments;
    input.extend_from_slice(&cf(FIN | CONT, &[5]));
    let mut ws = WebSocket::server(limits);
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.error, None);
    match out.events.as_slice() {
        [Event::Message(m)] => assert_eq!(m.data.len(), 4000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn first_frame_over_max_message_size_is_1009_even_under_the_frame_limit() {
    let limits = Limits {
        max_frame_size: 1000,
        max_message_size: 500,
    };
    let mut ws = WebSocket::server(limits);
    let out = drive_whole(&mut ws, &raw_header(TEXT, Some(KEY), 501));
    assert_failed(
        &ws,
        &out,
        ProtocolError::MessageTooBig { len: 501, max: 500 },
        1009,
    );
}

#[test]
fn invalid_utf8_fails_fast_mid_fragment_before_fin() {
    // A fragmented text message whose second fragment declares 10 bytes; the
    // fourth payload byte is 0xFF, which can never appear in UTF-8.
    let mut first = cf(TEXT, b"Hello");
    let second = cf(CONT, b"abc\xFFdefghi");
    let header_len = second.len() - 10;
    first.extend_from_slice(&second[..header_len + 3]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &first);
    assert_eq!(out.error, None, "valid so far");
    assert!(out.leftover.is_empty());
    // The very next byte is the invalid one; the rest of the frame never comes.
    let out = drive_whole(&mut ws, &second[header_len + 3..header_len + 4]);
    assert_failed(&ws, &out, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn impossible_sequences_fail_before_the_message_ends() {
    for bad in [
        &b"\xC0\xAF"[..], // overlong '/'
        b"\xED\xA0\x80",  // a UTF-16 surrogate
        b"\xF4\x90\x80",  // beyond U+10FFFF
        b"\x80",          // a lone continuation byte
        b"ok\xF8",        // a 5-byte lead
    ] {
        // Not FIN, and a continuation would follow: the error must not wait for it.
        server_fails(&cf(TEXT, bad), ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn code_point_split_across_fragments_is_fine() {
    // "€𝄞" is E2 82 AC F0 9D 84 9E: cut inside both code points, with a ping
    // in the middle of the first one.
    let input = concat(&[
        cf(TEXT, b"a\xE2"),
        cf(FIN | PING, b"p"),
        cf(CONT, b"\x82"),
        cf(CONT, b"\xAC\xF0\x9D"),
        cf(CONT, b""),
        cf(FIN | CONT, b"\x84\x9E"),
    ]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.error, None);
    assert_eq!(out.events, vec![Event::Ping(b"p".to_vec()), text("a€𝄞")]);
}

#[test]
fn message_ending_in_an_unfinished_code_point_is_1007() {
    server_fails(
        &cf(FIN | TEXT, b"a\xE2\x82"),
        ProtocolError::InvalidUtf8,
        1007,
    );
    let input = concat(&[cf(TEXT, b"a\xF0\x9D"), cf(FIN | CONT, b"")]);
    server_fails(&input, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn binary_messages_are_not_checked_for_utf8() {
    let input = concat(&[cf(BIN, b"\xFF\xC0"), cf(FIN | CONT, b"\xE2")]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.events, vec![binary(b"\xFF\xC0\xE2")]);
}

#[test]
fn ping_and_pong_between_fragments_are_handled_at_once() {
    let head = concat(&[
        cf(TEXT, b"Hel"),
        cf(FIN | PING, b"are you there"),
        cf(FIN | PONG, b"yes"),
    ]);
    let mut ws = server();
    // Before the message is finished, the ping is already answered.
    let out = drive_whole(&mut ws, &head);
    assert_eq!(
        out.events,
        vec![
            Event::Ping(b"are you there".to_vec()),
            Event::Pong(b"yes".to_vec())
        ]
    );
    assert_eq!(out.transmit, sf(FIN | PONG, b"are you there"));
    // And the message still completes.
    let out = drive_whole(&mut ws, &cf(FIN | CONT, b"lo"));
    assert_eq!(out.events, vec![text("Hello")]);
    assert!(out.transmit.is_empty());
    assert_eq!(ws.state(), State::Open);
}

#[test]
fn close_between_fragments_is_handled_at_once() {
    let input = concat(&[
        cf(TEXT, b"Hel"),
        cf(FIN | CLOSE, &close_payload(1001, b"bye")),
    ]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(
        out.events,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: "bye".to_owned()
        }))]
    );
    assert_eq!(out.transmit, sf(FIN | CLOSE, &1001u16.to_be_bytes()));
    assert_eq!(ws.state(), State::Closed);
    // The rest of the message is never delivered.
    let out = drive_whole(&mut ws, &cf(FIN | CONT, b"lo"));
    assert_eq!(out, Outcome::default());
}

#[test]
fn ping_is_answered_by_a_pong_with_the_same_payload() {
    for payload in [&b""[..], b"x", b"\x00\xFFbinary", &[0x5A; 125]] {
        let mut ws = server();
        let out = drive_whole(&mut ws, &cf(FIN | PING, payload));
        assert_eq!(out.events, vec![Event::Ping(payload.to_vec())]);
        // Exactly one unmasked pong, byte for byte.
        assert_eq!(out.transmit, sf(FIN | PONG, payload));
        assert_eq!(ws.state(), State::Open);
    }
}

#[test]
fn client_answers_a_ping_with_a_masked_pong() {
    let mut ws = client();
    let out = drive_whole(&mut ws, &sf(FIN | PING, b"Hello"));
    assert_eq!(out.events, vec![Event::Ping(b"Hello".to_vec())]);
    let frames = sent_frames(&out.transmit);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, PONG);
    assert!(frames[0].fin && frames[0].masked);
    assert_eq!(frames[0].payload, b"Hello");
}

#[test]
fn unsolicited_pong_is_an_event_and_nothing_is_sent() {
    let mut ws = server();
    let out = drive_whole(&mut ws, &cf(FIN | PONG, b"heartbeat"));
    assert_eq!(out.events, vec![Event::Pong(b"heartbeat".to_vec())]);
    assert!(out.transmit.is_empty());
    assert!(!ws.has_transmit());
    assert_eq!(ws.state(), State::Open);
}

#[test]
fn zero_length_messages_and_fragments_are_delivered() {
    let input = concat(&[
        cf(FIN | TEXT, b""),
        cf(FIN | BIN, b""),
        cf(TEXT, b""),
        cf(CONT, b""),
        cf(FIN | CONT, b""),
        cf(BIN, b""),
        cf(CONT, b"ab"),
        cf(FIN | CONT, b""),
        cf(FIN | PING, b""),
    ]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![
            text(""),
            binary(b""),
            text(""),
            binary(b"ab"),
            Event::Ping(Vec::new())
        ]
    );
    assert_eq!(out.transmit, sf(FIN | PONG, b""));
}

#[test]
fn handle_read_takes_every_whole_frame_and_queues_events_in_order() {
    let first = cf(FIN | TEXT, b"one");
    let second = cf(FIN | BIN, b"two");
    let input = concat(&[first, second]);
    let mut ws = server();
    assert_eq!(ws.handle_read(&input), Ok(input.len()));
    assert_eq!(ws.poll_event(), Some(text("one")));
    assert_eq!(ws.poll_event(), Some(binary(b"two")));
    assert_eq!(ws.poll_event(), None);
    assert_eq!(ws.handle_read(&[]), Ok(0));
}

#[test]
fn a_reply_to_a_message_before_a_protocol_error_precedes_the_close() {
    // Autobahn 4.1.3: a message, then a frame with a reserved opcode, in one read.
    let input = concat(&[
        cf(FIN | TEXT, b"hi"),
        cf(FIN | 0x3, b""),
        cf(FIN | PING, b""),
    ]);
    let mut ws = server();
    assert_eq!(
        ws.handle_read(&input),
        Err(ProtocolError::ReservedOpcode(3))
    );
    assert_eq!(ws.state(), State::Open, "the close waits for the message");
    let Some(Event::Message(m)) = ws.poll_event() else {
        panic!("the message before the error is still delivered");
    };
    let mut out = Vec::new();
    ws.send(m.kind, &m.data, &mut out).unwrap();
    assert_eq!(ws.poll_event(), None, "nothing after the error");
    assert_eq!(ws.state(), State::Closed);
    ws.poll_transmit(&mut out);
    let frames = sent_frames(&out);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].payload, b"hi");
    assert_eq!(frames[1].close_code(), Some(1002));
}

#[test]
fn a_pong_keeps_its_place_among_replies_when_transmit_follows_each_event() {
    // Autobahn 5.6: a text message in two fragments with a ping between them.
    let input = concat(&[
        cf(TEXT, b"frag"),
        cf(FIN | PING, b"p"),
        cf(FIN | CONT, b"ment"),
    ]);
    let mut ws = server();
    assert_eq!(ws.handle_read(&input), Ok(input.len()));
    let mut out = Vec::new();
    while let Some(event) = ws.poll_event() {
        if let Event::Message(m) = event {
            ws.send(m.kind, &m.data, &mut out).unwrap();
        }
        ws.poll_transmit(&mut out);
    }
    let frames = sent_frames(&out);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        (frames[0].opcode, &frames[0].payload[..]),
        (PONG, &b"p"[..])
    );
    assert_eq!(&frames[1].payload[..], b"fragment");
}

#[test]
fn a_reply_to_a_message_before_the_peers_close_precedes_the_close_reply() {
    // Autobahn 7.1.1: a message followed by a close frame.
    let input = concat(&[
        cf(FIN | TEXT, b"bye"),
        cf(FIN | CLOSE, &close_payload(1000, b"")),
    ]);
    let mut ws = server();
    assert_eq!(ws.handle_read(&input), Ok(input.len()));
    let mut out = Vec::new();
    let Some(Event::Message(m)) = ws.poll_event() else {
        panic!("message first");
    };
    ws.send(m.kind, &m.data, &mut out).unwrap();
    assert!(matches!(ws.poll_event(), Some(Event::Close(_))));
    assert_eq!(ws.state(), State::Closed);
    ws.poll_transmit(&mut out);
    let frames = sent_frames(&out);
    assert_eq!(frames[0].payload, b"bye");
    assert_eq!(frames[1].close_code(), Some(1000));
}

#[test]
fn partial_header_is_left_for_the_next_call() {
    let frame = raw_frame(FIN | BIN, Some(KEY), &[9; 300]);
    let mut ws = server();
    // Up to the whole 8-byte header (2 + 2 + key), nothing is consumed.
    for end in 0..8 {
        assert_eq!(ws.handle_read(&frame[..end]), Ok(0), "prefix {end}");
    }
    // Payload bytes are consumed as they arrive, and unmasked at the right offset.
    assert_eq!(ws.handle_read(&frame[..11]), Ok(11));
    assert_eq!(ws.handle_read(&frame[11..]), Ok(frame.len() - 11));
    assert_eq!(ws.poll_event(), Some(binary(&[9; 300])));
}

#[test]
fn send_masks_on_the_client_and_never_on_the_server() {
    let mut out = Vec::new();
    server()
        .send(MessageKind::Binary, b"abc", &mut out)
        .unwrap();
    assert_eq!(out, sf(FIN | BIN, b"abc"));

    let mut out = Vec::new();
    let mut ws = client();
    ws.send(MessageKind::Text, b"abc", &mut out).unwrap();
    ws.send(MessageKind::Text, b"abc", &mut out).unwrap();
    let frames = sent_frames(&out);
    assert_eq!(frames.len(), 2);
    for f in &frames {
        assert!(f.masked && f.fin);
        assert_eq!((f.opcode, f.payload.as_slice()), (TEXT, &b"abc"[..]));
    }
    // Each frame gets a fresh masking key.
    assert_ne!(out[2..6], out[11..15]);
}
