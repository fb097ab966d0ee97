//! Giving freed heap memory back to the operating system once the loop goes
//! quiet after heavy traffic.
//!
//! glibc's allocator keeps the memory of freed buffers for reuse; after a
//! burst of large messages a daemon would otherwise sit at its peak RSS while
//! idle. After at least [`TRAFFIC_BEFORE_TRIM`] bytes have moved, the loop waits
//! at most [`QUIET`] for events, and a wait that ends with none (nothing
//! happened meanwhile) calls `malloc_trim`, once. Under steady load every wait
//! ends with events and nothing is trimmed, so the hot path never pays for it.
//!
//! Owns that decision only. It must never run while traffic flows, and on
//! other C libraries it does nothing.

use std::time::Duration;

/// Bytes moved (in and out) since the last trim before another is worth it.
const TRAFFIC_BEFORE_TRIM: u64 = 64 << 20;

/// How long a loop with a trim pending waits for events before trimming.
pub const QUIET: Duration = Duration::from_millis(250);

/// Free memory at the top of the heap that `free` may keep rather than give back.
const TRIM_THRESHOLD: usize = 8 << 20;

#[derive(Debug)]
pub struct HeapTrim {
    /// Bytes moved when the last trim ran.
    traffic_at_trim: u64,
    pending: bool,
}

impl HeapTrim {
    /// Takes over giving memory back. By default glibc gives the top of the
    /// heap back to the kernel whenever more than 128 KiB there is free (and
    /// moves that threshold, and the one for serving a buffer with its own
    /// `mmap`, with what was last freed), so under 64 KiB messages freed
    /// buffers went back and were faulted in again: up to a tenth of the
    /// server's CPU in page faults. A fixed 8 MiB trim threshold keeps them for
    /// reuse while traffic flows; the quiet trim returns them afterwards. The
    /// `mmap` threshold stays at 128 KiB, so the connection slab still grows
    /// by `mremap` without leaving its old copies in the heap.
    pub fn new() -> HeapTrim {
        fix_thresholds();
        HeapTrim {
            traffic_at_trim: 0,
            pending: false,
        }
    }

    /// After a turn, with the bytes moved since start.
    pub fn after_turn(&mut self, traffic: u64) {
        if traffic.saturating_sub(self.traffic_at_trim) >= TRAFFIC_BEFORE_TRIM {
            self.pending = true;
        }
    }

    /// The longest the next poll may wait, if a trim is pending.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.pending.then_some(QUIET)
    }

    /// A poll came back with no events: the loop is quiet. Returns whether it trimmed.
    pub fn on_quiet(&mut self, traffic: u64) -> bool {
        if !self.pending {
            return false;
        }
        self.pending = false;
        self.traffic_at_trim = traffic;
        release_free_memory();
        true
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and only reorganises the
    // allocator's own free lists; it is safe to call at any time from the
    // thread that owns the loop.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_thresholds() {
    // SAFETY: mallopt only sets the allocator's tuning parameters; it is
    // called from the thread that owns the loop, before the loop runs.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_thresholds() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_burst_and_only_when_quiet() {
        let mut trim = HeapTrim::new();
        trim.after_turn(1 << 20);
        assert_eq!(trim.poll_timeout(), None, "too little traffic");
        assert!(!trim.on_quiet(1 << 20));
        trim.after_turn(TRAFFIC_BEFORE_TRIM);
        assert_eq!(trim.poll_timeout(), Some(QUIET));
        assert!(trim.on_quiet(TRAFFIC_BEFORE_TRIM));
        assert_eq!(trim.poll_timeout(), None);
        assert!(!trim.on_quiet(TRAFFIC_BEFORE_TRIM), "once per burst");
        trim.after_turn(TRAFFIC_BEFORE_TRIM + 1);
        assert_eq!(trim.poll_timeout(), None, "the next burst has not happened");
        trim.after_turn(2 * TRAFFIC_BEFORE_TRIM);
        assert!(trim.on_quiet(2 * TRAFFIC_BEFORE_TRIM));
    }
}
