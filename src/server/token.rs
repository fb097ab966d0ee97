//! The reactor's token namespace: every event source registered with mio gets a
//! token that says what it is (signals, a listener, a connection, and later a
//! backend socket, a child's pipe, a Redis link, the metrics listener) and which.
//!
//! Owns the encoding of [`Source`] into `mio::Token` and back. It must never hold
//! state: a token is a name, and the reactor looks the source up.

use mio::Token;

/// Bits of a token that name the kind of source.
const KIND_BITS: u32 = 4;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;

const SIGNALS: usize = 0;
const LISTENER: usize = 1;
const CONNECTION: usize = 2;

/// What a readiness event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// SIGINT/SIGTERM arrived.
    Signals,
    /// A listening socket, by its index in the reactor's list.
    Listener(usize),
    /// A client connection, by its key in the reactor's slab.
    Connection(usize),
    /// A token this reactor never registered (ignored).
    Unknown,
}

impl Source {
    pub fn token(self) -> Token {
        let (kind, index) = match self {
            Source::Signals => (SIGNALS, 0),
            Source::Listener(i) => (LISTENER, i),
            Source::Connection(k) => (CONNECTION, k),
            Source::Unknown => (KIND_MASK, 0),
        };
        Token((index << KIND_BITS) | kind)
    }

    pub fn of(token: Token) -> Source {
        let index = token.0 >> KIND_BITS;
        match token.0 & KIND_MASK {
            SIGNALS => Source::Signals,
            LISTENER => Source::Listener(index),
            CONNECTION => Source::Connection(index),
            _ => Source::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_round_trips_through_its_token() {
        for s in [
            Source::Signals,
            Source::Listener(0),
            Source::Listener(3),
            Source::Connection(0),
            Source::Connection(19_999),
            Source::Connection(usize::MAX >> KIND_BITS),
        ] {
            assert_eq!(Source::of(s.token()), s);
        }
        assert_ne!(Source::Listener(1).token(), Source::Connection(1).token());
    }
}
