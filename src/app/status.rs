//! The status route (`kind = "status"`): every connection on it receives one
//! JSON snapshot of the server per second: uptime, connections by route and
//! state, rates in and out, rooms and members, closes by code in the last
//! minute, RSS, open fds and the event loop's turn times.
//!
//! Owns the subscriber list and the snapshot's JSON shape ([`ServerStatus`], the
//! documented format `www/status.html` reads). The server measures and fills
//! the numbers, and asks for a snapshot only while [`RouteHandler::wants_status`]
//! says someone is watching, so the route costs nothing when nobody is. It must
//! never read a clock, a counter or `/proc` itself, and never answer what a
//! subscriber sends (messages from a watcher are ignored).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::app::handler::{ConnKey, Effects, Opening, Peer, RouteHandler, Slot, Topic};
use crate::app::Rejection;
use crate::core::{Message, MessageKind, MessageRef};

/// One status snapshot, as JSON text with `"type":"status"` first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerStatus {
    pub uptime_secs: f64,
    /// The span the rates cover: the time since the previous snapshot.
    pub interval_secs: f64,
    pub connections: ConnectionStates,
    /// Every WebSocket route, in config order.
    pub routes: Vec<RouteStatus>,
    /// Chat rooms and their members, over every chat route.
    pub rooms: u64,
    pub members: u64,
    pub rates: Rates,
    pub totals: Totals,
    pub closes_last_minute: RecentCloses,
    pub rss_bytes: u64,
    pub open_fds: u64,
    /// The event loop's turns since the previous snapshot.
    pub loop_turns: TurnTimes,
}

/// Open connections by where they are in their life.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ConnectionStates {
    pub total: u64,
    /// Reading or answering an HTTP request (before an upgrade, or plain HTTP).
    pub http: u64,
    /// Sending a static file.
    pub file: u64,
    /// Open WebSockets (including those in their closing handshake).
    pub websocket: u64,
    /// Answered or closed, writing what is queued and draining.
    pub closing: u64,
}

/// One route's share.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStatus {
    pub path: String,
    pub kind: &'static str,
    /// Open WebSockets on this route.
    pub connections: u64,
    pub rooms: u64,
    pub members: u64,
}

/// Per-second rates over the last interval.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rates {
    pub accepted_per_sec: f64,
    pub handshakes_per_sec: f64,
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

/// Counters since the server started.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub accepted: u64,
    pub refused: u64,
    pub handshakes: u64,
    pub handshake_failures: u64,
    pub http_requests: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub slow_consumer_closes: u64,
    pub dropped_messages: u64,
}

/// Close codes seen within the window: sent first by the server, and received
/// from peers. The window is the last 60 s, or less when the first watcher
/// arrived more recently (history is kept only while someone watches).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecentCloses {
    pub window_secs: f64,
    pub sent: BTreeMap<u16, u64>,
    pub received: BTreeMap<u16, u64>,
}

/// Event-loop turn durations, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TurnTimes {
    pub turns: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The JSON envelope: `{"type":"status", ...snapshot}`.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    status: &'a ServerStatus,
}

/// Rooms and members a route holds, for the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub rooms: u64,
    pub members: u64,
}

/// The one topic a status route publishes to: all its watchers.
const WATCHERS: Topic = 0;

#[derive(Debug, Default)]
pub struct Status {
    watchers: RefCell<Vec<ConnKey>>,
}

impl RouteHandler for Status {
    fn open(&self, opening: &Opening<'_>, _: &mut Effects) -> Result<Slot, Rejection> {
        self.watchers.borrow_mut().push(opening.peer.key);
        Ok(0)
    }

    fn message(&self, _: Peer, _: Slot, _: MessageRef<'_>, _: &mut Effects) {}

    fn closed(&self, peer: Peer, _: Slot, _: &mut Effects) {
        let mut watchers = self.watchers.borrow_mut();
        if let Some(pos) = watchers.iter().position(|&k| k == peer.key) {
            watchers.swap_remove(pos);
        }
    }

    fn subscribers(&self, topic: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
        if topic == WATCHERS {
            deliver(&self.watchers.borrow());
        }
    }

    fn wants_status(&self) -> bool {
        !self.watchers.borrow().is_empty()
    }

    fn status(&self, status: &ServerStatus, fx: &mut Effects) {
        let envelope = Envelope {
            kind: "status",
            status,
        };
        // Numbers, strings and maps with integer keys always serialize.
        let data = serde_json::to_vec(&envelope).unwrap_or_default();
        fx.publish(
            Message {
                kind: MessageKind::Text,
                data,
            },
            WATCHERS,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn request() -> crate::core::Request {
        let head = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        crate::core::parse_request(head, &crate::core::RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn watchers_come_and_go_and_each_snapshot_goes_to_all_of_them() {
        let status: Rc<dyn RouteHandler> = Rc::new(Status::default());
        let mut fx = Effects::default();
        assert!(!status.wants_status());
        for key in [4, 9] {
            status
                .open(
                    &Opening::new(
                        &request(),
                        Peer {
                            key,
                            id: key as u64,
                        },
                    ),
                    &mut fx,
                )
                .unwrap();
        }
        assert!(status.wants_status());
        let mut snapshot = ServerStatus {
            uptime_secs: 2.5,
            ..ServerStatus::default()
        };
        snapshot.closes_last_minute.sent.insert(1001, 3);
        fx.set_origin(None, &status);
        status.status(&snapshot, &mut fx);
        let mut seen = Vec::new();
        fx.drain_publications(|run, keys, skip| {
            assert_eq!(skip, None);
            for m in run.messages() {
                seen.push((m.text().unwrap_or_default().to_owned(), keys.to_vec()));
            }
        });
        assert_eq!(seen.len(), 1);
        let (text, keys) = &seen[0];
        assert_eq!(keys, &[4, 9]);
        assert!(
            text.starts_with(r#"{"type":"status","uptime_secs":2.5,"#),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json["closes_last_minute"]["sent"]["1001"], 3);
        for field in [
            "connections",
            "routes",
            "rates",
            "totals",
            "rss_bytes",
            "open_fds",
            "loop_turns",
        ] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
        status.closed(Peer { key: 4, id: 4 }, 0, &mut fx);
        status.closed(Peer { key: 9, id: 9 }, 0, &mut fx);
        assert!(!status.wants_status());
    }
}
