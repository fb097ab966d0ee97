//! One program started for a process route: spawned with piped, non-blocking
//! stdin, stdout and stderr, in a process group of its own, with a pidfd that
//! becomes readable when it exits; signalled as a group; reaped.
//!
//! Owns the OS calls about a child. It must never decide when to signal or what
//! its output means (the bridge table and the route's handler do), and never
//! block: reaping is `try_wait` after the pidfd (or a timer) says it exited.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;

use mio::unix::pipe;

/// A running (or exited, not yet reaped) child.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    /// Readable once the child has exited; `None` where the kernel has no
    /// pidfd_open (before Linux 5.3): the bridge table then polls `try_reap`.
    pidfd: Option<OwnedFd>,
    /// The route's count of its programs, decremented when this is reaped.
    running: Rc<Cell<usize>>,
    reaped: Option<ExitStatus>,
}

/// The parent's ends of a child's standard streams.
#[derive(Debug)]
pub struct Pipes {
    pub stdin: pipe::Sender,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

impl Child {
    /// Starts `argv` with exactly `env`, in its own process group. Every other
    /// descriptor of wsd is close-on-exec, so the child inherits only its pipes.
    pub fn spawn(
        argv: &[String],
        cwd: Option<&std::path::Path>,
        env: &[(String, String)],
        running: Rc<Cell<usize>>,
    ) -> io::Result<(Child, Pipes)> {
        let Some((program, args)) = argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut process = command.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            // Cannot happen with all three piped; end the child rather than leak it.
            let _ = process.kill();
            let _ = process.wait();
            return Err(io::Error::other("child pipes missing"));
        };
        let pipes = Pipes {
            stdin: pipe::Sender::from(stdin),
            stdout: pipe::Receiver::from(stdout),
            stderr: pipe::Receiver::from(stderr),
        };
        pipes.stdin.set_nonblocking(true)?;
        pipes.stdout.set_nonblocking(true)?;
        pipes.stderr.set_nonblocking(true)?;
        let pidfd = pidfd_open(process.id());
        running.set(running.get() + 1);
        Ok((
            Child {
                process,
                pidfd,
                running,
                reaped: None,
            },
            pipes,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The descriptor to register for the exit event, if there is one.
    pub fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Sends `signal` to the child's process group (it and what it started),
    /// unless it has been reaped (its pid may belong to another process by then).
    pub fn signal(&self, signal: i32) {
        if self.reaped.is_some() {
            return;
        }
        let Ok(pid) = i32::try_from(self.process.id()) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals that process group; the
        // group is the child's own (process_group(0)) and it is not reaped.
        unsafe {
            libc::kill(-pid, signal);
        }
    }

    /// The exit status, if the child has exited; reaps it (once).
    pub fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            if let Ok(Some(status)) = self.process.try_wait() {
                self.reaped = Some(status);
                self.running.set(self.running.get().saturating_sub(1));
            }
        }
        self.reaped
    }

    /// Kills the group and waits for the child: only at the very end, when
    /// the loop is stopping and nothing else waits.
    pub fn kill_and_reap(&mut self) {
        if self.reaped.is_none() {
            self.signal(libc::SIGKILL);
            if let Ok(status) = self.process.wait() {
                self.reaped = Some(status);
                self.running.set(self.running.get().saturating_sub(1));
            }
        }
    }
}

/// A pidfd for `pid` (Linux 5.3 and later), or `None`.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor
    // or -1; a returned descriptor is ours alone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    let fd = RawFd::try_from(fd).ok()?;
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // pidfd_open sets close-on-exec itself (PIDFD_CLOEXEC is implied).
    Some(owned)
}
