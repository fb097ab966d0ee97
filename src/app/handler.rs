//! The seam between the server and what a route does: the [`RouteHandler`] trait
//! a route kind implements, and the [`Effects`] it returns.
//!
//! Owns the vocabulary only: which events a handler sees (a connection opened, a
//! message arrived, its backend wrote or ended, the connection ended) and which
//! effects it may ask for (send to this connection, publish one message to a
//! topic's subscribers, start a backend and write to it, close with a code). It
//! must never hold a socket, a pipe or an outbox: the connection driver, the
//! bridge table and the reactor carry effects out, and encode every frame
//! through the protocol core.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::app::status::{Census, ServerStatus};
use crate::app::Rejection;
use crate::config::RouteKind;
use crate::core::{CloseCode, Message, MessageRef, Request};

/// A connection's key in the reactor's table: how handlers address recipients.
pub type ConnKey = usize;

/// A word a handler keeps per connection (e.g. which room it joined), handed
/// back with every event of that connection. Stored inline: no per-connection box.
pub type Slot = u32;

/// What a handler publishes to (e.g. a chat room); it names the subscribers.
pub type Topic = u32;

/// The connection an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub key: ConnKey,
    /// A serial number for logs and announcements (keys are reused, ids are not).
    pub id: u64,
}

/// What `open` knows about an upgrade besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    pub request: &'a Request,
    pub peer: Peer,
    /// The client's address and port (the address a trusted proxy or a PROXY
    /// header named, if any). Only for a handler whose
    /// [`RouteHandler::uses_addresses`] says so: finding them costs two system
    /// calls per upgrade.
    pub remote: Option<SocketAddr>,
    /// The address the connection came in on (as `remote`).
    pub local: Option<SocketAddr>,
    pub tls: bool,
    /// Who authenticated, if the route's auth names a user.
    pub user: Option<&'a str>,
    /// The subprotocol chosen.
    pub protocol: Option<&'a str>,
}

impl<'a> Opening<'a> {
    /// An opening known only by its request (no addresses, no TLS, no user).
    pub fn new(request: &'a Request, peer: Peer) -> Opening<'a> {
        Opening {
            request,
            peer,
            remote: None,
            local: None,
            tls: false,
            user: None,
            protocol: None,
        }
    }
}

/// A backend a handler asks the server to start for the connection being
/// opened: its bytes come back through [`RouteHandler::backend_output`].
#[derive(Debug)]
pub enum BackendSpec {
    /// A child process, stdin/stdout/stderr piped, in a process group of its own.
    Process {
        argv: Vec<String>,
        cwd: Option<PathBuf>,
        /// The whole environment (nothing else is inherited).
        env: Vec<(String, String)>,
        /// The wait between each step of ending it: stdin closed, SIGINT, SIGTERM, SIGKILL.
        kill_grace: Duration,
        /// Counts the route's programs until each is reaped.
        running: Rc<Cell<usize>>,
    },
    /// A TCP connection.
    Tcp {
        addr: SocketAddr,
        connect_timeout: Duration,
    },
}

/// Which of a backend's outputs bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A process's stdout, or the TCP connection.
    Out,
    /// A process's stderr.
    Err,
}

/// How a connection's backend ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEnd {
    /// The process exited with this code, or was killed by this signal.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The TCP backend closed its side.
    Closed,
    /// The TCP backend reset the connection or failed.
    Reset(String),
    /// It could not be started or reached.
    Unavailable(String),
}

/// What a handler asks of the backplane (the other wsd processes sharing its
/// rooms through Redis), carried out only when `[backplane]` is configured.
#[derive(Debug)]
pub enum Relay {
    /// Start hearing what other processes relay on this channel.
    Subscribe(String),
    /// Stop hearing it.
    Unsubscribe(String),
    /// Send this payload to the other processes subscribed to the channel.
    Publish(String, Vec<u8>),
}

/// What a route does with its connections. One implementation per route kind,
/// in a file of its own under `app/`; the server never names a kind.
pub trait RouteHandler: fmt::Debug {
    /// An upgrade passed the route's policy (Origin, auth, subprotocol). `Ok`
    /// opens the WebSocket with the handler's [`Slot`] for it; effects are
    /// carried out after the 101 response is queued. `Err` answers with the
    /// rejection instead (e.g. 400 for a bad room name, 503 for a full room).
    fn open(&self, opening: &Opening<'_>, fx: &mut Effects) -> Result<Slot, Rejection>;

    /// A complete text or binary message arrived. It is lent from where it was
    /// received (usually the loop's receive buffer, unmasked in place): copy
    /// what must outlive the call, or send it back with [`Effects::echo`].
    fn message(&self, peer: Peer, slot: Slot, message: MessageRef<'_>, fx: &mut Effects);

    /// The WebSocket ended (closed, failed or dropped); called exactly once per
    /// opened connection. Effects may address only other connections.
    fn closed(&self, peer: Peer, slot: Slot, fx: &mut Effects);

    /// Bytes from the connection's backend (started with [`Effects::attach`]):
    /// `data` is what the last call left unconsumed followed by what was just
    /// read; `at_end` when that output has ended. Returns how many bytes it
    /// consumed; the rest comes back with the next call. The handler must
    /// consume at least something once `data` holds more than its own bound
    /// (e.g. `max_line`), and everything `at_end`.
    fn backend_output(
        &self,
        peer: Peer,
        slot: Slot,
        stream: Stream,
        data: &[u8],
        at_end: bool,
        fx: &mut Effects,
    ) -> usize {
        let _ = (peer, slot, stream, at_end, fx);
        data.len()
    }

    /// The connection's backend ended (its output was handed over first).
    fn backend_ended(&self, peer: Peer, slot: Slot, end: &BackendEnd, fx: &mut Effects) {
        let _ = (peer, slot, end, fx);
    }

    /// Another wsd process relayed `payload` on `channel` (one this handler
    /// subscribed to with [`Effects::relay`]'s `Subscribe`); `node` names it.
    /// Effects may address only this handler's topics.
    fn relayed(&self, channel: &str, node: &str, payload: &[u8], fx: &mut Effects) {
        let _ = (channel, node, payload, fx);
    }

    /// A backend published `message` to `room` through the API: deliver it to
    /// the room's members here (and relay it to other processes). Returns how
    /// many members it reaches here; `Err` (404) for a route that takes none.
    fn published(&self, room: &str, message: Message, fx: &mut Effects) -> Result<usize, String> {
        let _ = (room, message, fx);
        Err("this route does not take published messages (only chat routes do)".to_owned())
    }

    /// Hands the subscribers of `topic` to `deliver`, when the server fans out
    /// what was published to it (after the handler call that published). The
    /// list is lent, never copied, however large the room.
    fn subscribers(&self, topic: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
        let _ = (topic, deliver);
    }

    /// Whether `open` reads [`Opening::remote`] and [`Opening::local`]; they
    /// are `None` otherwise.
    fn uses_addresses(&self) -> bool {
        false
    }

    /// Whether `message` does nothing but [`Effects::echo`], whatever the
    /// message and whoever sent it. The server may then echo whole runs of
    /// messages without calling `message` for each.
    fn only_echoes(&self) -> bool {
        false
    }

    /// A reload kept this route (same path and kind) with these settings;
    /// connections opened from now on see them.
    fn reconfigure(&self, kind: &RouteKind) {
        let _ = kind;
    }

    /// The rooms and members this route holds, for status snapshots.
    fn census(&self) -> Census {
        Census::default()
    }

    /// Whether this route wants a [`ServerStatus`] now (someone is watching).
    /// Asked about once a second, and only of routes that show the status;
    /// when no route wants one, the server builds none.
    fn wants_status(&self) -> bool {
        false
    }

    /// The server's status, about once a second while [`wants_status`] holds;
    /// the handler publishes it. Effects may address only its topics.
    ///
    /// [`wants_status`]: RouteHandler::wants_status
    fn status(&self, status: &ServerStatus, fx: &mut Effects) {
        let _ = (status, fx);
    }
}

/// One message for a topic's subscribers, encoded once per encoding in use.
#[derive(Debug)]
struct Publication {
    message: Message,
    topic: Topic,
    /// The handler that names the topic's subscribers.
    handler: Rc<dyn RouteHandler>,
    /// Never delivered by the fan-out: the sender (if any) gets its copy from
    /// the driver, or none.
    sender: Option<ConnKey>,
    /// The sender's copy is still to be delivered.
    to_sender: bool,
}

/// Consecutive publications to one topic from one sender, fanned out together
/// so that a member gets them as one shared frame when it can.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// Where the run starts among this fan-out's publications: tells runs apart.
    start: usize,
    publications: &'a [Publication],
}

impl<'a> Run<'a> {
    /// Tells this run from the other runs of the same fan-out.
    pub fn id(&self) -> usize {
        self.start
    }

    /// How many messages (never 0).
    pub fn len(&self) -> usize {
        self.publications.len()
    }

    /// Never true: a run holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.publications.is_empty()
    }

    /// The messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = &'a Message> + Clone {
        self.publications.iter().map(|p| &p.message)
    }
}

/// What a handler asked for, in order. Reused from event to event, so handling a
/// message allocates nothing here once the buffers have grown.
#[derive(Debug, Default)]
pub struct Effects {
    /// The connection whose event is being handled (if any) and its handler.
    origin: Option<(Option<ConnKey>, Rc<dyn RouteHandler>)>,
    replies: Vec<Message>,
    /// [`Effects::echo`] was asked for, after this many of `replies`.
    echo_at: Option<usize>,
    publications: Vec<Publication>,
    close: Option<(CloseCode, Cow<'static, str>)>,
    /// A backend to start for the connection being opened.
    attach: Option<BackendSpec>,
    /// Bytes for the connection's backend, in order.
    to_backend: Vec<u8>,
    /// Lines for the log (rate-limited by the server).
    log_lines: Vec<String>,
    /// What goes to the backplane, with the handler that asked.
    relays: Vec<(Relay, Rc<dyn RouteHandler>)>,
}

impl Effects {
    /// Names the handler about to be called and the connection whose event it
    /// handles (`None` for `closed`): replies go to that connection, and its
    /// copy of a publication is its own.
    pub fn set_origin(&mut self, sender: Option<ConnKey>, handler: &Rc<dyn RouteHandler>) {
        match &mut self.origin {
            Some((s, h)) if Rc::ptr_eq(h, handler) => *s = sender,
            _ => self.origin = Some((sender, Rc::clone(handler))),
        }
    }

    /// Sends `message` to the connection the event came from.
    pub fn reply(&mut self, message: Message) {
        self.replies.push(message);
    }

    /// Sends the message being handled (in `message`) back to its sender
    /// unchanged, in its place among the replies. It is encoded straight from
    /// where it was received: no copy is made for the handler. Once per message.
    pub fn echo(&mut self) {
        self.echo_at = Some(self.replies.len());
    }

    /// Sends `message` to every open subscriber of `topic` except the sender,
    /// and to the sender too if `to_sender`.
    pub fn publish(&mut self, message: Message, topic: Topic, to_sender: bool) {
        let Some((sender, handler)) = &self.origin else {
            return;
        };
        self.publications.push(Publication {
            message,
            topic,
            handler: Rc::clone(handler),
            sender: *sender,
            to_sender: to_sender && sender.is_some(),
        });
    }

    /// Starts the closing handshake of the connection the event came from.
    /// The reason is cut to the 123 bytes a close frame holds.
    pub fn close(&mut self, code: CloseCode, reason: impl Into<Cow<'static, str>>) {
        self.close = Some((code, reason.into()));
    }

    /// Starts `backend` for the connection being opened (from `open` only).
    pub fn attach(&mut self, backend: BackendSpec) {
        self.attach = Some(backend);
    }

    /// Writes `bytes` to the connection's backend, after what was written before.
    pub fn to_backend(&mut self, bytes: &[u8]) {
        self.to_backend.extend_from_slice(bytes);
    }

    /// Asks the backplane for `relay` (dropped when there is none).
    pub fn relay(&mut self, relay: Relay) {
        if let Some((_, handler)) = &self.origin {
            self.relays.push((relay, Rc::clone(handler)));
        }
    }

    /// Whether backplane requests wait.
    pub fn has_relays(&self) -> bool {
        !self.relays.is_empty()
    }

    /// The backplane requests, in order, with the handler that asked each.
    pub fn take_relays(&mut self) -> std::vec::Drain<'_, (Relay, Rc<dyn RouteHandler>)> {
        self.relays.drain(..)
    }

    /// A line for wsd's log, at warn level and rate-limited.
    pub fn log(&mut self, line: String) {
        self.log_lines.push(line);
    }

    /// The backend asked for, if any.
    pub fn take_attach(&mut self) -> Option<BackendSpec> {
        self.attach.take()
    }

    /// The bytes for the backend; the caller clears them once copied.
    pub fn backend_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.to_backend
    }

    /// The log lines asked for, in order.
    pub fn take_log_lines(&mut self) -> std::vec::Drain<'_, String> {
        self.log_lines.drain(..)
    }

    /// The replies to carry out, in order.
    pub fn take_replies(&mut self) -> std::vec::Drain<'_, Message> {
        self.replies.drain(..)
    }

    /// Where the echo of the message being handled goes among the replies, if
    /// one was asked for.
    pub fn take_echo(&mut self) -> Option<usize> {
        self.echo_at.take()
    }

    /// Whether the handler asked for an echo of the message and nothing else,
    /// so the caller may skip looking for the rest.
    pub fn is_echo_only(&self) -> bool {
        self.echo_at == Some(0)
            && self.replies.is_empty()
            && self.publications.is_empty()
            && self.close.is_none()
            && self.attach.is_none()
            && self.to_backend.is_empty()
            && self.log_lines.is_empty()
            && self.relays.is_empty()
    }

    /// The close asked for, if any.
    pub fn take_close(&mut self) -> Option<(CloseCode, Cow<'static, str>)> {
        self.close.take()
    }

    /// Drops replies and a close that have no connection to go to (asked for by
    /// `closed`, or by an `open` that refused); publications stay.
    pub fn discard_own(&mut self) {
        self.replies.clear();
        self.echo_at = None;
        self.close = None;
        self.attach = None;
        self.to_backend.clear();
    }

    /// Hands the sender's copy of every pending publication to `send` now: the
    /// driver delivers it at once, so it keeps its place among the sender's
    /// other output.
    pub fn deliver_to_sender(&mut self, mut send: impl FnMut(&Message)) {
        for p in &mut self.publications {
            if p.to_sender {
                p.to_sender = false;
                send(&p.message);
            }
        }
    }

    /// Whether publications wait to be fanned out.
    pub fn has_publications(&self) -> bool {
        !self.publications.is_empty()
    }

    /// Fans out the publications in order, a [`Run`] at a time (consecutive
    /// publications to one topic of one handler from one sender): `deliver`
    /// gets the run, a batch of subscribers (a run may come with several), and
    /// the one key to skip (the sender). Clears them.
    pub fn drain_publications(
        &mut self,
        mut deliver: impl FnMut(Run<'_>, &[ConnKey], Option<ConnKey>),
    ) {
        let publications = std::mem::take(&mut self.publications);
        let mut start = 0;
        while let Some(first) = publications.get(start) {
            let same = publications[start + 1..]
                .iter()
                .take_while(|p| {
                    p.topic == first.topic
                        && p.sender == first.sender
                        && Rc::ptr_eq(&p.handler, &first.handler)
                })
                .count();
            let end = start + 1 + same;
            let run = Run {
                start,
                publications: &publications[start..end],
            };
            first.handler.subscribers(first.topic, &mut |keys| {
                deliver(run, keys, first.sender);
            });
            start = end;
        }
        self.publications = publications;
        self.publications.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MessageKind;

    fn text(s: &str) -> Message {
        Message {
            kind: MessageKind::Text,
            data: s.as_bytes().to_vec(),
        }
    }

    /// Topic N has subscribers 1..=N.
    #[derive(Debug)]
    struct Counting;

    impl RouteHandler for Counting {
        fn open(&self, _: &Opening<'_>, _: &mut Effects) -> Result<Slot, Rejection> {
            Ok(0)
        }
        fn message(&self, _: Peer, _: Slot, _: MessageRef<'_>, _: &mut Effects) {}
        fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}
        fn subscribers(&self, topic: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
            let keys: Vec<ConnKey> = (1..=topic as usize).collect();
            deliver(&keys);
        }
    }

    #[test]
    fn an_echo_is_echo_only_until_anything_else_is_asked() {
        let handler: Rc<dyn RouteHandler> = Rc::new(Counting);
        let mut fx = Effects::default();
        fx.set_origin(Some(1), &handler);
        assert!(!fx.is_echo_only(), "nothing asked");
        fx.echo();
        assert!(fx.is_echo_only());
        fx.log("seen".to_string());
        assert!(!fx.is_echo_only(), "a log line too");
        fx.take_log_lines().for_each(drop);
        fx.reply(text("first"));
        assert!(!fx.is_echo_only(), "a reply after the echo");
        fx.take_replies().for_each(drop);
        fx.take_echo();
        fx.reply(text("before"));
        fx.echo();
        assert!(!fx.is_echo_only(), "the echo after a reply");
        fx.take_replies().for_each(drop);
        fx.take_echo();
        fx.echo();
        fx.publish(text("all"), 1, false);
        assert!(!fx.is_echo_only(), "a publication too");
    }

    fn drain(fx: &mut Effects) -> Vec<(Vec<u8>, Vec<ConnKey>)> {
        let mut seen = Vec::new();
        fx.drain_publications(|run, keys, skip| {
            for m in run.messages() {
                let to = keys.iter().copied().filter(|&k| Some(k) != skip).collect();
                seen.push((m.data.clone(), to));
            }
        });
        seen
    }

    #[test]
    fn publications_keep_their_order_and_skip_the_sender() {
        let handler: Rc<dyn RouteHandler> = Rc::new(Counting);
        let mut fx = Effects::default();
        fx.set_origin(Some(2), &handler);
        fx.publish(text("a"), 3, false);
        fx.publish(text("b"), 1, false);
        assert_eq!(
            drain(&mut fx),
            vec![(b"a".to_vec(), vec![1, 3]), (b"b".to_vec(), vec![1])]
        );
        assert!(!fx.has_publications());
    }

    #[test]
    fn consecutive_publications_to_one_topic_from_one_sender_make_one_run() {
        let handler: Rc<dyn RouteHandler> = Rc::new(Counting);
        let mut fx = Effects::default();
        fx.set_origin(Some(2), &handler);
        fx.publish(text("a"), 3, false);
        fx.publish(text("b"), 3, false);
        fx.publish(text("c"), 1, false);
        fx.set_origin(Some(5), &handler);
        fx.publish(text("d"), 1, false);
        fx.publish(text("e"), 1, false);
        let mut runs = Vec::new();
        fx.drain_publications(|run, _, skip| {
            let texts: String = run.messages().filter_map(|m| m.text()).collect();
            runs.push((run.id(), run.len(), texts, skip));
        });
        assert_eq!(
            runs,
            vec![
                (0, 2, "ab".to_owned(), Some(2)),
                (2, 1, "c".to_owned(), Some(2)),
                (3, 2, "de".to_owned(), Some(5)),
            ]
        );
    }

    #[test]
    fn the_senders_copy_is_delivered_once_by_the_driver() {
        let handler: Rc<dyn RouteHandler> = Rc::new(Counting);
        let mut fx = Effects::default();
        fx.set_origin(Some(2), &handler);
        fx.publish(text("a"), 3, true);
        let mut own = Vec::new();
        fx.deliver_to_sender(|m| own.push(m.data.clone()));
        fx.deliver_to_sender(|m| own.push(m.data.clone()));
        assert_eq!(own, vec![b"a".to_vec()]);
        assert_eq!(drain(&mut fx), vec![(b"a".to_vec(), vec![1, 3])]);
    }

    #[test]
    fn without_a_sender_there_is_no_senders_copy() {
        let handler: Rc<dyn RouteHandler> = Rc::new(Counting);
        let mut fx = Effects::default();
        fx.set_origin(None, &handler);
        fx.publish(text("leave"), 2, true);
        let mut own = 0;
        fx.deliver_to_sender(|_| own += 1);
        assert_eq!(own, 0);
        assert_eq!(drain(&mut fx), vec![(b"leave".to_vec(), vec![1, 2])]);
    }
}
