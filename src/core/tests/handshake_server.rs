//! The server side of the opening handshake (RFC 6455 §4.2, RFC 9112): request-head
//! parsing and limits, upgrade validation, and the 101 and error responses.
//!
//! Every rejection is checked twice: the `HandshakeError` variant, and the response
//! the server writes for it, parsed back. These tests must never open a socket.

use super::support::*;
use crate::core::*;

const GET: &str = "GET /chat HTTP/1.1";

fn expect_upgrade(bytes: &[u8]) -> Upgrade {
    match classify(bytes) {
        Ok(Some(upgrade)) => upgrade,
        other => panic!("expected an upgrade, got {other:?}"),
    }
}

fn expect_rejected(bytes: &[u8], expected: HandshakeError, status: u16) -> HttpResponse {
    assert_eq!(classify(bytes), Err(expected.clone()));
    assert_error_response(&expected, status, &[])
}

#[test]
fn minimal_upgrade_request_is_accepted_with_its_key() {
    let upgrade = expect_upgrade(&head(GET, &upgrade_headers()));
    assert_eq!(upgrade.key, SAMPLE_KEY);
    assert!(upgrade.protocols.is_empty());
    assert!(upgrade.extensions.is_empty());
}

#[test]
fn request_fed_one_byte_at_a_time_parses_like_whole() {
    let bytes = head(
        GET,
        &[
            ("Host", "h"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", SAMPLE_KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
        ],
    );
    let limits = RequestLimits::default();
    let whole = parse_request(&bytes, &limits).unwrap().unwrap();
    for end in 0..bytes.len() {
        assert_eq!(
            parse_request(&bytes[..end], &limits),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    assert_eq!(whole.1, bytes.len());
    assert_eq!(whole.0.method(), "GET");
    assert_eq!(whole.0.target(), "/chat");
    assert_eq!(whole.0.minor_version, 1);
    assert_eq!(whole.0.header_fields().len(), 6);
}

#[test]
fn bytes_after_the_blank_line_are_not_consumed() {
    let request = head(GET, &upgrade_headers());
    let frame = cf(FIN | TEXT, b"early");
    let mut input = request.clone();
    input.extend_from_slice(&frame);
    let (req, n) = parse_request(&input, &RequestLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(n, request.len());
    assert!(req.websocket_upgrade().unwrap().is_some());
    // The frame that came with the request is intact and reaches the connection.
    assert_eq!(&input[n..], &frame[..]);
    let mut ws = server();
    let out = drive_whole(&mut ws, &input[n..]);
    assert_eq!(out.events, vec![text("early")]);
}

#[test]
fn head_of_exactly_the_limit_is_accepted_and_one_byte_more_is_431() {
    let limits = RequestLimits {
        max_head_bytes: 300,
        max_headers: 64,
    };
    let base = head(GET, &upgrade_headers());
    let pad = 300 - base.len() - "X-Pad: \r\n".len();
    let fits = {
        let value = "p".repeat(pad);
        let mut h = upgrade_headers();
        h.push(("X-Pad", &value));
        head(GET, &h)
    };
    assert_eq!(fits.len(), 300);
    let (_, n) = parse_request(&fits, &limits).unwrap().unwrap();
    assert_eq!(n, 300);

    let over = {
        let value = "p".repeat(pad + 1);
        let mut h = upgrade_headers();
        h.push(("X-Pad", &value));
        head(GET, &h)
    };
    let expected = HandshakeError::RequestTooLarge { max: 300 };
    assert_eq!(parse_request(&over, &limits), Err(expected.clone()));
    assert_error_response(&expected, 431, &[]);
}

#[test]
fn endless_head_is_refused_once_it_reaches_8_kib_not_buffered() {
    let limits = RequestLimits::default();
    assert_eq!(limits.max_head_bytes, 8 * 1024);
    let mut input = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    input.resize(20_000, b'a');
    for len in [100, 4096, 8191] {
        assert_eq!(parse_request(&input[..len], &limits), Ok(None), "{len}");
    }
    for len in [8192, 8193, 20_000] {
        assert_eq!(
            parse_request(&input[..len], &limits),
            Err(HandshakeError::RequestTooLarge { max: 8192 }),
            "{len}"
        );
    }
    assert_error_response(&HandshakeError::RequestTooLarge { max: 8192 }, 431, &[]);
}

#[test]
fn too_many_headers_is_431() {
    let limits = RequestLimits {
        max_head_bytes: 8192,
        max_headers: 6,
    };
    let mut h = upgrade_headers();
    h.push(("X-Sixth", "6"));
    let (req, _) = parse_request(&head(GET, &h), &limits).unwrap().unwrap();
    assert_eq!(req.header_fields().len(), 6);
    h.push(("X-Seventh", "7"));
    let seven = head(GET, &h);
    assert_eq!(
        parse_request(&seven, &limits),
        Err(HandshakeError::TooManyHeaders)
    );
    assert_error_response(&HandshakeError::TooManyHeaders, 431, &[]);

    // With the default limit of 64, 65 tiny headers are refused too.
    let many: Vec<String> = (0..65).map(|i| format!("X-{i}")).collect();
    let fields: Vec<(&str, &str)> = many.iter().map(|n| (n.as_str(), "v")).collect();
    assert_eq!(
        parse_request(&head("GET / HTTP/1.1", &fields), &RequestLimits::default()),
        Err(HandshakeError::TooManyHeaders)
    );
}

#[test]
fn malformed_heads_are_400() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for case in cases {
        match parse_request(case, &RequestLimits::default()) {
            Err(e @ HandshakeError::MalformedRequest(_)) => {
                assert_error_response(&e, 400, &[]);
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(case)),
        }
    }
}

#[test]
fn upgrade_with_post_is_405_with_allow_get() {
    let resp = expect_rejected(
        &head("POST /chat HTTP/1.1", &upgrade_headers()),
        HandshakeError::MethodNotAllowed,
        405,
    );
    assert_eq!(resp.one("Allow"), "GET");
}

#[test]
fn upgrade_over_http_1_0_is_400() {
    expect_rejected(
        &head("GET /chat HTTP/1.0", &upgrade_headers()),
        HandshakeError::HttpVersionTooOld,
        400,
    );
}

#[test]
fn upgrade_without_host_is_400() {
    expect_rejected(
        &head(GET, &without("Host")),
        HandshakeError::MissingHost,
        400,
    );
    expect_rejected(
        &head(GET, &with("Host", "")),
        HandshakeError::MissingHost,
        400,
    );
}

#[test]
fn connection_keep_alive_upgrade_is_accepted_in_any_case_and_repeated() {
    for connection in [
        &[("Connection", "keep-alive, Upgrade")][..],
        &[("Connection", "keep-alive,upgrade")],
        &[("Connection", "UPGRADE")],
        &[("connection", "keep-alive"), ("CONNECTION", "Upgrade")],
    ] {
        let mut h = without("Connection");
        h.extend_from_slice(connection);
        let h: Vec<_> = h
            .into_iter()
            .map(|(n, v)| {
                if n == "Upgrade" {
                    ("upgrade", "WebSocket")
                } else {
                    (n, v)
                }
            })
            .collect();
        let upgrade = expect_upgrade(&head(GET, &h));
        assert_eq!(upgrade.key, SAMPLE_KEY, "{connection:?}");
    }
}

#[test]
fn connection_without_the_upgrade_token_is_400() {
    for h in [
        with("Connection", "keep-alive"),
        with("Connection", "upgraded"),
        with("Connection", "keep-alive upgrade"),
        without("Connection"),
    ] {
        expect_rejected(
            &head(GET, &h),
            HandshakeError::MissingConnectionUpgrade,
            400,
        );
    }
}

#[test]
fn key_that_is_not_16_bytes_of_base64_is_400() {
    // 15, 17, 18 and 32 random bytes (18 fills the decoder's buffer exactly,
    // 32 overflows it), then text that is no base64 at all, then a 16-byte key
    // without its padding.
    for key in [
        "AQIDBAUGBwgJCgsMDQ4P",
        "AQIDBAUGBwgJCgsMDQ4PEBE=",
        "AQIDBAUGBwgJCgsMDQ4PEBES",
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ",
        "",
    ] {
        expect_rejected(
            &head(GET, &with("Sec-WebSocket-Key", key)),
            HandshakeError::InvalidKey,
            400,
        );
    }
}

#[test]
fn missing_key_is_400() {
    expect_rejected(
        &head(GET, &without("Sec-WebSocket-Key")),
        HandshakeError::InvalidKey,
        400,
    );
}

#[test]
fn version_other_than_13_or_missing_is_426_naming_13() {
    for h in [
        with("Sec-WebSocket-Version", "8"),
        with("Sec-WebSocket-Version", "14"),
        without("Sec-WebSocket-Version"),
    ] {
        let resp = expect_rejected(&head(GET, &h), HandshakeError::UnsupportedVersion, 426);
        assert_eq!(resp.one("Sec-WebSocket-Version"), "13");
    }
}

#[test]
fn request_without_upgrade_is_plain_http() {
    let plain = head("GET /index.html HTTP/1.1", &[("Host", "h")]);
    assert_eq!(classify(&plain), Ok(None));
    // Upgrade to something else, even with every WebSocket header, is not ours.
    assert_eq!(classify(&head(GET, &with("Upgrade", "h2c"))), Ok(None));
    // Plain HTTP is not held to the upgrade rules.
    assert_eq!(
        classify(&head("POST /form HTTP/1.0", &[("Content-Length", "0")])),
        Ok(None)
    );
}

#[test]
fn subprotocols_and_extensions_are_exposed_in_client_order() {
    let mut h = upgrade_headers();
    h.push(("Sec-WebSocket-Protocol", "chat, superchat"));
    h.push((
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    ));
    h.push(("sec-websocket-protocol", " v3 ,"));
    h.push(("Sec-WebSocket-Extensions", "x-custom"));
    let upgrade = expect_upgrade(&head(GET, &h));
    assert_eq!(upgrade.protocols, ["chat", "superchat", "v3"]);
    let names: Vec<_> = upgrade.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["permessage-deflate", "x-custom"]);
    assert_eq!(
        upgrade.extensions[0].params,
        [("client_max_window_bits".to_owned(), None)]
    );
}

#[test]
fn an_extensions_header_that_breaks_the_grammar_is_a_400_naming_it() {
    for bad in [
        "permessage-deflate; =",
        "permessage-deflate; x=\"open",
        "a b",
    ] {
        let mut h = upgrade_headers();
        h.push(("Sec-WebSocket-Extensions", bad));
        let err = classify(&head(GET, &h)).unwrap_err();
        assert!(
            matches!(err, HandshakeError::InvalidExtensions(_)),
            "{bad}: {err:?}"
        );
        assert_eq!(err.status(), 400);
        assert!(
            err.to_string().contains("Sec-WebSocket-Extensions"),
            "{err}"
        );
    }
}

#[test]
fn path_and_query_split_the_target() {
    let parse = |target: &str| {
        let bytes = head(&format!("GET {target} HTTP/1.1"), &upgrade_headers());
        parse_request(&bytes, &RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    };
    let req = parse("/rooms/lobby?user=ann&x=1");
    assert_eq!(req.path(), "/rooms/lobby");
    assert_eq!(req.query(), Some("user=ann&x=1"));
    let req = parse("/chat");
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), None);
    let req = parse("/a?");
    assert_eq!(req.path(), "/a");
    assert_eq!(req.query(), Some(""));
    let req = parse("/a?b?c");
    assert_eq!(req.path(), "/a");
    assert_eq!(req.query(), Some("b?c"));
}

#[test]
fn accept_response_carries_accept_key_upgrade_connection_and_protocol() {
    let mut h = upgrade_headers();
    h.push(("Sec-WebSocket-Protocol", "chat, superchat"));
    let upgrade = expect_upgrade(&head(GET, &h));

    let mut out = Vec::new();
    write_accept_response(&mut out, &upgrade, Some("superchat"), &[("X-Extra", "1")]);
    let resp = parse_http_response(&out);
    assert_eq!(resp.status, 101);
    assert_eq!(resp.reason, "Switching Protocols");
    assert_eq!(resp.one("Sec-WebSocket-Accept"), SAMPLE_ACCEPT);
    assert!(resp.one("Upgrade").eq_ignore_ascii_case("websocket"));
    assert!(resp.one("Connection").eq_ignore_ascii_case("upgrade"));
    assert_eq!(resp.one("Sec-WebSocket-Protocol"), "superchat");
    assert_eq!(resp.one("X-Extra"), "1");
    assert!(resp.body.is_empty());

    let mut out = Vec::new();
    write_accept_response(&mut out, &upgrade, None, &[]);
    let resp = parse_http_response(&out);
    assert_eq!(resp.status, 101);
    assert!(resp.all("Sec-WebSocket-Protocol").is_empty());
    assert_eq!(resp.one("Sec-WebSocket-Accept"), SAMPLE_ACCEPT);
}

#[test]
fn every_error_response_is_well_formed_with_connection_close_and_length() {
    let cases = [
        (HandshakeError::RequestTooLarge { max: 8192 }, 431),
        (HandshakeError::TooManyHeaders, 431),
        (HandshakeError::MalformedRequest("invalid token"), 400),
        (HandshakeError::MethodNotAllowed, 405),
        (HandshakeError::HttpVersionTooOld, 400),
        (HandshakeError::MissingHost, 400),
        (HandshakeError::MissingConnectionUpgrade, 400),
        (HandshakeError::InvalidKey, 400),
        (HandshakeError::UnsupportedVersion, 426),
    ];
    for (error, status) in cases {
        let resp = assert_error_response(&error, status, error.response_headers());
        assert!(
            resp.body.ends_with(b"\n"),
            "{error:?}: body {:?}",
            resp.body
        );
    }
    // Only 405 and 426 carry extra headers.
    assert!(HandshakeError::InvalidKey.response_headers().is_empty());
}

#[test]
fn absolute_form_target_gives_its_path_and_query() {
    let req = |target: &str| crate::core::Request::new("GET", target, 1);
    let r = req("http://example.com:9001/chat?room=a");
    assert_eq!((r.path(), r.query()), ("/chat", Some("room=a")));
    let r = req("HTTPS://example.com/echo");
    assert_eq!((r.path(), r.query()), ("/echo", None));
    let r = req("http://example.com");
    assert_eq!((r.path(), r.query()), ("/", None));
    let r = req("/plain?x=1");
    assert_eq!((r.path(), r.query()), ("/plain", Some("x=1")));
}
