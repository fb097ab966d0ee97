//! A coarse timer wheel that allocates nothing per entry: an armed connection
//! is linked into the list of its tick's slot through a [`Link`] kept in the
//! connection itself, and a tick only walks its own slot.
//!
//! A connection is in the wheel at most once. Arming it again earlier moves it,
//! cancelling takes it out in O(1) (so a deadline that is cleared, or a
//! connection that is removed, leaves nothing behind), and arming it later is
//! the caller's choice to skip: the entry then fires early, as a hint.
//!
//! Owns tick arithmetic, the slot lists and due-entry collection. It must never
//! decide what a timeout means: the reactor re-checks every fired entry against
//! the connection's own deadlines.

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// Slots in the wheel; deadlines further out wait for later turns.
const SLOTS: usize = 1024;
/// No key: the end of a slot's list.
const NIL: u32 = u32::MAX;

/// A point in time counted in ticks since the reactor started; 0 means "never".
pub type Tick = u32;

/// A connection's place in the wheel: the tick of its entry (0: not in the
/// wheel) and its neighbours in that tick's slot list. 12 bytes, kept in the
/// connection; only the wheel changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    armed: Tick,
    prev: u32,
    next: u32,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            armed: 0,
            prev: NIL,
            next: NIL,
        }
    }
}

impl Link {
    /// The tick its entry fires at, if it is in the wheel.
    pub fn armed(&self) -> Option<Tick> {
        Some(self.armed).filter(|&t| t != 0)
    }
}

/// Where the wheel finds the [`Link`] of each key it holds (the reactor's slab
/// of connections). Every key in the wheel must stay present until cancelled.
pub trait Links {
    fn link(&mut self, key: usize) -> &mut Link;
}

#[derive(Debug)]
pub struct TimerWheel {
    /// The first key of each slot's list, `NIL` when empty.
    heads: Box<[u32]>,
    /// The last tick whose slot has been processed.
    current: Tick,
    len: usize,
    epoch: Instant,
}

impl TimerWheel {
    pub fn new(epoch: Instant) -> Self {
        TimerWheel {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            current: 1,
            len: 0,
            epoch,
        }
    }

    /// The tick `now` falls in (never 0).
    pub fn tick_of(&self, now: Instant) -> Tick {
        let elapsed = now.saturating_duration_since(self.epoch);
        (elapsed.as_millis() / TICK.as_millis()) as Tick + 1
    }

    /// How many ticks cover `d` (at least one).
    pub fn ticks_for(d: Duration) -> Tick {
        (d.as_millis().div_ceil(TICK.as_millis()) as Tick).max(1)
    }

    /// Time from `now` until the next tick boundary, if anything is armed.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let next = self.epoch + TICK * self.tick_of(now);
        Some(next.saturating_duration_since(now))
    }

    /// Arms `key`'s entry at `tick` (a past tick fires on the next advance),
    /// moving it if it was armed already.
    pub fn schedule(&mut self, links: &mut impl Links, key: usize, tick: Tick) {
        self.cancel(links, key);
        let tick = tick.max(self.current + 1);
        let slot = tick as usize % SLOTS;
        let head = self.heads[slot];
        if head != NIL {
            links.link(head as usize).prev = key as u32;
        }
        *links.link(key) = Link {
            armed: tick,
            prev: NIL,
            next: head,
        };
        self.heads[slot] = key as u32;
        self.len += 1;
    }

    /// Keeps `key`'s entry in step with its deadline, if any: armed at the
    /// deadline unless an earlier entry is armed already, and out of the wheel
    /// once no deadline is set. A deadline that moved later (as the ping
    /// deadline does on every read) is not chased, which would touch the
    /// neighbours' links every time: the early entry fires, the caller finds
    /// nothing passed, and keeps the entry again with the moved deadline.
    pub fn keep(&mut self, links: &mut impl Links, key: usize, deadline: Option<Tick>) {
        let armed = links.link(key).armed();
        match deadline {
            Some(tick) if armed.is_none_or(|at| tick < at) => self.schedule(links, key, tick),
            Some(_) => {}
            None if armed.is_some() => self.cancel(links, key),
            None => {}
        }
    }

    /// Takes `key`'s entry out of the wheel, if it has one.
    pub fn cancel(&mut self, links: &mut impl Links, key: usize) {
        let Link { armed, prev, next } = *links.link(key);
        if armed == 0 {
            return;
        }
        if prev == NIL {
            self.heads[armed as usize % SLOTS] = next;
        } else {
            links.link(prev as usize).next = next;
        }
        if next != NIL {
            links.link(next as usize).prev = prev;
        }
        *links.link(key) = Link::default();
        self.len -= 1;
    }

    /// Moves time to `now`, takes every entry due by then out of the wheel and
    /// appends its key to `fired`.
    pub fn advance(&mut self, links: &mut impl Links, now: Tick, fired: &mut Vec<usize>) {
        if now <= self.current {
            return;
        }
        let first = (self.current + 1).max(now.saturating_sub(SLOTS as Tick - 1));
        for t in first..=now {
            let mut key = self.heads[t as usize % SLOTS];
            while key != NIL {
                let link = *links.link(key as usize);
                if link.armed <= now {
                    self.cancel(links, key as usize);
                    fired.push(key as usize);
                }
                key = link.next;
            }
        }
        self.current = now;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::deadlines::{Deadline, Deadlines};

    /// Links by key, as the reactor's slab holds them.
    impl Links for Vec<Link> {
        fn link(&mut self, key: usize) -> &mut Link {
            &mut self[key]
        }
    }

    fn links(n: usize) -> Vec<Link> {
        vec![Link::default(); n]
    }

    #[test]
    fn entries_fire_at_their_tick_not_before() {
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(10));
        w.schedule(&mut l, 7, 5);
        w.schedule(&mut l, 8, 3);
        let mut fired = Vec::new();
        w.advance(&mut l, 2, &mut fired);
        assert!(fired.is_empty());
        w.advance(&mut l, 4, &mut fired);
        assert_eq!(fired, vec![8]);
        assert_eq!(l[8].armed(), None, "a fired entry leaves the wheel");
        w.advance(&mut l, 5, &mut fired);
        assert_eq!(fired, vec![8, 7]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_turn() {
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(3));
        let far = SLOTS as Tick * 2 + 10;
        w.schedule(&mut l, 1, far);
        // A neighbour in the same slot that is due on the first lap.
        w.schedule(&mut l, 2, far - 2 * SLOTS as Tick);
        let mut fired = Vec::new();
        w.advance(&mut l, far - 1, &mut fired);
        assert_eq!(fired, vec![2]);
        w.advance(&mut l, far, &mut fired);
        assert_eq!(fired, vec![2, 1]);
    }

    #[test]
    fn a_long_pause_fires_everything_due_once() {
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(100));
        for k in 0..100 {
            w.schedule(&mut l, k, 2 + k as Tick * 37);
        }
        let mut fired = Vec::new();
        w.advance(&mut l, 100_000, &mut fired);
        fired.sort_unstable();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn scheduling_again_moves_the_one_entry() {
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(2));
        w.schedule(&mut l, 1, 200);
        w.schedule(&mut l, 1, 20);
        assert_eq!((w.len(), l[1].armed()), (1, Some(20)));
        let mut fired = Vec::new();
        w.advance(&mut l, 20, &mut fired);
        assert_eq!(fired, vec![1]);
        w.advance(&mut l, 300, &mut fired);
        assert_eq!(fired, vec![1], "the old tick keeps nothing behind");
    }

    #[test]
    fn a_cancelled_entry_never_fires_and_its_neighbours_do() {
        // Five keys in one slot; cancel the head, one in the middle and the tail.
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(5));
        for k in 0..5 {
            w.schedule(&mut l, k, 9);
        }
        for k in [4, 2, 0] {
            w.cancel(&mut l, k);
            assert_eq!(l[k], Link::default());
        }
        w.cancel(&mut l, 2); // twice: nothing happens
        assert_eq!(w.len(), 2);
        let mut fired = Vec::new();
        w.advance(&mut l, 9, &mut fired);
        fired.sort_unstable();
        assert_eq!(fired, vec![1, 3]);
        assert!(w.is_empty());
        assert!(w.heads.iter().all(|&h| h == NIL));
    }

    #[test]
    fn a_past_tick_fires_on_the_next_advance() {
        let (mut w, mut l) = (TimerWheel::new(Instant::now()), links(1));
        let mut fired = Vec::new();
        w.advance(&mut l, 50, &mut fired);
        w.schedule(&mut l, 0, 10);
        assert_eq!(l[0].armed(), Some(51));
        w.advance(&mut l, 51, &mut fired);
        assert_eq!(fired, vec![0]);
    }

    /// The reactor's part in small: after every step a connection's entry is
    /// kept with its deadline, and a fired entry is checked against it.
    struct OneConn {
        wheel: TimerWheel,
        links: Vec<Link>,
        deadlines: Deadlines,
    }

    impl OneConn {
        fn new() -> OneConn {
            OneConn {
                wheel: TimerWheel::new(Instant::now()),
                links: links(1),
                deadlines: Deadlines::default(),
            }
        }

        fn keep(&mut self) {
            let next = self.deadlines.next();
            self.wheel.keep(&mut self.links, 0, next);
        }

        /// Advances to `now`; the kinds found passed by the fired entry.
        fn advance(&mut self, now: Tick) -> Vec<Deadline> {
            let mut fired = Vec::new();
            self.wheel.advance(&mut self.links, now, &mut fired);
            let mut passed = Vec::new();
            for _ in fired {
                use Deadline::*;
                for kind in [Request, Transfer, Ping, Pong, Close] {
                    if self.deadlines.passed(kind, now) {
                        passed.push(kind);
                    }
                }
                self.keep();
            }
            passed
        }
    }

    #[test]
    fn an_upgrade_without_pings_leaves_no_request_entry() {
        let mut c = OneConn::new();
        c.deadlines.set(Deadline::Request, 200);
        c.keep();
        assert_eq!((c.wheel.len(), c.links[0].armed()), (1, Some(200)));
        // The upgrade clears the request deadline and sets none (pings off).
        c.deadlines.clear_all();
        c.keep();
        assert!(c.wheel.is_empty(), "the request entry is gone");
        assert_eq!(c.links[0], Link::default());
        assert!(c.wheel.poll_timeout(Instant::now()).is_none());
        assert!(c.advance(10_000).is_empty());
    }

    #[test]
    fn an_upgrade_with_pings_never_fires_the_request_deadline() {
        let mut c = OneConn::new();
        c.deadlines.set(Deadline::Request, 200);
        c.keep();
        // Upgraded at tick 20: the ping deadline replaces the request one.
        c.deadlines.clear_all();
        c.deadlines.set(Deadline::Ping, 20 + 600);
        c.keep();
        assert_eq!(c.wheel.len(), 1, "one entry, never two");
        // The early entry fires at the old request tick and finds nothing.
        assert!(c.advance(200).is_empty());
        assert_eq!(c.links[0].armed(), Some(620), "kept at the ping deadline");
        assert!(c.advance(619).is_empty());
        assert_eq!(c.advance(620), vec![Deadline::Ping]);
    }

    #[test]
    fn an_earlier_deadline_moves_the_entry_and_a_later_one_waits() {
        let mut c = OneConn::new();
        c.deadlines.set(Deadline::Ping, 600);
        c.keep();
        c.deadlines.set(Deadline::Ping, 700); // heard from the peer
        c.keep();
        assert_eq!(
            c.links[0].armed(),
            Some(600),
            "a later deadline is not chased"
        );
        c.deadlines.set(Deadline::Close, 100); // closing
        c.keep();
        assert_eq!((c.wheel.len(), c.links[0].armed()), (1, Some(100)));
        assert_eq!(c.advance(100), vec![Deadline::Close]);
        c.deadlines.clear_all(); // what the close timeout does: the end
        c.keep();
        assert!(
            c.advance(1_000).is_empty(),
            "the ping entry went with the move"
        );
    }

    #[test]
    fn ticks_for_rounds_up() {
        assert_eq!(TimerWheel::ticks_for(Duration::from_millis(1)), 1);
        assert_eq!(TimerWheel::ticks_for(TICK * 3), 3);
        assert_eq!(
            TimerWheel::ticks_for(TICK * 3 + Duration::from_millis(1)),
            4
        );
    }
}
