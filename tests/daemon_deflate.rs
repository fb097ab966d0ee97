//! Behaviour tests of permessage-deflate (RFC 7692) on the running daemon: what
//! each `compression` mode answers, that an independent client library (Python
//! `websockets`) round-trips through it, that compressed and plain members share
//! a chat room, and that a peer breaking the rules (RSV1 misuse, a compression
//! bomb, a malformed header) gets the right code and nobody else notices.
//!
//! Owns only assertions about what the binary sends. It must never reach into
//! the daemon's internals: frames are compressed and inflated here with flate2
//! (an independent DEFLATE implementation), and the library client runs as a
//! separate Python process (`tests/deflate/echo_client.py`).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::process::Command;
use std::time::Duration;

use common::Wsd;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use raw::{
    close_payload, frame, rss_kib, Raw, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, WAIT,
};

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
handshake = "2s"
ping_interval = "0s"
close = "300ms"
shutdown = "300ms"
[limits]
max_frame_bytes = 1048576
max_message_bytes = 1048576
[[route]]
path = "/off"
kind = "echo"
[[route]]
path = "/shared"
kind = "echo"
compression = "shared"
[[route]]
path = "/dedicated"
kind = "echo"
compression = "dedicated"
compression_window_bits = 12
[[route]]
path = "/chat"
kind = "chat"
announce = false
compression = "shared"
[[route]]
path = "/chat-dedicated"
kind = "chat"
announce = false
compression = "dedicated"
"#;

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// The interpreter that has `websockets`: `WSD_TEST_PYTHON` (set by `.ci/run`)
/// or `python3`. A missing module fails the test with how to install it: a
/// skipped check would pass without checking anything.
fn python() -> String {
    let python = std::env::var("WSD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import websockets"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "{python} cannot import websockets: `python3 -m pip install websockets` \
         or set WSD_TEST_PYTHON (.ci/run installs it)"
    );
    python
}

/// Runs the Python echo client against `url`; returns the extensions answer.
fn python_round_trip(url: &str) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/deflate/echo_client.py");
    let output = Command::new(python())
        .arg(script)
        .arg(url)
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client on {url}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["checked"], 15, "{result}");
    result["extensions"].as_str().map(str::to_owned)
}

/// Raw DEFLATE of one message without the sync-flush tail, as RFC 7692 §7.2.1
/// sends it, from a fresh context.
fn compress(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        out.reserve(64 * 1024);
        let before = c.total_in() as usize;
        c.compress_vec(&data[before..], &mut out, FlushCompress::Sync)
            .expect("compress");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Inflates one received message payload with `d` (tail appended).
fn inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 16);
    let start = d.total_in();
    loop {
        out.reserve(1 << 16);
        let taken = (d.total_in() - start) as usize;
        d.decompress_vec(&input[taken..], &mut out, FlushDecompress::Sync)
            .expect("the server's compressed data inflates");
        if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// Upgrades with a deflate offer; returns the client and the extensions answer.
fn upgrade_offering(wsd: &Wsd, path: &str, offer: &str) -> (Raw, Option<String>) {
    let (raw, response) = Raw::try_upgrade(wsd.addr, path, offer, &[]);
    assert_eq!(response.status, 101, "{response:?}");
    let answer = response
        .header("Sec-WebSocket-Extensions")
        .map(str::to_owned);
    (raw, answer)
}

fn chat_text(n: usize) -> Vec<u8> {
    let line = r#"{"type":"message","user":"grace","text":"compress me, please"}"#;
    line.repeat(n).into_bytes()
}

#[test]
fn each_mode_answers_as_configured_and_a_library_client_round_trips() {
    let wsd = Wsd::start(CONFIG);
    // Python websockets offers "permessage-deflate; client_max_window_bits".
    assert_eq!(python_round_trip(&wsd.url("/off")), None);
    assert_eq!(
        python_round_trip(&wsd.url("/shared")).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(
        python_round_trip(&wsd.url("/dedicated")).as_deref(),
        Some("permessage-deflate; client_max_window_bits=12")
    );
}

#[test]
fn the_server_compresses_what_it_sends_from_the_threshold_on() {
    let wsd = Wsd::start(CONFIG);
    let (mut raw, answer) = upgrade_offering(&wsd, "/shared", OFFER);
    assert!(answer.is_some());
    let mut inflater = Decompress::new(false);
    let long = chat_text(20);
    // Sent uncompressed; the echo comes back compressed (RSV1) all the same.
    raw.send(&frame(true, 0, OP_TEXT, Some(MASK), &long));
    let echo = raw.expect_frame("the echo");
    assert_eq!((echo.opcode, echo.rsv), (OP_TEXT, 4));
    assert!(
        echo.payload.len() < long.len() / 4,
        "{} bytes",
        echo.payload.len()
    );
    assert_eq!(inflate(&mut inflater, &echo.payload), long);
    // Under the threshold (256 bytes) it goes out as it is.
    raw.send(&frame(true, 4, OP_TEXT, Some(MASK), &compress(b"tiny")));
    let echo = raw.expect_frame("the echo");
    assert_eq!((echo.rsv, &echo.payload[..]), (0, &b"tiny"[..]));
    // A fragmented compressed message: RSV1 on the first frame only.
    let packed = compress(&long);
    let (a, b) = packed.split_at(packed.len() / 2);
    raw.send(&frame(false, 4, OP_TEXT, Some(MASK), a));
    raw.send(&frame(true, 0, OP_CONT, Some(MASK), b));
    let echo = raw.expect_frame("the echo of the fragments");
    assert_eq!(inflate(&mut Decompress::new(false), &echo.payload), long);
}

#[test]
fn offers_that_cannot_be_honoured_are_declined_and_broken_headers_refused() {
    let wsd = Wsd::start(CONFIG);
    for offer in [
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; mystery\r\n",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n",
    ] {
        let (mut raw, answer) = upgrade_offering(&wsd, "/shared", offer);
        assert_eq!(answer, None, "{offer}");
        // Declined means no compression: RSV1 is now a protocol error.
        raw.send(&frame(true, 4, OP_TEXT, Some(MASK), &compress(b"x")));
        assert_eq!(raw.expect_close(), Some(1002));
    }
    // Several offers: the first acceptable one is answered, exactly.
    let (_raw, answer) = upgrade_offering(
        &wsd,
        "/dedicated",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99, \
         permessage-deflate; server_max_window_bits=10; client_no_context_takeover\r\n",
    );
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=10")
    );
    let request = raw::upgrade_request(
        "/shared",
        "Sec-WebSocket-Extensions: permessage-deflate; x=\"unterminated\r\n",
    );
    let response = raw::http_exchange(wsd.addr, request.as_bytes());
    assert_eq!(response.status, 400);
    assert!(
        response.body_text().contains("Sec-WebSocket-Extensions"),
        "{}",
        response.body_text()
    );
}

#[test]
fn rsv1_misuse_is_closed_with_1002() {
    let wsd = Wsd::start(CONFIG);
    let packed = compress(&chat_text(10));
    // Without the extension negotiated.
    let mut raw = Raw::upgrade(wsd.addr, "/off");
    raw.send(&frame(true, 4, OP_TEXT, Some(MASK), &packed));
    assert_eq!(raw.expect_close(), Some(1002));
    // On a continuation frame.
    let (mut raw, _) = upgrade_offering(&wsd, "/shared", OFFER);
    raw.send(&frame(false, 4, OP_TEXT, Some(MASK), &packed[..5]));
    raw.send(&frame(true, 4, OP_CONT, Some(MASK), &packed[5..]));
    assert_eq!(raw.expect_close(), Some(1002));
    // On control frames.
    for (opcode, payload) in [
        (OP_PING, b"p".to_vec()),
        (OP_CLOSE, close_payload(1000, "")),
    ] {
        let (mut raw, _) = upgrade_offering(&wsd, "/dedicated", OFFER);
        raw.send(&frame(true, 4, opcode, Some(MASK), &payload));
        assert_eq!(raw.expect_close(), Some(1002), "opcode {opcode}");
    }
    // Data that is not DEFLATE at all.
    let (mut raw, _) = upgrade_offering(&wsd, "/shared", OFFER);
    raw.send(&frame(true, 4, OP_BINARY, Some(MASK), &[0xff; 16]));
    assert_eq!(raw.expect_close(), Some(1007));
}

#[test]
fn a_compression_bomb_is_closed_with_1009_and_memory_stays_bounded() {
    let wsd = Wsd::start(CONFIG);
    let pid = wsd.child.id();
    let (mut bystander, _) = upgrade_offering(&wsd, "/shared", OFFER);
    let before = rss_kib(pid);
    // 512 MiB of zeros compresses to about 512 KiB: one frame under the 1 MiB
    // frame limit that would inflate to 512 times the message limit.
    let bomb = compress(&vec![0u8; 512 << 20]);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    for path in ["/shared", "/dedicated"] {
        for _ in 0..3 {
            let (mut raw, _) = upgrade_offering(&wsd, path, OFFER);
            raw.send(&frame(true, 4, OP_BINARY, Some(MASK), &bomb));
            assert_eq!(raw.expect_close(), Some(1009), "{path}");
            assert!(raw.wait_eof(WAIT));
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // Nobody else noticed.
    let hello = chat_text(10);
    bystander.send(&frame(true, 0, OP_TEXT, Some(MASK), &hello));
    let echo = bystander.expect_frame("the bystander's echo");
    assert_eq!(inflate(&mut Decompress::new(false), &echo.payload), hello);
}

#[test]
fn a_chat_room_sends_compressed_and_plain_members_the_same_messages() {
    let wsd = Wsd::start(CONFIG);
    let (mut compressed, answer) = upgrade_offering(&wsd, "/chat?room=mix", OFFER);
    assert!(answer.is_some());
    let mut plain = Raw::upgrade(wsd.addr, "/chat?room=mix");
    let (mut sender, _) = upgrade_offering(&wsd, "/chat?room=mix", OFFER);
    std::thread::sleep(Duration::from_millis(100));
    let message = chat_text(8);
    sender.send(&frame(true, 4, OP_TEXT, Some(MASK), &compress(&message)));
    let got = compressed.expect_frame("the compressed member's copy");
    assert_eq!(got.rsv, 4);
    assert_eq!(inflate(&mut Decompress::new(false), &got.payload), message);
    let got = plain.expect_frame("the plain member's copy");
    assert_eq!((got.rsv, &got.payload), (0, &message));
    let got = sender.expect_frame("the sender's own copy");
    assert_eq!(inflate(&mut Decompress::new(false), &got.payload), message);
}

#[test]
fn a_dedicated_member_gets_its_own_context_kept_across_messages() {
    let wsd = Wsd::start(CONFIG);
    let (mut member, answer) = upgrade_offering(&wsd, "/chat-dedicated?room=d", OFFER);
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_max_window_bits=15")
    );
    let mut sender = Raw::upgrade(wsd.addr, "/chat-dedicated?room=d");
    std::thread::sleep(Duration::from_millis(100));
    // One inflater for the whole stream: the server keeps its context, so the
    // second copy refers back to the first.
    let mut inflater = Decompress::new(false);
    let message = chat_text(8);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sender.send(&frame(true, 0, OP_TEXT, Some(MASK), &message));
        let got = member.expect_frame("the member's copy");
        assert_eq!(got.rsv, 4);
        sizes.push(got.payload.len());
        assert_eq!(inflate(&mut inflater, &got.payload), message);
    }
    assert!(sizes[1] < sizes[0] / 2, "context takeover: {sizes:?}");
}
