//! The seam between the server and what a route does: the [`RouteHandler`] trait
//! a route kind implements, and the [`Effects`] it returns.
//!
//! Owns the vocabulary only: which events a handler sees (a connection opened, a
//! message arrived, the connection ended) and which effects it may ask for (send
//! to this connection, publish one message to a topic's subscribers, close with a
//! code). It must never hold a socket or an outbox: the connection driver and the
//! reactor carry effects out, and encode every frame through the protocol core.

use std::fmt;
use std::rc::Rc;

use crate::app::status::{Census, ServerStatus};
use crate::app::Rejection;
use crate::config::RouteKind;
use crate::core::{CloseCode, Message, Request};

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

/// What a route does with its connections. One implementation per route kind,
/// in a file of its own under `app/`; the server never names a kind.
pub trait RouteHandler: fmt::Debug {
    /// An upgrade passed the route's policy (Origin, auth, subprotocol). `Ok`
    /// opens the WebSocket with the handler's [`Slot`] for it; effects are
    /// carried out after the 101 response is queued. `Err` answers with the
    /// rejection instead (e.g. 400 for a bad room name, 503 for a full room).
    fn open(&self, request: &Request, peer: Peer, fx: &mut Effects) -> Result<Slot, Rejection>;

    /// A complete text or binary message arrived.
    fn message(&self, peer: Peer, slot: Slot, message: Message, fx: &mut Effects);

    /// The WebSocket ended (closed, failed or dropped); called exactly once per
    /// opened connection. Effects may address only other connections.
    fn closed(&self, peer: Peer, slot: Slot, fx: &mut Effects);

    /// Hands the subscribers of `topic` to `deliver`, when the server fans out
    /// what was published to it (after the handler call that published). The
    /// list is lent, never copied, however large the room.
    fn subscribers(&self, topic: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
        let _ = (topic, deliver);
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

/// What a handler asked for, in order. Reused from event to event, so handling a
/// message allocates nothing here once the buffers have grown.
#[derive(Debug, Default)]
pub struct Effects {
    /// The connection whose event is being handled (if any) and its handler.
    origin: Option<(Option<ConnKey>, Rc<dyn RouteHandler>)>,
    replies: Vec<Message>,
    publications: Vec<Publication>,
    close: Option<(CloseCode, &'static str)>,
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
    pub fn close(&mut self, code: CloseCode, reason: &'static str) {
        self.close = Some((code, reason));
    }

    /// The replies to carry out, in order.
    pub fn take_replies(&mut self) -> std::vec::Drain<'_, Message> {
        self.replies.drain(..)
    }

    /// The close asked for, if any.
    pub fn take_close(&mut self) -> Option<(CloseCode, &'static str)> {
        self.close.take()
    }

    /// Drops replies and a close that have no connection to go to (asked for by
    /// `closed`, or by an `open` that refused); publications stay.
    pub fn discard_own(&mut self) {
        self.replies.clear();
        self.close = None;
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

    /// Fans out each publication in order: `deliver` gets the message, a batch
    /// of subscribers, and the one key to skip (the sender). Clears them.
    pub fn drain_publications(
        &mut self,
        mut deliver: impl FnMut(&Message, &[ConnKey], Option<ConnKey>),
    ) {
        for p in self.publications.drain(..) {
            p.handler.subscribers(p.topic, &mut |keys| {
                deliver(&p.message, keys, p.sender);
            });
        }
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
        fn open(&self, _: &Request, _: Peer, _: &mut Effects) -> Result<Slot, Rejection> {
            Ok(0)
        }
        fn message(&self, _: Peer, _: Slot, _: Message, _: &mut Effects) {}
        fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}
        fn subscribers(&self, topic: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
            let keys: Vec<ConnKey> = (1..=topic as usize).collect();
            deliver(&keys);
        }
    }

    fn drain(fx: &mut Effects) -> Vec<(Vec<u8>, Vec<ConnKey>)> {
        let mut seen = Vec::new();
        fx.drain_publications(|m, keys, skip| {
            let to = keys.iter().copied().filter(|&k| Some(k) != skip).collect();
            seen.push((m.data.clone(), to));
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
