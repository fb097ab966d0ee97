//! A coarse timer wheel: every connection has at most one armed deadline, stored
//! as an 8-byte entry in the slot of its tick, and a tick only visits its own slot.
//!
//! Owns tick arithmetic and due-entry collection. It must never decide what a
//! timeout means; entries are hints that the reactor re-checks against the
//! connection's own state (stale entries are simply skipped).

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// Slots in the wheel; deadlines further out wait for later turns.
const SLOTS: usize = 1024;

/// A point in time counted in ticks since the reactor started; 0 means "never".
pub type Tick = u32;

#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<(u32, Tick)>>,
    /// The last tick whose slot has been processed.
    current: Tick,
    len: usize,
    epoch: Instant,
}

impl TimerWheel {
    pub fn new(epoch: Instant) -> Self {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
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

    /// Arms an entry for connection `key` at `tick` (a past tick fires on the next advance).
    pub fn schedule(&mut self, key: usize, tick: Tick) {
        let tick = tick.max(self.current + 1);
        self.slots[tick as usize % SLOTS].push((key as u32, tick));
        self.len += 1;
    }

    /// Moves time to `now` and appends every entry due by then to `fired`.
    pub fn advance(&mut self, now: Tick, fired: &mut Vec<(usize, Tick)>) {
        if now <= self.current {
            return;
        }
        let first = (self.current + 1).max(now.saturating_sub(SLOTS as Tick - 1));
        for t in first..=now {
            let slot = &mut self.slots[t as usize % SLOTS];
            let before = slot.len();
            slot.retain(|&(key, due)| {
                if due <= now {
                    fired.push((key as usize, due));
                    false
                } else {
                    true
                }
            });
            self.len -= before - slot.len();
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

    #[test]
    fn entries_fire_at_their_tick_not_before() {
        let mut w = TimerWheel::new(Instant::now());
        w.schedule(7, 5);
        w.schedule(8, 3);
        let mut fired = Vec::new();
        w.advance(2, &mut fired);
        assert!(fired.is_empty());
        w.advance(4, &mut fired);
        assert_eq!(fired, vec![(8, 3)]);
        w.advance(5, &mut fired);
        assert_eq!(fired, vec![(8, 3), (7, 5)]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_turn() {
        let mut w = TimerWheel::new(Instant::now());
        let far = SLOTS as Tick * 2 + 10;
        w.schedule(1, far);
        let mut fired = Vec::new();
        w.advance(far - 1, &mut fired);
        assert!(fired.is_empty());
        w.advance(far, &mut fired);
        assert_eq!(fired, vec![(1, far)]);
    }

    #[test]
    fn a_long_pause_fires_everything_due_once() {
        let mut w = TimerWheel::new(Instant::now());
        for k in 0..100 {
            w.schedule(k, 2 + k as Tick * 37);
        }
        let mut fired = Vec::new();
        w.advance(100_000, &mut fired);
        assert_eq!(fired.len(), 100);
        assert!(w.is_empty());
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
