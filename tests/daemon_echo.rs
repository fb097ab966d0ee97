//! Behaviour tests of the daemon's echo route over real loopback sockets: text and
//! binary messages of every length class come back unchanged, fragmented messages
//! come back whole, pings get pongs, and frames pipelined behind the handshake
//! are processed.
//!
//! Owns only assertions about what the running binary sends back. It must never
//! reach into the daemon's internals; tungstenite is the independent client and
//! the raw client is used where the protocol must be driven by hand.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;
use std::time::Duration;

use common::Wsd;
use raw::{client_frame, Raw, OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WAIT};
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
handshake = "2s"
ping_interval = "0s"
close = "300ms"
shutdown = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#;

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(wsd: &Wsd, path: &str) -> Client {
    let stream = TcpStream::connect(wsd.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let (ws, response) = tungstenite::client(wsd.url(path), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// A payload whose bytes depend on their position, so a reordered or shifted
/// echo cannot pass.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

#[test]
fn binary_messages_of_every_length_class_come_back_unchanged() {
    let wsd = Wsd::start(CONFIG);
    let mut ws = connect(&wsd, "/echo");
    for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
        let data = pattern(len);
        ws.send(Message::binary(data.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(got) => {
                assert_eq!(got.len(), len);
                assert!(got[..] == data[..], "binary echo of {len} bytes differs");
            }
            other => panic!("expected binary of {len} bytes, got {other:?}"),
        }
    }
    ws.close(None).unwrap();
}

#[test]
fn text_messages_of_every_length_class_come_back_unchanged() {
    let wsd = Wsd::start(CONFIG);
    let mut ws = connect(&wsd, "/echo");
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        // Multi-byte characters across the whole message, cut to exactly `len` bytes.
        let mut text: String = "aé€😀".chars().cycle().take(len).collect();
        while text.len() > len {
            text.pop();
        }
        while text.len() < len {
            text.push('x');
        }
        ws.send(Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(got) => assert!(got.as_str() == text, "text echo of {len} bytes differs"),
            other => panic!("expected text of {len} bytes, got {other:?}"),
        }
    }
}

#[test]
fn many_messages_in_a_row_come_back_in_order() {
    let wsd = Wsd::start(CONFIG);
    let mut ws = connect(&wsd, "/echo");
    for i in 0..200 {
        ws.write(Message::text(format!("message {i}"))).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..200 {
        assert_eq!(
            ws.read().unwrap(),
            Message::text(format!("message {i}")),
            "message {i}"
        );
    }
}

#[test]
fn fragmented_text_message_is_echoed_whole() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    // "héllo wörld" split inside the two-byte characters.
    let text = "héllo wörld".as_bytes();
    raw.send_frame(false, OP_TEXT, &text[..2]);
    raw.send_frame(false, OP_CONT, &text[2..8]);
    raw.send_frame(true, OP_CONT, &text[8..]);
    let f = raw.expect_frame("the echoed message");
    assert!(f.fin, "the echo is one unfragmented frame");
    assert_eq!(f.opcode, OP_TEXT);
    assert!(!f.masked);
    assert_eq!(f.payload, text);
}

#[test]
fn fragmented_binary_message_with_a_ping_between_fragments_is_echoed_whole() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let data = pattern(70_000);
    raw.send_frame(false, OP_BINARY, &data[..10]);
    raw.send_frame(true, OP_PING, b"between");
    raw.send_frame(false, OP_CONT, &data[10..66_000]);
    raw.send_frame(false, OP_CONT, &[]);
    raw.send_frame(true, OP_CONT, &data[66_000..]);
    let pong = raw.expect_frame("the pong");
    assert_eq!(pong.opcode, OP_PONG, "{pong:?}");
    assert_eq!(pong.payload, b"between");
    let f = raw.expect_frame("the echoed message");
    assert_eq!((f.fin, f.opcode), (true, OP_BINARY));
    assert!(f.payload == data, "reassembled message differs");
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    for payload in [&b""[..], b"x", &[0xAB; 125][..]] {
        raw.send_frame(true, OP_PING, payload);
        let f = raw.expect_frame("a pong");
        assert_eq!(f.opcode, OP_PONG, "{f:?}");
        assert!(f.fin);
        assert_eq!(f.payload, payload);
    }
}

#[test]
fn unsolicited_pong_is_ignored() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(true, OP_PONG, b"nobody asked");
    raw.send_frame(true, OP_TEXT, b"after");
    let f = raw.expect_frame("the echo");
    assert_eq!((f.opcode, &f.payload[..]), (OP_TEXT, &b"after"[..]));
}

#[test]
fn frames_pipelined_in_the_handshake_packet_are_processed() {
    let wsd = Wsd::start(CONFIG);
    let mut pipelined = client_frame(OP_TEXT, b"first");
    pipelined.extend(client_frame(OP_PING, b"p"));
    pipelined.extend(client_frame(OP_BINARY, &[1, 2, 3]));
    let (mut raw, response) = Raw::try_upgrade(wsd.addr, "/echo", "", &pipelined);
    assert_eq!(response.status, 101);
    assert_eq!(response.header("Sec-WebSocket-Accept"), Some(raw::ACCEPT));
    // Data echoes keep their order; the pong may come anywhere among them.
    let frames: Vec<_> = (0..3).map(|_| raw.expect_frame("a frame")).collect();
    let pongs: Vec<_> = frames.iter().filter(|f| f.opcode == OP_PONG).collect();
    assert_eq!(pongs.len(), 1, "{frames:?}");
    assert_eq!(pongs[0].payload, b"p");
    let echoes: Vec<(u8, &[u8])> = frames
        .iter()
        .filter(|f| f.opcode != OP_PONG)
        .map(|f| (f.opcode, &f.payload[..]))
        .collect();
    assert_eq!(
        echoes,
        vec![(OP_TEXT, &b"first"[..]), (OP_BINARY, &[1u8, 2, 3][..])]
    );
}

#[test]
fn one_write_of_short_large_and_control_frames_comes_back_in_order_then_1007() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let large = pattern(40_000);
    let mut batch = Vec::new();
    for i in 0..50u8 {
        batch.extend(client_frame(OP_BINARY, &[i; 16]));
    }
    batch.extend(client_frame(OP_TEXT, "short héllo".as_bytes()));
    batch.extend(client_frame(OP_BINARY, &large));
    batch.extend(client_frame(OP_PING, b"between"));
    batch.extend(client_frame(OP_TEXT, b"after the ping"));
    batch.extend(client_frame(OP_TEXT, b"not utf-8 \xc3\x28"));
    batch.extend(client_frame(OP_TEXT, b"never echoed"));
    raw.send(&batch);
    let mut want: Vec<(u8, Vec<u8>)> = (0..50u8).map(|i| (OP_BINARY, vec![i; 16])).collect();
    want.push((OP_TEXT, "short héllo".as_bytes().to_vec()));
    want.push((OP_BINARY, large));
    want.push((OP_PONG, b"between".to_vec()));
    want.push((OP_TEXT, b"after the ping".to_vec()));
    for (i, (opcode, payload)) in want.iter().enumerate() {
        let f = raw.expect_frame("an echo");
        assert_eq!(
            (f.opcode, f.payload.len()),
            (*opcode, payload.len()),
            "frame {i}"
        );
        assert_eq!(&f.payload, payload, "frame {i}");
    }
    assert_eq!(raw.expect_close(), Some(1007));
}

#[test]
fn frames_split_into_single_bytes_are_reassembled() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let data = pattern(300);
    let bytes = client_frame(OP_BINARY, &data);
    for b in &bytes {
        raw.send(std::slice::from_ref(b));
        // Give each byte its own segment where the kernel allows it.
        std::thread::sleep(Duration::from_micros(200));
    }
    let f = raw.expect_frame("the echo");
    assert_eq!((f.opcode, f.payload), (OP_BINARY, data));
}

#[test]
fn a_megabyte_of_frames_pipelined_behind_the_handshake_is_all_echoed() {
    let wsd = Wsd::start(CONFIG);
    let mut pipelined = Vec::new();
    for i in 0..20u8 {
        pipelined.extend(client_frame(OP_BINARY, &vec![i; 50_000]));
    }
    let (mut raw, response) = Raw::try_upgrade(wsd.addr, "/echo", "", &pipelined);
    assert_eq!(response.status, 101);
    for i in 0..20u8 {
        let f = raw.expect_frame("an echo");
        assert_eq!(f.opcode, OP_BINARY);
        assert!(f.payload == vec![i; 50_000], "echo {i} differs");
    }
}

#[test]
fn frames_cut_at_arbitrary_points_across_writes_are_reassembled() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let sizes: Vec<usize> = (0..120)
        .map(|i| (i * 7919) % 70_000 / (1 + i % 5))
        .collect();
    let mut bytes = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let mut payload = pattern(len);
        if let Some(first) = payload.first_mut() {
            *first = i as u8;
        }
        bytes.extend(client_frame(OP_BINARY, &payload));
    }
    // Deterministic pseudo-random cut points, from 1 byte to a few KiB apart.
    let reader = {
        let mut r = Raw::from_stream(raw.stream.try_clone().unwrap());
        let sizes = sizes.clone();
        std::thread::spawn(move || {
            for (i, &len) in sizes.iter().enumerate() {
                let f = r.expect_frame("an echo");
                let mut want = pattern(len);
                if let Some(first) = want.first_mut() {
                    *first = i as u8;
                }
                assert!(f.payload == want, "echo {i} of {len} bytes differs");
            }
        })
    };
    let mut pos = 0;
    let mut seed: u32 = 12345;
    while pos < bytes.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let step = 1 + (seed >> 16) as usize % 4000;
        let end = (pos + step).min(bytes.len());
        raw.send(&bytes[pos..end]);
        pos = end;
    }
    reader.join().expect("every echo arrived intact");
}

/// Large echoes go straight to the socket when nothing is queued ahead of
/// them, and what the socket does not take is queued: against a reader that
/// stops for a while with a tiny receive buffer, both happen, and every echo
/// still arrives whole and in order.
#[test]
fn large_echoes_to_a_reader_that_pauses_arrive_whole_and_in_order() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::connect_small_rcvbuf(wsd.addr).upgrade_on("/echo");
    let messages: Vec<Vec<u8>> = (0..24usize)
        .map(|i| {
            let len = if i % 4 == 3 { 10 } else { 5_000 + i * 9_973 };
            let mut payload = pattern(len);
            payload[0] = i as u8;
            payload
        })
        .collect();
    let writer = {
        let mut w = Raw::from_stream(raw.stream.try_clone().unwrap());
        let messages = messages.clone();
        std::thread::spawn(move || {
            for m in &messages {
                w.send(&client_frame(OP_BINARY, m));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for (i, want) in messages.iter().enumerate() {
        let f = raw.expect_frame("an echo");
        assert_eq!((f.fin, f.opcode), (true, OP_BINARY), "echo {i}");
        assert!(
            f.payload == *want,
            "echo {i} of {} bytes differs",
            want.len()
        );
    }
    writer.join().expect("every message was sent");
}

#[test]
fn an_empty_fragmented_message_is_echoed_empty() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    raw.send_frame(false, OP_TEXT, b"");
    raw.send_frame(true, OP_CONT, b"");
    let f = raw.expect_frame("the echo");
    assert_eq!((f.fin, f.opcode, f.payload.len()), (true, OP_TEXT, 0));
}

#[test]
fn a_pong_never_lands_inside_a_large_echo() {
    let wsd = Wsd::start(CONFIG);
    let mut raw = Raw::upgrade(wsd.addr, "/echo");
    let data = pattern(4 << 20);
    let mut bytes = client_frame(OP_BINARY, &data);
    bytes.extend(client_frame(OP_PING, b"during"));
    bytes.extend(client_frame(OP_TEXT, b"after"));
    raw.send(&bytes);
    // The pong may overtake the queued echoes, but it never splits a frame.
    let frames: Vec<_> = (0..3).map(|_| raw.expect_frame("a frame")).collect();
    let pong: Vec<_> = frames.iter().filter(|f| f.opcode == OP_PONG).collect();
    assert_eq!(pong.len(), 1, "{} frames", frames.len());
    assert_eq!(pong[0].payload, b"during");
    let echoes: Vec<_> = frames.iter().filter(|f| f.opcode != OP_PONG).collect();
    assert_eq!(echoes[0].opcode, OP_BINARY);
    assert!(
        echoes[0].fin && echoes[0].payload == data,
        "the large echo was corrupted"
    );
    assert_eq!(
        (echoes[1].opcode, &echoes[1].payload[..]),
        (OP_TEXT, &b"after"[..])
    );
}
