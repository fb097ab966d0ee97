//! `wsd load echo`: C connections each keeping P messages of S bytes in flight
//! against an echo endpoint; measures messages/s, bytes/s and round-trip latency,
//! and checks every echoed payload byte for byte.
//!
//! Owns the echo scenario: payload generation (a per-connection, per-sequence
//! header over a fixed body), verification, and timing. It must never send after
//! the deadline or wait past the drain bound, and a single wrong byte counts as a
//! mismatch that fails the run.
//!
//! With `--stream` (for bridges to a TCP backend, which keeps no message
//! boundaries) a connection's received payloads, text or binary, are one byte
//! stream: each message in flight completes, oldest first, once enough bytes
//! have arrived, and is verified byte for byte like any other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::connection::Sender;
use crate::client::{ConnEvent, Connection};
use crate::core::{MessageKind, NotOpen};

use super::fleet::{is_exhaustion, Fleet, Slot};
use super::report::{fmt_count, Failures};
use super::timeline::{Timeline, Totals};
use super::{connect_spec, cpu_time, finish, per_sec, raise_fd_limit, secs, CommonArgs, Progress};
use crate::histogram::{Histogram, Latency};

/// Options of `wsd load echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    /// Echo endpoint URL, e.g. ws://127.0.0.1:9001/echo
    #[arg(long)]
    pub url: String,
    /// Connections.
    #[arg(short = 'c', long = "connections", default_value_t = 10)]
    pub connections: u64,
    /// Messages kept in flight per connection.
    #[arg(short = 'p', long = "pipeline", default_value_t = 1)]
    pub pipeline: u64,
    /// Message size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 16)]
    pub size: usize,
    /// Send binary messages (default: text).
    #[arg(long)]
    pub binary: bool,
    /// Fill messages with JSON chat records (varied words, compressible the way
    /// chat traffic is) instead of a short repeating pattern: what a
    /// permessage-deflate benchmark should send.
    #[arg(long)]
    pub json_like: bool,
    /// Treat the received payloads of a connection as one byte stream (for
    /// echoes through a TCP bridge, which may split or merge messages): each
    /// message in flight completes, in order, once its S bytes have arrived,
    /// and is still verified byte for byte; text and binary are both accepted.
    #[arg(long)]
    pub stream: bool,
    /// Seconds of sending once every connection is open.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub duration: f64,
    /// Seconds to wait for the last echoes after sending stops.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub drain: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Deterministic payloads: a 16-character hex header (connection id, sequence)
/// over a body (the same one, or one of a pool chosen by sequence number), all
/// ASCII so text and binary modes share it.
#[derive(Debug, Clone)]
pub struct Payloads {
    /// Message `seq` carries `bodies[seq % len]`; all have the same length.
    bodies: Vec<Vec<u8>>,
}

/// How many distinct JSON-like bodies `--json-like` cycles through: 64 KiB of
/// 1 KiB messages, so a repeat is never within a 32 KiB compression window.
const JSON_LIKE_BODIES: usize = 64;
const _: () = assert!(JSON_LIKE_BODIES.is_power_of_two());

/// The header is this long (when messages are shorter, its low-order digits,
/// the sequence number's, are kept).
pub const HEADER_LEN: usize = 16;

impl Payloads {
    pub fn new(size: usize) -> Self {
        let body = (0..size)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 + i / 36) % 36])
            .collect();
        Payloads { bodies: vec![body] }
    }

    /// Bodies of JSON chat records, e.g. `{"id":12,"user":"user-7","text":"the
    /// quick ..."}`, with words drawn from a fixed list by a fixed-seed generator:
    /// the same bytes every run, compressing about as well as chat traffic. One
    /// message differs from the next the way chat messages do (same vocabulary,
    /// other words), so a compressor that keeps its context between messages
    /// gets no whole-message repeats to feed on.
    pub fn json_like(size: usize) -> Self {
        const WORDS: [&str; 32] = [
            "the", "server", "message", "hello", "room", "quick", "latency", "deploy", "green",
            "socket", "review", "coffee", "merge", "build", "tonight", "release", "again",
            "thanks", "meeting", "queue", "window", "frame", "client", "metrics", "memory", "idle",
            "lunch", "done", "ok", "please", "check", "later",
        ];
        let mut state: u32 = 0x2545_f491;
        let mut next = move |n: usize| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as usize % n
        };
        let mut id = 1000;
        let mut bodies = Vec::with_capacity(JSON_LIKE_BODIES);
        for _ in 0..JSON_LIKE_BODIES {
            let mut body = Vec::with_capacity(size + 128);
            while body.len() < size {
                id += 1 + next(7);
                let words: Vec<&str> = (0..4 + next(9)).map(|_| WORDS[next(WORDS.len())]).collect();
                body.extend_from_slice(
                format!(
                    "{{\"id\":{id},\"user\":\"user-{}\",\"room\":\"lobby\",\"text\":\"{}\",\"ts\":{}}},",
                    next(50),
                    words.join(" "),
                    1_700_000_000_000u64 + (id as u64) * 937
                )
                .as_bytes(),
            );
            }
            body.truncate(size);
            bodies.push(body);
        }
        Payloads { bodies }
    }

    pub fn size(&self) -> usize {
        self.bodies[0].len()
    }

    fn body(&self, seq: u64) -> &[u8] {
        // The pool's length is a power of two (1 or JSON_LIKE_BODIES): a mask,
        // not a division per message.
        &self.bodies[(seq & (self.bodies.len() as u64 - 1)) as usize]
    }

    /// The header's hex digits as two little-endian words (the first eight
    /// characters, then the last eight), two digits per table lookup, built in
    /// registers: it is made twice per round trip (to send, to verify), and
    /// bytes stored piecemeal and read back whole would stall the compare.
    fn header_words(conn: u32, seq: u64) -> [u64; 2] {
        const HEX_PAIRS: [u16; 256] = {
            let digits = b"0123456789abcdef";
            let mut t = [0u16; 256];
            let mut i = 0;
            while i < 256 {
                t[i] = u16::from_le_bytes([digits[i >> 4], digits[i & 0xf]]);
                i += 1;
            }
            t
        };
        let hex8 = |x: u32| {
            let b = x.to_be_bytes();
            u64::from(HEX_PAIRS[usize::from(b[0])])
                | u64::from(HEX_PAIRS[usize::from(b[1])]) << 16
                | u64::from(HEX_PAIRS[usize::from(b[2])]) << 32
                | u64::from(HEX_PAIRS[usize::from(b[3])]) << 48
        };
        let word = (u64::from(conn) << 40) | (seq & ((1 << 40) - 1));
        [hex8((word >> 32) as u32), hex8(word as u32)]
    }

    fn header(conn: u32, seq: u64) -> [u8; HEADER_LEN] {
        let [a, b] = Self::header_words(conn, seq);
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&a.to_le_bytes());
        h[8..].copy_from_slice(&b.to_le_bytes());
        h
    }

    /// Writes message `seq` of connection `conn` into `out` (replacing its content).
    pub fn fill(&self, conn: u32, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.size(), 0);
        self.write(conn, seq, out);
    }

    /// Writes message `seq` of connection `conn` into `out`, which is
    /// [`Payloads::size`] bytes long (where the frame will be sent from).
    pub fn write(&self, conn: u32, seq: u64, out: &mut [u8]) {
        if out.len() >= HEADER_LEN {
            // Fixed-length copies and compares here compile to a few moves,
            // not calls, for the short messages where they matter.
            let [a, b] = Self::header_words(conn, seq);
            out[..8].copy_from_slice(&a.to_le_bytes());
            out[8..HEADER_LEN].copy_from_slice(&b.to_le_bytes());
            if out.len() > HEADER_LEN {
                out[HEADER_LEN..].copy_from_slice(&self.body(seq)[HEADER_LEN..]);
            }
        } else {
            let n = out.len();
            out.copy_from_slice(&Self::header(conn, seq)[HEADER_LEN - n..]);
        }
    }

    /// Whether `data` is exactly message `seq` of connection `conn`.
    pub fn verify(&self, conn: u32, seq: u64, data: &[u8]) -> bool {
        let body = self.body(seq);
        if data.len() != body.len() {
            return false;
        }
        if let (Some(a), Some(b)) = (data.first_chunk::<8>(), data.get(8..HEADER_LEN)) {
            let [want_a, want_b] = Self::header_words(conn, seq);
            let mut got_b = [0u8; 8];
            got_b.copy_from_slice(b);
            u64::from_le_bytes(*a) == want_a
                && u64::from_le_bytes(got_b) == want_b
                && (data.len() == HEADER_LEN || data[HEADER_LEN..] == body[HEADER_LEN..])
        } else {
            *data == Self::header(conn, seq)[HEADER_LEN - data.len()..]
        }
    }
}

/// Per-connection echo state.
#[derive(Debug, Default)]
pub struct EchoConn {
    next_seq: u64,
    /// Sequence numbers and send times of messages in flight, oldest first.
    inflight: VecDeque<(u64, Instant)>,
    /// `--stream`: the received bytes of the oldest message in flight, fewer
    /// than its size (allocated on the first split arrival).
    partial: Vec<u8>,
}

/// Queues one message on a connection, whichever way the caller holds it (the
/// connection itself, or the [`Sender`] of a message being read), its payload
/// written in place: generic, so each path is one direct call per message.
trait Queue {
    fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen>;
}

impl Queue for Connection {
    fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen> {
        Connection::send_with(self, kind, len, fill)
    }
}

impl Queue for Sender<'_> {
    fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen> {
        Sender::send_with(self, kind, len, fill)
    }
}

/// Everything the run measures.
struct Run {
    payloads: Payloads,
    kind: MessageKind,
    pipeline: u64,
    /// `--stream`: received payloads are a byte stream, not messages.
    stream: bool,
    sending: bool,
    window_end: Option<Instant>,
    sent: u64,
    received: u64,
    received_in_window: u64,
    mismatches: u64,
    first_mismatch: Option<String>,
    unexpected: u64,
    rtt: Histogram,
    /// The run over time (`--report`); every round trip is recorded in it too.
    timeline: Timeline,
}

impl Run {
    fn new(
        payloads: Payloads,
        kind: MessageKind,
        pipeline: u64,
        stream: bool,
        timeline: Timeline,
    ) -> Self {
        Run {
            payloads,
            kind,
            pipeline,
            stream,
            sending: false,
            window_end: None,
            sent: 0,
            received: 0,
            received_in_window: 0,
            mismatches: 0,
            first_mismatch: None,
            unexpected: 0,
            rtt: Histogram::new(),
            timeline,
        }
    }

    /// At a turn boundary: closes the timeline's interval if it is due.
    fn sample(&mut self, fleet: &Fleet<EchoConn>, now: Instant) {
        let (received, mismatches, unexpected) = (self.received, self.mismatches, self.unexpected);
        self.timeline.tick(now, || {
            Self::totals(fleet, received, mismatches, unexpected)
        });
    }

    fn totals(fleet: &Fleet<EchoConn>, received: u64, mismatches: u64, unexpected: u64) -> Totals {
        Totals::of_fleet(fleet, received)
            .with_error("mismatch", mismatches)
            .with_error("unexpected", unexpected)
    }

    /// Sends the connection's next message through `queue`.
    fn send_one<Q: Queue>(&mut self, id: usize, state: &mut EchoConn, now: Instant, queue: &mut Q) {
        let seq = state.next_seq;
        let payloads = &self.payloads;
        let fill = |out: &mut [u8]| payloads.write(id as u32, seq, out);
        if queue.send_with(self.kind, payloads.size(), fill).is_ok() {
            state.next_seq += 1;
            state.inflight.push_back((seq, now));
            self.sent += 1;
        }
    }

    fn start(&mut self, id: usize, slot: &mut Slot<EchoConn>, now: Instant) {
        while (slot.state.inflight.len() as u64) < self.pipeline {
            self.send_one(id, &mut slot.state, now, &mut slot.conn);
        }
    }

    fn on_event(&mut self, id: usize, slot: &mut Slot<EchoConn>, ev: &ConnEvent, now: Instant) {
        let ConnEvent::Message(m) = ev else {
            return;
        };
        let Slot { conn, state, .. } = slot;
        self.on_echo(id, state, m.kind, &m.data, now, conn);
    }

    /// A message borrowed from the read buffer (the fast way; see
    /// [`Fleet::turn_with`]).
    fn on_borrowed(
        &mut self,
        id: usize,
        state: &mut EchoConn,
        kind: MessageKind,
        data: &[u8],
        sender: &mut Sender<'_>,
        now: Instant,
    ) {
        self.on_echo(id, state, kind, data, now, sender);
    }

    /// One received message, however it arrived: completes what it answers and
    /// sends as many new messages through `queue` while sending.
    fn on_echo<Q: Queue>(
        &mut self,
        id: usize,
        state: &mut EchoConn,
        kind: MessageKind,
        data: &[u8],
        now: Instant,
        queue: &mut Q,
    ) {
        let completed = if self.stream {
            self.on_stream_bytes(id, state, data, now)
        } else {
            u64::from(self.on_message(id, state, kind, data, now))
        };
        if self.sending {
            for _ in 0..completed {
                self.send_one(id, state, now, queue);
            }
        }
    }

    /// One echoed message (the default mode): it answers the oldest message in
    /// flight. Returns whether one was in flight.
    fn on_message(
        &mut self,
        id: usize,
        state: &mut EchoConn,
        kind: MessageKind,
        data: &[u8],
        now: Instant,
    ) -> bool {
        let Some((seq, sent_at)) = state.inflight.pop_front() else {
            self.unexpected += 1;
            return false;
        };
        self.complete(id, seq, sent_at, data, Some(kind), now);
        true
    }

    /// `--stream`: the payload of one received message, as the next bytes of
    /// the connection's stream. Completes (and verifies) every message in
    /// flight these bytes finish, oldest first; keeps the unfinished rest of
    /// the oldest (under one message) in `state.partial`. Bytes beyond what
    /// is in flight count as one unexpected message. Returns how many
    /// messages completed.
    fn on_stream_bytes(
        &mut self,
        id: usize,
        state: &mut EchoConn,
        mut data: &[u8],
        now: Instant,
    ) -> u64 {
        let size = self.payloads.size();
        let mut completed = 0;
        while !data.is_empty() {
            let Some(&(seq, sent_at)) = state.inflight.front() else {
                self.unexpected += 1;
                break;
            };
            let take = (size - state.partial.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            data = rest;
            if state.partial.is_empty() && take == size {
                // A whole message in one piece: verified where it lies.
                self.complete(id, seq, sent_at, head, None, now);
            } else {
                // At most one message's bytes are ever kept.
                state.partial.reserve_exact(size - state.partial.len());
                state.partial.extend_from_slice(head);
                if state.partial.len() < size {
                    break;
                }
                let whole = std::mem::take(&mut state.partial);
                self.complete(id, seq, sent_at, &whole, None, now);
                state.partial = whole;
                state.partial.clear();
            }
            state.inflight.pop_front();
            completed += 1;
        }
        completed
    }

    /// Message `seq` (sent at `sent_at`) came back as `data`: counts it, times
    /// it, and verifies it: its bytes, and its kind unless it is `None` (bytes
    /// of the `--stream` mode, where either kind will do).
    fn complete(
        &mut self,
        id: usize,
        seq: u64,
        sent_at: Instant,
        data: &[u8],
        kind: Option<MessageKind>,
        now: Instant,
    ) {
        self.received += 1;
        if !matches!(self.window_end, Some(end) if now > end) {
            self.received_in_window += 1;
        }
        let rtt = now.duration_since(sent_at).as_nanos() as u64;
        self.rtt.record(rtt);
        self.timeline.record(rtt);
        let kind_ok = kind.is_none_or(|k| k == self.kind);
        if !kind_ok || !self.payloads.verify(id as u32, seq, data) {
            self.mismatches += 1;
            if self.first_mismatch.is_none() {
                let shown = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
                self.first_mismatch = Some(match kind {
                    None => {
                        format!("connection {id} message {seq}: got bytes {shown:?} in the stream")
                    }
                    Some(kind) => format!(
                        "connection {id} message {seq}: got {} {kind:?} bytes {shown:?}",
                        data.len()
                    ),
                });
            }
        }
    }
}

/// One turn of the fleet, with borrowed messages going the fast way.
fn run_turn(fleet: &mut Fleet<EchoConn>, run: &mut Run, timeout: Duration) -> std::io::Result<()> {
    let run = std::cell::RefCell::new(run);
    fleet.turn_with(
        timeout,
        &mut |id, slot, ev, now| run.borrow_mut().on_event(id, slot, ev, now),
        Some(&mut |id, state, kind, data, sender, now| {
            run.borrow_mut()
                .on_borrowed(id, state, kind, data, sender, now)
        }),
    )
}

/// What `wsd load echo --json` prints.
#[derive(Debug, Serialize)]
struct EchoReport<'a> {
    mode: &'static str,
    connections: u64,
    successes: u64,
    failures: &'a Failures,
    pipeline: u64,
    size: usize,
    binary: bool,
    /// `--stream` (left out when off, so the default report is unchanged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    duration_secs: f64,
    sent: u64,
    received: u64,
    messages_per_sec: f64,
    bytes_per_sec: f64,
    latency: Latency,
    mismatches: u64,
    unexpected: u64,
    unanswered: u64,
    dropped: u64,
    dropped_by_cause: &'a Failures,
    /// CPU time (user + system) this generator used over the sending window.
    generator_cpu_secs: f64,
    /// Echoes received in the window per generator CPU-second: the rate this
    /// generator could drive if it had a core to itself and nothing else limited it.
    received_per_generator_cpu_sec: f64,
}

/// `wsd load echo`.
pub fn run(args: &EchoArgs) -> Result<bool, String> {
    if args.connections == 0 || args.pipeline == 0 {
        return Err("-c and -p must be at least 1".into());
    }
    if args.stream && args.size == 0 {
        return Err("--stream needs -s of at least 1 (empty messages leave no bytes)".into());
    }
    let limit = raise_fd_limit();
    if args.connections + 64 > limit {
        return Err(format!(
            "{} connections exceed this process's fd limit {limit}",
            args.connections
        ));
    }
    let spec = connect_spec(&args.url, &args.common)?;
    let mut fleet: Fleet<EchoConn> = super::fleet(spec, &args.common)?;
    let ramp_start = Instant::now();
    let mut run = Run::new(
        if args.json_like {
            Payloads::json_like(args.size)
        } else {
            Payloads::new(args.size)
        },
        if args.binary {
            MessageKind::Binary
        } else {
            MessageKind::Text
        },
        args.pipeline,
        args.stream,
        args.common.timeline(ramp_start),
    );
    let poll_err = |e: std::io::Error| format!("poll failed: {e}");

    // Ramp: open every connection (bounded by the handshake timeout).
    let mut attempted = 0u64;
    while attempted < args.connections || fleet.pending > 0 {
        while attempted < args.connections && fleet.pending < 256 {
            attempted += 1;
            if let Err(e) = fleet.start(EchoConn::default()) {
                if is_exhaustion(&e) {
                    eprintln!("echo: {e}; no more connections will be attempted");
                    attempted = args.connections;
                }
            }
        }
        fleet
            .turn(Duration::from_millis(20), &mut |_, _, _, _| {})
            .map_err(poll_err)?;
        let now = Instant::now();
        run.sample(&fleet, now);
        if now - ramp_start > secs(args.common.timeout) + secs(5.0) {
            break;
        }
    }
    let established = fleet.established;
    if fleet.open == 0 {
        let summary = format!(
            "echo {}: no connection opened ({})",
            args.url,
            fleet.failures.summary()
        );
        return Err(summary);
    }

    // Send for `duration`, then drain.
    let start = Instant::now();
    let end = start + secs(args.duration);
    run.sending = true;
    run.window_end = Some(end);
    let cpu_start = cpu_time();
    fleet.for_each_open(|id, slot| run.start(id, slot, start));
    let mut progress = Progress::new(args.common.progress);
    let mut last_count = 0u64;
    let mut last_at = start;
    let generator_cpu = loop {
        let now = Instant::now();
        run.sample(&fleet, now);
        if now >= end {
            break cpu_time().saturating_sub(cpu_start);
        }
        if progress.due(now) {
            eprintln!(
                "echo: {:.0} msg/s, {} round trips, {} mismatches, {} open",
                per_sec(run.received - last_count, now - last_at),
                run.rtt.summary(),
                run.mismatches,
                fleet.open
            );
            last_count = run.received;
            last_at = now;
        }
        let wait = (end - now)
            .min(Duration::from_millis(100))
            .min(run.timeline.until_next(now));
        run_turn(&mut fleet, &mut run, wait).map_err(poll_err)?;
    };
    run.sending = false;
    let elapsed = end - start;
    let drain_end = Instant::now() + secs(args.drain);
    let inflight = |fleet: &mut Fleet<EchoConn>| {
        let mut n = 0u64;
        fleet.for_each_open(|_, slot| n += slot.state.inflight.len() as u64);
        n
    };
    let finished_at = loop {
        let now = Instant::now();
        run.sample(&fleet, now);
        if inflight(&mut fleet) == 0 || now >= drain_end {
            break now;
        }
        let wait = Duration::from_millis(50).min(run.timeline.until_next(now));
        run_turn(&mut fleet, &mut run, wait).map_err(poll_err)?;
    };
    let intervals = run.timeline.finish(
        finished_at,
        Run::totals(&fleet, run.received, run.mismatches, run.unexpected),
    );
    let unanswered = inflight(&mut fleet);
    let open_at_end = fleet.open as u64;
    let dropped = fleet.dropped.clone();
    fleet.close_all(Duration::from_secs(3));

    let msgs_per_sec = per_sec(run.received_in_window, elapsed);
    let per_cpu_sec = per_sec(run.received_in_window, generator_cpu);
    let bytes_per_sec = msgs_per_sec * args.size as f64;
    let report = EchoReport {
        mode: "echo",
        connections: args.connections,
        successes: established,
        failures: &fleet.failures,
        pipeline: args.pipeline,
        size: args.size,
        binary: args.binary,
        stream: args.stream,
        duration_secs: elapsed.as_secs_f64(),
        sent: run.sent,
        received: run.received,
        messages_per_sec: msgs_per_sec,
        bytes_per_sec,
        latency: run.rtt.latency(),
        mismatches: run.mismatches,
        unexpected: run.unexpected,
        unanswered,
        dropped: dropped.total(),
        dropped_by_cause: &dropped,
        generator_cpu_secs: generator_cpu.as_secs_f64(),
        received_per_generator_cpu_sec: per_cpu_sec,
    };
    let mut summary = format!(
        "echo {}: {} connections x {} in flight x {} B {}{}, {:.1}s\n  \
         {} msg/s, {:.2} MB/s payload each way ({} echoed)\n  \
         generator: {:.2} CPU-s, {} msg per generator CPU-second\n  round trip: {}\n  \
         mismatches {}, unexpected {}, unanswered {}, connection failures: {}, dropped: {}",
        args.url,
        fmt_count(established),
        args.pipeline,
        args.size,
        if args.binary { "binary" } else { "text" },
        if args.stream { " (as a stream)" } else { "" },
        elapsed.as_secs_f64(),
        fmt_count(msgs_per_sec as u64),
        bytes_per_sec / 1e6,
        fmt_count(run.received),
        generator_cpu.as_secs_f64(),
        fmt_count(per_cpu_sec as u64),
        run.rtt.summary(),
        run.mismatches,
        run.unexpected,
        unanswered,
        fleet.failures.summary(),
        dropped.summary(),
    );
    if let Some(first) = &run.first_mismatch {
        summary.push_str(&format!("\n  MISMATCH: {first}"));
    }
    let mut parameters = args.common.parameters(serde_json::json!({
        "url": args.url,
        "connections": args.connections,
        "pipeline": args.pipeline,
        "size": args.size,
        "binary": args.binary,
        "json_like": args.json_like,
        "duration_secs": args.duration,
        "drain_secs": args.drain,
    }));
    if args.stream {
        parameters["stream"] = serde_json::Value::Bool(true);
    }
    finish(
        &args.common,
        "echo",
        parameters,
        &summary,
        &report,
        &intervals,
    )?;
    let ok = established == args.connections
        && run.mismatches == 0
        && run.unexpected == 0
        && unanswered == 0
        && dropped.total() == 0
        && open_at_end == args.connections
        && run.received > 0;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_bodies_are_ascii_sized_repeatable_and_compress_like_chat() {
        let a = Payloads::json_like(1024);
        assert_eq!(a.size(), 1024);
        assert_eq!(a.bodies, Payloads::json_like(1024).bodies);
        assert_eq!(a.bodies.len(), JSON_LIKE_BODIES);
        for (i, body) in a.bodies.iter().enumerate() {
            assert_eq!(body.len(), 1024);
            assert!(body.is_ascii());
            assert!(
                i == 0 || *body != a.bodies[i - 1],
                "consecutive bodies differ"
            );
            let mut c = flate2::Compress::new(flate2::Compression::new(1), false);
            let mut out = Vec::with_capacity(2048);
            c.compress_vec(body, &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            let ratio = body.len() as f64 / out.len() as f64;
            assert!((2.0..6.0).contains(&ratio), "ratio {ratio:.2}");
        }
        let (mut msg, mut other) = (Vec::new(), Vec::new());
        a.fill(3, 7, &mut msg);
        a.fill(3, 8, &mut other);
        assert!(a.verify(3, 7, &msg) && !a.verify(3, 8, &msg) && a.verify(3, 8, &other));
    }

    #[test]
    fn payload_carries_connection_and_sequence() {
        let p = Payloads::new(64);
        let mut buf = Vec::new();
        p.fill(3, 7, &mut buf);
        assert_eq!(buf.len(), 64);
        assert!(std::str::from_utf8(&buf).is_ok());
        assert!(p.verify(3, 7, &buf));
        assert!(!p.verify(3, 8, &buf));
        assert!(!p.verify(4, 7, &buf));
        let mut corrupt = buf.clone();
        corrupt[40] ^= 1;
        assert!(!p.verify(3, 7, &corrupt));
        assert!(!p.verify(3, 7, &buf[..63]));
    }

    /// A run in `--stream` mode over `size`-byte messages, with `n` messages of
    /// connection 5 in flight; returns it, the connection and the bytes sent.
    fn stream_run(size: usize, n: u64) -> (Run, EchoConn, Vec<u8>) {
        let run = Run::new(
            Payloads::new(size),
            MessageKind::Text,
            n,
            true,
            Timeline::off(),
        );
        let mut conn = EchoConn::default();
        let mut sent = Vec::new();
        let now = Instant::now();
        let mut buf = Vec::new();
        for seq in 0..n {
            run.payloads.fill(5, seq, &mut buf);
            sent.extend_from_slice(&buf);
            conn.inflight.push_back((seq, now));
        }
        (run, conn, sent)
    }

    #[test]
    fn stream_mode_reassembles_split_and_merged_arrivals() {
        let (mut run, mut conn, sent) = stream_run(100, 4);
        let now = Instant::now();
        // Split: the first message in three pieces (one empty), then the rest
        // merged with a piece of the third, then the remainder in one go.
        let mut done = 0;
        for piece in [&sent[..1], &sent[1..1], &sent[1..70], &sent[70..100]] {
            done += run.on_stream_bytes(5, &mut conn, piece, now);
        }
        assert_eq!((done, run.received), (1, 1));
        assert_eq!(conn.inflight.len(), 3);
        assert!(conn.partial.is_empty());
        assert_eq!(run.on_stream_bytes(5, &mut conn, &sent[100..250], now), 1);
        assert_eq!(conn.partial.len(), 50);
        assert!(conn.partial.capacity() <= 100, "at most one message kept");
        assert_eq!(run.on_stream_bytes(5, &mut conn, &sent[250..], now), 2);
        assert_eq!((run.received, run.mismatches, run.unexpected), (4, 0, 0));
        assert!(conn.inflight.is_empty() && conn.partial.is_empty());
        // Bytes with nothing in flight.
        assert_eq!(run.on_stream_bytes(5, &mut conn, b"x", now), 0);
        assert_eq!(run.unexpected, 1);
        assert_eq!(run.rtt.latency().count, 4);
    }

    #[test]
    fn stream_mode_counts_a_wrong_byte_as_a_mismatch() {
        // Merged: all three messages in one arrival, one byte wrong in the second.
        let (mut run, mut conn, mut sent) = stream_run(64, 3);
        let now = Instant::now();
        sent[64 + 40] ^= 1;
        assert_eq!(run.on_stream_bytes(5, &mut conn, &sent, now), 3);
        assert_eq!((run.received, run.mismatches), (3, 1));
        let first = run.first_mismatch.as_deref().unwrap();
        assert!(first.contains("message 1"), "{first}");
        // The same bytes split one by one: the wrong byte is still caught.
        let (mut run, mut conn, _) = stream_run(64, 3);
        let done: u64 = sent
            .chunks(1)
            .map(|b| run.on_stream_bytes(5, &mut conn, b, now))
            .sum();
        assert_eq!((done, run.received, run.mismatches), (3, 3, 1));
    }

    #[test]
    fn header_is_connection_and_sequence_in_hex_around_its_length() {
        let slow = |conn: u32, seq: u64| {
            let word = (u64::from(conn) << 40) | (seq & ((1 << 40) - 1));
            format!("{word:016x}").into_bytes()
        };
        for (conn, seq) in [
            (0, 0),
            (3, 7),
            (0xab_cdef, 0xff_ffff_ffff),
            (u32::MAX, 1 << 41),
        ] {
            assert_eq!(Payloads::header(conn, seq).to_vec(), slow(conn, seq));
        }
        for size in [15, 16, 17, 24] {
            let p = Payloads::new(size);
            let mut buf = Vec::new();
            p.fill(0x12, 0x3456, &mut buf);
            assert_eq!(buf.len(), size);
            let digits = slow(0x12, 0x3456);
            let n = size.min(HEADER_LEN);
            assert_eq!(buf[..n], digits[HEADER_LEN - n..]);
            assert!(p.verify(0x12, 0x3456, &buf));
            for i in 0..size {
                let mut wrong = buf.clone();
                wrong[i] ^= 0x20;
                assert!(!p.verify(0x12, 0x3456, &wrong), "size {size} byte {i}");
            }
        }
    }

    #[test]
    fn short_payloads_keep_the_low_header_digits_checked() {
        let p = Payloads::new(4);
        let mut a = Vec::new();
        p.fill(1, 1, &mut a);
        assert_eq!(a.len(), 4);
        assert!(p.verify(1, 1, &a));
        assert!(!p.verify(1, 2, &a));
        let empty = Payloads::new(0);
        empty.fill(1, 1, &mut a);
        assert!(a.is_empty() && empty.verify(1, 1, &a));
    }
}
