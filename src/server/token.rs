//! The reactor's token namespace: every event source registered with mio gets a
//! token that says what it is (signals, a listener, a connection, a bridged
//! connection's backend socket or child pipes, an ending child) and which.
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
const BACKEND_OUT: usize = 3;
const BACKEND_IN: usize = 4;
const BACKEND_ERR: usize = 5;
const BACKEND_EXIT: usize = 6;
const ENDING_CHILD: usize = 7;
const BACKPLANE: usize = 8;

/// What a readiness event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// SIGINT/SIGTERM arrived.
    Signals,
    /// A listening socket, by its index in the reactor's list.
    Listener(usize),
    /// A client connection, by its key in the reactor's slab.
    Connection(usize),
    /// One of a bridged connection's backend sources, by the connection's key.
    Backend(usize, Pipe),
    /// A child whose connection is gone, on its way out (its pidfd), by its
    /// index in the bridge table's list of ending children.
    EndingChild(usize),
    /// One of the backplane's two Redis links (`backplane::SUBSCRIBER`, `PUBLISHER`).
    Backplane(usize),
    /// A token this reactor never registered (ignored).
    Unknown,
}

/// Which source of a connection's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// A program's stdout, or the TCP backend (both directions).
    Out,
    /// A program's stdin.
    In,
    /// A program's stderr.
    Err,
    /// A program's pidfd: readable once it has exited.
    Exit,
}

impl Source {
    pub fn token(self) -> Token {
        let (kind, index) = match self {
            Source::Signals => (SIGNALS, 0),
            Source::Listener(i) => (LISTENER, i),
            Source::Connection(k) => (CONNECTION, k),
            Source::Backend(k, Pipe::Out) => (BACKEND_OUT, k),
            Source::Backend(k, Pipe::In) => (BACKEND_IN, k),
            Source::Backend(k, Pipe::Err) => (BACKEND_ERR, k),
            Source::Backend(k, Pipe::Exit) => (BACKEND_EXIT, k),
            Source::EndingChild(i) => (ENDING_CHILD, i),
            Source::Backplane(i) => (BACKPLANE, i),
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
            BACKEND_OUT => Source::Backend(index, Pipe::Out),
            BACKEND_IN => Source::Backend(index, Pipe::In),
            BACKEND_ERR => Source::Backend(index, Pipe::Err),
            BACKEND_EXIT => Source::Backend(index, Pipe::Exit),
            ENDING_CHILD => Source::EndingChild(index),
            BACKPLANE => Source::Backplane(index),
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
            Source::Backend(7, Pipe::Out),
            Source::Backend(7, Pipe::In),
            Source::Backend(7, Pipe::Err),
            Source::Backend(7, Pipe::Exit),
            Source::EndingChild(7),
            Source::Backplane(1),
        ] {
            assert_eq!(Source::of(s.token()), s);
        }
        assert_ne!(Source::Listener(1).token(), Source::Connection(1).token());
        assert_ne!(
            Source::Backend(1, Pipe::In).token(),
            Source::Backend(1, Pipe::Out).token()
        );
    }
}
