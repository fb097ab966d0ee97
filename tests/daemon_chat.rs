//! Behaviour tests of the chat route over loopback: every member of a room gets
//! every message (the sender too, unless `echo_to_sender = false`), rooms are kept
//! apart, join/leave/welcome announcements arrive, `max_members` and `max_rooms`
//! refuse with 503, and a member that stops reading does not hold up the others.
//!
//! Owns assertions on what tungstenite (and raw) clients receive. It must never
//! depend on the daemon's internals; waits for "nothing arrived" are replaced by
//! a marker message that must be the next thing to arrive.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Wsd;
use raw::{upgrade_status, Raw, WAIT};
use tungstenite::Message;

const CONFIG: &str = r#"
[log]
level = "info"
[timeouts]
ping_interval = "0s"
close = "300ms"

[[route]]
path = "/chat"
kind = "chat"

[[route]]
path = "/quiet"
kind = "chat"
echo_to_sender = false
announce = false

[[route]]
path = "/small"
kind = "chat"
max_members = 2
announce = false

[[route]]
path = "/big"
kind = "chat"
announce = false

[[route]]
path = "/one-room"
kind = "chat"
max_rooms = 1
announce = false
"#;

type Client = tungstenite::WebSocket<TcpStream>;

fn join(wsd: &Wsd, path: &str) -> Client {
    let stream = TcpStream::connect(wsd.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (ws, response) = tungstenite::client(wsd.url(path), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn next(ws: &mut Client) -> Message {
    ws.read().expect("a message")
}

fn next_text(ws: &mut Client) -> String {
    match next(ws) {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next message that is not an announcement.
fn next_chat(ws: &mut Client) -> Message {
    loop {
        let m = next(ws);
        if !matches!(&m, Message::Text(t) if t.starts_with("{\"type\":")) {
            return m;
        }
    }
}

/// A top-level field of a flat JSON object, as its raw text (strings unquoted).
fn field(json: &str, name: &str) -> String {
    let key = format!("\"{name}\":");
    let start = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + key.len();
    let rest = &json[start..];
    if let Some(s) = rest.strip_prefix('"') {
        s[..s.find('"').expect("closing quote")].to_owned()
    } else {
        rest[..rest.find([',', '}']).expect("end of value")].to_owned()
    }
}

/// Joins and reads the welcome; returns the client and its id.
fn member(wsd: &Wsd, room: &str) -> (Client, String) {
    let mut ws = join(wsd, &format!("/chat?room={room}"));
    let welcome = next_text(&mut ws);
    assert_eq!(field(&welcome, "type"), "welcome", "{welcome}");
    (ws, field(&welcome, "id"))
}

#[test]
fn every_member_of_a_room_receives_each_message_sender_included() {
    let wsd = Wsd::start(CONFIG);
    let mut members: Vec<Client> = (0..4).map(|_| member(&wsd, "a").0).collect();
    for from in 0..members.len() {
        let text = format!("hello from {from}");
        members[from].send(Message::text(text.clone())).unwrap();
        let data = vec![from as u8; 3000];
        members[from].send(Message::binary(data.clone())).unwrap();
        for (i, ws) in members.iter_mut().enumerate() {
            assert_eq!(next_chat(ws), Message::text(text.clone()), "member {i}");
            assert_eq!(next_chat(ws), Message::binary(data.clone()), "member {i}");
        }
    }
}

#[test]
fn rooms_are_kept_apart() {
    let wsd = Wsd::start(CONFIG);
    let (mut a1, _) = member(&wsd, "a");
    let (mut a2, _) = member(&wsd, "a");
    let (mut b, _) = member(&wsd, "b");
    a1.send(Message::text("for room a only")).unwrap();
    assert_eq!(next_chat(&mut a2), Message::text("for room a only"));
    a2.close(None).unwrap();
    // Room a has had a message, a join and a leave; room b must see none of it:
    // the next thing b gets is its own marker.
    while a2.read().is_ok() {}
    // a1 sees a2's join, its own message and then a2's leave.
    let seen: Vec<String> = (0..3).map(|_| next_text(&mut a1)).collect();
    assert_eq!(field(&seen[0], "type"), "join", "{seen:?}");
    assert_eq!(seen[1], "for room a only");
    assert_eq!(field(&seen[2], "type"), "leave", "{seen:?}");
    b.send(Message::text("marker")).unwrap();
    assert_eq!(next(&mut b), Message::text("marker"));
}

#[test]
fn join_leave_and_welcome_announcements_arrive() {
    let wsd = Wsd::start(CONFIG);
    let mut first = join(&wsd, "/chat?room=lobby%20one");
    let welcome = next_text(&mut first);
    assert_eq!(field(&welcome, "type"), "welcome");
    assert_eq!(
        field(&welcome, "room"),
        "lobby one",
        "room names are percent-decoded"
    );
    assert_eq!(field(&welcome, "members"), "1");
    let first_id = field(&welcome, "id");

    let mut second = join(&wsd, "/chat?room=lobby%20one");
    let welcome2 = next_text(&mut second);
    assert_eq!(field(&welcome2, "type"), "welcome");
    assert_eq!(field(&welcome2, "members"), "2");
    let second_id = field(&welcome2, "id");
    assert_ne!(first_id, second_id);

    let joined = next_text(&mut first);
    assert_eq!(field(&joined, "type"), "join", "{joined}");
    assert_eq!(field(&joined, "id"), second_id);
    assert_eq!(field(&joined, "members"), "2");

    second.close(None).unwrap();
    while second.read().is_ok() {}
    let left = next_text(&mut first);
    assert_eq!(field(&left, "type"), "leave", "{left}");
    assert_eq!(field(&left, "id"), second_id);
    assert_eq!(field(&left, "members"), "1");
}

#[test]
fn a_member_that_vanishes_without_a_close_is_announced_as_left() {
    let wsd = Wsd::start(CONFIG);
    let (mut stays, _) = member(&wsd, "v");
    let mut vanishes = Raw::upgrade(wsd.addr, "/chat?room=v");
    let welcome = vanishes.expect_frame("welcome");
    let id = field(std::str::from_utf8(&welcome.payload).unwrap(), "id");
    assert_eq!(field(&next_text(&mut stays), "type"), "join");
    drop(vanishes);
    let left = next_text(&mut stays);
    assert_eq!(
        (field(&left, "type"), field(&left, "id")),
        ("leave".into(), id)
    );
}

#[test]
fn with_echo_to_sender_false_the_sender_does_not_get_its_own_messages() {
    let wsd = Wsd::start(CONFIG);
    let mut x = join(&wsd, "/quiet?room=q");
    let mut y = join(&wsd, "/quiet?room=q");
    x.send(Message::text("from x")).unwrap();
    assert_eq!(next(&mut y), Message::text("from x"));
    y.send(Message::text("from y")).unwrap();
    // x's own message was queued before y's: had it come back, it would be first.
    assert_eq!(next(&mut x), Message::text("from y"));
    x.send(Message::text("again from x")).unwrap();
    assert_eq!(next(&mut y), Message::text("again from x"));
}

#[test]
fn a_full_room_refuses_with_503_and_accepts_again_when_a_member_leaves() {
    let wsd = Wsd::start(CONFIG);
    let mut m1 = join(&wsd, "/small?room=r");
    let mut m2 = join(&wsd, "/small?room=r");
    let r = upgrade_status(wsd.addr, "/small?room=r", "");
    assert_eq!(r.status, 503, "{r:?}");
    // Another room of the same route has its own limit.
    let _other = join(&wsd, "/small?room=other");
    // The two members still talk.
    m1.send(Message::text("still")).unwrap();
    assert_eq!(next(&mut m2), Message::text("still"));
    m2.close(None).unwrap();
    while m2.read().is_ok() {}
    let deadline = Instant::now() + WAIT;
    loop {
        let r = upgrade_status(wsd.addr, "/small?room=r", "");
        if r.status == 101 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "the freed place was never reused"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(next(&mut m1), Message::text("still"));
}

#[test]
fn max_rooms_refuses_a_new_room_with_503() {
    let wsd = Wsd::start(CONFIG);
    let _x = join(&wsd, "/one-room?room=x");
    let r = upgrade_status(wsd.addr, "/one-room?room=y", "");
    assert_eq!(r.status, 503, "{r:?}");
    // Joining the existing room is still fine.
    let _x2 = join(&wsd, "/one-room?room=x");
}

#[test]
fn an_overlong_room_name_gets_400() {
    let wsd = Wsd::start(CONFIG);
    let r = upgrade_status(wsd.addr, &format!("/chat?room={}", "r".repeat(200)), "");
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_member_that_stops_reading_does_not_hold_up_the_others() {
    let wsd = Wsd::start(CONFIG);
    let (mut talker, _) = member(&wsd, "s");
    // Joins and then never reads again.
    let _sleeper = Raw::upgrade(wsd.addr, "/chat?room=s");
    let (mut listener, _) = member(&wsd, "s");
    for i in 0..100u32 {
        let mut m = i.to_be_bytes().to_vec();
        m.resize(10_000, i as u8);
        talker.send(Message::binary(m.clone())).unwrap();
        assert_eq!(
            next_chat(&mut listener),
            Message::binary(m.clone()),
            "message {i}"
        );
        assert_eq!(next_chat(&mut talker), Message::binary(m), "message {i}");
    }
}

#[test]
fn a_fragmented_message_is_broadcast_whole() {
    let wsd = Wsd::start(CONFIG);
    let (mut listener, _) = member(&wsd, "f");
    let mut sender = Raw::upgrade(wsd.addr, "/chat?room=f");
    assert_eq!(field(&next_text(&mut listener), "type"), "join");
    sender.send_frame(false, raw::OP_TEXT, "frag".as_bytes());
    sender.send_frame(false, raw::OP_CONT, "ment".as_bytes());
    sender.send_frame(true, raw::OP_CONT, "ed é".as_bytes());
    assert_eq!(next(&mut listener), Message::text("fragmented é"));
}

#[test]
fn a_member_sending_invalid_utf8_is_closed_and_nothing_reaches_the_room() {
    let wsd = Wsd::start(CONFIG);
    let (mut listener, _) = member(&wsd, "u");
    let mut bad = Raw::upgrade(wsd.addr, "/chat?room=u");
    let welcome = bad.expect_frame("welcome");
    let id = field(std::str::from_utf8(&welcome.payload).unwrap(), "id");
    assert_eq!(field(&next_text(&mut listener), "type"), "join");
    bad.send_frame(true, raw::OP_TEXT, b"broken \xff text");
    assert_eq!(bad.expect_close(), Some(1007));
    // The next thing the room sees is the leave, not the broken message.
    let left = next_text(&mut listener);
    assert_eq!(
        (field(&left, "type"), field(&left, "id")),
        ("leave".into(), id)
    );
}

#[test]
fn a_room_of_300_members_gets_every_message_in_the_same_order() {
    let wsd = Wsd::start(CONFIG);
    let mut members: Vec<Raw> = (0..300)
        .map(|_| Raw::upgrade(wsd.addr, "/big?room=crowd"))
        .collect();
    for i in 0..20usize {
        let from = i * 15 % members.len();
        members[from].send_frame(true, raw::OP_TEXT, format!("message {i}").as_bytes());
    }
    // Senders use different connections, so the room's order is the server's;
    // but it is one order, the same for everyone, holding every message once.
    let mut reference: Option<Vec<Vec<u8>>> = None;
    for (m, member) in members.iter_mut().enumerate() {
        let got: Vec<Vec<u8>> = (0..20)
            .map(|_| member.expect_frame("a broadcast").payload)
            .collect();
        match &reference {
            None => {
                let mut sorted = got.clone();
                sorted.sort();
                let mut want: Vec<Vec<u8>> = (0..20)
                    .map(|i| format!("message {i}").into_bytes())
                    .collect();
                want.sort();
                assert_eq!(sorted, want, "member {m} got every message once");
                reference = Some(got);
            }
            Some(r) => assert_eq!(&got, r, "member {m} saw another order"),
        }
    }
}
