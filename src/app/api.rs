//! The HTTP API for backends: `POST /api/publish` puts one message into a
//! room of a chat route, for every member on every process (through the
//! backplane when there is one). A JSON body `{"route": "/chat", "room":
//! "lobby", "data": "text"}` sends a text message; a body with
//! `Content-Type: application/octet-stream` and `?route=/chat&room=lobby`
//! sends it as a binary message.
//!
//! Owns the API's rules: bearer keys (compared in constant time, every key
//! every time), the request shapes, and the status of each refusal (401, 400,
//! 404, 405, 411, 413). It must never read a socket (the server hands it the
//! whole body) and never log or echo a key.

use serde::Deserialize;

use crate::app::{query_param, App, Effects};
use crate::core::{Headers, Message, MessageKind, Request};
use crate::password::constant_time_eq;

/// The one path of the API.
pub const PUBLISH_PATH: &str = "/api/publish";

/// What the API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiReply {
    pub status: u16,
    /// JSON.
    pub body: String,
    /// Extra headers (e.g. `WWW-Authenticate` on a 401).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl ApiReply {
    fn error(status: u16, why: &str) -> ApiReply {
        ApiReply {
            status,
            body: serde_json::json!({ "error": why }).to_string(),
            headers: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    route: String,
    room: String,
    data: String,
}

/// Checks what can be checked before the body is read: method, key, length.
/// `Ok(len)`: read `len` bytes of body, then call [`publish`].
pub fn admit(keys: &[String], request: &Request, max_body: u64) -> Result<usize, ApiReply> {
    if request.method() != "POST" {
        let mut reply = ApiReply::error(405, "use POST");
        reply.headers.push(("Allow", "POST"));
        return Err(reply);
    }
    if !authorized(keys, request) {
        let mut reply = ApiReply::error(
            401,
            "missing or unknown API key (Authorization: Bearer KEY)",
        );
        reply.headers.push(("WWW-Authenticate", "Bearer"));
        return Err(reply);
    }
    if request.header("Transfer-Encoding").is_some() {
        return Err(ApiReply::error(411, "send the body with a Content-Length"));
    }
    let Some(len) = request.header("Content-Length") else {
        return Err(ApiReply::error(411, "Content-Length is required"));
    };
    let Ok(len) = len.trim().parse::<u64>() else {
        return Err(ApiReply::error(400, "Content-Length is not a number"));
    };
    if len > max_body {
        return Err(ApiReply::error(
            413,
            &format!("body over max_message_bytes ({max_body})"),
        ));
    }
    usize::try_from(len).map_err(|_| ApiReply::error(413, "body too large"))
}

/// Whether the request carries one of `keys` as a bearer token. Every key is
/// compared, in constant time, whatever matched.
fn authorized(keys: &[String], request: &Request) -> bool {
    let Some(token) = request
        .header("Authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    keys.iter().fold(false, |found, key| {
        constant_time_eq(key.as_bytes(), token.as_bytes()) | found
    })
}

/// Publishes the message a whole body describes; effects for the fan-out and
/// the backplane go to `fx`.
pub fn publish(app: &App, request: &Request, body: &[u8], fx: &mut Effects) -> ApiReply {
    let binary = request
        .header("Content-Type")
        .is_some_and(|t| t.trim().starts_with("application/octet-stream"));
    let (route, room, message) = if binary {
        let query = request.query().unwrap_or_default();
        let (Some(route), Some(room)) = (query_param(query, "route"), query_param(query, "room"))
        else {
            return ApiReply::error(400, "a binary body needs ?route=...&room=...");
        };
        let message = Message {
            kind: MessageKind::Binary,
            data: body.to_vec(),
        };
        (route, room, message)
    } else {
        let parsed: PublishBody = match serde_json::from_slice(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                return ApiReply::error(
                    400,
                    &format!("body must be JSON {{\"route\", \"room\", \"data\"}}: {e}"),
                )
            }
        };
        let message = Message {
            kind: MessageKind::Text,
            data: parsed.data.into_bytes(),
        };
        (parsed.route, parsed.room, message)
    };
    match app.publish(&route, &room, message, fx) {
        Ok(delivered) => ApiReply {
            status: 200,
            body: serde_json::json!({ "route": route, "room": room, "local_members": delivered })
                .to_string(),
            headers: Vec::new(),
        },
        Err(why) => ApiReply::error(404, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{parse_request, RequestLimits};

    fn request(head: &str) -> Request {
        parse_request(head.as_bytes(), &RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    const KEY: &str = "0123456789abcdef-key";

    #[test]
    fn method_key_and_length_are_checked_before_the_body() {
        let keys = vec!["another-key-of-16+".to_owned(), KEY.to_owned()];
        let post = |headers: &str| {
            request(&format!(
                "POST /api/publish HTTP/1.1\r\nHost: x\r\n{headers}\r\n"
            ))
        };
        let status = |r: Result<usize, ApiReply>| r.map_err(|e| e.status);
        assert_eq!(
            status(admit(
                &keys,
                &request("GET /api/publish HTTP/1.1\r\nHost: x\r\n\r\n"),
                100
            )),
            Err(405)
        );
        assert_eq!(
            status(admit(&keys, &post("Content-Length: 5\r\n"), 100)),
            Err(401)
        );
        let wrong = post("Authorization: Bearer 0123456789abcdef-kex\r\nContent-Length: 5\r\n");
        assert_eq!(status(admit(&keys, &wrong, 100)), Err(401));
        let auth = format!("Authorization: Bearer {KEY}\r\n");
        assert_eq!(status(admit(&keys, &post(&auth), 100)), Err(411));
        let chunked = format!("{auth}Transfer-Encoding: chunked\r\n");
        assert_eq!(status(admit(&keys, &post(&chunked), 100)), Err(411));
        let big = format!("{auth}Content-Length: 101\r\n");
        assert_eq!(status(admit(&keys, &post(&big), 100)), Err(413));
        let ok = format!("{auth}Content-Length: 100\r\n");
        assert_eq!(status(admit(&keys, &post(&ok), 100)), Ok(100));
        assert_eq!(
            status(admit(&[], &post(&ok), 100)),
            Err(401),
            "no keys: nobody"
        );
    }
}
