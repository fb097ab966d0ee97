//! Fuzz target: the opening handshake, both sides.
//!
//! The first input byte picks read sizes; the rest is fed to the server's request
//! parser and the client's response parser whole and as a growing prefix, the way
//! a caller re-parses its receive buffer after every read. Every parsed request is
//! classified and answered, and the answer must be one a real client accepts (a
//! 101 with the right key and subprotocol) or recognises (the error's status).
//! It must never do I/O; a panic or failed assertion here is a bug in the core.
#![no_main]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wsd::core::http::write_error_response;
use wsd::core::{
    parse_request, write_accept_response, ClientHandshake, HandshakeError, RequestLimits,
};
use wsd_fuzz::Splits;

/// The 16 key bytes of RFC 6455 §1.3 ("the sample nonce"), so the seed corpus can
/// hold a response with the matching `Sec-WebSocket-Accept`.
const CLIENT_KEY: [u8; 16] = *b"the sample nonce";

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    server_side(seed, data);
    client_side(seed, data);
});

/// Re-parses ever longer prefixes of `data` until the parser stops asking for more,
/// and returns that outcome.
fn parse_growing<T>(
    seed: u8,
    data: &[u8],
    mut parse: impl FnMut(&[u8]) -> Result<Option<T>, HandshakeError>,
) -> Result<Option<T>, HandshakeError> {
    let mut end = 0;
    let mut splits = Splits::new(seed);
    loop {
        let outcome = parse(&data[..end]);
        match outcome {
            Ok(None) if end < data.len() => {
                end = (end + splits.next().unwrap_or(1)).min(data.len());
            }
            other => return other,
        }
    }
}

fn server_side(seed: u8, data: &[u8]) {
    let limits = RequestLimits::default();
    let whole = parse_request(data, &limits);
    let split = parse_growing(seed, data, |prefix| parse_request(prefix, &limits));
    assert_eq!(whole, split, "request outcome depends on how it was split");

    let mut out = Vec::new();
    let request = match whole {
        Ok(Some((request, consumed))) => {
            assert!(consumed <= data.len() && consumed <= limits.max_head_bytes);
            request
        }
        Ok(None) => {
            assert!(
                data.len() < limits.max_head_bytes,
                "incomplete past the limit"
            );
            return;
        }
        Err(e) => {
            check_error_response(&e);
            return;
        }
    };
    // Exercise the accessors a router uses.
    let _ = (request.path(), request.query(), request.keep_alive());
    match request.websocket_upgrade() {
        Ok(None) => {}
        Err(e) => check_error_response(&e),
        Ok(Some(upgrade)) => {
            // A valid key decodes to 16 bytes; a client built from them sends the same key.
            let raw = BASE64.decode(&upgrade.key).unwrap_or_default();
            let key: [u8; 16] = match raw.try_into() {
                Ok(key) => key,
                Err(raw) => panic!("accepted key {:?} decodes to {raw:?}", upgrade.key),
            };
            let client = ClientHandshake::new(key, upgrade.protocols.clone());
            assert_eq!(client.key(), upgrade.key);
            let chosen = upgrade.protocols.first().map(String::as_str);
            write_accept_response(&mut out, &upgrade, chosen, &[]);
            match client.parse_response(&out) {
                Ok(Some((accepted, n))) => {
                    assert_eq!(n, out.len());
                    assert_eq!(accepted.protocol.as_deref(), chosen);
                }
                other => panic!(
                    "client rejects our 101 {:?}: {other:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
    }
}

/// The error response for `e` must parse and carry `e`'s status.
fn check_error_response(e: &HandshakeError) {
    let mut out = Vec::new();
    write_error_response(&mut out, e);
    let client = ClientHandshake::new(CLIENT_KEY, Vec::new());
    assert_eq!(
        client.parse_response(&out),
        Err(HandshakeError::NotSwitchingProtocols { status: e.status() }),
        "error response {:?}",
        String::from_utf8_lossy(&out)
    );
}

fn client_side(seed: u8, data: &[u8]) {
    let client = ClientHandshake::new(CLIENT_KEY, vec!["chat".to_owned(), "superchat".to_owned()]);
    let whole = client.parse_response(data);
    if let Ok(Some((accepted, consumed))) = &whole {
        assert!(*consumed <= data.len());
        if let Some(p) = &accepted.protocol {
            assert!(p == "chat" || p == "superchat", "unoffered protocol {p:?}");
        }
    }
    let split = parse_growing(seed, data, |prefix| client.parse_response(prefix));
    assert_eq!(whole, split, "response outcome depends on how it was split");
}
