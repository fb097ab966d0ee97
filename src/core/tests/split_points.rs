//! Split-point tests: the same byte stream fed whole, split at every single point,
//! and byte by byte must give identical events, transmit bytes, errors and leftover,
//! for the WebSocket state machine and for both handshake parsers.
//!
//! A caller never controls how TCP cuts its input, so any difference here is a bug.
//! These tests must never open a socket.

use super::support::*;
use crate::core::*;

/// Drives fresh connections from `make` over `input` in every way and asserts
/// that all outcomes equal the whole-input one, which is returned.
///
/// After an error the caller stops reading, so how much input was left over then
/// depends on the split and is not compared.
fn same_for_every_split(make: impl Fn() -> WebSocket, input: &[u8]) -> Outcome {
    let comparable = |mut out: Outcome| {
        if out.error.is_some() {
            out.leftover.clear();
        }
        out
    };
    let whole = comparable(drive_whole(&mut make(), input));
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let out = comparable(drive(&mut make(), [a, b]));
        assert_eq!(out, whole, "split at {split}");
    }
    let bytewise = comparable(drive_bytewise(&mut make(), input));
    assert_eq!(bytewise, whole, "byte by byte");
    // Uneven chunks too: 3, 5, 7, ... bytes.
    let mut chunks = Vec::new();
    let mut rest = input;
    let mut size = 3;
    while !rest.is_empty() {
        let (c, r) = rest.split_at(size.min(rest.len()));
        chunks.push(c);
        rest = r;
        size += 2;
    }
    assert_eq!(
        comparable(drive(&mut make(), chunks)),
        whole,
        "growing chunks"
    );
    whole
}

/// Fragmented text with a ping in the middle, a 300-byte binary (16-bit length),
/// a pong, then a close; `frame` builds each frame for the sending role.
fn conversation(frame: fn(u8, &[u8]) -> Vec<u8>) -> (Vec<u8>, Vec<Event>) {
    let blob: Vec<u8> = (0..300u32).map(|i| (i * 31) as u8).collect();
    let input = [
        frame(TEXT, b"Hel"),
        frame(FIN | PING, b"ping!"),
        frame(CONT, "lo, w\u{f6}rld \u{20ac}".as_bytes()),
        frame(FIN | CONT, b""),
        frame(FIN | BIN, &blob),
        frame(FIN | PONG, b""),
        frame(FIN | CLOSE, &close_payload(1000, b"bye")),
    ]
    .concat();
    let events = vec![
        Event::Ping(b"ping!".to_vec()),
        text("Hello, w\u{f6}rld \u{20ac}"),
        binary(&blob),
        Event::Pong(Vec::new()),
        Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".to_owned(),
        })),
    ];
    (input, events)
}

#[test]
fn server_sees_the_same_conversation_however_it_is_split() {
    let (input, events) = conversation(cf);
    let out = same_for_every_split(server, &input);
    assert_eq!(out.events, events);
    assert_eq!(out.error, None);
    assert!(out.leftover.is_empty());
    assert_eq!(
        out.transmit,
        [
            sf(FIN | PONG, b"ping!"),
            sf(FIN | CLOSE, &1000u16.to_be_bytes())
        ]
        .concat()
    );
}

#[test]
fn client_sees_the_same_conversation_however_it_is_split() {
    let (input, events) = conversation(sf);
    // A fixed seed makes the client's masking keys, and so its output, repeatable.
    let out = same_for_every_split(client, &input);
    assert_eq!(out.events, events);
    let sent = sent_frames(&out.transmit);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].opcode, sent[0].payload.as_slice()),
        (PONG, &b"ping!"[..])
    );
    assert_eq!(sent[1].close_code(), Some(1000));
    assert!(sent.iter().all(|f| f.masked));
}

#[test]
fn input_after_the_close_is_swallowed_however_it_is_split() {
    let (mut input, events) = conversation(cf);
    input.extend_from_slice(&cf(FIN | TEXT, b"after close"));
    input.extend_from_slice(&[0x81, 0x7F, 0xFF]);
    let out = same_for_every_split(server, &input);
    assert_eq!(out.events, events);
    assert!(out.leftover.is_empty());
}

#[test]
fn an_error_stream_gives_the_same_error_for_every_split() {
    let limits = Limits {
        max_frame_size: 64,
        max_message_size: 100,
    };
    let prefix = [
        cf(TEXT, b"ok "),
        cf(FIN | PING, b"p"),
        cf(CONT, "\u{20ac}".as_bytes()),
    ]
    .concat();
    let tails: [(Vec<u8>, ProtocolError); 8] = [
        (cf(CONT, b"a\xFFb"), ProtocolError::InvalidUtf8),
        (cf(FIN | CONT, b"\xE2\x82"), ProtocolError::InvalidUtf8),
        (sf(FIN | CONT, b"x"), ProtocolError::UnmaskedClientFrame),
        (cf(FIN | 0x3, b""), ProtocolError::ReservedOpcode(3)),
        (
            cf(FIN | 0x40 | CONT, b""),
            ProtocolError::ReservedBitsSet { rsv: 4 },
        ),
        (cf(FIN | TEXT, b""), ProtocolError::ExpectedContinuation),
        (
            raw_header(CONT, Some(KEY), 65),
            ProtocolError::FrameTooBig { len: 65, max: 64 },
        ),
        (
            [cf(CONT, &[b'a'; 64]), raw_header(CONT, Some(KEY), 31)].concat(),
            ProtocolError::MessageTooBig { len: 101, max: 100 },
        ),
    ];
    for (tail, expected) in tails {
        let input = [prefix.clone(), tail].concat();
        let out = same_for_every_split(|| WebSocket::server(limits), &input);
        assert_eq!(out.events, vec![Event::Ping(b"p".to_vec())]);
        assert_eq!(out.error, Some(expected.clone()));
        let sent = sent_frames(&out.transmit);
        assert_eq!(sent.len(), 2, "{expected:?}");
        assert_eq!(sent[0].opcode, PONG);
        assert_eq!(
            sent[1].close_code(),
            Some(expected.close_code().0),
            "{expected:?}"
        );
    }
}

/// What a caller of a head parser ends up with.
type HeadResult<T> = Result<Option<(T, usize)>, HandshakeError>;

/// Feeds `chunks` to a head parser as a caller would, keeping everything since
/// the start and stopping at its first answer; returns that answer and, after a
/// complete head, every byte that followed it (later chunks included).
fn drive_head<'a, T>(
    parse: impl Fn(&[u8]) -> HeadResult<T>,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (HeadResult<T>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut answer = None;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        if answer.is_none() {
            match parse(&buf) {
                Ok(None) => {}
                Ok(Some((head, n))) => {
                    buf.drain(..n);
                    answer = Some(Ok(Some((head, n))));
                }
                Err(e) => return (Err(e), Vec::new()),
            }
        }
    }
    (answer.unwrap_or(Ok(None)), buf)
}

/// Errors agree if they are the same variant, answered with the same status.
/// (The parser's words for a malformed head may depend on where input was cut.)
fn same_error(a: &HandshakeError, b: &HandshakeError) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) && a.status() == b.status()
}

fn agree<T: PartialEq + std::fmt::Debug>(
    got: &(HeadResult<T>, Vec<u8>),
    whole: &(HeadResult<T>, Vec<u8>),
    how: &str,
) {
    match (&got.0, &whole.0) {
        (Err(a), Err(b)) => assert!(same_error(a, b), "{how}: {a:?} vs {b:?}"),
        _ => assert_eq!(got, whole, "{how}"),
    }
}

fn head_same_for_every_split<T: PartialEq + std::fmt::Debug>(
    parse: impl Fn(&[u8]) -> HeadResult<T>,
    input: &[u8],
) -> (HeadResult<T>, Vec<u8>) {
    let whole = drive_head(&parse, [input]);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let out = drive_head(&parse, [a, b]);
        agree(&out, &whole, &format!("split at {split}"));
    }
    let bytewise = drive_head(&parse, input.chunks(1));
    agree(&bytewise, &whole, "byte by byte");
    whole
}

#[test]
fn request_head_parses_the_same_however_it_is_split() {
    let mut headers = upgrade_headers();
    headers.push(("Sec-WebSocket-Protocol", "chat, superchat"));
    headers.push(("X-Folded-Looking", "a\tb"));
    let request = head("GET /chat?x=1 HTTP/1.1", &headers);
    let frames = cf(FIN | TEXT, b"early");
    let input = [request.clone(), frames.clone()].concat();
    let limits = RequestLimits::default();
    let (result, rest) = head_same_for_every_split(|b| parse_request(b, &limits), &input);
    let (req, n) = result.unwrap().unwrap();
    assert_eq!(n, request.len());
    assert_eq!(rest, frames);
    let upgrade = req.websocket_upgrade().unwrap().unwrap();
    assert_eq!(upgrade.protocols, ["chat", "superchat"]);
}

#[test]
fn bad_request_heads_fail_the_same_however_they_are_split() {
    let many: Vec<String> = (0..10).map(|i| format!("X-{i}")).collect();
    let fields: Vec<(&str, &str)> = many.iter().map(|n| (n.as_str(), "v")).collect();
    let limits = RequestLimits {
        max_head_bytes: 200,
        max_headers: 8,
    };
    let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(300));
    let cases: [(Vec<u8>, HandshakeError); 4] = [
        (
            head("GET / HTTP/1.1", &fields),
            HandshakeError::TooManyHeaders,
        ),
        (
            long.into_bytes(),
            HandshakeError::RequestTooLarge { max: 200 },
        ),
        (
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".to_vec(),
            HandshakeError::MalformedRequest("invalid header name"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\n\rX: y\r\n\r\n".to_vec(),
            HandshakeError::MalformedRequest("invalid header name"),
        ),
    ];
    for (input, expected) in cases {
        let (result, _) = head_same_for_every_split(|b| parse_request(b, &limits), &input);
        match result {
            Err(e) => assert!(same_error(&e, &expected), "{e:?} vs {expected:?}"),
            Ok(r) => panic!("accepted: {r:?}"),
        }
    }
}

#[test]
fn response_head_parses_the_same_however_it_is_split() {
    let hs = ClientHandshake::new(*b"the sample nonce", vec!["chat".to_owned()]);
    let mut req = Vec::new();
    hs.write_request(&mut req, "h", "/", &[]);
    let (request, _) = parse_request(&req, &RequestLimits::default())
        .unwrap()
        .unwrap();
    let upgrade = request.websocket_upgrade().unwrap().unwrap();
    let mut input = Vec::new();
    write_accept_response(&mut input, &upgrade, Some("chat"), &[]);
    let head_len = input.len();
    let frames = sf(FIN | BIN, b"\x00\x01");
    input.extend_from_slice(&frames);
    let (result, rest) = head_same_for_every_split(|b| hs.parse_response(b), &input);
    let (accepted, n) = result.unwrap().unwrap();
    assert_eq!(n, head_len);
    assert_eq!(rest, frames);
    assert_eq!(accepted.protocol.as_deref(), Some("chat"));
}
