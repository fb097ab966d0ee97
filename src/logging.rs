//! Logging setup from the `[log]` config (terminal and/or file, one level), and a
//! limiter that keeps repeated peer errors from flooding the log.
//!
//! Owns logger initialisation. It must never be the place where what to log is
//! decided; callers choose the level per the conventions in DESIGN.md.

use std::fs::OpenOptions;

use log::LevelFilter;
use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

use crate::config::{LogConfig, LogLevel};

pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Installs the global logger. Fails if the log file cannot be opened.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let level = level_filter(config.level);
    let format = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    if config.terminal {
        loggers.push(TermLogger::new(
            level,
            format.clone(),
            TerminalMode::Stderr,
            ColorChoice::Never,
        ));
    }
    if let Some(path) = &config.file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log file {}: {e}", path.display()))?;
        loggers.push(WriteLogger::new(level, format, file));
    }
    CombinedLogger::init(loggers).map_err(|e| format!("logger: {e}"))
}

/// Lets through at most `per_window` lines per window of ticks and counts the rest,
/// so a flood of bad peers costs a few lines, not one per peer.
#[derive(Debug)]
pub struct LogLimiter {
    per_window: u32,
    window_ticks: u32,
    window_start: u32,
    used: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(per_window: u32, window_ticks: u32) -> Self {
        LogLimiter {
            per_window,
            window_ticks,
            window_start: 0,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log this line, mentioning the `n` lines suppressed since the last one
    /// let through. `None`: stay quiet.
    pub fn allow(&mut self, now_tick: u32) -> Option<u64> {
        if now_tick.wrapping_sub(self.window_start) >= self.window_ticks {
            self.window_start = now_tick;
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_a_few_through_per_window_and_counts_the_rest() {
        let mut l = LogLimiter::new(2, 10);
        assert_eq!(l.allow(1), Some(0));
        assert_eq!(l.allow(2), Some(0));
        assert_eq!(l.allow(3), None);
        assert_eq!(l.allow(4), None);
        assert_eq!(l.allow(11), Some(2));
    }
}
