//! A connection's deadline, with the kind it is, so each timeout has a name of
//! its own instead of one overloaded timestamp.
//!
//! A connection has at most one deadline at a time: each state has one kind
//! (Request in the HTTP request states, Transfer in `FileBody`, Ping or else
//! Pong on an open WebSocket, Close once closing), and every state change
//! clears it first. So one slot holds it, and setting a kind replaces any other;
//! clearing or asking about a kind sees only that kind.
//!
//! Owns that slot and which deadline comes first. It must never decide what a
//! passed deadline means: the connection driver does.

use crate::server::timers::Tick;

/// The kinds of deadline a connection can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The request head (the first, or the next on a keep-alive connection) must be complete.
    Request,
    /// A file body must make progress.
    Transfer,
    /// A WebSocket silent until then gets a ping.
    Ping,
    /// Our ping must be answered (by any bytes).
    Pong,
    /// Our close must be answered, or our last bytes written and the peer gone.
    Close,
}

/// The one deadline set, and its kind; `at` 0 means unset. Packed to 5 bytes so
/// that in `Conn` it shares 8 with the connection's flags instead of taking 8
/// of its own (fields are only ever copied out, never borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed)]
pub struct Deadlines {
    at: Tick,
    kind: Deadline,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            at: 0,
            kind: Deadline::Request,
        }
    }
}

impl Deadlines {
    /// Sets `kind` at `at`, replacing whatever deadline was set.
    pub fn set(&mut self, kind: Deadline, at: Tick) {
        *self = Deadlines { at, kind };
    }

    /// Unsets `kind` (a deadline of another kind stays).
    pub fn clear(&mut self, kind: Deadline) {
        if self.kind == kind {
            self.at = 0;
        }
    }

    /// Unsets every deadline (the connection changed state).
    pub fn clear_all(&mut self) {
        self.at = 0;
    }

    pub fn get(&self, kind: Deadline) -> Option<Tick> {
        Some(self.at).filter(|&t| t != 0 && self.kind == kind)
    }

    /// Whether `kind` is set and has passed at `now`.
    pub fn passed(&self, kind: Deadline, now: Tick) -> bool {
        self.get(kind).is_some_and(|t| now >= t)
    }

    /// The deadline set, if any.
    pub fn next(&self) -> Option<Tick> {
        Some(self.at).filter(|&t| t != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_deadline_at_a_time_by_kind() {
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        assert!(!d.passed(Deadline::Request, 1000), "unset never passes");
        d.set(Deadline::Ping, 50);
        assert_eq!(d.next(), Some(50));
        assert!(d.passed(Deadline::Ping, 50));
        assert!(!d.passed(Deadline::Ping, 49));
        assert!(!d.passed(Deadline::Pong, 1000), "another kind never passes");
        d.clear(Deadline::Pong);
        assert_eq!(d.next(), Some(50), "clearing another kind keeps it");
        d.set(Deadline::Pong, 20);
        assert_eq!(
            d.get(Deadline::Ping),
            None,
            "setting a kind replaces the other"
        );
        assert_eq!(d.next(), Some(20));
        d.clear(Deadline::Pong);
        assert_eq!(d.next(), None);
        d.set(Deadline::Close, 5);
        d.clear_all();
        assert_eq!(d.next(), None);
    }
}
