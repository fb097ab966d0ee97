//! A small bounded free list of boxed per-connection work areas (an outbox's
//! queue, an input tail), one per thread, so a connection can hold nothing
//! while idle and still take no allocation per turn when it gets busy again.
//!
//! Owns keeping and handing back emptied boxes, at most [`Pool`]'s bound of
//! them. It must never keep a box that still holds data (callers empty it
//! first) or a buffer larger than [`MAX_POOLED_BYTES`]; it never grows past
//! its bound and never shares anything across threads.

use std::cell::RefCell;

/// The largest buffer a pooled box may keep; larger ones are freed instead.
pub const MAX_POOLED_BYTES: usize = 64 * 1024;

/// A bounded stack of spare boxes.
#[derive(Debug)]
pub struct Pool<T> {
    spare: RefCell<Vec<T>>,
    bound: usize,
}

impl<T> Pool<T> {
    pub const fn new(bound: usize) -> Pool<T> {
        Pool {
            spare: RefCell::new(Vec::new()),
            bound,
        }
    }

    /// A spare box, if one is kept.
    pub fn take(&self) -> Option<T> {
        self.spare.try_borrow_mut().ok()?.pop()
    }

    /// Keeps `item` for a later `take`, or drops it when the pool is full.
    pub fn put(&self, item: T) {
        let Ok(mut spare) = self.spare.try_borrow_mut() else {
            return;
        };
        if spare.len() < self.bound {
            if spare.capacity() == 0 {
                spare.reserve_exact(self.bound);
            }
            spare.push(item);
        }
    }

    /// How many boxes are kept.
    pub fn len(&self) -> usize {
        self.spare.try_borrow().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_bound() {
        let pool = Pool::new(2);
        for i in 0..5 {
            pool.put(Box::new(i));
        }
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take().as_deref(), Some(&1));
        assert_eq!(pool.take().as_deref(), Some(&0));
        assert!(pool.take().is_none());
    }
}
