//! `wsd load broadcast`: C members and one publisher join a chat room; the
//! publisher sends M timestamped messages (windowed and optionally rate-capped)
//! and the members' receipts give deliveries/s and delivery latency.
//!
//! Owns the broadcast scenario: the marked payload format, per-member order and
//! loss accounting, the publisher's window. It must never count a message that is
//! not this run's (room announcements, other runs) and never run past its bound.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::connection::random_bytes;
use crate::client::ConnEvent;
use crate::core::MessageKind;

use super::fleet::{is_exhaustion, Fleet, Slot};
use super::report::{fmt_count, Failures};
use super::timeline::{Timeline, Totals};
use super::{connect_spec, cpu_time, finish, per_sec, raise_fd_limit, secs, CommonArgs, Progress};
use crate::histogram::{Histogram, Latency};

/// Options of `wsd load broadcast`.
#[derive(Debug, Clone, clap::Args)]
pub struct BroadcastArgs {
    /// Chat room URL, e.g. ws://127.0.0.1:9001/chat?room=bench. Give it more
    /// than once to spread the members round-robin over several servers sharing
    /// the room (e.g. wsd processes on one Redis backplane): member i joins URL
    /// i mod N, the publisher joins the first URL. Results are then also given
    /// per URL.
    #[arg(long = "url", value_name = "URL", required = true)]
    pub urls: Vec<String>,
    /// Members (receivers); one more connection publishes.
    #[arg(short = 'c', long = "members", default_value_t = 10)]
    pub members: u64,
    /// Messages the publisher sends.
    #[arg(short = 'm', long = "messages", default_value_t = 1000)]
    pub messages: u64,
    /// Payload size in bytes (at least the marker and fields, ~40 bytes).
    #[arg(short = 's', long = "size", default_value_t = 64)]
    pub size: usize,
    /// Most messages not yet delivered to every member.
    #[arg(long, default_value_t = 8)]
    pub window: u64,
    /// Cap on messages published per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Upper bound on the publishing phase, in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub duration: f64,
    /// A message not delivered to everyone within this many seconds leaves the window.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub msg_timeout: f64,
    /// Before publishing, wait until no message arrived for this long (join
    /// announcements settle), at most 10 s.
    #[arg(long, default_value_t = 0.3, value_name = "SECS")]
    pub settle: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The marker that starts every payload of this scenario.
pub const MARKER: &str = "wsdb";

/// Builds `wsdb:RUN:SEQ:NANOS:` padded with `.` to `size` bytes.
pub fn encode(run: &str, seq: u64, nanos: u64, size: usize) -> String {
    let mut s = format!("{MARKER}:{run}:{seq}:{nanos}:");
    while s.len() < size {
        s.push('.');
    }
    s
}

/// Finds this run's marker anywhere in `data` (the server may wrap messages, e.g.
/// in JSON) and returns the sequence number and send time.
///
/// Called once per delivery, so the usual case is cheap: the marker where this
/// generator put it, at the start (a prefix check, not a search), and the
/// fields read as decimal digits in place (no UTF-8 check, no `str::parse`).
pub fn decode(prefix: &[u8], data: &[u8]) -> Option<(u64, u64)> {
    let rest = match data.strip_prefix(prefix) {
        Some(rest) => rest,
        None => {
            let at = data.windows(prefix.len()).position(|w| w == prefix)?;
            &data[at + prefix.len()..]
        }
    };
    let (seq, rest) = decimal_field(rest)?;
    let (nanos, _) = decimal_field(rest)?;
    Some((seq, nanos))
}

/// A decimal `u64` (one digit or more, nothing else) ended by `:`, and what
/// follows the `:`; `None` if `data` does not start with one.
fn decimal_field(data: &[u8]) -> Option<(u64, &[u8])> {
    let end = data.iter().position(|&b| b == b':')?;
    let digits = &data[..end];
    if digits.is_empty() {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = if digits.len() <= 19 {
        // Cannot overflow: unchecked steps (x * 10 is a couple of `lea`s).
        digits
            .iter()
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'))
    } else {
        digits.iter().try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?
    };
    Some((value, &data[end + 1..]))
}

/// What each connection is.
#[derive(Debug, Default)]
pub struct Member {
    publisher: bool,
    next_expected: u64,
    /// Index of the URL it joined (`--url`, in order).
    url: usize,
}

/// The URL member number `i` (0-based, in connection order) joins: round-robin
/// over `n` URLs.
fn url_of(i: u64, n: usize) -> usize {
    (i % n.max(1) as u64) as usize
}

/// Receipts of the members of one URL (kept only with several `--url`).
#[derive(Debug, Default)]
struct UrlStats {
    members: u64,
    deliveries: u64,
    in_order: u64,
    latency: Histogram,
}

/// One URL's part of the result, when members were spread over several.
#[derive(Debug, Serialize)]
struct UrlReport<'a> {
    url: &'a str,
    members: u64,
    deliveries: u64,
    expected_deliveries: u64,
    lost: u64,
    latency: Latency,
}

struct Run {
    base: Instant,
    prefix: Vec<u8>,
    /// Receipts per message.
    delivered: Vec<u32>,
    deliveries: u64,
    in_order: u64,
    out_of_order: u64,
    foreign: u64,
    last_foreign: Instant,
    last_delivery: Option<Instant>,
    latency: Histogram,
    /// The run over time (`--report`); every delivery's latency is recorded in it too.
    timeline: Timeline,
    /// Per URL, when there are several (empty with one).
    per_url: Vec<UrlStats>,
}

impl Run {
    /// At a turn boundary: closes the timeline's interval if it is due.
    fn sample(&mut self, fleet: &Fleet<Member>, now: Instant) {
        let (deliveries, out_of_order) = (self.deliveries, self.out_of_order);
        self.timeline
            .tick(now, || Self::totals(fleet, deliveries, out_of_order));
    }

    fn totals(fleet: &Fleet<Member>, deliveries: u64, out_of_order: u64) -> Totals {
        Totals::of_fleet(fleet, deliveries).with_error("out_of_order", out_of_order)
    }

    fn on_event(&mut self, slot: &mut Slot<Member>, ev: &ConnEvent, now: Instant) {
        if let ConnEvent::Message(m) = ev {
            self.on_message(&mut slot.state, &m.data, now);
        }
    }

    /// One message received by `member`, however it arrived (borrowed from
    /// the read buffer the fast way, see [`Fleet::turn_with`]).
    fn on_message(&mut self, member: &mut Member, data: &[u8], now: Instant) {
        if member.publisher {
            return;
        }
        let Some((seq, nanos)) = decode(&self.prefix, data) else {
            self.foreign += 1;
            self.last_foreign = now;
            return;
        };
        let Some(count) = self.delivered.get_mut(seq as usize) else {
            self.foreign += 1;
            return;
        };
        *count += 1;
        self.deliveries += 1;
        self.last_delivery = Some(now);
        let elapsed = now.duration_since(self.base).as_nanos() as u64;
        let latency = elapsed.saturating_sub(nanos);
        self.latency.record(latency);
        self.timeline.record(latency);
        let in_order = seq == member.next_expected;
        if in_order {
            self.in_order += 1;
        } else {
            self.out_of_order += 1;
        }
        if let Some(part) = self.per_url.get_mut(member.url) {
            part.deliveries += 1;
            part.latency.record(latency);
            part.in_order += u64::from(in_order);
        }
        member.next_expected = member.next_expected.max(seq + 1);
    }
}

/// One turn of the fleet, with whole messages taken from the read buffer.
fn run_turn(fleet: &mut Fleet<Member>, run: &mut Run, timeout: Duration) -> std::io::Result<()> {
    let run = std::cell::RefCell::new(run);
    fleet.turn_with(
        timeout,
        &mut |_, slot, ev, now| run.borrow_mut().on_event(slot, ev, now),
        Some(&mut |_, member, _, data, _, now| run.borrow_mut().on_message(member, data, now)),
    )
}

/// What `wsd load broadcast --json` prints.
#[derive(Debug, Serialize)]
struct BroadcastReport<'a> {
    mode: &'static str,
    members: u64,
    successes: u64,
    failures: &'a Failures,
    messages: u64,
    sent: u64,
    size: usize,
    deliveries: u64,
    expected_deliveries: u64,
    fully_delivered_messages: u64,
    lost: u64,
    out_of_order: u64,
    foreign_messages: u64,
    foreign_during_run: u64,
    duration_secs: f64,
    deliveries_per_sec: f64,
    messages_per_sec: f64,
    latency: Latency,
    dropped: u64,
    dropped_by_cause: &'a Failures,
    /// Only with several `--url`: each URL's members, deliveries and latency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    per_url: Vec<UrlReport<'a>>,
    /// CPU time (user + system) this generator used from the first message
    /// published to the last delivery awaited.
    generator_cpu_secs: f64,
    /// Deliveries per generator CPU-second.
    received_per_generator_cpu_sec: f64,
}

/// `wsd load broadcast`.
pub fn run(args: &BroadcastArgs) -> Result<bool, String> {
    if args.members == 0 || args.messages == 0 {
        return Err("-c and -m must be at least 1".into());
    }
    if args.messages > 10_000_000 {
        return Err("-m is capped at 10,000,000".into());
    }
    let limit = raise_fd_limit();
    if args.members + 65 > limit {
        return Err(format!(
            "{} members exceed this process's fd limit {limit}",
            args.members
        ));
    }
    let mut run_id = [0u8; 4];
    random_bytes(&mut run_id).map_err(|e| e.to_string())?;
    let run_id: String = run_id.iter().map(|b| format!("{b:02x}")).collect();
    let Some(first_url) = args.urls.first() else {
        return Err("--url is required".into());
    };
    // One spec per URL; with several, the fleet's spec is swapped to the
    // member's before each connection starts (a connection copies what it needs).
    let specs = args
        .urls
        .iter()
        .map(|url| connect_spec(url, &args.common))
        .collect::<Result<Vec<_>, _>>()?;
    let multi = specs.len() > 1;
    let mut fleet: Fleet<Member> = super::fleet(specs[0].clone(), &args.common)?;
    let poll_err = |e: std::io::Error| format!("poll failed: {e}");
    let ramp_start = Instant::now();
    let mut run = Run {
        base: ramp_start,
        prefix: format!("{MARKER}:{run_id}:").into_bytes(),
        delivered: vec![0; args.messages as usize],
        deliveries: 0,
        in_order: 0,
        out_of_order: 0,
        foreign: 0,
        last_foreign: Instant::now(),
        last_delivery: None,
        latency: Histogram::new(),
        timeline: args.common.timeline(ramp_start),
        per_url: if multi {
            specs.iter().map(|_| UrlStats::default()).collect()
        } else {
            Vec::new()
        },
    };

    // Members join first, then the publisher.
    let ramp_bound = secs(args.common.timeout) + secs(5.0);
    let mut attempted = 0u64;
    let mut publisher: Option<usize> = None;
    let mut progress = Progress::new(args.common.progress);
    loop {
        while attempted < args.members && fleet.pending < 256 {
            let url = url_of(attempted, specs.len());
            attempted += 1;
            if multi {
                fleet.spec = specs[url].clone();
            }
            let member = Member {
                url,
                ..Member::default()
            };
            if let Err(e) = fleet.start(member) {
                if is_exhaustion(&e) {
                    eprintln!("broadcast: {e}; no more connections will be attempted");
                    attempted = args.members;
                }
            }
        }
        if attempted >= args.members && fleet.pending == 0 && publisher.is_none() {
            if multi {
                fleet.spec = specs[0].clone();
            }
            publisher = fleet
                .start(Member {
                    publisher: true,
                    next_expected: 0,
                    url: 0,
                })
                .ok();
            if publisher.is_none() {
                break;
            }
        }
        if publisher.is_some() && fleet.pending == 0 {
            break;
        }
        let now = Instant::now();
        run.sample(&fleet, now);
        if now - ramp_start > ramp_bound {
            break;
        }
        if progress.due(now) {
            eprintln!(
                "broadcast: {} members open, {} pending, {} failed",
                fleet.open,
                fleet.pending,
                fleet.failures.total()
            );
        }
        fleet
            .turn(Duration::from_millis(20), &mut |_, slot, ev, now| {
                run.on_event(slot, ev, now)
            })
            .map_err(poll_err)?;
    }
    let publisher_open = publisher
        .and_then(|id| fleet.slot_mut(id))
        .is_some_and(|s| s.conn.is_open());
    if !publisher_open {
        return Err(format!(
            "the publisher could not connect ({} members open; failures: {})",
            fleet.open,
            fleet.failures.summary()
        ));
    }
    let publisher = publisher.unwrap_or_default();
    let members_open = fleet.open as u64 - 1;
    if multi {
        let per_url = &mut run.per_url;
        fleet.for_each_open(|_, slot| {
            if !slot.state.publisher {
                if let Some(part) = per_url.get_mut(slot.state.url) {
                    part.members += 1;
                }
            }
        });
    }

    // Settle: let join announcements pass.
    let settle_bound = Instant::now() + Duration::from_secs(10);
    run.last_foreign = Instant::now();
    loop {
        let now = Instant::now();
        run.sample(&fleet, now);
        if now.saturating_duration_since(run.last_foreign) >= secs(args.settle)
            || now >= settle_bound
        {
            break;
        }
        fleet
            .turn(Duration::from_millis(20), &mut |_, slot, ev, now| {
                run.on_event(slot, ev, now)
            })
            .map_err(poll_err)?;
    }
    let foreign_before = run.foreign;

    // Publish.
    let cpu_start = cpu_time();
    let start = Instant::now();
    let deadline = start + secs(args.duration);
    let msg_timeout = secs(args.msg_timeout);
    let mut sent_at: Vec<Instant> = Vec::with_capacity(args.messages as usize);
    let mut oldest = 0usize; // first message still counted in the window
    let want = members_open as u32;
    let window = args.window.max(1) as usize;
    let mut text = String::new();
    let mut last_deliveries = 0u64;
    let mut last_at = start;
    loop {
        let now = Instant::now();
        run.sample(&fleet, now);
        while oldest < sent_at.len()
            && (run.delivered[oldest] >= want || now.duration_since(sent_at[oldest]) >= msg_timeout)
        {
            oldest += 1;
        }
        if (sent_at.len() as u64 == args.messages && oldest == sent_at.len()) || now >= deadline {
            break;
        }
        let mut wait = Duration::from_millis(20);
        while (sent_at.len() as u64) < args.messages && sent_at.len() - oldest < window {
            if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
                let due = start + secs(sent_at.len() as f64 / rate);
                if now < due {
                    wait = wait.min(due - now);
                    break;
                }
            }
            let seq = sent_at.len() as u64;
            let nanos = now.duration_since(run.base).as_nanos() as u64;
            text.clear();
            text.push_str(&encode(&run_id, seq, nanos, args.size));
            let Some(slot) = fleet.slot_mut(publisher) else {
                break;
            };
            if slot.conn.send(MessageKind::Text, text.as_bytes()).is_err() {
                break;
            }
            sent_at.push(now);
        }
        // Everything the window allowed goes out in one write, as a real
        // publisher's event loop would send it.
        if let Some(slot) = fleet.slot_mut(publisher) {
            slot.conn.flush();
        }
        if !fleet.slot_mut(publisher).is_some_and(|s| s.conn.can_send()) {
            eprintln!("broadcast: the publisher's connection ended");
            break;
        }
        if progress.due(now) {
            eprintln!(
                "broadcast: {} sent, {:.0} deliveries/s, latency {}",
                sent_at.len(),
                per_sec(run.deliveries - last_deliveries, now - last_at),
                run.latency.summary()
            );
            last_deliveries = run.deliveries;
            last_at = now;
        }
        run_turn(&mut fleet, &mut run, wait).map_err(poll_err)?;
    }
    // Late deliveries of the last messages, bounded by the message timeout.
    let drain_end = Instant::now() + msg_timeout;
    let expected = sent_at.len() as u64 * members_open;
    let finished_at = loop {
        let now = Instant::now();
        run.sample(&fleet, now);
        if run.deliveries >= expected || now >= drain_end {
            break now;
        }
        run_turn(&mut fleet, &mut run, Duration::from_millis(20)).map_err(poll_err)?;
    };
    let generator_cpu = cpu_time().saturating_sub(cpu_start);
    let intervals = run.timeline.finish(
        finished_at,
        Run::totals(&fleet, run.deliveries, run.out_of_order),
    );
    let span = run
        .last_delivery
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    let dropped = fleet.dropped.clone();
    let open_at_end = fleet.open as u64;
    fleet.close_all(Duration::from_secs(3));

    let sent = sent_at.len() as u64;
    let lost = expected.saturating_sub(run.in_order);
    let complete = run.delivered.iter().filter(|&&c| c >= want).count() as u64;
    let deliveries_per_sec = per_sec(run.deliveries, span);
    let per_url: Vec<UrlReport> = args
        .urls
        .iter()
        .zip(&run.per_url)
        .map(|(url, part)| {
            let expected = sent * part.members;
            UrlReport {
                url,
                members: part.members,
                deliveries: part.deliveries,
                expected_deliveries: expected,
                lost: expected.saturating_sub(part.in_order),
                latency: part.latency.latency(),
            }
        })
        .collect();
    let mut per_url_text = String::new();
    for (part, stats) in per_url.iter().zip(&run.per_url) {
        per_url_text.push_str(&format!(
            "\n  {}: {} members, {} deliveries ({} expected), lost {}, latency {}",
            part.url,
            fmt_count(part.members),
            fmt_count(part.deliveries),
            fmt_count(part.expected_deliveries),
            fmt_count(part.lost),
            stats.latency.summary(),
        ));
    }
    let report = BroadcastReport {
        mode: "broadcast",
        members: args.members,
        successes: members_open,
        failures: &fleet.failures,
        messages: args.messages,
        sent,
        size: args.size,
        deliveries: run.deliveries,
        expected_deliveries: expected,
        fully_delivered_messages: complete,
        lost,
        out_of_order: run.out_of_order,
        foreign_messages: run.foreign,
        foreign_during_run: run.foreign - foreign_before,
        duration_secs: span.as_secs_f64(),
        deliveries_per_sec,
        messages_per_sec: per_sec(sent, span),
        latency: run.latency.latency(),
        dropped: dropped.total(),
        dropped_by_cause: &dropped,
        per_url,
        generator_cpu_secs: generator_cpu.as_secs_f64(),
        received_per_generator_cpu_sec: per_sec(run.deliveries, generator_cpu),
    };
    let summary = format!(
        "broadcast {}: {} members, {} of {} messages sent in {:.2}s\n  \
         {} deliveries ({} expected), {} deliveries/s\n  \
         generator: {:.2} CPU-s, {} deliveries per generator CPU-second\n  delivery latency: {}\n  \
         lost {}, out of order {}, other messages skipped {}, connection failures: {}, dropped: {}{}",
        args.urls.join(" + "),
        fmt_count(members_open),
        fmt_count(sent),
        fmt_count(args.messages),
        span.as_secs_f64(),
        fmt_count(run.deliveries),
        fmt_count(expected),
        fmt_count(deliveries_per_sec as u64),
        generator_cpu.as_secs_f64(),
        fmt_count(per_sec(run.deliveries, generator_cpu) as u64),
        run.latency.summary(),
        fmt_count(lost),
        run.out_of_order,
        run.foreign,
        fleet.failures.summary(),
        dropped.summary(),
        per_url_text,
    );
    let mut parameters = serde_json::json!({
        "url": first_url,
        "members": args.members,
        "messages": args.messages,
        "size": args.size,
        "window": args.window,
        "rate": args.rate,
        "duration_secs": args.duration,
        "msg_timeout_secs": args.msg_timeout,
    });
    if let (true, Some(map)) = (multi, parameters.as_object_mut()) {
        map.insert("urls".into(), serde_json::json!(args.urls));
    }
    let parameters = args.common.parameters(parameters);
    finish(
        &args.common,
        "broadcast",
        parameters,
        &summary,
        &report,
        &intervals,
    )?;
    Ok(members_open == args.members
        && sent == args.messages
        && lost == 0
        && run.out_of_order == 0
        && dropped.total() == 0
        && open_at_end == args.members + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_even_when_wrapped() {
        let p = encode("ab12", 42, 123456789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(decode(b"wsdb:ab12:", p.as_bytes()), Some((42, 123456789)));
        let wrapped = format!("{{\"type\":\"message\",\"text\":\"{p}\"}}");
        assert_eq!(
            decode(b"wsdb:ab12:", wrapped.as_bytes()),
            Some((42, 123456789))
        );
    }

    #[test]
    fn members_spread_round_robin_over_the_urls() {
        let spread: Vec<usize> = (0..7).map(|i| url_of(i, 3)).collect();
        assert_eq!(spread, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..5).all(|i| url_of(i, 1) == 0));
        // 1,000 members over two URLs: 500 each.
        let on_second = (0..1000).filter(|&i| url_of(i, 2) == 1).count();
        assert_eq!(on_second, 500);
    }

    #[test]
    fn url_may_be_given_more_than_once() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BroadcastArgs,
        }
        let parse = |argv: &str| {
            <Cli as clap::Parser>::try_parse_from(std::iter::once("t").chain(argv.split(' ')))
                .map(|c| c.args.urls)
        };
        assert_eq!(
            parse("--url ws://a/chat").ok(),
            Some(vec!["ws://a/chat".into()])
        );
        assert_eq!(
            parse("--url ws://a/chat -c 4 --url ws://b/chat").ok(),
            Some(vec!["ws://a/chat".to_string(), "ws://b/chat".to_string()])
        );
        assert!(parse("-c 4").is_err());
    }

    #[test]
    fn other_runs_and_announcements_are_not_ours() {
        let p = encode("ffff", 1, 2, 10);
        assert_eq!(decode(b"wsdb:ab12:", p.as_bytes()), None);
        assert_eq!(decode(b"wsdb:ab12:", b"{\"type\":\"join\"}"), None);
        assert_eq!(decode(b"wsdb:ab12:", b"wsdb:ab12:7:"), None);
        // Fields are plain decimal digits that fit a u64, each ended by ':'.
        assert_eq!(decode(b"wsdb:ab12:", b"wsdb:ab12::5:"), None);
        assert_eq!(decode(b"wsdb:ab12:", b"wsdb:ab12:+7:5:"), None);
        assert_eq!(decode(b"wsdb:ab12:", b"wsdb:ab12:7:5x:"), None);
        assert_eq!(
            decode(b"wsdb:ab12:", b"wsdb:ab12:18446744073709551616:5:"),
            None
        );
        assert_eq!(
            decode(b"wsdb:ab12:", b"wsdb:ab12:18446744073709551615:0:.."),
            Some((u64::MAX, 0))
        );
        // Not at the start: found by searching, the first occurrence wins.
        assert_eq!(
            decode(b"wsdb:ab12:", b"x wsdb:ab12:3:4: wsdb:ab12:5:6:"),
            Some((3, 4))
        );
    }
}
