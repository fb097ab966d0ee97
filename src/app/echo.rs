//! The echo route: every text or binary message comes back unchanged.
//!
//! Owns nothing but that rule. It must never copy a payload: the message's buffer
//! is handed back whole and the core frames it without copying large payloads.

use crate::app::handler::{Effects, Opening, Peer, RouteHandler, Slot};
use crate::app::Rejection;
use crate::core::Message;

#[derive(Debug, Default)]
pub struct Echo;

impl RouteHandler for Echo {
    fn open(&self, _: &Opening<'_>, _: &mut Effects) -> Result<Slot, Rejection> {
        Ok(0)
    }

    fn message(&self, _: Peer, _: Slot, message: Message, fx: &mut Effects) {
        fx.reply(message);
    }

    fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}
}
