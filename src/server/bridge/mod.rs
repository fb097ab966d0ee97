//! The bridge table: the backend of every bridged connection (a child process's
//! pipes, or a TCP connection), registered in the reactor's poll under the
//! connection's key, plus the children whose connection is gone and that are
//! being ended (stdin closed, then SIGINT, SIGTERM and SIGKILL, `kill_grace`
//! apart) until they are reaped.
//!
//! Owns the backends' I/O: starting, reading into the loop's buffer, the bytes
//! waiting to be written, backend-side timers (connect timeout, the kill
//! ladder), and how each ended. It must never decide what bytes mean (the
//! route's handler does, through `pump.rs`), never hold a connection, and never
//! block: every pipe and socket is non-blocking and every wait is a timer or an
//! event.

pub mod child;
mod pump;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::unix::pipe;
use mio::unix::SourceFd;
use mio::{Interest, Registry};
use slab::Slab;

use crate::app::{BackendEnd, BackendSpec, Stream};
use crate::server::timers::{Tick, TimerWheel};
use crate::server::token::{Pipe, Source};
use child::Child;

/// The most capacity a backend's write queue keeps once it is empty.
const KEPT_CAPACITY: usize = 16 * 1024;

/// How often a child without a pidfd is asked whether it exited, in ticks.
const EXIT_POLL_TICKS: Tick = 2;

/// A bridged connection's backend.
#[derive(Debug)]
struct Backend {
    /// The connection's id: timers name it, as keys are reused.
    conn_id: u64,
    link: Link,
    /// Bytes for the backend; those before `written` are written.
    pending: Vec<u8>,
    written: usize,
    /// What the handler left unconsumed of stdout (or the TCP stream) and stderr.
    out_tail: Vec<u8>,
    err_tail: Vec<u8>,
    /// Output not read because the connection's queue is full.
    out_paused: bool,
    out_done: bool,
    err_done: bool,
    /// How it ended; handed to the handler once its output is through.
    end: Option<BackendEnd>,
    flush_queued: bool,
}

#[derive(Debug)]
enum Link {
    Process {
        child: Child,
        grace: Tick,
        stdin: Option<pipe::Sender>,
        stdout: Option<pipe::Receiver>,
        stderr: Option<pipe::Receiver>,
    },
    Tcp {
        stream: TcpStream,
        connected: bool,
    },
    /// It could not be started: only its end is left to report.
    NotStarted,
}

/// A child whose connection ended, on its way out.
#[derive(Debug)]
struct Ending {
    child: Child,
    grace: Tick,
    /// Signals sent so far: 0 none (stdin closed), 1 SIGINT, 2 SIGTERM, 3 SIGKILL.
    step: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A TCP backend must have connected by now.
    Connect { key: usize, conn_id: u64 },
    /// A live child without a pidfd: has it exited?
    PollExit { key: usize, conn_id: u64 },
    /// The next step of ending a child.
    Escalate { index: usize, pid: u32 },
}

/// What reading a backend's output gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// This many bytes at the front of the buffer.
    Data(usize),
    /// The output is over (EOF, an error, or the program exited and its
    /// pipe is empty).
    End,
    /// Nothing now: a later event says when.
    WouldBlock,
    /// No such backend or stream (gone, or never there).
    Gone,
}

#[derive(Debug)]
pub struct Bridges {
    registry: Registry,
    live: HashMap<usize, Backend>,
    ending: Slab<Ending>,
    timers: BinaryHeap<Reverse<(Tick, Timer)>>,
    /// Backends with bytes to write at the end of the turn.
    to_flush: Vec<usize>,
    /// Backends that ended outside an event of theirs (failed to start, timed
    /// out): the reactor hands these to their connections.
    ended: Vec<usize>,
}

impl Bridges {
    pub fn new(registry: Registry) -> Bridges {
        Bridges {
            registry,
            live: HashMap::new(),
            ending: Slab::new(),
            timers: BinaryHeap::new(),
            to_flush: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Whether no connection is bridged (the common case: one branch per read).
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Whether nothing is left: no backend and no child on its way out.
    pub fn is_idle(&self) -> bool {
        self.live.is_empty() && self.ending.is_empty()
    }

    /// Whether a backend-side timer is armed (the loop then wakes every tick).
    pub fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// Starts `spec` for connection `key`. A failure is reported as the
    /// backend's end (through [`Bridges::take_ended`]), like any other.
    pub fn attach(&mut self, key: usize, conn_id: u64, spec: BackendSpec, now: Tick) {
        let (link, end) = match self.start(key, conn_id, spec, now) {
            Ok(link) => (link, None),
            Err(e) => {
                self.ended.push(key);
                (Link::NotStarted, Some(BackendEnd::Unavailable(e)))
            }
        };
        let process = matches!(link, Link::Process { .. });
        self.live.insert(
            key,
            Backend {
                conn_id,
                link,
                pending: Vec::new(),
                written: 0,
                out_tail: Vec::new(),
                err_tail: Vec::new(),
                out_paused: false,
                out_done: end.is_some(),
                err_done: end.is_some() || !process,
                end,
                flush_queued: false,
            },
        );
    }

    fn start(
        &mut self,
        key: usize,
        conn_id: u64,
        spec: BackendSpec,
        now: Tick,
    ) -> Result<Link, String> {
        match spec {
            BackendSpec::Process {
                argv,
                cwd,
                env,
                kill_grace,
                running,
            } => {
                let (child, mut pipes) = Child::spawn(&argv, cwd.as_deref(), &env, running)
                    .map_err(|e| format!("{}: {e}", argv.first().map_or("", String::as_str)))?;
                let r = &self.registry;
                let registered = r
                    .register(
                        &mut pipes.stdout,
                        Source::Backend(key, Pipe::Out).token(),
                        Interest::READABLE,
                    )
                    .and_then(|()| {
                        r.register(
                            &mut pipes.stderr,
                            Source::Backend(key, Pipe::Err).token(),
                            Interest::READABLE,
                        )
                    })
                    .and_then(|()| {
                        r.register(
                            &mut pipes.stdin,
                            Source::Backend(key, Pipe::In).token(),
                            Interest::WRITABLE,
                        )
                    })
                    .and_then(|()| match child.pidfd() {
                        Some(fd) => r.register(
                            &mut SourceFd(&fd),
                            Source::Backend(key, Pipe::Exit).token(),
                            Interest::READABLE,
                        ),
                        None => Ok(()),
                    });
                let grace = TimerWheel::ticks_for(kill_grace);
                if child.pidfd().is_none() {
                    self.timers.push(Reverse((
                        now + EXIT_POLL_TICKS,
                        Timer::PollExit { key, conn_id },
                    )));
                }
                let link = Link::Process {
                    child,
                    grace,
                    stdin: Some(pipes.stdin),
                    stdout: Some(pipes.stdout),
                    stderr: Some(pipes.stderr),
                };
                if let Err(e) = registered {
                    // Started but cannot be watched: end it like any other.
                    self.retire(link, now);
                    return Err(format!("register: {e}"));
                }
                debug!("bridge {key}: started {:?}", argv);
                Ok(link)
            }
            BackendSpec::Tcp {
                addr,
                connect_timeout,
            } => {
                let mut stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
                self.registry
                    .register(
                        &mut stream,
                        Source::Backend(key, Pipe::Out).token(),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(|e| format!("register: {e}"))?;
                let timeout = TimerWheel::ticks_for(connect_timeout.max(Duration::from_millis(1)));
                self.timers
                    .push(Reverse((now + timeout, Timer::Connect { key, conn_id })));
                Ok(Link::Tcp {
                    stream,
                    connected: false,
                })
            }
        }
    }

    /// Bytes queued for `key`'s backend and not written yet.
    pub fn backlog(&self, key: usize) -> usize {
        self.live
            .get(&key)
            .map_or(0, |b| b.pending.len() - b.written)
    }

    /// Queues `bytes` for `key`'s backend (written at the end of the turn) and
    /// empties `bytes`. Dropped if the backend can no longer take input.
    pub fn queue(&mut self, key: usize, bytes: &mut Vec<u8>) {
        if let Some(b) = self.live.get_mut(&key) {
            let open = match &b.link {
                Link::Process { stdin, .. } => stdin.is_some(),
                Link::Tcp { .. } => b.end.is_none(),
                Link::NotStarted => false,
            };
            if open {
                b.pending.extend_from_slice(bytes);
                if !b.flush_queued {
                    b.flush_queued = true;
                    self.to_flush.push(key);
                }
            }
        }
        bytes.clear();
    }

    /// Writes what the turn queued; returns the keys whose backlog shrank.
    pub fn flush_queued(&mut self, wrote: &mut Vec<usize>) {
        while let Some(key) = self.to_flush.pop() {
            if let Some(b) = self.live.get_mut(&key) {
                b.flush_queued = false;
            }
            if self.write(key) {
                wrote.push(key);
            }
        }
    }

    /// Writes `key`'s pending bytes until done or the backend would block;
    /// true if anything was written.
    pub fn write(&mut self, key: usize) -> bool {
        let Some(b) = self.live.get_mut(&key) else {
            return false;
        };
        let mut wrote = false;
        while b.written < b.pending.len() {
            let chunk = &b.pending[b.written..];
            let result = match &mut b.link {
                Link::Process {
                    stdin: Some(stdin), ..
                } => stdin.write(chunk),
                Link::Tcp {
                    stream,
                    connected: true,
                } if b.end.is_none() => stream.write(chunk),
                _ => return wrote,
            };
            match result {
                Ok(n) => {
                    b.written += n;
                    wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A program that closed its stdin, or a backend that failed:
                    // what was queued cannot go anywhere.
                    debug!("bridge {key}: write: {e}");
                    b.pending = Vec::new();
                    b.written = 0;
                    match &mut b.link {
                        Link::Process { stdin, .. } => {
                            if let Some(mut s) = stdin.take() {
                                let _ = self.registry.deregister(&mut s);
                            }
                        }
                        Link::Tcp { .. } | Link::NotStarted => {
                            b.end.get_or_insert(BackendEnd::Reset(e.to_string()));
                            b.out_done = true;
                            self.ended.push(key);
                        }
                    }
                    return true;
                }
            }
        }
        if b.written == b.pending.len() {
            // All written: a large buffer is given back rather than kept idle.
            b.written = 0;
            if b.pending.capacity() > KEPT_CAPACITY {
                b.pending = Vec::new();
            } else {
                b.pending.clear();
            }
        } else if b.written > b.pending.len() / 2 {
            b.pending.drain(..b.written);
            b.written = 0;
        }
        wrote
    }

    /// A TCP backend's socket had an event: finishes connecting if it was.
    /// True if it is (now) connected and working.
    pub fn tcp_event(&mut self, key: usize) -> bool {
        let Some(b) = self.live.get_mut(&key) else {
            return false;
        };
        let Link::Tcp { stream, connected } = &mut b.link else {
            return true;
        };
        if *connected || b.end.is_some() {
            return b.end.is_none();
        }
        let failure = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e.to_string()),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(e) => Some(e.to_string()),
            },
        };
        match failure {
            None => {
                *connected = true;
                let _ = stream.set_nodelay(true);
                true
            }
            Some(e) => {
                b.end = Some(BackendEnd::Unavailable(e));
                b.out_done = true;
                self.ended.push(key);
                false
            }
        }
    }

    /// Reads `key`'s `stream` into `buf`.
    pub fn read(&mut self, key: usize, stream: Stream, buf: &mut [u8]) -> Output {
        let Some(b) = self.live.get_mut(&key) else {
            return Output::Gone;
        };
        let exited = b.end.is_some();
        let done = match stream {
            Stream::Out => &mut b.out_done,
            Stream::Err => &mut b.err_done,
        };
        if *done {
            return Output::Gone;
        }
        let result = match (&mut b.link, stream) {
            (
                Link::Process {
                    stdout: Some(p), ..
                },
                Stream::Out,
            ) => p.read(buf),
            (
                Link::Process {
                    stderr: Some(p), ..
                },
                Stream::Err,
            ) => p.read(buf),
            (
                Link::Tcp {
                    stream,
                    connected: true,
                },
                Stream::Out,
            ) => stream.read(buf),
            _ => return Output::Gone,
        };
        match result {
            Ok(0) => {
                *done = true;
                if let Link::Tcp { .. } = b.link {
                    b.end.get_or_insert(BackendEnd::Closed);
                }
                Output::End
            }
            Ok(n) => Output::Data(n),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                if exited {
                    // The program has exited and its pipe is empty: whatever
                    // still holds the pipe open (a grandchild) is not waited for.
                    *done = true;
                    Output::End
                } else {
                    Output::WouldBlock
                }
            }
            Err(e) => {
                *done = true;
                if let Link::Tcp { .. } = b.link {
                    b.end.get_or_insert(BackendEnd::Reset(e.to_string()));
                }
                Output::End
            }
        }
    }

    /// The unconsumed output of `key`'s `stream` (empty for a gone backend).
    pub fn tail(&mut self, key: usize, stream: Stream) -> Option<&mut Vec<u8>> {
        let b = self.live.get_mut(&key)?;
        Some(match stream {
            Stream::Out => &mut b.out_tail,
            Stream::Err => &mut b.err_tail,
        })
    }

    /// Marks `key`'s output as waiting for room in its connection's queue.
    pub fn pause_output(&mut self, key: usize) {
        if let Some(b) = self.live.get_mut(&key) {
            b.out_paused = true;
        }
    }

    /// Whether `key`'s output waits for room (and clears the mark).
    pub fn resume_output(&mut self, key: usize) -> bool {
        self.live
            .get_mut(&key)
            .is_some_and(|b| std::mem::take(&mut b.out_paused))
    }

    /// `key`'s program may have exited (its pidfd is readable, or a poll):
    /// reaps it and records how it ended.
    pub fn child_event(&mut self, key: usize) -> bool {
        let Some(b) = self.live.get_mut(&key) else {
            return false;
        };
        let Link::Process { child, stdin, .. } = &mut b.link else {
            return false;
        };
        let Some(status) = child.try_reap() else {
            return false;
        };
        use std::os::unix::process::ExitStatusExt;
        if let Some(mut s) = stdin.take() {
            let _ = self.registry.deregister(&mut s);
        }
        b.pending = Vec::new();
        b.written = 0;
        if let Some(fd) = child.pidfd() {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        }
        b.end.get_or_insert(BackendEnd::Exited {
            code: status.code(),
            signal: status.signal(),
        });
        true
    }

    /// How `key`'s backend ended, once its output is all handed over; once.
    pub fn take_end(&mut self, key: usize) -> Option<BackendEnd> {
        let b = self.live.get_mut(&key)?;
        if b.out_done && b.err_done {
            b.end.take()
        } else {
            None
        }
    }

    /// Whether backends ended outside an event of theirs.
    pub fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    /// Backends that ended outside an event of theirs, for the reactor.
    pub fn take_ended(&mut self, into: &mut Vec<usize>) {
        into.append(&mut self.ended);
    }

    /// `key`'s connection is over: a TCP backend gets what is queued (as far
    /// as it takes it now), its write side shut, and is closed; a program gets
    /// its stdin closed and is ended by the ladder unless it exits first.
    pub fn detach(&mut self, key: usize, now: Tick) {
        let Some(b) = self.live.remove(&key) else {
            return;
        };
        match b.link {
            Link::Tcp {
                mut stream,
                connected,
            } => {
                if connected && b.end.is_none() {
                    let _ = stream.write(&b.pending[b.written..]);
                    let _ = stream.shutdown(Shutdown::Write);
                }
                let _ = self.registry.deregister(&mut stream);
            }
            link @ Link::Process { .. } => self.retire(link, now),
            Link::NotStarted => {}
        }
    }

    /// Closes a program's pipes and, unless it was reaped, puts it on the ladder.
    fn retire(&mut self, link: Link, now: Tick) {
        let Link::Process {
            mut child,
            grace,
            stdin,
            stdout,
            stderr,
        } = link
        else {
            return;
        };
        if let Some(mut p) = stdin {
            let _ = self.registry.deregister(&mut p);
        }
        for mut p in stdout.into_iter().chain(stderr) {
            let _ = self.registry.deregister(&mut p);
        }
        if child.try_reap().is_some() {
            return;
        }
        let entry = self.ending.vacant_entry();
        let index = entry.key();
        let pid = child.pid();
        if let Some(fd) = child.pidfd() {
            let token = Source::EndingChild(index).token();
            let r = &self.registry;
            let moved = r
                .reregister(&mut SourceFd(&fd), token, Interest::READABLE)
                .or_else(|_| r.register(&mut SourceFd(&fd), token, Interest::READABLE));
            if moved.is_err() {
                self.timers.push(Reverse((
                    now + EXIT_POLL_TICKS,
                    Timer::Escalate { index, pid },
                )));
            }
        }
        entry.insert(Ending {
            child,
            grace,
            step: 0,
        });
        self.timers.push(Reverse((
            now + grace.max(1),
            Timer::Escalate { index, pid },
        )));
    }

    /// An ending child's pidfd is readable: reap it.
    pub fn ending_event(&mut self, index: usize) {
        let reaped = self
            .ending
            .get_mut(index)
            .is_some_and(|e| e.child.try_reap().is_some());
        if reaped {
            let ending = self.ending.remove(index);
            if let Some(fd) = ending.child.pidfd() {
                let _ = self.registry.deregister(&mut SourceFd(&fd));
            }
            debug!("bridge: child {} reaped", ending.child.pid());
        }
    }

    /// Acts on the timers that are due: connect timeouts become ends, ending
    /// children take their next signal, children without a pidfd are polled.
    /// Returns keys whose program may have exited.
    pub fn fire(&mut self, now: Tick, polled: &mut Vec<usize>) {
        while let Some(&Reverse((tick, timer))) = self.timers.peek() {
            if tick > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Connect { key, conn_id } => {
                    let Some(b) = self.live.get_mut(&key) else {
                        continue;
                    };
                    if b.conn_id == conn_id
                        && matches!(
                            b.link,
                            Link::Tcp {
                                connected: false,
                                ..
                            }
                        )
                        && b.end.is_none()
                    {
                        b.end = Some(BackendEnd::Unavailable("connect timeout".to_owned()));
                        b.out_done = true;
                        self.ended.push(key);
                    }
                }
                Timer::PollExit { key, conn_id } => {
                    if self
                        .live
                        .get(&key)
                        .is_some_and(|b| b.conn_id == conn_id && b.end.is_none())
                    {
                        polled.push(key);
                        self.timers.push(Reverse((now + EXIT_POLL_TICKS, timer)));
                    }
                }
                Timer::Escalate { index, pid } => self.escalate(index, pid, now),
            }
        }
    }

    fn escalate(&mut self, index: usize, pid: u32, now: Tick) {
        let Some(e) = self.ending.get_mut(index).filter(|e| e.child.pid() == pid) else {
            return;
        };
        if e.child.try_reap().is_some() {
            self.ending_event(index);
            return;
        }
        let has_pidfd = e.child.pidfd().is_some();
        let (signal, name) = match e.step {
            0 => (libc::SIGINT, "SIGINT"),
            1 => (libc::SIGTERM, "SIGTERM"),
            2 => (libc::SIGKILL, "SIGKILL"),
            _ => {
                // Killed already: only a child without a pidfd is polled.
                if !has_pidfd {
                    self.timers.push(Reverse((
                        now + EXIT_POLL_TICKS,
                        Timer::Escalate { index, pid },
                    )));
                }
                return;
            }
        };
        debug!("bridge: child {pid} still running: {name}");
        e.child.signal(signal);
        e.step += 1;
        let next = if e.step == 3 {
            EXIT_POLL_TICKS
        } else {
            e.grace.max(1)
        };
        if e.step < 3 || !has_pidfd {
            self.timers
                .push(Reverse((now + next, Timer::Escalate { index, pid })));
        }
    }

    /// The loop is stopping: every child left is killed and reaped now.
    pub fn kill_all(&mut self) {
        let keys: Vec<usize> = self.live.keys().copied().collect();
        for key in keys {
            if let Some(b) = self.live.remove(&key) {
                if let Link::Process { mut child, .. } = b.link {
                    child.kill_and_reap();
                }
            }
        }
        let left = self.ending.len();
        for mut e in self.ending.drain() {
            e.child.kill_and_reap();
        }
        if left > 0 {
            warn!("shutdown timeout: killed {left} programs still ending");
        }
    }
}
