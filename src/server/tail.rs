//! A connection's unconsumed input (`Conn::inbuf`): a partial request head or
//! frame header, or pipelined requests not handled yet. One null pointer while
//! empty, which is almost always; the box that holds bytes otherwise goes back
//! to the thread's [`Pool`] once emptied, so a tail set on every read costs no
//! allocation once warm.
//!
//! Owns only keeping those bytes. It must never interpret them (the driver
//! and the core do).

use std::ops::{Deref, DerefMut};

use crate::server::pool::{Pool, MAX_POOLED_BYTES};

/// Emptied tails kept per thread for reuse.
const POOLED_TAILS: usize = 64;

thread_local! {
    static TAILS: Pool<Box<Held>> = const { Pool::new(POOLED_TAILS) };
}

/// Received bytes not consumed yet; derefs to them (empty: none).
#[derive(Debug, Default)]
pub struct Tail {
    held: Option<Box<Held>>,
}

/// The boxed part: boxed so that an empty tail is one word, not a `Vec`'s three.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
}

impl Tail {
    /// Makes `bytes` the tail, replacing what it held.
    pub fn set(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.clear();
            return;
        }
        let held = self.held.get_or_insert_with(|| {
            TAILS
                .try_with(Pool::take)
                .ok()
                .flatten()
                .unwrap_or_default()
        });
        held.bytes.clear();
        held.bytes.extend_from_slice(bytes);
    }

    /// Empties the tail.
    pub fn clear(&mut self) {
        if let Some(mut held) = self.held.take() {
            if held.bytes.capacity() <= MAX_POOLED_BYTES {
                held.bytes.clear();
                let _ = TAILS.try_with(|pool| pool.put(held));
            }
        }
    }
}

impl Deref for Tail {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.held.as_deref().map_or(&[], |h| h.bytes.as_slice())
    }
}

impl DerefMut for Tail {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.held.as_deref_mut() {
            Some(held) => held.bytes.as_mut_slice(),
            None => &mut [],
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_set_and_reuses_its_box() {
        let mut tail = Tail::default();
        assert!(tail.is_empty());
        tail.set(b"GET / HT");
        assert_eq!(&*tail, b"GET / HT");
        let first = tail.held.as_deref().map(|h| h as *const Held);
        tail.set(b"");
        assert!(tail.held.is_none(), "an empty tail holds nothing");
        tail.set(b"\x81");
        assert_eq!(&*tail, b"\x81");
        let second = tail.held.as_deref().map(|h| h as *const Held);
        assert_eq!(first, second, "the box came back from the pool");
    }
}
