//! The seam between the server and what a route does: the [`RouteHandler`] trait
//! a route kind implements, and the [`Effects`] it returns.
//!
//! Owns the vocabulary only: which events a handler sees (a connection opened, a
//! message arrived, the connection ended) and which effects it may ask for (send
//! to this connection, send one message to many, close with a code). It must never
//! hold a socket or an outbox: the connection driver and the reactor carry effects
//! out, and encode every frame through the protocol core.

use std::fmt;
use std::ops::Range;

use crate::app::Rejection;
use crate::core::{CloseCode, Message, Request};

/// A connection's key in the reactor's table: how handlers address recipients.
pub type ConnKey = usize;

/// A word a handler keeps per connection (e.g. which room it joined), handed
/// back with every event of that connection. Stored inline: no per-connection box.
pub type Slot = u32;

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
}

/// One message for many connections, encoded once per encoding in use.
#[derive(Debug)]
struct Broadcast {
    message: Message,
    /// Indexes into [`Effects::recipients`]: every recipient but the sender.
    recipients: Range<usize>,
    /// The connection the event came from is a recipient too.
    to_sender: bool,
}

/// What a handler asked for, in order. Reused from event to event, so handling a
/// message allocates nothing here once the buffers have grown.
#[derive(Debug, Default)]
pub struct Effects {
    /// The connection whose event is being handled, if any.
    sender: Option<ConnKey>,
    replies: Vec<Message>,
    broadcasts: Vec<Broadcast>,
    recipients: Vec<ConnKey>,
    close: Option<(CloseCode, &'static str)>,
}

impl Effects {
    /// Names the connection whose event the next handler call is about (`None`
    /// for `closed`): replies go to it, and its copy of a broadcast is its own.
    pub fn set_sender(&mut self, sender: Option<ConnKey>) {
        self.sender = sender;
    }

    /// Sends `message` to the connection the event came from.
    pub fn reply(&mut self, message: Message) {
        self.replies.push(message);
    }

    /// Sends `message` to every connection in `recipients` that is still open,
    /// the sender included if it is listed.
    pub fn broadcast(&mut self, message: Message, recipients: &[ConnKey]) {
        self.push_broadcast(message, recipients, true);
    }

    /// Sends `message` to every connection in `recipients` that is still open,
    /// except the sender.
    pub fn broadcast_to_others(&mut self, message: Message, recipients: &[ConnKey]) {
        self.push_broadcast(message, recipients, false);
    }

    fn push_broadcast(&mut self, message: Message, recipients: &[ConnKey], sender_too: bool) {
        let start = self.recipients.len();
        // One copy of the list, then the sender struck from it: a room's member
        // list goes in at memcpy speed.
        self.recipients.extend_from_slice(recipients);
        let sender_at = self
            .sender
            .and_then(|s| self.recipients[start..].iter().position(|&k| k == s));
        if let Some(i) = sender_at {
            self.recipients.swap_remove(start + i);
        }
        let to_sender = sender_too && sender_at.is_some();
        let recipients = start..self.recipients.len();
        if to_sender || !recipients.is_empty() {
            self.broadcasts.push(Broadcast {
                message,
                recipients,
                to_sender,
            });
        }
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
    /// `closed`, or by an `open` that refused); broadcasts stay.
    pub fn discard_own(&mut self) {
        self.replies.clear();
        self.close = None;
    }

    /// Hands the sender's copy of every pending broadcast to `send` now: the
    /// driver delivers it at once, so it keeps its place among the sender's
    /// other output.
    pub fn deliver_to_sender(&mut self, mut send: impl FnMut(&Message)) {
        for b in &mut self.broadcasts {
            if b.to_sender {
                b.to_sender = false;
                send(&b.message);
            }
        }
    }

    /// Whether broadcasts wait to be carried out.
    pub fn has_broadcasts(&self) -> bool {
        !self.broadcasts.is_empty()
    }

    /// Hands each broadcast with its other recipients to `deliver`, in order,
    /// and clears them.
    pub fn drain_broadcasts(&mut self, mut deliver: impl FnMut(&Message, &[ConnKey])) {
        for b in self.broadcasts.drain(..) {
            deliver(&b.message, &self.recipients[b.recipients]);
        }
        self.recipients.clear();
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

    #[test]
    fn broadcasts_keep_their_order_and_recipients() {
        let mut fx = Effects::default();
        fx.broadcast(text("a"), &[1, 2]);
        fx.broadcast(text("none"), &[]);
        fx.broadcast(text("b"), &[3]);
        let mut seen = Vec::new();
        fx.drain_broadcasts(|m, to| seen.push((m.data.clone(), to.to_vec())));
        assert_eq!(
            seen,
            vec![(b"a".to_vec(), vec![1, 2]), (b"b".to_vec(), vec![3])],
            "an empty recipient list queues nothing"
        );
        assert!(!fx.has_broadcasts());
    }

    #[test]
    fn a_copy_delivered_to_the_sender_is_not_fanned_out_again() {
        let mut fx = Effects::default();
        fx.set_sender(Some(2));
        fx.broadcast(text("a"), &[1, 2, 3]);
        let mut own = Vec::new();
        fx.deliver_to_sender(|m| own.push(m.data.clone()));
        fx.deliver_to_sender(|m| own.push(m.data.clone()));
        assert_eq!(own, vec![b"a".to_vec()], "the sender's copy goes out once");
        let mut rest = Vec::new();
        fx.drain_broadcasts(|_, to| rest.extend_from_slice(to));
        assert_eq!(rest, vec![1, 3]);
    }

    #[test]
    fn a_broadcast_to_others_skips_the_sender_entirely() {
        let mut fx = Effects::default();
        fx.set_sender(Some(2));
        fx.broadcast_to_others(text("a"), &[1, 2, 3]);
        fx.broadcast_to_others(text("only the sender"), &[2]);
        let mut own = Vec::new();
        fx.deliver_to_sender(|m| own.push(m.data.clone()));
        assert!(own.is_empty());
        let mut rest = Vec::new();
        fx.drain_broadcasts(|m, to| rest.push((m.data.clone(), to.to_vec())));
        assert_eq!(rest, vec![(b"a".to_vec(), vec![1, 3])]);
    }
}
