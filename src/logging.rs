//! Logging setup from the `[log]` config (terminal and/or file, one level), what
//! a reload may change of it (the level, and the log file reopened for
//! logrotate), the per-process prefix of a multi-worker daemon (`worker 2: `,
//! `supervisor: `; none for a single process), and a limiter that keeps
//! repeated peer errors from flooding the log. Each line reaches the file in
//! one write, so processes appending to the same file never split a line.
//!
//! Owns logger initialisation. It must never be the place where what to log is
//! decided; callers choose the level per the conventions in DESIGN.md.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use log::{LevelFilter, Log, Metadata, Record};
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

/// The log file, reopened in place on reload (the logger writes through it).
/// What the logger writes is held until its line is complete, then written
/// with one call: with `O_APPEND`, lines of several processes never mix.
#[derive(Clone)]
struct LogFile {
    file: Arc<Mutex<(PathBuf, File)>>,
    line: Vec<u8>,
}

impl LogFile {
    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        let result = match self.file.lock() {
            Ok(mut guard) => guard.1.write_all(&self.line[..upto]),
            Err(_) => Ok(()),
        };
        self.line.drain(..upto);
        result
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            self.write_out(end + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.write_out(self.line.len())?;
        }
        match self.file.lock() {
            Ok(mut guard) => guard.1.flush(),
            Err(_) => Ok(()),
        }
    }
}

/// Puts this process's name in front of every message (after the time and
/// level), so the lines of a supervisor and its workers can be told apart.
struct Prefixed {
    prefix: String,
    inner: Box<dyn Log>,
}

impl Log for Prefixed {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        self.inner.log(
            &Record::builder()
                .args(format_args!("{}{}", self.prefix, record.args()))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// The file the logger writes to, if one was configured at start.
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log file {}: {e}", path.display()))
}

/// Applies a reloaded `[log]` table: the level at once; the file reopened at
/// its (possibly new) path, so a file moved away by logrotate is started
/// afresh. Returns what could not be applied without a restart.
pub fn reload(config: &LogConfig) -> Result<(), String> {
    log::set_max_level(level_filter(config.level));
    match (LOG_FILE.get(), &config.file) {
        (Some(current), Some(path)) => {
            let file = open_append(path)?;
            if let Ok(mut guard) = current.file.lock() {
                *guard = (path.clone(), file);
            }
            Ok(())
        }
        (None, None) | (Some(_), None) => Ok(()),
        (None, Some(path)) => Err(format!(
            "log.file {} is new: a restart starts writing to it",
            path.display()
        )),
    }
}

/// Installs the global logger, every message preceded by `prefix` if given
/// (`"worker 2: "`). Fails if the log file cannot be opened. The loggers let
/// everything through; the level is the global maximum, which a reload can
/// change.
pub fn init(config: &LogConfig, prefix: Option<String>) -> Result<(), String> {
    let level = LevelFilter::Trace;
    log::set_max_level(level_filter(config.level));
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
        let file = LogFile {
            file: Arc::new(Mutex::new((path.clone(), open_append(path)?))),
            line: Vec::new(),
        };
        let _ = LOG_FILE.set(file.clone());
        loggers.push(WriteLogger::new(level, format, file));
    }
    match prefix {
        None => CombinedLogger::init(loggers).map_err(|e| format!("logger: {e}"))?,
        Some(prefix) => log::set_boxed_logger(Box::new(Prefixed {
            prefix,
            inner: CombinedLogger::new(loggers),
        }))
        .map_err(|e| format!("logger: {e}"))?,
    }
    log::set_max_level(level_filter(config.level));
    Ok(())
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
