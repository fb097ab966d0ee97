//! The echo route: every text or binary message comes back unchanged.
//!
//! Owns nothing but that rule. It must never copy a payload: it asks for the
//! message to be echoed, and the server encodes it straight from where it was
//! received.

use crate::app::handler::{Effects, Opening, Peer, RouteHandler, Slot};
use crate::app::Rejection;
use crate::core::MessageRef;

#[derive(Debug, Default)]
pub struct Echo;

impl RouteHandler for Echo {
    fn open(&self, _: &Opening<'_>, _: &mut Effects) -> Result<Slot, Rejection> {
        Ok(0)
    }

    fn message(&self, _: Peer, _: Slot, _: MessageRef<'_>, fx: &mut Effects) {
        fx.echo();
    }

    fn closed(&self, _: Peer, _: Slot, _: &mut Effects) {}

    fn only_echoes(&self) -> bool {
        true
    }
}
