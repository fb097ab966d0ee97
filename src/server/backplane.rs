//! The Redis backplane: chat rooms that span wsd processes (workers of one
//! daemon, or daemons on several machines) through Redis pub/sub, one channel
//! per room. Two non-blocking connections live in the reactor's poll: one
//! SUBSCRIBEs to the channels of the rooms this process has members in, one
//! PUBLISHes what its members send. Every payload starts with this process's
//! node id, so its own messages (delivered locally at once) are ignored when
//! Redis echoes them back.
//!
//! Owns the two links, RESP framing (the `redis-protocol` crate), the bounded
//! publish queue, reconnecting with jittered backoff and resubscribing, and the
//! counters of what was relayed, received and lost. It must never deliver to a
//! connection (the reactor hands what arrives to the route's handler, which
//! publishes it locally) and never block: a slow or dead Redis costs queued
//! bytes up to a bound, then dropped (and counted) messages, never a stall.
//! Redis pub/sub is at-most-once: what is published while Redis is away is lost.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};

use crate::app::{Relay, RouteHandler};
use crate::config::BackplaneConfig;
use crate::server::token::Source;

/// The most bytes waiting to be published; past it messages are dropped.
const MAX_QUEUED: usize = 8 * 1024 * 1024;
/// Reconnect delays: from this, doubling, up to `MAX_BACKOFF`, each with ±50% jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Redis must answer what the publisher link sent within this; past it the
/// links are dropped and reconnected (a Redis that accepts but never answers,
/// e.g. stopped or swapping, is as good as gone).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle publisher link sends PING this often, so a silent Redis is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Hex digits of a node id, at the front of every payload.
const NODE_LEN: usize = 16;

/// Which link a token names.
pub const SUBSCRIBER: usize = 0;
pub const PUBLISHER: usize = 1;

/// A message another node relayed, and the handler that subscribed to it.
pub struct Relayed {
    pub handler: Rc<dyn RouteHandler>,
    /// Without the prefix.
    pub channel: String,
    pub node: String,
    pub payload: Vec<u8>,
}

/// One connection to Redis.
#[derive(Debug, Default)]
struct Link {
    stream: Option<TcpStream>,
    connected: bool,
    /// Commands to write; those before `written` are written.
    out: Vec<u8>,
    written: usize,
    /// Replies not decoded yet.
    input: Vec<u8>,
}

/// What the backplane counted, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BackplaneStats {
    pub up: bool,
    pub published: u64,
    pub received: u64,
    /// Not relayed because Redis was away.
    pub dropped_down: u64,
    /// Not relayed because the publish queue was full (Redis too slow).
    pub dropped_queue: u64,
    /// Times the links went down.
    pub outages: u64,
    /// Channels subscribed now.
    pub channels: u64,
}

#[derive(Debug)]
pub struct Backplane {
    registry: Registry,
    config: BackplaneConfig,
    /// Biggest reply accepted: a relayed message plus room for framing.
    max_reply: usize,
    node: String,
    links: [Link; 2],
    /// Subscribed channels (without the prefix) and the handler of each.
    channels: HashMap<String, Rc<dyn RouteHandler>>,
    /// When the links went down, and messages lost since.
    down_since: Option<Instant>,
    lost_while_down: u64,
    attempt: u32,
    retry_at: Option<Instant>,
    rng: u64,
    /// Replies the publisher link is owed, and since when Redis has been
    /// quiet while it is owed any; when the last PING went out.
    awaiting: u64,
    quiet_since: Instant,
    last_ping: Instant,
    /// Messages from other nodes: channel (without prefix), node, payload.
    inbox: Vec<(String, String, Vec<u8>)>,
    pub stats: BackplaneStats,
}

impl Backplane {
    /// Starts connecting at once; `max_message` bounds what a reply may hold.
    pub fn new(registry: Registry, config: BackplaneConfig, max_message: usize) -> Backplane {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let rng = u64::from_le_bytes(seed) | 1;
        let mut backplane = Backplane {
            registry,
            config,
            max_reply: max_message.saturating_add(64 * 1024),
            node: format!("{rng:016x}"),
            links: [Link::default(), Link::default()],
            channels: HashMap::new(),
            down_since: Some(Instant::now()),
            lost_while_down: 0,
            attempt: 0,
            retry_at: None,
            rng,
            awaiting: 0,
            quiet_since: Instant::now(),
            last_ping: Instant::now(),
            inbox: Vec::new(),
            stats: BackplaneStats::default(),
        };
        backplane.connect();
        backplane
    }

    /// When the loop must next wake up for the backplane: a reconnect, a
    /// keep-alive PING, or the end of the wait for a reply.
    pub fn next_due(&self) -> Option<Instant> {
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        if !self.links.iter().all(|l| l.connected) {
            return None;
        }
        let ping = self.last_ping + PING_EVERY;
        Some(match self.awaiting {
            0 => ping,
            _ => ping.min(self.quiet_since + REPLY_TIMEOUT),
        })
    }

    /// Carries out one handler's request.
    pub fn relay(&mut self, relay: Relay, handler: &Rc<dyn RouteHandler>) {
        match relay {
            Relay::Subscribe(channel) => {
                let full = format!("{}{channel}", self.config.channel_prefix);
                self.channels.insert(channel, Rc::clone(handler));
                self.stats.channels = self.channels.len() as u64;
                if self.stats.up {
                    self.command(SUBSCRIBER, &[b"SUBSCRIBE", full.as_bytes()]);
                }
            }
            Relay::Unsubscribe(channel) => {
                if self.channels.remove(&channel).is_some() && self.stats.up {
                    let full = format!("{}{channel}", self.config.channel_prefix);
                    self.command(SUBSCRIBER, &[b"UNSUBSCRIBE", full.as_bytes()]);
                }
                self.stats.channels = self.channels.len() as u64;
            }
            Relay::Publish(channel, payload) => self.publish(&channel, &payload),
        }
    }

    fn publish(&mut self, channel: &str, payload: &[u8]) {
        if !self.stats.up {
            self.stats.dropped_down += 1;
            self.lost_while_down += 1;
            return;
        }
        let link = &self.links[PUBLISHER];
        if link.out.len() - link.written + payload.len() > MAX_QUEUED {
            self.stats.dropped_queue += 1;
            if self.stats.dropped_queue.is_power_of_two() {
                warn!(
                    "backplane: redis is not keeping up ({} queued); {} messages dropped so far",
                    link.out.len() - link.written,
                    self.stats.dropped_queue
                );
            }
            return;
        }
        let full = format!("{}{channel}", self.config.channel_prefix);
        let mut body = Vec::with_capacity(NODE_LEN + payload.len());
        body.extend_from_slice(self.node.as_bytes());
        body.extend_from_slice(payload);
        self.command(PUBLISHER, &[b"PUBLISH", full.as_bytes(), &body]);
        self.owe_reply();
        self.stats.published += 1;
    }

    /// One more reply is owed on the publisher link; the clock starts if
    /// none was.
    fn owe_reply(&mut self) {
        if self.awaiting == 0 {
            self.quiet_since = Instant::now();
        }
        self.awaiting += 1;
    }

    /// Appends one command to a link's queue.
    fn command(&mut self, which: usize, words: &[&[u8]]) {
        let frame = OwnedFrame::Array(
            words
                .iter()
                .map(|w| OwnedFrame::BulkString(w.to_vec()))
                .collect(),
        );
        let out = &mut self.links[which].out;
        let start = out.len();
        out.resize(start + frame.encode_len(false), 0);
        if encode(&mut out[start..], &frame, false).is_err() {
            out.truncate(start);
        }
    }

    /// An event on link `which`: finishes connecting, reads replies, writes.
    pub fn on_event(&mut self, which: usize, now: Instant) {
        if which > PUBLISHER || self.links[which].stream.is_none() {
            return;
        }
        if !self.links[which].connected {
            match self.finish_connect(which) {
                Ok(false) => return,
                Ok(true) => self.link_ready(which, now),
                Err(e) => return self.lost(&e),
            }
        }
        if let Err(e) = self.read(which) {
            return self.lost(&e);
        }
        if let Err(e) = self.write(which) {
            self.lost(&e);
        }
    }

    /// Writes both links' queues (end of the turn).
    pub fn flush(&mut self) {
        for which in [SUBSCRIBER, PUBLISHER] {
            if let Err(e) = self.write(which) {
                return self.lost(&e);
            }
        }
    }

    /// Reconnects when the backoff has passed; while up, pings an idle
    /// Redis and gives up on one that owes replies for `REPLY_TIMEOUT`.
    pub fn tick(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            self.connect();
            return;
        }
        let connected = self.links.iter().all(|l| l.connected);
        if !connected {
            return;
        }
        if self.awaiting > 0 && now.saturating_duration_since(self.quiet_since) >= REPLY_TIMEOUT {
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply for {} s", REPLY_TIMEOUT.as_secs()),
            );
            return self.lost(&e);
        }
        if self.stats.up && now.saturating_duration_since(self.last_ping) >= PING_EVERY {
            self.last_ping = now;
            self.command(PUBLISHER, &[b"PING"]);
            self.owe_reply();
        }
    }

    /// Messages from other nodes, for the reactor to hand to their handlers.
    pub fn take_inbox(&mut self) -> Vec<Relayed> {
        let mut out = Vec::new();
        for (channel, node, payload) in self.inbox.drain(..) {
            if let Some(handler) = self.channels.get(&channel) {
                out.push(Relayed {
                    handler: Rc::clone(handler),
                    channel,
                    node,
                    payload,
                });
            }
        }
        out
    }

    pub fn has_inbox(&self) -> bool {
        !self.inbox.is_empty()
    }

    fn connect(&mut self) {
        for which in [SUBSCRIBER, PUBLISHER] {
            let link = &mut self.links[which];
            *link = Link::default();
            match TcpStream::connect(self.config.redis.addr) {
                Ok(mut stream) => {
                    let token = Source::Backplane(which).token();
                    match self.registry.register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => link.stream = Some(stream),
                        Err(e) => return self.lost(&e),
                    }
                }
                Err(e) => return self.lost(&e),
            }
        }
    }

    fn finish_connect(&mut self, which: usize) -> io::Result<bool> {
        let Some(stream) = &self.links[which].stream else {
            return Ok(false);
        };
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => {
                let _ = stream.set_nodelay(true);
                self.links[which].connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A link just connected: authenticates it. Once both are connected the
    /// publisher link PINGs; the backplane is up when Redis has answered.
    fn link_ready(&mut self, which: usize, now: Instant) {
        if let Some(password) = self.config.password.clone() {
            self.command(which, &[b"AUTH", password.as_bytes()]);
            if which == PUBLISHER {
                self.owe_reply();
            }
        }
        if self.links.iter().all(|l| l.connected) {
            // A stopped Redis still completes TCP handshakes (the kernel
            // does): only an answer proves it is there.
            self.command(PUBLISHER, &[b"PING"]);
            self.owe_reply();
            self.last_ping = now;
        }
    }

    /// Redis answered on both links' behalf: every room with members here is
    /// (re)subscribed (rooms may have come while connecting), and what was
    /// lost meanwhile is logged.
    fn became_up(&mut self, now: Instant) {
        if !self.channels.is_empty() {
            let prefix = self.config.channel_prefix.clone();
            let names: Vec<String> = self
                .channels
                .keys()
                .map(|c| format!("{prefix}{c}"))
                .collect();
            let mut words: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            words.extend(names.iter().map(|n| n.as_bytes()));
            self.command(SUBSCRIBER, &words);
        }
        self.stats.up = true;
        self.attempt = 0;
        match self.down_since.take() {
            Some(since) if self.stats.outages > 0 => info!(
                "backplane: redis {} back after {:.1} s, {} rooms resubscribed; \
                 {} messages published meanwhile were not relayed (pub/sub is at-most-once)",
                self.config.redis.text,
                now.saturating_duration_since(since).as_secs_f64(),
                self.channels.len(),
                self.lost_while_down
            ),
            _ => info!(
                "backplane: connected to redis {} as node {}",
                self.config.redis.text, self.node
            ),
        }
        self.lost_while_down = 0;
    }

    fn read(&mut self, which: usize) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let link = &mut self.links[which];
            let Some(stream) = &mut link.stream else {
                return Ok(());
            };
            match stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::other("redis closed the connection")),
                Ok(n) => {
                    link.input.extend_from_slice(&chunk[..n]);
                    self.decode_replies(which)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn decode_replies(&mut self, which: usize) -> io::Result<()> {
        let mut pos = 0;
        let input = std::mem::take(&mut self.links[which].input);
        let result = loop {
            match decode(&input[pos..]) {
                Ok(Some((frame, n))) => {
                    pos += n;
                    if let Err(e) = self.reply(which, frame) {
                        break Err(e);
                    }
                }
                Ok(None) if input.len() - pos > self.max_reply => {
                    break Err(io::Error::other("redis reply over the message limit"));
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(io::Error::other(format!("RESP: {e:?}"))),
            }
        };
        let link = &mut self.links[which];
        link.input = input;
        link.input.drain(..pos);
        result
    }

    fn reply(&mut self, which: usize, frame: OwnedFrame) -> io::Result<()> {
        if which == PUBLISHER && self.awaiting > 0 {
            self.awaiting -= 1;
            let now = Instant::now();
            self.quiet_since = now;
            let answered = !matches!(frame, OwnedFrame::Error(_));
            if answered && self.awaiting == 0 && !self.stats.up {
                self.became_up(now);
            }
        }
        match frame {
            OwnedFrame::Error(e) => Err(io::Error::other(format!("redis said: {e}"))),
            OwnedFrame::Array(parts) if which == SUBSCRIBER => {
                let mut parts = parts.into_iter();
                let (Some(kind), Some(channel), Some(payload)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Ok(());
                };
                if kind.as_bytes() != Some(b"message".as_slice()) {
                    return Ok(()); // subscribe / unsubscribe confirmations
                }
                let (OwnedFrame::BulkString(channel), OwnedFrame::BulkString(payload)) =
                    (channel, payload)
                else {
                    return Ok(());
                };
                self.received(&channel, payload);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn received(&mut self, channel: &[u8], mut payload: Vec<u8>) {
        let Ok(channel) = std::str::from_utf8(channel) else {
            return;
        };
        let Some(channel) = channel.strip_prefix(self.config.channel_prefix.as_str()) else {
            return;
        };
        if payload.len() < NODE_LEN {
            return;
        }
        let node = String::from_utf8_lossy(&payload[..NODE_LEN]).into_owned();
        if node == self.node {
            return; // our own, delivered here already
        }
        payload.drain(..NODE_LEN);
        self.stats.received += 1;
        self.inbox.push((channel.to_owned(), node, payload));
    }

    fn write(&mut self, which: usize) -> io::Result<()> {
        let link = &mut self.links[which];
        let Some(stream) = &mut link.stream else {
            return Ok(());
        };
        if !link.connected {
            return Ok(());
        }
        while link.written < link.out.len() {
            match stream.write(&link.out[link.written..]) {
                Ok(n) => link.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if link.written == link.out.len() {
            link.written = 0;
            if link.out.capacity() > 64 * 1024 {
                link.out = Vec::new();
            } else {
                link.out.clear();
            }
        }
        Ok(())
    }

    /// Either link failed: both are dropped (a half-up backplane would lose
    /// messages silently), and a reconnect is scheduled with jittered backoff.
    fn lost(&mut self, error: &io::Error) {
        for link in &mut self.links {
            if let Some(mut stream) = link.stream.take() {
                let _ = self.registry.deregister(&mut stream);
            }
            *link = Link::default();
        }
        self.awaiting = 0;
        let now = Instant::now();
        if self.stats.up {
            self.stats.up = false;
            self.stats.outages += 1;
            self.down_since = Some(now);
            warn!(
                "backplane: lost redis {}: {error}; rooms are delivered in this process only until it is back",
                self.config.redis.text
            );
        } else if self.attempt == 0 {
            warn!(
                "backplane: cannot reach redis {}: {error}; retrying",
                self.config.redis.text
            );
        } else {
            debug!("backplane: redis {}: {error}", self.config.redis.text);
        }
        let base = FIRST_BACKOFF
            .saturating_mul(1 << self.attempt.min(10))
            .min(MAX_BACKOFF);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift: jitter only, not security.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = 0.5 + (self.rng % 1000) as f64 / 1000.0;
        self.retry_at = Some(now + base.mul_f64(jitter));
    }
}
