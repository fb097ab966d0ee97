//! An open WebSocket on one connection: feeds received bytes to the protocol
//! core, hands each event to the route's handler, and carries out the effects
//! that concern this connection (replies, its own copy of a broadcast, a close),
//! plus copies of other connections' broadcasts delivered to it.
//!
//! Owns the drive loop of the core and the send-side limits (slow consumers). It
//! must never build a frame itself (the core encodes every frame) and never
//! touch another connection: broadcasts to others wait in `Shared::fx` for the
//! reactor's fan-out.

use std::rc::Rc;

use log::debug;

use crate::app::{Peer, RouteTraffic, Run};
use crate::config::SlowConsumerPolicy;
use crate::core::{
    encode_shared, encode_shared_run, CloseCode, Echoed, Encoding, Event, Message, MessageRef,
    SharedFrame, State, WebSocket,
};
use crate::server::connection::{Conn, ConnState, Session, Shared};
use crate::server::deadlines::Deadline;
use crate::server::outbox::{Outbox, ZERO_COPY_MIN};
use crate::server::stats::Stats;

/// The longest reason a close frame holds (125 bytes of payload less the code).
const MAX_CLOSE_REASON: usize = 123;

/// A message for this connection's peer: lent (the echo of what it sent, or
/// its copy of its own broadcast) or owned (a reply the handler built).
enum Outgoing<'a> {
    Lent(MessageRef<'a>),
    Owned(Message),
}

/// The frames of one run of broadcasts, encoded once and shared by every
/// member that takes them: the run's plain frames back to back, and each
/// message's frame per encoding for members that take them one by one.
#[derive(Debug, Default)]
pub struct RunFrames {
    /// The run these frames belong to.
    run: Option<usize>,
    joined: Option<SharedFrame>,
    each: Vec<Vec<(Encoding, SharedFrame)>>,
}

impl RunFrames {
    /// Forgets the frames of another run.
    fn start(&mut self, run: Run<'_>) {
        if self.run != Some(run.id()) {
            self.run = Some(run.id());
            self.joined = None;
            self.each.iter_mut().for_each(Vec::clear);
            self.each
                .resize_with(run.len().max(self.each.len()), Vec::new);
        }
    }

    /// Drops every frame (the fan-out is over).
    pub fn clear(&mut self) {
        self.run = None;
        self.joined = None;
        self.each.clear();
    }
}

/// What delivering a broadcast to one connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not open, or dropped for a slow consumer: nothing changed.
    Skipped,
    /// The frame is queued: the connection needs a flush.
    Queued,
    /// Over the send limit: a close 1008 is queued and a close deadline set.
    Closing,
}

impl Delivery {
    /// What two deliveries to one connection did together.
    fn or(self, other: Delivery) -> Delivery {
        match (self, other) {
            (Delivery::Closing, _) | (_, Delivery::Closing) => Delivery::Closing,
            (Delivery::Queued, _) | (_, Delivery::Queued) => Delivery::Queued,
            _ => Delivery::Skipped,
        }
    }
}

/// Counts one message against `max_messages_per_sec` (a one-second window
/// aligned to the loop's clock); true once the window's count passes it.
fn over_message_rate(session: &mut Session, sh: &Shared) -> bool {
    let limit = sh.settings.max_messages_per_sec;
    if limit == 0 {
        return false;
    }
    // Seconds since start, wrapping every 18 hours: only equality is asked.
    let window = (sh.now / sh.settings.ticks_per_sec) as u16;
    if session.rate_window != window {
        session.rate_window = window;
        session.rate_count = 0;
    }
    session.rate_count = session.rate_count.saturating_add(1);
    u32::from(session.rate_count) > limit
}

/// Encodes one message for this connection's peer into its outbox, and counts
/// it if the core accepted it (an open connection).
fn queue_outgoing(
    message: Outgoing<'_>,
    ws: &mut WebSocket,
    outbox: &mut Outbox,
    traffic: &RouteTraffic,
    stats: &mut Stats,
) {
    let len = match &message {
        Outgoing::Lent(m) => m.data.len(),
        Outgoing::Owned(m) => m.data.len(),
    };
    let sent = match message {
        Outgoing::Owned(m) => ws.send_owned(m.kind, m.data).map(|f| outbox.push_frame(f)),
        // One copy either way; a large one gets a buffer of its own, queued
        // whole, rather than growing the corking buffer.
        Outgoing::Lent(m) if len >= ZERO_COPY_MIN => ws
            .send_owned(m.kind, m.data.to_vec())
            .map(|f| outbox.push_frame(f)),
        Outgoing::Lent(m) => {
            let mut sent = Ok(());
            outbox.append(|out| sent = ws.send(m.kind, m.data, out));
            sent
        }
    };
    if sent.is_ok() {
        stats.messages_out += 1;
        traffic.sent(len);
    }
}

impl Conn {
    /// Hands received bytes to the core and each message to the route's
    /// handler, then queues the core's automatic replies; returns how many
    /// bytes of `data` were consumed.
    ///
    /// Whole messages at the front of `data` are read where they lie (unmasked
    /// in place, lent to the handler, echoed straight from there); whatever the
    /// core declines to read that way (partial or fragmented messages, control
    /// frames, compressed messages, errors) goes through its event queue.
    pub(super) fn websocket_input(
        &mut self,
        data: &mut [u8],
        key: usize,
        sh: &mut Shared,
    ) -> usize {
        let mut pos = self.echo_in_place(data, sh);
        while let ConnState::WebSocket(session) = &mut self.state {
            let Some((kind, payload, n)) = session.ws.read_in_place(&mut data[pos..]) else {
                break;
            };
            pos += n;
            self.on_message(
                MessageRef {
                    kind,
                    data: payload,
                },
                key,
                sh,
            );
        }
        if !matches!(self.state, ConnState::WebSocket(_)) {
            return data.len();
        }
        pos + self.websocket_events(&data[pos..], key, sh)
    }

    /// The echo route's fast way: the core echoes the whole messages at the
    /// front of `data` straight from where they lie (see
    /// [`WebSocket::echo_in_place`]), with no handler call or effects per
    /// message; returns how many bytes they took. What it stops at goes the
    /// general way. Not under a message rate limit, which counts each message
    /// there. The send limit is checked once after: the queue may pass it by at
    /// most one read's worth before the close (reading pauses past `read_pause`).
    fn echo_in_place(&mut self, data: &[u8], sh: &mut Shared) -> usize {
        let ConnState::WebSocket(session) = &mut self.state else {
            return 0;
        };
        if !session.route.handler.only_echoes() || sh.settings.max_messages_per_sec != 0 {
            return 0;
        }
        let ws = &mut session.ws;
        let mut echoed = Echoed::default();
        // A large message gets a buffer of its own rather than growing the
        // corking buffer (see `queue_outgoing`): the general way.
        self.outbox
            .append(|out| echoed = ws.echo_in_place(data, out, ZERO_COPY_MIN - 1));
        if echoed.messages == 0 {
            return 0;
        }
        let traffic = &session.route.traffic;
        traffic.received_many(echoed.messages, echoed.payload_bytes);
        traffic.sent_many(echoed.messages, echoed.payload_bytes);
        sh.stats.messages_in += echoed.messages;
        sh.stats.messages_out += echoed.messages;
        if self.outbox.len() > sh.settings.max_send_buffer {
            self.close_slow_consumer(sh);
        }
        echoed.consumed
    }

    /// Feeds frames to the core, handles every event it queued, then queues its
    /// automatic replies; returns how many bytes of `data` were consumed.
    fn websocket_events(&mut self, data: &[u8], key: usize, sh: &mut Shared) -> usize {
        let ConnState::WebSocket(session) = &mut self.state else {
            return 0;
        };
        let result = session.ws.handle_read(data);
        loop {
            let ConnState::WebSocket(session) = &mut self.state else {
                return data.len();
            };
            let Some(event) = session.ws.poll_event() else {
                break;
            };
            match event {
                Event::Message(message) => self.on_message(message.borrowed(), key, sh),
                Event::Ping(_) | Event::Pong(_) => {}
                Event::Close(frame) => {
                    let code = frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code);
                    *sh.stats.closes_received.entry(code.0).or_default() += 1;
                    debug!("conn {}: peer closed with {}", self.id, code.0);
                }
            }
            // A pong (or close reply) goes out in its event's place, before the
            // replies to what the peer sent after it.
            if let ConnState::WebSocket(session) = &mut self.state {
                if session.ws.has_transmit() {
                    let ws = &mut session.ws;
                    self.outbox.append(|out| {
                        ws.poll_transmit(out);
                    });
                }
            }
        }
        let ConnState::WebSocket(session) = &mut self.state else {
            return data.len();
        };
        let ws = &mut session.ws;
        self.outbox.append(|out| {
            ws.poll_transmit(out);
        });
        let ended = ws.state() == State::Closed;
        match result {
            Err(e) => {
                sh.stats.protocol_errors += 1;
                *sh.stats.closes_sent.entry(e.close_code().0).or_default() += 1;
                debug!(
                    "conn {}: protocol error: {e} (closing with {})",
                    self.id,
                    e.close_code().0
                );
                self.start_closing(key, sh);
                data.len()
            }
            Ok(_) if ended => {
                self.start_closing(key, sh);
                data.len()
            }
            Ok(n) => n,
        }
    }

    /// One message from the peer: counted, checked against the message rate,
    /// handed to the handler, and what the handler asked for carried out.
    fn on_message(&mut self, message: MessageRef<'_>, key: usize, sh: &mut Shared) {
        let peer = Peer { key, id: self.id };
        let ConnState::WebSocket(session) = &mut self.state else {
            return;
        };
        sh.stats.messages_in += 1;
        session.route.traffic.received(message.data.len());
        if !session.ws.is_open() {
            // We sent a close: what the peer sends meanwhile is dropped.
        } else if over_message_rate(session, sh) {
            sh.stats.rate_limited_closes += 1;
            let (id, limit) = (self.id, sh.settings.max_messages_per_sec);
            sh.log_peer(format_args!(
                "conn {id}: over {limit} messages per second: closing with 1008"
            ));
            self.send_close(CloseCode::POLICY, "message rate limit", sh);
        } else {
            let handler = &session.route.handler;
            sh.fx.set_origin(Some(key), handler);
            handler.message(peer, session.slot, message, &mut sh.fx);
            self.carry_out_effects(key, Some(message), sh);
        }
    }

    /// Carries out what a handler asked of this connection: replies, its own
    /// copies of broadcasts (now, so they keep their place), and a close. A queue
    /// over the send limit closes the connection with 1008. `received` is the
    /// message being handled, for [`crate::app::Effects::echo`].
    pub(crate) fn carry_out_effects(
        &mut self,
        key: usize,
        received: Option<MessageRef<'_>>,
        sh: &mut Shared,
    ) {
        let ConnState::WebSocket(session) = &mut self.state else {
            return;
        };
        let ws = &mut session.ws;
        let traffic = &session.route.traffic;
        let outbox = &mut self.outbox;
        let stats = &mut sh.stats;
        // The echo route's every message: nothing to do but send it back.
        if let Some(received) = received.filter(|_| sh.fx.is_echo_only()) {
            sh.fx.take_echo();
            queue_outgoing(Outgoing::Lent(received), ws, outbox, traffic, stats);
            if outbox.len() > sh.settings.max_send_buffer {
                self.close_slow_consumer(sh);
            }
            return;
        }
        let mut send = |message: Outgoing<'_>| queue_outgoing(message, ws, outbox, traffic, stats);
        let mut echo = sh.fx.take_echo().zip(received);
        for (i, message) in sh.fx.take_replies().enumerate() {
            if let Some((_, received)) = echo.filter(|&(at, _)| at == i) {
                echo = None;
                send(Outgoing::Lent(received));
            }
            send(Outgoing::Owned(message));
        }
        if let Some((_, received)) = echo {
            send(Outgoing::Lent(received));
        }
        sh.fx
            .deliver_to_sender(|message| send(Outgoing::Lent(message.borrowed())));
        if let Some(backend) = sh.fx.take_attach() {
            sh.bridges.attach(key, self.id, backend, sh.now);
        }
        let to_backend = sh.fx.backend_bytes();
        if !to_backend.is_empty() {
            sh.bridges.queue(key, to_backend);
        }
        for line in sh.fx.take_log_lines() {
            if let Some(suppressed) = sh.peer_log.allow(sh.now) {
                match suppressed {
                    0 => log::warn!("{line}"),
                    n => log::warn!("{line} ({n} similar lines suppressed)"),
                }
            }
        }
        if let Some((code, reason)) = sh.fx.take_close() {
            self.send_close(code, &reason, sh);
        }
        if self.outbox.len() > sh.settings.max_send_buffer {
            self.close_slow_consumer(sh);
        }
    }

    /// Queues a run of another connection's broadcasts for this one. A member
    /// that takes plain frames gets the whole run as one shared buffer (one
    /// slice to write instead of one per message) when it fits the send limit;
    /// otherwise each message goes as [`Conn::deliver_shared`] sends it, with
    /// the send limit applied message by message.
    pub fn deliver_run(
        &mut self,
        run: Run<'_>,
        frames: &mut RunFrames,
        sh: &mut Shared,
    ) -> Delivery {
        frames.start(run);
        let ConnState::WebSocket(session) = &mut self.state else {
            return Delivery::Skipped;
        };
        let takes_plain = session.ws.deflate().is_none()
            && session.ws.shared_encoding(0) == Some(Encoding::Plain);
        if run.len() > 1 && takes_plain {
            let joined = frames.joined.get_or_insert_with(|| {
                encode_shared_run(run.messages().map(|m| (m.kind, m.data.as_slice())))
            });
            if self.outbox.len() + joined.len() <= sh.settings.max_send_buffer {
                self.outbox.push_shared(Rc::clone(joined));
                let payload = run.messages().map(|m| m.data.len()).sum();
                sh.stats.messages_out += run.len() as u64;
                session.route.traffic.sent_many(run.len() as u64, payload);
                return Delivery::Queued;
            }
        }
        let mut outcome = Delivery::Skipped;
        for (message, each) in run.messages().zip(frames.each.iter_mut()) {
            outcome = outcome.or(self.deliver_shared(message, each, sh));
        }
        outcome
    }

    /// Queues another connection's broadcast for this one, sharing the frame
    /// encoded for its encoding (`frames` holds one per encoding for this
    /// broadcast).
    pub fn deliver_shared(
        &mut self,
        message: &Message,
        frames: &mut Vec<(Encoding, SharedFrame)>,
        sh: &mut Shared,
    ) -> Delivery {
        let ConnState::WebSocket(session) = &mut self.state else {
            return Delivery::Skipped;
        };
        if !session.ws.is_open() {
            return Delivery::Skipped;
        }
        let Some(encoding) = session.ws.shared_encoding(message.data.len()) else {
            // A compressor with history of its own: this connection encodes its copy.
            return self.deliver_own(message, sh);
        };
        let frame = match frames.iter().find(|(e, _)| *e == encoding) {
            Some((_, frame)) => Rc::clone(frame),
            None => {
                let frame = encode_shared(encoding, message.kind, &message.data);
                frames.push((encoding, Rc::clone(&frame)));
                frame
            }
        };
        if let Some(refused) = self.refuse_over_limit(frame.len(), sh) {
            return refused;
        }
        self.outbox.push_shared(frame);
        sh.stats.messages_out += 1;
        if let ConnState::WebSocket(session) = &self.state {
            session.route.traffic.sent(message.data.len());
        }
        Delivery::Queued
    }

    /// Queues a broadcast encoded by this connection's own compressor.
    fn deliver_own(&mut self, message: &Message, sh: &mut Shared) -> Delivery {
        // The compressed size is not known before compressing; the plain size
        // bounds what the limit check lets through.
        if let Some(refused) = self.refuse_over_limit(message.data.len(), sh) {
            return refused;
        }
        let ConnState::WebSocket(session) = &mut self.state else {
            return Delivery::Skipped;
        };
        let ws = &mut session.ws;
        let mut sent = false;
        self.outbox
            .append(|out| sent = ws.send(message.kind, &message.data, out).is_ok());
        if !sent {
            return Delivery::Skipped;
        }
        sh.stats.messages_out += 1;
        session.route.traffic.sent(message.data.len());
        Delivery::Queued
    }

    /// What happens to a delivery of `len` more bytes that would take the
    /// queue over the send limit: dropped or a close, by policy; `None`: it fits.
    fn refuse_over_limit(&mut self, len: usize, sh: &mut Shared) -> Option<Delivery> {
        if self.outbox.len() + len <= sh.settings.max_send_buffer {
            return None;
        }
        Some(match sh.settings.slow_consumer {
            SlowConsumerPolicy::Drop => {
                sh.stats.dropped_messages += 1;
                Delivery::Skipped
            }
            SlowConsumerPolicy::Close => match self.close_slow_consumer(sh) {
                true => Delivery::Closing,
                false => Delivery::Skipped,
            },
        })
    }

    /// Starts the closing handshake with `code`; the peer has until the close
    /// deadline to answer. A reason over the 123 bytes a close frame holds is
    /// cut at a character boundary.
    pub(super) fn send_close(&mut self, code: CloseCode, reason: &str, sh: &mut Shared) -> bool {
        let ConnState::WebSocket(session) = &mut self.state else {
            return false;
        };
        let mut cut = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let reason = &reason[..cut];
        let ws = &mut session.ws;
        let mut sent = false;
        self.outbox
            .append(|out| sent = ws.close(code, reason, out).is_ok());
        if sent {
            *sh.stats.closes_sent.entry(code.0).or_default() += 1;
            self.deadlines.clear_all();
            self.deadlines
                .set(Deadline::Close, sh.now + sh.settings.close_ticks);
        }
        sent
    }

    /// A peer that stopped reading went over the send limit: close it with 1008.
    fn close_slow_consumer(&mut self, sh: &mut Shared) -> bool {
        let queued = self.outbox.len();
        if !self.send_close(CloseCode::POLICY, "send buffer full", sh) {
            return false;
        }
        sh.stats.slow_consumer_closes += 1;
        let (id, limit) = (self.id, sh.settings.max_send_buffer);
        sh.log_peer(format_args!(
            "conn {id}: send buffer over {limit} bytes ({queued} queued): closing with 1008"
        ));
        true
    }
}
