//! Behaviour tests of every way a WebSocket connection to the daemon closes: the
//! client's close is answered, and every protocol violation gets the close code
//! RFC 6455 §7.4.1 names for it, after which the server closes TCP promptly.
//!
//! Owns assertions on close frames and EOF only, seen from a raw client that can
//! send what a correct client never would. It must never depend on the daemon's
//! internals or on timing beyond bounded waits.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::Wsd;
use raw::{close_payload, frame, Raw, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, WAIT};

/// Small limits so the 1009 paths are cheap to reach; a close timeout short
/// enough that a leftover connection never slows the suite.
const CONFIG: &str = r#"
[log]
level = "info"
[limits]
max_frame_bytes = 1000
max_message_bytes = 3000
max_send_buffer_bytes = 65536
read_pause_bytes = 32768
[timeouts]
handshake = "2s"
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

const MASK: Option<[u8; 4]> = Some([9, 8, 7, 6]);

/// Sends `bytes` on a fresh upgraded connection and expects a close with `code`,
/// then EOF.
fn expect_close_after(wsd: &Wsd, what: &str, bytes: &[u8], code: u16) {
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send(bytes);
    let got = raw.expect_close();
    assert_eq!(got, Some(code), "{what}: close code");
    assert!(raw.wait_eof(WAIT), "{what}: no EOF after the close frame");
}

#[test]
fn client_close_with_reason_is_answered_with_1000_and_tcp_closes() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(true, OP_CLOSE, &close_payload(1000, "bye now"));
    assert_eq!(raw.expect_close(), Some(1000));
    raw.expect_eof();
}

#[test]
fn client_close_with_an_application_code_echoes_the_code() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(true, OP_CLOSE, &close_payload(4321, ""));
    assert_eq!(raw.expect_close(), Some(4321));
    raw.expect_eof();
}

#[test]
fn empty_close_is_answered_with_an_empty_close() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(true, OP_CLOSE, &[]);
    let f = raw.expect_frame("the close answer");
    assert_eq!(f.opcode, OP_CLOSE);
    assert!(f.payload.is_empty(), "expected an empty close, got {f:?}");
    raw.expect_eof();
}

#[test]
fn messages_after_the_close_are_not_echoed() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let mut bytes = raw::client_frame(OP_CLOSE, &close_payload(1000, ""));
    bytes.extend(raw::client_frame(OP_TEXT, b"too late"));
    raw.send(&bytes);
    assert_eq!(raw.expect_close(), Some(1000));
    raw.expect_eof();
}

#[test]
fn tungstenite_client_close_completes_cleanly() {
    let wsd = Wsd::start(CONFIG);
    let stream = std::net::TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(wsd.url("/echo"), stream).unwrap();
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    let mut saw_close = false;
    for _ in 0..10 {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1000);
                saw_close = true;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close did not complete cleanly: {e}"),
        }
    }
    assert!(saw_close, "the server's close frame never arrived");
}

#[test]
fn invalid_close_codes_get_1002() {
    let wsd = Wsd::start(CONFIG);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        expect_close_after(
            &wsd,
            &format!("close code {code}"),
            &raw::client_frame(OP_CLOSE, &close_payload(code, "")),
            1002,
        );
    }
}

#[test]
fn one_byte_close_payload_gets_1002() {
    let wsd = Wsd::start(CONFIG);
    expect_close_after(
        &wsd,
        "1-byte close",
        &raw::client_frame(OP_CLOSE, &[3]),
        1002,
    );
}

#[test]
fn close_reason_that_is_not_utf8_gets_1007() {
    let wsd = Wsd::start(CONFIG);
    let mut payload = close_payload(1000, "");
    payload.extend_from_slice(&[0xc3, 0x28]);
    expect_close_after(
        &wsd,
        "bad close reason",
        &raw::client_frame(OP_CLOSE, &payload),
        1007,
    );
}

#[test]
fn invalid_utf8_text_gets_1007() {
    let wsd = Wsd::start(CONFIG);
    for bad in [
        &[0xffu8][..],
        b"ok \xc3\x28",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
    ] {
        expect_close_after(
            &wsd,
            &format!("text {bad:?}"),
            &raw::client_frame(OP_TEXT, bad),
            1007,
        );
    }
}

#[test]
fn invalid_utf8_in_a_first_fragment_gets_1007_before_the_message_ends() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    // FIN is clear and no continuation ever follows: the server must not wait for it.
    raw.send(&frame(false, 0, OP_TEXT, MASK, b"valid start \xfe"));
    assert_eq!(raw.expect_close(), Some(1007));
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn invalid_utf8_in_a_middle_fragment_gets_1007_before_the_message_ends() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send(&frame(false, 0, OP_TEXT, MASK, b"abc"));
    raw.send(&frame(false, 0, OP_CONT, MASK, b"\xe2\x82")); // a valid prefix of '€'
    raw.send(&frame(false, 0, OP_CONT, MASK, b"\x28")); // cannot continue it
    assert_eq!(raw.expect_close(), Some(1007));
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn utf8_split_across_fragments_is_valid() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send(&frame(false, 0, OP_TEXT, MASK, b"\xe2"));
    raw.send(&frame(false, 0, OP_CONT, MASK, b"\x82"));
    raw.send(&frame(true, 0, OP_CONT, MASK, b"\xac"));
    let f = raw.expect_frame("the echo");
    assert_eq!((f.opcode, f.payload), (OP_TEXT, "€".as_bytes().to_vec()));
}

#[test]
fn reserved_opcodes_get_1002() {
    let wsd = Wsd::start(CONFIG);
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        expect_close_after(
            &wsd,
            &format!("opcode {op:#x}"),
            &frame(true, 0, op, MASK, b"x"),
            1002,
        );
    }
}

#[test]
fn rsv_bits_without_an_extension_get_1002() {
    let wsd = Wsd::start(CONFIG);
    for rsv in [1u8, 2, 4, 7] {
        expect_close_after(
            &wsd,
            &format!("rsv {rsv:#b}"),
            &frame(true, rsv, OP_TEXT, MASK, b"x"),
            1002,
        );
    }
}

#[test]
fn unmasked_client_frame_gets_1002() {
    let wsd = Wsd::start(CONFIG);
    expect_close_after(
        &wsd,
        "unmasked text",
        &frame(true, 0, OP_TEXT, None, b"hi"),
        1002,
    );
    expect_close_after(
        &wsd,
        "unmasked ping",
        &frame(true, 0, OP_PING, None, b""),
        1002,
    );
}

#[test]
fn control_frame_rules_violations_get_1002() {
    let wsd = Wsd::start(CONFIG);
    expect_close_after(
        &wsd,
        "ping of 126 bytes",
        &frame(true, 0, OP_PING, MASK, &[0; 126]),
        1002,
    );
    expect_close_after(
        &wsd,
        "fragmented ping",
        &frame(false, 0, OP_PING, MASK, b"x"),
        1002,
    );
}

#[test]
fn fragmentation_order_violations_get_1002() {
    let wsd = Wsd::start(CONFIG);
    expect_close_after(
        &wsd,
        "continuation without a start",
        &frame(true, 0, OP_CONT, MASK, b"x"),
        1002,
    );
    let mut bytes = frame(false, 0, OP_TEXT, MASK, b"a");
    bytes.extend(frame(true, 0, OP_BINARY, MASK, b"b"));
    expect_close_after(&wsd, "new message inside a fragmented one", &bytes, 1002);
}

#[test]
fn frame_over_max_frame_bytes_gets_1009_from_its_header_alone() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    // Only the header of a 1001-byte frame: the limit is checked before any payload.
    let whole = frame(true, 0, OP_BINARY, MASK, &[0; 1001]);
    raw.send(&whole[..8]);
    assert_eq!(raw.expect_close(), Some(1009));
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn frame_at_max_frame_bytes_is_fine() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(true, OP_BINARY, &[5; 1000]);
    let f = raw.expect_frame("the echo");
    assert_eq!((f.opcode, f.payload.len()), (OP_BINARY, 1000));
}

#[test]
fn message_over_max_message_bytes_gets_1009_before_it_ends() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    // 3 × 1000 bytes fit the 3000-byte limit exactly; the fourth fragment does not.
    raw.send(&frame(false, 0, OP_BINARY, MASK, &[1; 1000]));
    raw.send(&frame(false, 0, OP_CONT, MASK, &[2; 1000]));
    raw.send(&frame(false, 0, OP_CONT, MASK, &[3; 1000]));
    raw.send(&frame(false, 0, OP_CONT, MASK, &[4; 1]));
    assert_eq!(raw.expect_close(), Some(1009));
    assert!(raw.wait_eof(WAIT));
}

#[test]
fn message_at_max_message_bytes_is_echoed() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send(&frame(false, 0, OP_BINARY, MASK, &[1; 1000]));
    raw.send(&frame(false, 0, OP_CONT, MASK, &[2; 1000]));
    raw.send(&frame(true, 0, OP_CONT, MASK, &[3; 1000]));
    let f = raw.expect_frame("the echo");
    assert_eq!((f.opcode, f.payload.len()), (OP_BINARY, 3000));
    assert_eq!((f.payload[0], f.payload[1500], f.payload[2999]), (1, 2, 3));
}

#[test]
fn a_protocol_error_on_one_connection_leaves_the_others_alone() {
    let wsd = Wsd::start(CONFIG);
    let mut good = Raw::upgrade(wsd.addr, "/echo");
    expect_close_after(&wsd, "rsv", &frame(true, 1, OP_TEXT, MASK, b"x"), 1002);
    good.send_frame(true, OP_TEXT, b"still here");
    let f = good.expect_frame("the echo");
    assert_eq!(f.payload, b"still here");
}

#[test]
fn protocol_errors_are_counted_by_close_code() {
    let mut wsd = Wsd::start(CONFIG);
    expect_close_after(&wsd, "rsv", &frame(true, 1, OP_TEXT, MASK, b"x"), 1002);
    expect_close_after(&wsd, "utf8", &raw::client_frame(OP_TEXT, b"\xff"), 1007);
    let status = wsd.terminate(WAIT).expect("wsd exits after SIGTERM");
    assert!(status.success());
    let summary = wsd
        .wait_for_log("stopped:", WAIT)
        .expect("a final summary line");
    assert!(summary.contains("protocol errors 2"), "{summary}");
    assert!(
        summary.contains("1002: 1") && summary.contains("1007: 1"),
        "{summary}"
    );
}

#[test]
fn a_close_behind_a_large_message_comes_after_its_echo() {
    let wsd = Wsd::start(&CONFIG.replace("max_frame_bytes = 1000", "max_frame_bytes = 3000"));
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let mut bytes = Vec::new();
    for i in 0..10u8 {
        bytes.extend(raw::client_frame(OP_BINARY, &[i; 3000]));
    }
    bytes.extend(raw::client_frame(OP_CLOSE, &close_payload(1000, "done")));
    raw.send(&bytes);
    for i in 0..10u8 {
        let f = raw.expect_frame("an echo before the close");
        assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![i; 3000]));
    }
    assert_eq!(raw.expect_close(), Some(1000));
    raw.expect_eof();
}

#[test]
fn a_64_bit_length_with_the_top_bit_set_gets_1002() {
    let wsd = Wsd::start(CONFIG);
    let mut bytes = vec![0x82, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    expect_close_after(&wsd, "top bit of the length", &bytes, 1002);
}
