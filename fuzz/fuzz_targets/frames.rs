//! Fuzz target: the WebSocket state machine after the handshake, both roles.
//!
//! The first input byte picks read sizes, limits and whether permessage-deflate
//! is on (with or without context takeover); the rest is fed to a server
//! and to a client the way the reactor does it: append what a read returned, loop
//! `handle_read`/`poll_event`/`poll_transmit`, keep the unconsumed tail. Each run
//! is done twice, with the whole input in one read and in pieces, and both must
//! agree on events, errors and the bytes queued for sending. Those bytes must be
//! exactly the replies the peer is owed (pongs, the close reply, or a close with
//! the error's code). It must never do I/O; a panic or failed assertion here is a
//! bug in the core.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsd::core::deflate::{DeflateParams, DeflateSettings, PerMessageDeflate};
use wsd::core::frame::MAX_HEADER_LEN;
use wsd::core::{CloseFrame, Event, Limits, MessageKind, ProtocolError, Role, State, WebSocket};
use wsd_fuzz::Splits;

/// Small limits, picked by bits 2-3 of the seed byte, so that no declared length
/// makes a run allocate much and short inputs reach every limit, including a
/// message limit that only fragments can exceed.
fn limits_for(seed: u8) -> Limits {
    let (max_frame_size, max_message_size) = match (seed >> 2) & 3 {
        0 | 1 => (64 * 1024, 64 * 1024),
        2 => (64 * 1024, 256),
        _ => (100, 300),
    };
    Limits {
        max_frame_size,
        max_message_size,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Server,
    Client,
}

/// permessage-deflate, picked by bits 4-5 of the seed byte: off, without context
/// takeover (the shared contexts), or with it (contexts of the connection's own).
fn deflate_for(seed: u8) -> Option<DeflateParams> {
    let takeover = match (seed >> 4) & 3 {
        1 => false,
        2 => true,
        _ => return None,
    };
    Some(DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        server_max_window_bits: None,
        client_max_window_bits: None,
    })
}

fn open(side: Side, limits: Limits, deflate: Option<DeflateParams>) -> WebSocket {
    let (ws, role) = match side {
        Side::Server => (WebSocket::server(limits), Role::Server),
        Side::Client => (WebSocket::client(limits, [0x5e; 32]), Role::Client),
    };
    match deflate {
        Some(params) => ws.with_deflate(PerMessageDeflate::new(
            role,
            &params,
            DeflateSettings::default(),
            0,
        )),
        None => ws,
    }
}

/// Everything a run produced.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    /// Bytes queued by `poll_transmit`, in order.
    transmit: Vec<u8>,
    /// Received bytes not consumed at the end (empty after an error).
    leftover: Vec<u8>,
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limits = limits_for(seed);
    let deflate = deflate_for(seed);
    for side in [Side::Server, Side::Client] {
        let whole = run(
            side,
            limits,
            deflate,
            data,
            std::iter::once(data.len().max(1)),
        );
        let split = run(side, limits, deflate, data, Splits::new(seed));
        assert_eq!(
            whole, split,
            "{side:?}: outcome depends on how the input was split"
        );
        check_replies(side, &whole);
        // Every event comes from a frame of at least two bytes.
        assert!(whole.events.len() <= data.len() / 2);
    }
});

/// Feeds `data` in reads of the given sizes to a fresh connection.
fn run(
    side: Side,
    limits: Limits,
    deflate: Option<DeflateParams>,
    data: &[u8],
    reads: impl Iterator<Item = usize>,
) -> Outcome {
    let mut ws = open(side, limits, deflate);
    let mut out = Outcome::default();
    let mut received: Vec<u8> = Vec::new();
    let mut rest = data;
    for size in reads {
        let (read, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        received.extend_from_slice(read);
        if let Err(e) = drain(&mut ws, limits, &mut received, &mut out) {
            // A failed connection is closed, owes exactly one close frame (checked
            // by `check_replies`), and ignores whatever else arrives.
            assert_eq!(ws.state(), State::Closed);
            assert!(!ws.has_transmit());
            assert_eq!(ws.handle_read(data), Ok(data.len()));
            assert_eq!(ws.poll_event(), None);
            out.error = Some(e);
            return out;
        }
        if rest.is_empty() {
            break;
        }
    }
    out.leftover = received;
    out
}

/// Consumes as much of `received` as the connection will take now, recording
/// events and queued bytes, and leaves only the unconsumed tail in `received`.
fn drain(
    ws: &mut WebSocket,
    limits: Limits,
    received: &mut Vec<u8>,
    out: &mut Outcome,
) -> Result<(), ProtocolError> {
    let result = ws.handle_read(received);
    while let Some(event) = ws.poll_event() {
        check_event(&event, limits);
        out.events.push(event);
    }
    ws.poll_transmit(&mut out.transmit);
    let pos = match result {
        Ok(consumed) => {
            assert!(
                consumed <= received.len(),
                "consumed {consumed} of {}",
                received.len()
            );
            // What is left is at most a partial frame header.
            let left = received.len() - consumed;
            assert!(left < MAX_HEADER_LEN, "stalled with {left} bytes left");
            if ws.state() == State::Closed {
                assert_eq!(left, 0, "a closed connection must discard input");
            }
            consumed
        }
        Err(e) => {
            assert_eq!(ws.state(), State::Closed, "a failure closes once drained");
            received.clear();
            return Err(e);
        }
    };
    received.drain(..pos);
    Ok(())
}

fn check_event(event: &Event, limits: Limits) {
    match event {
        Event::Message(m) => {
            assert!(m.data.len() as u64 <= limits.max_message_size);
            if m.kind == MessageKind::Text {
                assert!(
                    std::str::from_utf8(&m.data).is_ok(),
                    "text message is not UTF-8"
                );
            }
        }
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
        Event::Close(Some(frame)) => assert!(frame.code.is_allowed_on_wire()),
        Event::Close(None) => {}
    }
}

/// Decodes what the connection queued with a peer of the other role and checks it
/// is exactly what RFC 6455 owes: a pong per ping, then the close reply or, after
/// an error, a close carrying the error's code.
fn check_replies(side: Side, outcome: &Outcome) {
    let mut expected: Vec<Event> = Vec::new();
    for event in &outcome.events {
        match event {
            Event::Ping(payload) => expected.push(Event::Pong(payload.clone())),
            Event::Close(frame) => {
                expected.push(Event::Close(frame.as_ref().map(|f| CloseFrame {
                    code: f.code,
                    reason: String::new(),
                })))
            }
            Event::Message(_) | Event::Pong(_) => {}
        }
    }
    let peer_side = match side {
        Side::Server => Side::Client,
        Side::Client => Side::Server,
    };
    let mut peer = open(peer_side, Limits::default(), None);
    let mut replies = Outcome::default();
    let mut received = outcome.transmit.clone();
    if let Err(e) = drain(&mut peer, Limits::default(), &mut received, &mut replies) {
        panic!(
            "{side:?} queued bytes its peer rejects ({e}): {:?}",
            outcome.transmit
        );
    }
    assert!(received.is_empty(), "{side:?} queued a partial frame");
    let mut got = replies.events;
    if let Some(error) = &outcome.error {
        match got.pop() {
            Some(Event::Close(Some(frame))) => assert_eq!(frame.code, error.close_code()),
            other => panic!("{side:?} failed with {error:?} but its last reply is {other:?}"),
        }
    }
    assert_eq!(
        got, expected,
        "{side:?}: replies do not match what the peer sent"
    );
}
