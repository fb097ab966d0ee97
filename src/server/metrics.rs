//! The operator's endpoints: `GET /metrics` in the Prometheus text format
//! (version 0.0.4), rendered from the reactor's plain counters when scraped,
//! and `GET /healthz` (the loop turns: it answered) and `GET /readyz` (200
//! while accepting, 503 while draining after SIGTERM). Served on the
//! `[metrics] listen` address, and the two health paths on the main listeners
//! too with `health_on_main`.
//!
//! Owns the text of those responses. It must never be reached from a WebSocket
//! route, keep state of its own, or cost anything between scrapes: every
//! number is read from `Stats`, the routes' counters and `/proc/self` when a
//! scrape asks.

use std::fmt::Write;

use crate::app::Route;
use crate::core::http::write_response_head;
use crate::core::Request;
use crate::server::backplane::BackplaneStats;
use crate::server::process_usage::process_usage;
use crate::server::stats::{Stats, TURN_BUCKETS};

/// The paths this module answers.
pub const METRICS: &str = "/metrics";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";

/// Whether `path` is one of the two health paths.
pub fn is_health(path: &str) -> bool {
    path == HEALTHZ || path == READYZ
}

/// What a scrape reads.
pub struct View<'a> {
    pub stats: &'a Stats,
    pub routes: &'a [std::rc::Rc<Route>],
    pub draining: bool,
    /// The backplane's counters, when one is configured.
    pub backplane: Option<BackplaneStats>,
}

/// Appends the response to one request on the metrics listener (`admin`) or a
/// health request on a main listener; the connection closes after it.
pub fn respond(out: &mut Vec<u8>, request: &Request, view: &View<'_>, admin: bool) -> u16 {
    let head = request.method() == "HEAD";
    if request.method() != "GET" && !head {
        write(
            out,
            405,
            "text/plain; charset=utf-8",
            "method not allowed\n",
            head,
            &[("Allow", "GET, HEAD")],
        );
        return 405;
    }
    let (status, kind, body) = match request.path() {
        HEALTHZ => (200, "text/plain; charset=utf-8", "ok\n".to_owned()),
        READYZ if view.draining => (503, "text/plain; charset=utf-8", "draining\n".to_owned()),
        READYZ if view.backplane.is_some_and(|b| !b.up) => (
            503,
            "text/plain; charset=utf-8",
            "backplane down: rooms reach this process only\n".to_owned(),
        ),
        READYZ => (200, "text/plain; charset=utf-8", "ready\n".to_owned()),
        METRICS if admin => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            render(view),
        ),
        _ => (404, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    write(out, status, kind, &body, head, &[]);
    status
}

fn write(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
    extra: &[(&str, &str)],
) {
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", content_type),
        ("Content-Length", &len),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ];
    headers.extend_from_slice(extra);
    write_response_head(out, status, &headers);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

/// The whole exposition, families in a fixed order, every label set present
/// from the start (a zero is a sample too), so dashboards see no gaps.
pub fn render(view: &View<'_>) -> String {
    let s = view.stats;
    let mut m = Exposition::default();

    m.family(
        "wsd_connections_open",
        "gauge",
        "Connections open now (any state).",
    );
    m.sample("wsd_connections_open", &[], s.open);
    m.family("wsd_websockets_open", "gauge", "Open WebSockets by route.");
    for r in view.routes {
        m.sample(
            "wsd_websockets_open",
            &[("route", &r.config.path)],
            r.traffic.open.get(),
        );
    }
    m.family(
        "wsd_connections_accepted_total",
        "counter",
        "Connections accepted.",
    );
    m.sample("wsd_connections_accepted_total", &[], s.accepted);
    m.family(
        "wsd_handshakes_total",
        "counter",
        "WebSocket upgrades completed (101 sent).",
    );
    m.sample("wsd_handshakes_total", &[], s.handshakes);
    m.family(
        "wsd_http_requests_total",
        "counter",
        "HTTP request heads answered.",
    );
    m.sample("wsd_http_requests_total", &[], s.http_requests);
    m.family(
        "wsd_refused_total",
        "counter",
        "Connections and upgrades refused, by reason: limit (max_connections), no_route, \
         origin, auth, protocol, route (the route's handler, e.g. a full room), per_ip_limit \
         (max_connections_per_ip), rate (the address's request rate), bad_request (malformed, \
         not a valid upgrade, or a bad PROXY header), timeout (request head not complete in time).",
    );
    let by = |label: &str| s.refused_by.get(label).copied().unwrap_or(0);
    for (reason, n) in [
        ("limit", s.refused),
        ("no_route", by("no_route")),
        ("origin", by("origin")),
        ("auth", by("auth")),
        ("protocol", by("protocol")),
        ("route", by("route")),
        ("per_ip_limit", by("per_ip_limit")),
        ("rate", by("rate")),
        ("bad_request", s.bad_requests),
        ("timeout", s.handshake_timeouts),
    ] {
        m.sample("wsd_refused_total", &[("reason", reason)], n);
    }
    for (name, help, get) in [
        (
            "wsd_messages_received_total",
            "Messages received, by route.",
            0,
        ),
        (
            "wsd_messages_sent_total",
            "Messages queued to clients, by route.",
            1,
        ),
        (
            "wsd_message_bytes_received_total",
            "Message payload bytes received (inflated), by route.",
            2,
        ),
        (
            "wsd_message_bytes_sent_total",
            "Message payload bytes queued (before compression), by route.",
            3,
        ),
    ] {
        m.family(name, "counter", help);
        for r in view.routes {
            let t = &r.traffic;
            let n = [
                &t.messages_in,
                &t.messages_out,
                &t.payload_bytes_in,
                &t.payload_bytes_out,
            ][get]
                .get();
            m.sample(name, &[("route", &r.config.path)], n);
        }
    }
    m.family(
        "wsd_bytes_received_total",
        "counter",
        "Bytes read from sockets (after TLS).",
    );
    m.sample("wsd_bytes_received_total", &[], s.bytes_in);
    m.family(
        "wsd_bytes_sent_total",
        "counter",
        "Bytes written to sockets (before TLS).",
    );
    m.sample("wsd_bytes_sent_total", &[], s.bytes_out);
    m.family(
        "wsd_closes_sent_total",
        "counter",
        "Close frames the server sent first, by code.",
    );
    for (code, n) in &s.closes_sent {
        m.sample("wsd_closes_sent_total", &[("code", &code.to_string())], *n);
    }
    m.family(
        "wsd_closes_received_total",
        "counter",
        "Close frames received from clients, by code.",
    );
    for (code, n) in &s.closes_received {
        m.sample(
            "wsd_closes_received_total",
            &[("code", &code.to_string())],
            *n,
        );
    }
    m.family(
        "wsd_protocol_errors_total",
        "counter",
        "Connections failed for breaking RFC 6455.",
    );
    m.sample("wsd_protocol_errors_total", &[], s.protocol_errors);
    m.family(
        "wsd_timeouts_total",
        "counter",
        "Deadlines that passed, by kind.",
    );
    for (kind, n) in [
        ("handshake", s.handshake_timeouts),
        ("ping", s.ping_timeouts),
        ("close", s.close_timeouts),
    ] {
        m.sample("wsd_timeouts_total", &[("kind", kind)], n);
    }
    m.family(
        "wsd_slow_consumer_closes_total",
        "counter",
        "Clients closed (1008) for not reading.",
    );
    m.sample(
        "wsd_slow_consumer_closes_total",
        &[],
        s.slow_consumer_closes,
    );
    m.family(
        "wsd_rate_limited_closes_total",
        "counter",
        "WebSockets closed (1008) for sending more than max_messages_per_sec.",
    );
    m.sample("wsd_rate_limited_closes_total", &[], s.rate_limited_closes);
    m.family(
        "wsd_slow_consumer_drops_total",
        "counter",
        "Broadcast messages dropped for clients not reading.",
    );
    m.sample("wsd_slow_consumer_drops_total", &[], s.dropped_messages);
    m.family("wsd_rooms", "gauge", "Chat rooms, by route.");
    m.family("wsd_room_members", "gauge", "Chat room members, by route.");
    let census: Vec<_> = view
        .routes
        .iter()
        .map(|r| (r, r.handler.census()))
        .collect();
    for (r, c) in &census {
        m.sample("wsd_rooms", &[("route", &r.config.path)], c.rooms);
    }
    for (r, c) in &census {
        m.sample("wsd_room_members", &[("route", &r.config.path)], c.members);
    }
    m.family(
        "wsd_accept_pauses_total",
        "counter",
        "Times accepting paused because descriptors ran out (EMFILE/ENFILE).",
    );
    m.sample("wsd_accept_pauses_total", &[], s.accept_pauses);
    m.family("wsd_reloads_total", "counter", "SIGHUP reloads, by result.");
    m.sample("wsd_reloads_total", &[("result", "ok")], s.reloads_ok);
    m.sample(
        "wsd_reloads_total",
        &[("result", "error")],
        s.reloads_failed,
    );
    m.family(
        "wsd_tls_handshake_failures_total",
        "counter",
        "TLS sessions that failed before the handshake finished.",
    );
    m.sample(
        "wsd_tls_handshake_failures_total",
        &[],
        s.tls_handshake_failures,
    );
    m.family(
        "wsd_backend_failures_total",
        "counter",
        "Programs or TCP backends of bridge routes that could not be started or reached.",
    );
    m.sample("wsd_backend_failures_total", &[], s.backend_failures);
    m.family(
        "wsd_draining",
        "gauge",
        "1 while draining after SIGTERM/SIGINT.",
    );
    m.sample("wsd_draining", &[], u64::from(view.draining));
    if let Some(b) = view.backplane {
        m.family(
            "wsd_backplane_up",
            "gauge",
            "1 while both Redis links of the backplane are connected.",
        );
        m.sample("wsd_backplane_up", &[], u64::from(b.up));
        m.family(
            "wsd_backplane_published_total",
            "counter",
            "Messages relayed to other processes through Redis.",
        );
        m.sample("wsd_backplane_published_total", &[], b.published);
        m.family(
            "wsd_backplane_received_total",
            "counter",
            "Messages other processes relayed through Redis.",
        );
        m.sample("wsd_backplane_received_total", &[], b.received);
        m.family(
            "wsd_backplane_dropped_total",
            "counter",
            "Messages not relayed: Redis away (down) or too slow (queue full).",
        );
        m.sample(
            "wsd_backplane_dropped_total",
            &[("reason", "down")],
            b.dropped_down,
        );
        m.sample(
            "wsd_backplane_dropped_total",
            &[("reason", "queue")],
            b.dropped_queue,
        );
        m.family(
            "wsd_backplane_outages_total",
            "counter",
            "Times the Redis links were lost.",
        );
        m.sample("wsd_backplane_outages_total", &[], b.outages);
        m.family(
            "wsd_backplane_channels",
            "gauge",
            "Room channels this process is subscribed to.",
        );
        m.sample("wsd_backplane_channels", &[], b.channels);
    }

    let turns = "wsd_loop_turn_duration_seconds";
    m.family(
        turns,
        "histogram",
        "Event-loop turn durations (from poll's return to the end of the turn's flushes).",
    );
    let mut cumulative = 0;
    for (le, n) in TURN_BUCKETS.iter().zip(&s.turns.counts) {
        cumulative += n;
        m.sample(
            &format!("{turns}_bucket"),
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    m.sample(&format!("{turns}_bucket"), &[("le", "+Inf")], s.turns.count);
    m.float(&format!("{turns}_sum"), s.turns.sum_secs);
    m.sample(&format!("{turns}_count"), &[], s.turns.count);

    let (rss, fds) = process_usage();
    m.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    m.sample("process_resident_memory_bytes", &[], rss);
    m.family("process_open_fds", "gauge", "Open file descriptors.");
    m.sample("process_open_fds", &[], fds);
    m.text
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn float(&mut self, name: &str, value: f64) {
        let _ = writeln!(self.text, "{name} {value}");
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_is_declared_once_and_the_histogram_is_cumulative() {
        let mut stats = Stats::default();
        stats.turns.record(std::time::Duration::from_micros(30));
        stats.turns.record(std::time::Duration::from_micros(30));
        stats.turns.record(std::time::Duration::from_secs(3));
        stats.closes_sent.insert(1008, 2);
        let text = render(&View {
            stats: &stats,
            routes: &[],
            draining: false,
            backplane: Some(crate::server::backplane::BackplaneStats::default()),
        });
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        let declared = names.len();
        names.dedup();
        assert_eq!(names.len(), declared, "{text}");
        assert!(
            text.contains("wsd_closes_sent_total{code=\"1008\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wsd_loop_turn_duration_seconds_bucket{le=\"0.000025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("wsd_loop_turn_duration_seconds_bucket{le=\"0.00005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wsd_loop_turn_duration_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wsd_loop_turn_duration_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wsd_loop_turn_duration_seconds_count 3\n"),
            "{text}"
        );
    }
}
