//! Behaviour tests of the daemon's backpressure over loopback: a chat member that
//! stops reading is closed with 1008 (or skipped, with `slow_consumer = "drop"`)
//! while the other members receive every message, and an echo client that floods
//! without reading cannot make the server's memory grow without bound.
//!
//! Owns assertions on what the clients receive, the daemon's log and counters,
//! and its resident memory from /proc. It must never assert on speed; every wait
//! is bounded and every flood has a fixed ceiling.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use common::Wsd;
use raw::{client_frame, rss_kib, Next, Raw, OP_BINARY, OP_CLOSE, WAIT};

/// Messages the flooding member sends, and their size (just under the limit).
const FLOOD_MESSAGES: u32 = 300;
const FLOOD_SIZE: usize = 60_000;

fn chat_config(policy: &str) -> String {
    format!(
        r#"
[log]
level = "info"
[limits]
max_message_bytes = 65536
max_send_buffer_bytes = 262144
read_pause_bytes = 65536
slow_consumer = "{policy}"
[timeouts]
ping_interval = "0s"
close = "300ms"
shutdown = "300ms"
[[route]]
path = "/chat"
kind = "chat"
announce = false
echo_to_sender = false
"#
    )
}

/// A member whose kernel receive buffer is tiny, so the server's queue for it
/// fills after little data once it stops reading.
fn slow_member(addr: SocketAddr, path: &str) -> Raw {
    Raw::connect_small_rcvbuf(addr).upgrade_on(path)
}

/// Message `i` of the flood: its index, then bytes derived from it.
fn flood_message(i: u32) -> Vec<u8> {
    let mut m = i.to_be_bytes().to_vec();
    m.extend((4..FLOOD_SIZE).map(|j| (j as u32).wrapping_mul(i + 7) as u8));
    m
}

/// Checks that `payload` is flood message `i`, whole.
fn check_flood_message(payload: &[u8]) -> u32 {
    assert_eq!(payload.len(), FLOOD_SIZE, "a broadcast arrived cut");
    let i = u32::from_be_bytes(payload[..4].try_into().unwrap());
    assert!(
        payload == flood_message(i),
        "broadcast {i} arrived corrupted"
    );
    i
}

/// Messages the sender may be ahead of the reading member: little enough (with
/// their frame headers) to stay far below the reading member's send limit, so
/// only a member that stops reading can go over it.
const WINDOW: u32 = 2;

/// A member reading every flood message in a thread: reports each index as it
/// arrives (`progress`) and the whole list, or what went wrong, at the end.
struct Reader {
    progress: mpsc::Receiver<u32>,
    done: mpsc::Receiver<Result<Vec<u32>, String>>,
}

fn reader(mut member: Raw) -> Reader {
    let (progress_tx, progress) = mpsc::channel();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while seen.len() < FLOOD_MESSAGES as usize {
            match member.read_frame(WAIT) {
                Next::Frame(f) if f.opcode == OP_BINARY => {
                    let i = check_flood_message(&f.payload);
                    seen.push(i);
                    let _ = progress_tx.send(i);
                }
                other => {
                    let _ = tx.send(Err(format!("after {} messages: {other:?}", seen.len())));
                    return;
                }
            }
        }
        let _ = tx.send(Ok(seen));
    });
    Reader { progress, done }
}

/// Floods the room, never more than `WINDOW` messages ahead of `reader`.
fn flood(sender: &mut Raw, reader: &Reader) {
    let mut received = 0;
    for i in 0..FLOOD_MESSAGES {
        while received + WINDOW <= i {
            match reader.progress.recv_timeout(WAIT) {
                Ok(_) => received += 1,
                Err(_) => panic!(
                    "the reading member stalled after {received} messages: {:?}",
                    reader.done.try_recv()
                ),
            }
        }
        sender.send(&client_frame(OP_BINARY, &flood_message(i)));
    }
}

#[test]
fn a_member_that_stops_reading_is_closed_with_1008_while_others_get_everything() {
    let mut wsd = Wsd::start(&chat_config("close"));
    let mut slow = slow_member(wsd.addr, "/chat?room=flood");
    let fast = reader(Raw::upgrade(wsd.addr, "/chat?room=flood"));
    let mut sender = Raw::upgrade(wsd.addr, "/chat?room=flood");
    flood(&mut sender, &fast);
    let seen = fast
        .done
        .recv_timeout(Duration::from_secs(30))
        .expect("the reading member finished in time")
        .expect("the reading member got every message");
    assert_eq!(
        seen,
        (0..FLOOD_MESSAGES).collect::<Vec<_>>(),
        "in order, none lost"
    );
    assert!(
        wsd.wait_for_log("closing with 1008", WAIT).is_some(),
        "the slow member's close is logged"
    );
    // The slow member never answers, so after the close timeout the server drops it.
    let mut saw_close = None;
    loop {
        match slow.read_frame(WAIT) {
            Next::Frame(f) if f.opcode == OP_BINARY => {
                check_flood_message(&f.payload);
            }
            Next::Frame(f) if f.opcode == OP_CLOSE => saw_close = f.close_code(),
            Next::Eof | Next::Error(_) => break,
            other => panic!("slow member: {other:?}"),
        }
    }
    if let Some(code) = saw_close {
        assert_eq!(code, 1008);
    }
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let summary = wsd.wait_for_log("stopped:", WAIT).expect("summary");
    assert!(summary.contains("slow consumers closed 1 "), "{summary}");
}

#[test]
fn with_drop_policy_a_slow_member_misses_messages_but_stays_open_and_intact() {
    let mut wsd = Wsd::start(&chat_config("drop"));
    let mut slow = slow_member(wsd.addr, "/chat?room=flood");
    let fast = reader(Raw::upgrade(wsd.addr, "/chat?room=flood"));
    let mut sender = Raw::upgrade(wsd.addr, "/chat?room=flood");
    flood(&mut sender, &fast);
    let seen = fast
        .done
        .recv_timeout(Duration::from_secs(30))
        .expect("the reading member finished in time")
        .expect("the reading member got every message");
    assert_eq!(seen.len(), FLOOD_MESSAGES as usize);
    // The slow member now reads: whole messages in order, some of them missing.
    let mut got = Vec::new();
    sender.send(&client_frame(raw::OP_TEXT, b"end"));
    loop {
        let f = slow.expect_frame("the rest of the flood");
        match f.opcode {
            OP_BINARY => got.push(check_flood_message(&f.payload)),
            raw::OP_TEXT => {
                assert_eq!(f.payload, b"end");
                break;
            }
            _ => panic!("slow member: {f:?}"),
        }
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    assert!(
        got.len() < FLOOD_MESSAGES as usize,
        "the slow member missed nothing, so the flood never filled its queue"
    );
    // It is still a member: its own messages reach the others.
    slow.send(&client_frame(raw::OP_TEXT, b"back"));
    let mut sender_sees = sender.expect_frame("the slow member's message");
    assert_eq!(sender_sees.payload, b"back");
    sender_sees.payload.clear();
    let status = wsd.terminate(WAIT).expect("wsd exits");
    assert!(status.success());
    let summary = wsd.wait_for_log("stopped:", WAIT).expect("summary");
    assert!(summary.contains("slow consumers closed 0 "), "{summary}");
    assert!(!summary.contains("dropped msgs 0 "), "{summary}");
}

#[test]
fn an_echo_client_that_floods_without_reading_does_not_grow_server_memory() {
    // The send limit is huge, so only the read pause protects the server.
    let wsd = Wsd::start(
        r#"
[log]
level = "info"
[limits]
max_message_bytes = 1048576
max_send_buffer_bytes = 1073741824
read_pause_bytes = 1048576
[timeouts]
ping_interval = "0s"
close = "300ms"
[[route]]
path = "/echo"
kind = "echo"
"#,
    );
    let pid = wsd.child.id();
    let mut warm = Raw::upgrade(wsd.addr, "/echo");
    warm.send(&client_frame(OP_BINARY, &[1; 65536]));
    warm.expect_frame("warm-up echo");
    let before = rss_kib(pid);

    let mut client = Raw::upgrade(wsd.addr, "/echo");
    let frame = client_frame(OP_BINARY, &vec![0x5a; 65536]);
    let echo_len = 4 + 65536;
    client
        .stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Write without reading until nothing more goes in for half a second, or 256 MiB.
    let ceiling: u64 = 256 << 20;
    let mut sent: u64 = 0;
    let mut offset = 0;
    let mut stalled = false;
    while sent < ceiling {
        match client.stream.write(&frame[offset..]) {
            Ok(n) => {
                sent += n as u64;
                offset = (offset + n) % frame.len();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalled = true;
                break;
            }
            Err(e) => panic!("write failed after {sent} bytes: {e}"),
        }
    }
    let during = rss_kib(pid);
    assert!(
        stalled,
        "the server read {sent} bytes without the client reading any echo"
    );
    let growth_mib = during.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 64,
        "server RSS grew by {growth_mib} MiB ({before} -> {during} KiB) while {sent} bytes were flooded"
    );

    // Now read: every message sent comes back whole.
    let reader = client.stream.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = Raw::from_stream(reader);
        let mut bytes: u64 = 0;
        loop {
            match r.read_frame(WAIT) {
                Next::Frame(f) if f.opcode == OP_BINARY => {
                    assert!(f.payload.iter().all(|&b| b == 0x5a));
                    bytes += (f.payload.len() + 4) as u64;
                }
                Next::Frame(f) if f.opcode == OP_CLOSE => {
                    let _ = tx.send(Ok(bytes));
                    return;
                }
                other => {
                    let _ = tx.send(Err(format!("after {bytes} echoed bytes: {other:?}")));
                    return;
                }
            }
        }
    });
    client.stream.set_write_timeout(Some(WAIT)).unwrap();
    client.stream.write_all(&frame[offset..]).unwrap();
    let messages = (sent + (frame.len() - offset) as u64) / frame.len() as u64;
    client.send(&client_frame(OP_CLOSE, &raw::close_payload(1000, "")));
    let echoed = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the echoes arrive in time")
        .expect("every echo arrives");
    assert_eq!(echoed, messages * echo_len, "echoed bytes");
}
