//! A connection's deadlines, one per kind, so each timeout has a name of its own
//! instead of one overloaded timestamp.
//!
//! Owns the table and which deadline comes first. It must never decide what a
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

const KINDS: usize = 5;

/// Ticks by kind; 0 means unset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    at: [Tick; KINDS],
}

impl Deadlines {
    pub fn set(&mut self, kind: Deadline, at: Tick) {
        self.at[kind as usize] = at;
    }

    pub fn clear(&mut self, kind: Deadline) {
        self.at[kind as usize] = 0;
    }

    /// Unsets every deadline (the connection changed state).
    pub fn clear_all(&mut self) {
        self.at = [0; KINDS];
    }

    pub fn get(&self, kind: Deadline) -> Option<Tick> {
        Some(self.at[kind as usize]).filter(|&t| t != 0)
    }

    /// Whether `kind` is set and has passed at `now`.
    pub fn passed(&self, kind: Deadline, now: Tick) -> bool {
        self.get(kind).is_some_and(|t| now >= t)
    }

    /// The earliest deadline set.
    pub fn next(&self) -> Option<Tick> {
        self.at.iter().copied().filter(|&t| t != 0).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_set_deadline_comes_next() {
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.set(Deadline::Ping, 50);
        d.set(Deadline::Close, 20);
        assert_eq!(d.next(), Some(20));
        assert!(d.passed(Deadline::Close, 20));
        assert!(!d.passed(Deadline::Ping, 20));
        assert!(!d.passed(Deadline::Pong, 1000), "unset never passes");
        d.clear(Deadline::Close);
        assert_eq!(d.next(), Some(50));
        d.clear_all();
        assert_eq!(d.next(), None);
    }
}
