//! Property tests: frames and fragmented messages round-trip between a client and
//! a server core, and arbitrary bytes never panic the frame decoder or the head
//! parsers, which always either make progress or ask for more.
//!
//! Case counts are kept small so the suite stays fast in debug builds; the fuzz
//! targets go further. These tests must never open a socket or read a clock.

use proptest::collection::vec;
use proptest::prelude::*;

use super::support::*;
use crate::core::frame::MAX_HEADER_LEN;
use crate::core::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

/// A frame that obeys the header rules: control frames are final and short.
fn frame() -> impl Strategy<Value = (OpCode, bool, Vec<u8>, Option<[u8; 4]>)> {
    (opcode(), any::<bool>(), any::<Option<[u8; 4]>>()).prop_flat_map(|(op, fin, mask)| {
        let (fin, max) = if op.is_control() {
            (true, 125)
        } else {
            (fin, 4096)
        };
        vec(any::<u8>(), 0..=max).prop_map(move |p| (op, fin, p, mask))
    })
}

/// Cut `input` at the given positions (taken modulo its length, in order).
fn chunks<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(&input[start..p]);
        start = p;
    }
    out.push(&input[start..]);
    out
}

/// What a core should report for one frame with FIN, read on its own.
fn expected_event(op: OpCode, payload: &[u8]) -> Result<Event, ProtocolError> {
    Ok(match op {
        OpCode::Text => match std::str::from_utf8(payload) {
            Ok(s) => text(s),
            Err(_) => return Err(ProtocolError::InvalidUtf8),
        },
        OpCode::Binary => binary(payload),
        OpCode::Ping => Event::Ping(payload.to_vec()),
        OpCode::Pong => Event::Pong(payload.to_vec()),
        OpCode::Continuation | OpCode::Close => unreachable!("not a lone frame"),
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn encoded_frame_decodes_to_its_header_and_payload((op, fin, payload, mask) in frame()) {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, op, &payload, mask);
        let (header, n) = FrameHeader::decode(&out).unwrap().unwrap();
        prop_assert_eq!(header.fin, fin);
        prop_assert_eq!(header.rsv, 0);
        prop_assert_eq!(header.opcode, op);
        prop_assert_eq!(header.mask, mask);
        prop_assert_eq!(header.payload_len, payload.len() as u64);
        prop_assert_eq!(n, FrameHeader::encoded_len(payload.len() as u64, mask.is_some()));
        prop_assert_eq!(out.len(), n + payload.len());
        // Our own parser agrees, and unmasks to the original payload.
        let sent = sent_frames(&out);
        prop_assert_eq!(sent.len(), 1);
        prop_assert_eq!(&sent[0].payload, &payload);
        prop_assert_eq!(sent[0].masked, mask.is_some());
        // Any strict prefix is incomplete or decodes the same header.
        for cut in 0..n {
            prop_assert_eq!(FrameHeader::decode(&out[..cut]), Ok(None));
        }
    }

    #[test]
    fn data_and_ping_pong_frames_round_trip_both_ways(
        op in prop_oneof![
            Just(OpCode::Text), Just(OpCode::Binary), Just(OpCode::Ping), Just(OpCode::Pong)
        ],
        payload in vec(any::<u8>(), 0..=4096),
        as_text in any::<Option<String>>(),
        key in any::<[u8; 4]>(),
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let payload = match (op, as_text) {
            (OpCode::Text, Some(s)) => s.into_bytes(),
            (OpCode::Ping | OpCode::Pong, _) => payload[..payload.len().min(125)].to_vec(),
            _ => payload,
        };
        let expected = expected_event(op, &payload);
        for role in [Role::Server, Role::Client] {
            let (mut ws, mask) = match role {
                Role::Server => (server(), Some(key)),
                Role::Client => (client(), None),
            };
            let mut input = Vec::new();
            encode_frame(&mut input, true, op, &payload, mask);
            let out = drive(&mut ws, chunks(&input, &cuts));
            match &expected {
                Ok(event) => {
                    prop_assert_eq!(&out.events, &vec![event.clone()]);
                    prop_assert_eq!(out.error, None);
                    prop_assert!(out.leftover.is_empty());
                    let sent = sent_frames(&out.transmit);
                    if op == OpCode::Ping {
                        prop_assert_eq!(sent.len(), 1);
                        prop_assert_eq!(sent[0].opcode, PONG);
                        prop_assert_eq!(sent[0].masked, role == Role::Client);
                        prop_assert_eq!(&sent[0].payload, &payload);
                    } else {
                        prop_assert!(sent.is_empty());
                    }
                }
                Err(e) => {
                    prop_assert!(out.events.is_empty());
                    assert_failed(&ws, &out, e.clone(), 1007);
                }
            }
        }
    }

    #[test]
    fn messages_sent_by_one_side_arrive_whole_at_the_other(
        payload in vec(any::<u8>(), 0..=4096),
        text_payload in ".{0,300}",
        is_text in any::<bool>(),
        seed in any::<[u8; 32]>(),
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let (kind, payload) = if is_text {
            (MessageKind::Text, text_payload.into_bytes())
        } else {
            (MessageKind::Binary, payload)
        };
        let expected = Event::Message(Message { kind, data: payload.clone() });
        // Client to server (masked), then server to client.
        let mut wire = Vec::new();
        WebSocket::client(Limits::default(), seed).send(kind, &payload, &mut wire).unwrap();
        let mut srv = server();
        let out = drive(&mut srv, chunks(&wire, &cuts));
        prop_assert_eq!(out.events, vec![expected.clone()]);
        prop_assert!(out.transmit.is_empty());

        let mut wire = Vec::new();
        server().send(kind, &payload, &mut wire).unwrap();
        let mut cli = WebSocket::client(Limits::default(), seed);
        let out = drive(&mut cli, chunks(&wire, &cuts));
        prop_assert_eq!(out.events, vec![expected]);
    }

    #[test]
    fn send_with_writes_exactly_what_send_writes(
        payload in vec(any::<u8>(), 0..=70_000),
        prefix in vec(any::<u8>(), 0..20),
        binary in any::<bool>(),
        seed in any::<[u8; 32]>(),
    ) {
        // Same seed, so the same masking keys: the payload written in place
        // (after bytes already queued) must give the very same frames.
        let kind = if binary { MessageKind::Binary } else { MessageKind::Text };
        let (mut by_copy, mut in_place) = (prefix.clone(), prefix);
        let mut a = WebSocket::client(Limits::default(), seed);
        let mut b = WebSocket::client(Limits::default(), seed);
        for _ in 0..2 {
            a.send(kind, &payload, &mut by_copy).unwrap();
            b.send_with(kind, payload.len(), &mut in_place, |p| p.copy_from_slice(&payload))
                .unwrap();
        }
        prop_assert_eq!(&by_copy, &in_place);
        b.close(CloseCode::NORMAL, "", &mut Vec::new()).unwrap();
        let refused = b.send_with(kind, 1, &mut in_place, |_| {});
        prop_assert!(refused.is_err());
    }

    #[test]
    fn message_split_into_arbitrary_fragments_round_trips(
        payload in vec(any::<u8>(), 0..=4096),
        text_payload in ".{0,200}",
        is_text in any::<bool>(),
        fragment_cuts in vec(any::<usize>(), 0..8),
        pings_after in vec(any::<bool>(), 8),
        keys in vec(any::<[u8; 4]>(), 18),
        read_cuts in vec(any::<usize>(), 0..6),
    ) {
        let (first_op, payload) = if is_text {
            (OpCode::Text, text_payload.into_bytes())
        } else {
            (OpCode::Binary, payload)
        };
        // Cut the payload anywhere, even inside a code point or into empty pieces.
        let pieces = chunks(&payload, &fragment_cuts);
        let mut wire = Vec::new();
        let mut pings = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let op = if i == 0 { first_op } else { OpCode::Continuation };
            let fin = i + 1 == pieces.len();
            encode_frame(&mut wire, fin, op, piece, Some(keys[2 * i]));
            if !fin && pings_after[i] {
                let body = (i as u32).to_be_bytes();
                encode_frame(&mut wire, true, OpCode::Ping, &body, Some(keys[2 * i + 1]));
                pings.push(Event::Ping(body.to_vec()));
            }
        }
        let mut ws = server();
        let out = drive(&mut ws, chunks(&wire, &read_cuts));
        prop_assert_eq!(out.error, None);
        let mut expected = pings;
        expected.push(Event::Message(Message {
            kind: if is_text { MessageKind::Text } else { MessageKind::Binary },
            data: payload,
        }));
        prop_assert_eq!(out.events, expected);
    }
}

/// Pieces of a byte soup: raw bytes, or frames that are nearly right (any first
/// byte, masked or not, any length), so the decoder gets past the first byte.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        vec(any::<u8>(), 0..32),
        (
            any::<u8>(),
            any::<Option<[u8; 4]>>(),
            vec(any::<u8>(), 0..200)
        )
            .prop_map(|(b0, mask, payload)| raw_frame(b0, mask, &payload)),
        (any::<u8>(), any::<Option<[u8; 4]>>(), any::<u64>())
            .prop_map(|(b0, mask, len)| raw_header(b0, mask, len)),
        (
            prop_oneof![Just(FIN | TEXT), Just(TEXT), Just(CONT), Just(FIN | CONT)],
            any::<Option<[u8; 4]>>(),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(b0, mask, payload)| raw_frame(b0, mask, &payload)),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Drives `ws` over `input` cut at `cuts` and checks the progress contract.
fn check_progress(ws: &mut WebSocket, input: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    // `drive` itself asserts consumed <= offered and that the loop ends.
    let out = drive(ws, chunks(input, cuts));
    if out.error.is_some() {
        prop_assert_eq!(ws.state(), State::Closed);
        // A failed connection swallows everything and stays silent.
        prop_assert_eq!(ws.handle_read(input), Ok(input.len()));
        prop_assert!(ws.poll_event().is_none());
        prop_assert!(!ws.has_transmit());
    } else {
        // Only an incomplete frame header may be left over, and feeding it
        // again asks for more instead of looping or consuming.
        prop_assert!(out.leftover.len() < MAX_HEADER_LEN);
        prop_assert_eq!(ws.handle_read(&out.leftover), Ok(0));
        prop_assert!(ws.poll_event().is_none());
    }
    // Whatever was queued is whole frames.
    let _ = sent_frames(&out.transmit);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn byte_soup_never_panics_a_server(input in soup(), cuts in vec(any::<usize>(), 0..4)) {
        let limits = Limits { max_frame_size: 512, max_message_size: 1024 };
        check_progress(&mut WebSocket::server(limits), &input, &cuts)?;
        check_progress(&mut server(), &input, &cuts)?;
    }

    #[test]
    fn byte_soup_never_panics_a_client(input in soup(), cuts in vec(any::<usize>(), 0..4)) {
        let limits = Limits { max_frame_size: 512, max_message_size: 1024 };
        check_progress(&mut WebSocket::client(limits, [3; 32]), &input, &cuts)?;
        check_progress(&mut client(), &input, &cuts)?;
    }

    #[test]
    fn byte_soup_never_panics_the_request_parser(
        input in prop_oneof![
            vec(any::<u8>(), 0..600),
            // A valid upgrade with bytes overwritten, cut or appended.
            (vec((any::<usize>(), any::<u8>()), 0..6), any::<usize>(), vec(any::<u8>(), 0..20))
                .prop_map(|(edits, cut, tail)| {
                    let mut b = head("GET /chat?a=b HTTP/1.1", &upgrade_headers());
                    for (at, byte) in edits {
                        let i = at % b.len();
                        b[i] = byte;
                    }
                    b.truncate(cut % (b.len() + 1));
                    b.extend_from_slice(&tail);
                    b
                }),
        ],
    ) {
        let limits = RequestLimits { max_head_bytes: 256, max_headers: 8 };
        for limits in [limits, RequestLimits::default()] {
            match parse_request(&input, &limits) {
                Ok(Some((req, n))) => {
                    prop_assert!(n <= input.len() && n <= limits.max_head_bytes);
                    // The head alone parses to the same request.
                    prop_assert_eq!(
                        parse_request(&input[..n], &limits),
                        Ok(Some((req.clone(), n)))
                    );
                    if let Err(e) = req.websocket_upgrade() {
                        let resp = assert_error_response(&e, e.status(), e.response_headers());
                        prop_assert!(resp.status >= 400);
                    }
                    let _ = (req.path(), req.query(), req.keep_alive());
                }
                Ok(None) => prop_assert!(input.len() < limits.max_head_bytes),
                Err(e) => {
                    assert_error_response(&e, e.status(), e.response_headers());
                }
            }
        }
    }

    #[test]
    fn byte_soup_never_panics_the_response_parser(
        input in prop_oneof![
            vec(any::<u8>(), 0..600),
            (vec((any::<usize>(), any::<u8>()), 0..6), any::<usize>()).prop_map(|(edits, cut)| {
                let mut b = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
                )
                .into_bytes();
                for (at, byte) in edits {
                    let i = at % b.len();
                    b[i] = byte;
                }
                b.truncate(cut % (b.len() + 1));
                b
            }),
        ],
    ) {
        let hs = ClientHandshake::new(*b"the sample nonce", vec!["chat".to_owned()]);
        match hs.parse_response(&input) {
            Ok(Some((accepted, n))) => {
                prop_assert!(n <= input.len());
                prop_assert!(matches!(accepted.protocol.as_deref(), None | Some("chat")));
            }
            Ok(None) => prop_assert!(input.len() < client_handshake::MAX_RESPONSE_HEAD),
            Err(_) => {}
        }
    }
}
