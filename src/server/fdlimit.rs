//! The process's open-file limit: raised to the hard limit at start, and turned
//! into the connection ceiling.
//!
//! Owns the one `setrlimit` call. It must never be called after connections exist.

/// File descriptors kept back for listeners, epoll, signals, logs and static files.
pub const RESERVED_FDS: u64 = 64;

/// The soft and hard `RLIMIT_NOFILE` after trying to raise the soft one to the hard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

impl FdLimit {
    /// How many connections fit under the soft limit.
    pub fn connection_ceiling(&self) -> usize {
        self.soft.saturating_sub(RESERVED_FDS).max(1) as usize
    }
}

/// Raises the soft limit to the hard limit; returns the limits in force afterwards.
pub fn raise_to_hard_limit() -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(FdLimit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}
