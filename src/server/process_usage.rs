//! This process's resident memory and open file descriptors, read from
//! `/proc/self` for status snapshots and `/metrics`.
//!
//! Owns those two reads. It must never be called per connection or per turn:
//! counting `/proc/self/fd` walks one entry per open socket.

/// Resident set size in bytes and open descriptors; zeros where `/proc` cannot
/// be read.
pub fn process_usage() -> (u64, u64) {
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size());
    // The directory's own descriptor, open while it is read, is not counted.
    let fds = std::fs::read_dir("/proc/self/fd")
        .map_or(0, |dir| dir.count() as u64)
        .saturating_sub(1);
    (rss, fds)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_has_memory_and_descriptors() {
        let (rss, fds) = process_usage();
        assert!(rss > 1 << 20, "{rss}");
        assert!(fds >= 3, "stdin, stdout and stderr at least: {fds}");
    }
}
