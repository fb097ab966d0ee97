//! The closing handshake (RFC 6455 §5.5.1, §7): replies to the peer's close,
//! close-code and reason validation, what happens after we close first, and that a
//! failed or closed connection stays silent. These tests must never open a socket.

use super::support::*;
use crate::core::*;

/// A fresh server fed one masked close frame with `payload`.
fn server_after_close(payload: &[u8]) -> (WebSocket, Outcome) {
    let mut ws = server();
    let out = drive_whole(&mut ws, &cf(FIN | CLOSE, payload));
    (ws, out)
}

#[test]
fn close_without_payload_is_answered_with_an_empty_close() {
    let (ws, out) = server_after_close(b"");
    assert_eq!(out.error, None);
    assert_eq!(out.events, vec![Event::Close(None)]);
    assert_eq!(out.transmit, [0x88, 0x00]);
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn close_with_1000_and_a_reason_is_answered_echoing_the_code() {
    let (ws, out) = server_after_close(&close_payload(1000, "done ✓".as_bytes()));
    assert_eq!(
        out.events,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "done ✓".to_owned()
        }))]
    );
    assert_eq!(out.transmit, [0x88, 0x02, 0x03, 0xE8]);
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn close_payload_of_one_byte_is_1002() {
    let (ws, out) = server_after_close(&[0x03]);
    assert_failed(&ws, &out, ProtocolError::CloseFrameOneByte, 1002);
    assert!(out.events.is_empty());
}

#[test]
fn close_codes_that_may_not_appear_on_the_wire_are_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (ws, out) = server_after_close(&close_payload(code, b"why"));
        assert_failed(&ws, &out, ProtocolError::InvalidCloseCode(code), 1002);
        assert!(out.events.is_empty(), "code {code}");
    }
}

#[test]
fn allowed_close_codes_are_accepted_and_echoed() {
    let codes = (1000..=1003)
        .chain(1007..=1014)
        .chain([3000, 3999, 4000, 4999]);
    for code in codes {
        let (ws, out) = server_after_close(&close_payload(code, b""));
        assert_eq!(out.error, None, "code {code}");
        assert_eq!(
            out.events,
            vec![Event::Close(Some(CloseFrame {
                code: CloseCode(code),
                reason: String::new()
            }))]
        );
        let [hi, lo] = code.to_be_bytes();
        assert_eq!(out.transmit, [0x88, 0x02, hi, lo], "code {code}");
        assert_eq!(ws.state(), State::Closed);
    }
}

#[test]
fn close_reason_with_invalid_utf8_is_1007() {
    for reason in [&b"\xFF"[..], b"ok\xE2\x82", b"\xED\xA0\x80"] {
        let (ws, out) = server_after_close(&close_payload(1000, reason));
        assert_failed(&ws, &out, ProtocolError::InvalidUtf8InCloseReason, 1007);
    }
}

#[test]
fn client_answers_a_close_with_a_masked_echo() {
    let mut ws = client();
    let out = drive_whole(&mut ws, &sf(FIN | CLOSE, &close_payload(4001, b"app")));
    assert_eq!(ws.state(), State::Closed);
    let frames = sent_frames(&out.transmit);
    assert_eq!(frames.len(), 1);
    assert!(frames[0].masked);
    assert_eq!(frames[0].close_code(), Some(4001));
}

#[test]
fn after_we_close_data_is_discarded_and_the_peers_close_completes_it() {
    let mut ws = server();
    let mut sent = Vec::new();
    ws.close(CloseCode::GOING_AWAY, "restart", &mut sent)
        .unwrap();
    assert_eq!(ws.state(), State::Closing);
    assert_eq!(sent, sf(FIN | CLOSE, &close_payload(1001, b"restart")));

    // Data, even a fragmented message and a lone continuation, is read and dropped.
    let data = [
        cf(FIN | TEXT, b"late"),
        cf(BIN, &[1; 200]),
        cf(FIN | CONT, b"x"),
        cf(FIN | CONT, b"stray"),
    ]
    .concat();
    let out = drive_whole(&mut ws, &data);
    assert_eq!(out, Outcome::default());
    assert_eq!(ws.state(), State::Closing);

    // The peer's close completes the handshake, and no second close is sent.
    let out = drive_whole(&mut ws, &cf(FIN | CLOSE, &close_payload(1001, b"")));
    assert_eq!(
        out.events,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: String::new()
        }))]
    );
    assert!(out.transmit.is_empty());
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn while_closing_a_protocol_error_sends_no_second_close() {
    let mut ws = server();
    ws.close(CloseCode::NORMAL, "", &mut Vec::new()).unwrap();
    let out = drive_whole(&mut ws, &sf(FIN | TEXT, b"unmasked"));
    assert_eq!(out.error, Some(ProtocolError::UnmaskedClientFrame));
    assert!(out.transmit.is_empty());
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn after_a_close_is_received_send_ping_and_close_return_not_open() {
    let (mut ws, _) = server_after_close(&close_payload(1000, b""));
    let mut out = Vec::new();
    assert_eq!(ws.send(MessageKind::Text, b"hi", &mut out), Err(NotOpen));
    assert_eq!(ws.ping(b"", &mut out), Err(NotOpen));
    assert_eq!(ws.close(CloseCode::NORMAL, "", &mut out), Err(NotOpen));
    assert!(out.is_empty());
    assert!(!ws.is_open());
}

#[test]
fn after_we_close_send_returns_not_open() {
    let mut ws = server();
    let mut out = Vec::new();
    ws.close(CloseCode::NORMAL, "", &mut out).unwrap();
    let len = out.len();
    assert_eq!(ws.send(MessageKind::Binary, b"x", &mut out), Err(NotOpen));
    assert_eq!(ws.close(CloseCode::NORMAL, "", &mut out), Err(NotOpen));
    assert_eq!(out.len(), len);
}

#[test]
fn after_a_protocol_error_later_input_is_ignored_and_nothing_is_queued() {
    let mut ws = server();
    let out = drive_whole(&mut ws, &sf(FIN | TEXT, b"unmasked"));
    assert_failed(&ws, &out, ProtocolError::UnmaskedClientFrame, 1002);
    let later = [
        cf(FIN | PING, b"still there?"),
        cf(FIN | TEXT, b"hello"),
        cf(FIN | CLOSE, b""),
        vec![0xFF; 20],
    ]
    .concat();
    // Everything is swallowed without events, errors or replies.
    assert_eq!(ws.handle_read(&later), Ok(later.len()));
    assert_eq!(ws.poll_event(), None);
    assert!(!ws.has_transmit());
    let out = drive_bytewise(&mut ws, &later);
    assert_eq!(out, Outcome::default());
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(
        ws.send(MessageKind::Text, b"x", &mut Vec::new()),
        Err(NotOpen)
    );
}

#[test]
fn input_after_the_peers_close_is_ignored() {
    let input = [
        cf(FIN | CLOSE, b""),
        cf(FIN | TEXT, b"after"),
        cf(FIN | PING, b""),
    ]
    .concat();
    let mut ws = server();
    let out = drive_whole(&mut ws, &input);
    assert_eq!(out.events, vec![Event::Close(None)]);
    assert_eq!(out.transmit, [0x88, 0x00]);
    assert_eq!(out.error, None);
}

#[test]
fn close_with_a_long_reason_fits_one_control_frame() {
    let mut ws = server();
    let mut out = Vec::new();
    ws.close(CloseCode(4000), &"x".repeat(500), &mut out)
        .unwrap();
    let frames = sent_frames(&out);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(4000));
    assert_eq!(frames[0].payload.len(), 125);
}
