//! The client side of the opening handshake (RFC 6455 §4.1): the request the
//! client writes must pass the server side, and the server's response is checked
//! for status, accept key and subprotocol. These tests must never open a socket.

use super::support::*;
use crate::core::*;

const KEY_BYTES: [u8; 16] = *b"the sample nonce";

fn handshake(protocols: &[&str]) -> ClientHandshake {
    ClientHandshake::new(KEY_BYTES, protocols.iter().map(|p| p.to_string()).collect())
}

/// The client's request, parsed and classified by the server side.
fn server_view(hs: &ClientHandshake) -> (Request, Upgrade) {
    let mut req = Vec::new();
    hs.write_request(
        &mut req,
        "example.com:9001",
        "/chat?room=1",
        &[("Origin".to_owned(), "http://example.com".to_owned())],
    );
    let (request, n) = parse_request(&req, &RequestLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(n, req.len());
    let upgrade = request.websocket_upgrade().unwrap().unwrap();
    (request, upgrade)
}

/// A 101 response with the given headers, written by hand.
fn response(status_line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{status_line}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn written_request_is_accepted_by_the_server_side() {
    let hs = handshake(&["chat", "superchat"]);
    // The RFC's sample nonce is the base64 of these 16 bytes.
    assert_eq!(hs.key(), SAMPLE_KEY);
    let (request, upgrade) = server_view(&hs);
    assert_eq!(request.method(), "GET");
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.query(), Some("room=1"));
    assert_eq!(request.header("Host"), Some("example.com:9001"));
    assert_eq!(request.header("origin"), Some("http://example.com"));
    assert_eq!(upgrade.key, hs.key());
    assert_eq!(upgrade.protocols, ["chat", "superchat"]);
}

#[test]
fn request_without_protocols_offers_none() {
    let hs = handshake(&[]);
    let (request, upgrade) = server_view(&hs);
    assert!(upgrade.protocols.is_empty());
    assert_eq!(request.header("Sec-WebSocket-Protocol"), None);
}

#[test]
fn servers_101_is_accepted_with_the_chosen_protocol() {
    let hs = handshake(&["chat", "superchat"]);
    let (_, upgrade) = server_view(&hs);
    let mut resp = Vec::new();
    write_accept_response(&mut resp, &upgrade, Some("superchat"), &[]);
    let (accepted, n) = hs.parse_response(&resp).unwrap().unwrap();
    assert_eq!(n, resp.len());
    assert_eq!(accepted.protocol.as_deref(), Some("superchat"));
    assert_eq!(accepted.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));

    let mut resp = Vec::new();
    write_accept_response(&mut resp, &upgrade, None, &[]);
    let (accepted, _) = hs.parse_response(&resp).unwrap().unwrap();
    assert_eq!(accepted.protocol, None);
}

#[test]
fn response_fed_in_pieces_is_incomplete_until_the_blank_line() {
    let hs = handshake(&[]);
    let (_, upgrade) = server_view(&hs);
    let mut resp = Vec::new();
    write_accept_response(&mut resp, &upgrade, None, &[]);
    for end in 0..resp.len() {
        assert_eq!(hs.parse_response(&resp[..end]), Ok(None), "prefix {end}");
    }
    assert!(hs.parse_response(&resp).unwrap().is_some());
}

#[test]
fn wrong_accept_key_is_refused() {
    let hs = handshake(&[]);
    // The accept value of another key, then one that is not even base64.
    for accept in [accept_key("AQIDBAUGBwgJCgsMDQ4PEA=="), "garbage".to_owned()] {
        let resp = response(
            "HTTP/1.1 101 Switching Protocols",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", &accept),
            ],
        );
        assert_eq!(
            hs.parse_response(&resp),
            Err(HandshakeError::WrongAcceptKey)
        );
    }
    let missing = response(
        "HTTP/1.1 101 Switching Protocols",
        &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
    );
    assert_eq!(
        hs.parse_response(&missing),
        Err(HandshakeError::WrongAcceptKey)
    );
}

#[test]
fn non_101_status_is_refused_with_that_status() {
    let hs = handshake(&[]);
    let mut resp = Vec::new();
    http::write_error_response(&mut resp, &HandshakeError::UnsupportedVersion);
    assert_eq!(
        hs.parse_response(&resp),
        Err(HandshakeError::NotSwitchingProtocols { status: 426 })
    );
    // Even a 200 that carries a correct accept key is not an upgrade.
    let ok = response(
        "HTTP/1.1 200 OK",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", SAMPLE_ACCEPT),
        ],
    );
    assert_eq!(
        hs.parse_response(&ok),
        Err(HandshakeError::NotSwitchingProtocols { status: 200 })
    );
}

#[test]
fn missing_upgrade_or_connection_in_101_is_refused() {
    let hs = handshake(&[]);
    for headers in [
        &[
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", SAMPLE_ACCEPT),
        ][..],
        &[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Accept", SAMPLE_ACCEPT),
        ],
        &[
            ("Upgrade", "h2c"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", SAMPLE_ACCEPT),
        ],
    ] {
        let resp = response("HTTP/1.1 101 Switching Protocols", headers);
        assert_eq!(
            hs.parse_response(&resp),
            Err(HandshakeError::MissingUpgradeInResponse),
            "{headers:?}"
        );
    }
}

#[test]
fn subprotocol_not_offered_is_refused() {
    for offered in [&["chat"][..], &[]] {
        let hs = handshake(offered);
        let resp = response(
            "HTTP/1.1 101 Switching Protocols",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", SAMPLE_ACCEPT),
                ("Sec-WebSocket-Protocol", "superchat"),
            ],
        );
        assert_eq!(
            hs.parse_response(&resp),
            Err(HandshakeError::UnexpectedSubprotocol(
                "superchat".to_owned()
            )),
            "offered {offered:?}"
        );
    }
}

#[test]
fn bytes_after_the_response_head_are_not_consumed() {
    let hs = handshake(&[]);
    let (_, upgrade) = server_view(&hs);
    let mut input = Vec::new();
    write_accept_response(&mut input, &upgrade, None, &[]);
    let head_len = input.len();
    let frame = sf(FIN | TEXT, b"welcome");
    input.extend_from_slice(&frame);
    let (_, n) = hs.parse_response(&input).unwrap().unwrap();
    assert_eq!(n, head_len);
    let mut ws = client();
    let out = drive_whole(&mut ws, &input[n..]);
    assert_eq!(out.events, vec![text("welcome")]);
}

#[test]
fn malformed_or_oversized_response_is_refused() {
    let hs = handshake(&[]);
    assert!(matches!(
        hs.parse_response(b"HTTP/1.1 1O1 Switching\r\n\r\n"),
        Err(HandshakeError::MalformedResponse(_))
    ));
    let mut endless = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ".to_vec();
    endless.resize(client_handshake::MAX_RESPONSE_HEAD - 1, b'a');
    assert_eq!(hs.parse_response(&endless), Ok(None));
    endless.push(b'a');
    assert_eq!(
        hs.parse_response(&endless),
        Err(HandshakeError::ResponseTooLarge {
            max: client_handshake::MAX_RESPONSE_HEAD
        })
    );
}
