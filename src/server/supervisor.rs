//! `[server] workers` > 1: the supervisor process, and a worker's side of the
//! hand-over. The supervisor resolves every configured port 0 to one concrete
//! port (a bound, never listening SO_REUSEPORT socket it keeps open), starts
//! N copies of its own binary with the same arguments and the `WSD_WORKER*`
//! variables, restarts a worker that dies with backoff, and passes SIGTERM,
//! SIGINT and SIGHUP on to every worker. A worker reads the hand-over once at
//! start, binds its listeners with SO_REUSEPORT, and says when it is up.
//!
//! Owns the worker processes and the hand-over variables. It must never
//! accept a connection, start a thread, or let SO_REUSEPORT reach a process
//! that is not a worker (a stray second daemon must still fail to bind).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::unix::pipe;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, Workers};
use crate::logging;
use crate::server::listener::ListenerKind;
use crate::server::{activation, connection_limit, fdlimit, reload, ConfigSource};

/// The worker's number, 1 to N; its presence makes the process a worker.
const ENV_WORKER: &str = "WSD_WORKER";
/// The supervisor's pid: a worker checks it is its parent.
const ENV_SUPERVISOR: &str = "WSD_SUPERVISOR_PID";
/// The concrete ports the supervisor chose for configured port 0s ([`PortMap`]).
const ENV_PORTS: &str = "WSD_WORKER_PORTS";
/// The descriptor of the pipe a worker writes one byte to once it is up.
const ENV_READY: &str = "WSD_WORKER_READY";

/// A dead worker is started again after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that ran this long before dying starts over at [`FIRST_BACKOFF`].
const STEADY: Duration = Duration::from_secs(30);

const SIGNALS: Token = Token(0);

static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a worker of a multi-worker daemon: only then are
/// listeners bound with SO_REUSEPORT.
pub fn in_worker() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

fn kind_name(kind: ListenerKind) -> &'static str {
    match kind {
        ListenerKind::Plain => "listen",
        ListenerKind::Tls => "listen_tls",
        ListenerKind::Metrics => "metrics",
    }
}

/// The concrete address the supervisor chose for each configured address
/// with port 0, by kind. The n-th port-0 entry of a kind and address takes
/// the n-th resolution of that kind and address; other entries are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMap {
    entries: Vec<(ListenerKind, SocketAddr, SocketAddr)>,
}

impl PortMap {
    /// `kind=configured=concrete` entries, comma-separated.
    fn encode(&self) -> String {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(kind, from, to)| format!("{}={from}={to}", kind_name(*kind)))
            .collect();
        parts.join(",")
    }

    fn decode(text: &str) -> Result<PortMap, String> {
        let mut entries = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let bad = || format!("{ENV_PORTS}: {part:?} is not kind=address=address");
            let mut fields = part.split('=');
            let kind = match fields.next() {
                Some("listen") => ListenerKind::Plain,
                Some("listen_tls") => ListenerKind::Tls,
                Some("metrics") => ListenerKind::Metrics,
                _ => return Err(bad()),
            };
            let from = fields.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let to = fields.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            if fields.next().is_some() {
                return Err(bad());
            }
            entries.push((kind, from, to));
        }
        Ok(PortMap { entries })
    }

    /// Puts the chosen ports into `config`'s `listen`, `listen_tls` and
    /// `[metrics] listen` (their PROXY settings stay). A port 0 the
    /// supervisor did not resolve (added by a reload) is an error: each
    /// worker would pick a port of its own.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        let mut used = vec![false; self.entries.len()];
        let server = &mut config.server;
        let plain = server
            .listen
            .iter_mut()
            .map(|a| (ListenerKind::Plain, &mut a.addr));
        let tls = server
            .listen_tls
            .iter_mut()
            .map(|a| (ListenerKind::Tls, &mut a.addr));
        let metrics = config
            .metrics
            .listen
            .iter_mut()
            .map(|a| (ListenerKind::Metrics, &mut a.addr));
        for (kind, addr) in plain.chain(tls).chain(metrics) {
            if addr.port() != 0 {
                continue;
            }
            let found = self
                .entries
                .iter()
                .enumerate()
                .position(|(i, (k, from, _))| !used[i] && *k == kind && from == addr);
            let Some(i) = found else {
                return Err(format!(
                    "{} {addr}: a port 0 the workers did not start with cannot be shared \
                     between them; name a port, or restart wsd",
                    kind_name(kind)
                ));
            };
            used[i] = true;
            *addr = self.entries[i].2;
        }
        Ok(())
    }
}

/// This process's part as a worker, read from the supervisor's variables.
#[derive(Debug)]
pub struct Worker {
    /// 1 to N.
    pub index: usize,
    /// Applied to the config at start and on every reload.
    pub ports: PortMap,
    ready: Option<File>,
}

impl Worker {
    /// `Some` if the supervisor started this process as a worker. Clears the
    /// variables (children must not see them), makes the worker get SIGTERM
    /// if the supervisor dies, and turns SO_REUSEPORT on for this process.
    pub fn from_env() -> Result<Option<Worker>, String> {
        let Some(index) = std::env::var_os(ENV_WORKER) else {
            return Ok(None);
        };
        let take = |name: &str| {
            let value = std::env::var(name).ok();
            std::env::remove_var(name);
            value
        };
        let _ = take(ENV_WORKER);
        let (supervisor, ports, ready) = (take(ENV_SUPERVISOR), take(ENV_PORTS), take(ENV_READY));
        let index = index
            .to_str()
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i >= 1)
            .ok_or_else(|| format!("{ENV_WORKER}={index:?} is not a worker number"))?;
        let supervisor: libc::pid_t = supervisor
            .as_deref()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{ENV_WORKER} is set without {ENV_SUPERVISOR}"))?;
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's own
        // parent-death signal.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
        }
        // Checked after the prctl: a supervisor that died before it would
        // otherwise go unnoticed.
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != supervisor {
            return Err(format!(
                "{ENV_WORKER} is set but the parent is not the wsd supervisor (pid {supervisor}): \
                 the WSD_WORKER* variables are wsd's own"
            ));
        }
        let ports = PortMap::decode(ports.as_deref().unwrap_or(""))?;
        let ready = match ready {
            Some(fd) => Some(adopt_ready_pipe(&fd)?),
            None => None,
        };
        IN_WORKER.store(true, Ordering::Relaxed);
        Ok(Some(Worker {
            index,
            ports,
            ready,
        }))
    }

    /// Tells the supervisor this worker is serving.
    pub fn started(&mut self) {
        if let Some(mut pipe) = self.ready.take() {
            if let Err(e) = pipe.write_all(b"1") {
                warn!("cannot tell the supervisor this worker is up: {e}");
            }
        }
    }
}

/// Takes the write end of the readiness pipe the supervisor left open at `fd`.
fn adopt_ready_pipe(fd: &str) -> Result<File, String> {
    let bad = || format!("{ENV_READY}={fd:?} is not an inherited pipe");
    let fd: RawFd = fd.parse().ok().filter(|&fd| fd > 2).ok_or_else(bad)?;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes into `stat` only; a descriptor that is not open
    // makes it fail, and `stat` is read only after it succeeded.
    let is_pipe = unsafe {
        libc::fstat(fd, stat.as_mut_ptr()) == 0
            && (stat.assume_init().st_mode & libc::S_IFMT) == libc::S_IFIFO
    };
    if !is_pipe {
        return Err(bad());
    }
    // SAFETY: the supervisor left this pipe open at `fd` for this process
    // alone (it closed its own copy once the worker was spawned), it is a
    // pipe (checked above), and it is taken exactly once, here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(owned.as_raw_fd(), true).map_err(|e| format!("{ENV_READY}: {e}"))?;
    Ok(File::from(owned))
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns; a failure changes nothing.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Binds (never listens on) `addr` with SO_REUSEPORT: the port is the
/// workers' to share, and no connection can arrive on this socket.
fn hold(addr: SocketAddr) -> io::Result<(Socket, SocketAddr)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;
    Ok((socket, local))
}

/// Resolves every configured port 0 to a port held by the supervisor.
fn reserve(config: &Config) -> Result<(PortMap, Vec<Socket>), String> {
    let mut map = PortMap::default();
    let mut held = Vec::new();
    for (addr, kind, _) in reload::wanted(config) {
        if addr.port() != 0 {
            continue;
        }
        let (socket, local) = hold(addr)
            .map_err(|e| format!("cannot reserve a port for {} {addr}: {e}", kind_name(kind)))?;
        map.entries.push((kind, addr, local));
        held.push(socket);
    }
    Ok((map, held))
}

/// One worker's place: its process (if running) and its restart schedule.
struct Slot {
    child: Option<Child>,
    /// The read end of its readiness pipe, until it says it is up or closes.
    ready_pipe: Option<pipe::Receiver>,
    ready: bool,
    /// A SIGHUP came while it was starting: sent once it is up.
    hup_pending: bool,
    launches: u32,
    launched_at: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// How to start a worker.
struct Launch {
    exe: PathBuf,
    arg0: OsString,
    args: Vec<OsString>,
    ports: String,
    pid: u32,
}

struct Supervisor {
    poll: Poll,
    signals: Signals,
    launch: Launch,
    slots: Vec<Slot>,
    /// The signal that started the stop.
    stopping: Option<i32>,
    /// Why the supervisor stops with an error (logged when it happened).
    failure: Option<String>,
    announced: bool,
    /// What the workers serve, for the "ready" line.
    serving: String,
    source: Option<ConfigSource>,
}

/// Runs the supervisor of `config.server.workers` workers until they have all
/// exited after SIGTERM or SIGINT. `source` re-reads the config on SIGHUP
/// (for the supervisor's own `[log]`; the workers read it themselves). An
/// error means a worker could not be started, worded for an operator.
pub fn supervise(config: &Config, source: Option<ConfigSource>) -> Result<(), String> {
    let count = config.server.workers.resolve();
    if activation::offered() {
        return Err(
            "socket activation (LISTEN_FDS) does not work with [server] workers > 1: \
             set workers = 1, or start wsd without the .socket unit"
                .into(),
        );
    }
    let limit = fdlimit::raise_to_hard_limit().map_err(|e| format!("getrlimit: {e}"))?;
    let per_worker = connection_limit(config.server.max_connections, limit.connection_ceiling());
    let (ports, _held) = reserve(config)?;
    let mut resolved = config.clone();
    ports.apply(&mut resolved)?;
    let serving: Vec<String> = reload::wanted(&resolved)
        .into_iter()
        .map(|(addr, kind, _)| match kind {
            ListenerKind::Plain => addr.to_string(),
            ListenerKind::Tls => format!("{addr} (TLS)"),
            ListenerKind::Metrics => format!("{addr} (metrics, per worker)"),
        })
        .collect();
    // The running binary itself, even if a newer one was installed since.
    let proc_exe = PathBuf::from("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe()
            .map_err(|e| format!("cannot find wsd's own binary to start workers: {e}"))?
    };
    let mut argv = std::env::args_os();
    let arg0 = argv.next().unwrap_or_else(|| "wsd".into());
    let poll = Poll::new().map_err(|e| format!("event loop: {e}"))?;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGCHLD])
        .map_err(|e| format!("signal handlers: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("event loop: {e}"))?;
    let setting = match config.server.workers {
        Workers::Auto => "auto".to_owned(),
        Workers::Count(n) => n.to_string(),
    };
    info!(
        "wsd {} started: {count} workers (workers = {setting}), connection capacity \
         {count} x {per_worker} = {} (fd limit soft {} hard {} per worker), SO_REUSEPORT",
        env!("CARGO_PKG_VERSION"),
        count.saturating_mul(per_worker),
        limit.soft,
        limit.hard,
    );
    for (kind, from, to) in &ports.entries {
        info!("{} {from}: every worker uses {to}", kind_name(*kind));
    }
    let now = Instant::now();
    let slots = (0..count)
        .map(|_| Slot {
            child: None,
            ready_pipe: None,
            ready: false,
            hup_pending: false,
            launches: 0,
            launched_at: now,
            backoff: FIRST_BACKOFF,
            restart_at: None,
        })
        .collect();
    let mut supervisor = Supervisor {
        poll,
        signals,
        launch: Launch {
            exe,
            arg0,
            args: argv.collect(),
            ports: ports.encode(),
            pid: std::process::id(),
        },
        slots,
        stopping: None,
        failure: None,
        announced: false,
        serving: serving.join(", "),
        source,
    };
    supervisor.run()
}

impl Supervisor {
    fn run(&mut self) -> Result<(), String> {
        for i in 0..self.slots.len() {
            match self.start(i) {
                Ok(pid) => info!("worker {} started (pid {pid})", i + 1),
                Err(e) => {
                    self.fail(format!("cannot start worker {}: {e}", i + 1));
                    break;
                }
            }
        }
        let mut events = Events::with_capacity(64);
        while self
            .slots
            .iter()
            .any(|s| s.child.is_some() || s.restart_at.is_some())
        {
            let timeout = self
                .slots
                .iter()
                .filter_map(|s| s.restart_at)
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The workers get SIGTERM when this process is gone.
                return Err(format!("event loop failed: {e}"));
            }
            let mut signalled = false;
            let woken: Vec<Token> = events.iter().map(|e| e.token()).collect();
            for token in woken {
                match token {
                    SIGNALS => signalled = true,
                    Token(n) => self.check_ready(n - 1),
                }
            }
            if signalled {
                self.handle_signals();
            }
            self.reap();
            self.restart_due();
        }
        match self.failure.take() {
            Some(_) => Err("a worker could not be started; exiting".into()),
            None => {
                info!("all workers exited");
                Ok(())
            }
        }
    }

    /// Starts worker `i + 1`; returns its pid.
    fn start(&mut self, i: usize) -> io::Result<u32> {
        let (sender, mut receiver) = pipe::new()?;
        // The worker inherits the write end; the supervisor's copy is closed
        // right after the spawn, so no other child gets it.
        set_cloexec(sender.as_raw_fd(), false)?;
        let spawned = Command::new(&self.launch.exe)
            .arg0(&self.launch.arg0)
            .args(&self.launch.args)
            .env(ENV_WORKER, (i + 1).to_string())
            .env(ENV_SUPERVISOR, self.launch.pid.to_string())
            .env(ENV_PORTS, &self.launch.ports)
            .env(ENV_READY, sender.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .spawn();
        drop(sender);
        let child = spawned?;
        let pid = child.id();
        let registered =
            self.poll
                .registry()
                .register(&mut receiver, Token(i + 1), Interest::READABLE);
        let slot = &mut self.slots[i];
        if let Err(e) = registered {
            // It runs, but its readiness cannot be heard: count it as up.
            warn!("worker {}: readiness pipe: {e}", i + 1);
            slot.ready = true;
        } else {
            slot.ready_pipe = Some(receiver);
            slot.ready = false;
        }
        slot.child = Some(child);
        slot.launches += 1;
        slot.launched_at = Instant::now();
        slot.restart_at = None;
        Ok(pid)
    }

    /// Reads worker `i + 1`'s readiness pipe: a byte means it is up.
    fn check_ready(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let Some(receiver) = slot.ready_pipe.as_mut() else {
            return;
        };
        let mut byte = [0u8; 8];
        let up = loop {
            match receiver.read(&mut byte) {
                Ok(0) => break false,
                Ok(_) => break true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("worker {}: readiness pipe: {e}", i + 1);
                    break false;
                }
            }
        };
        if let Some(mut receiver) = slot.ready_pipe.take() {
            let _ = self.poll.registry().deregister(&mut receiver);
        }
        if !up {
            return;
        }
        slot.ready = true;
        if std::mem::take(&mut slot.hup_pending) {
            if let Some(child) = &slot.child {
                send(child, SIGHUP);
            }
        }
        if !self.announced && self.slots.iter().all(|s| s.ready) {
            self.announced = true;
            info!("{} workers ready on {}", self.slots.len(), self.serving);
        }
    }

    fn handle_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGTERM | SIGINT => {
                    let live = self.slots.iter().filter(|s| s.child.is_some()).count();
                    if self.stopping.is_none() {
                        info!("signal {signal}: stopping, passing it to {live} workers");
                    } else {
                        info!("signal {signal} again: passing it to {live} workers");
                    }
                    self.stopping = Some(signal);
                    for slot in &mut self.slots {
                        slot.restart_at = None;
                        if let Some(child) = &slot.child {
                            send(child, signal);
                        }
                    }
                }
                SIGHUP => self.hangup(),
                _ => {}
            }
        }
    }

    /// SIGHUP: reopens the supervisor's own log and passes the signal to
    /// every worker that is up (one still starting gets it once it is).
    fn hangup(&mut self) {
        if let Some(source) = &self.source {
            match source() {
                Ok((config, _)) => {
                    if let Err(e) = logging::reload(&config.log) {
                        warn!("SIGHUP: {e}");
                    }
                    let wanted = config.server.workers.resolve();
                    if wanted != self.slots.len() {
                        info!(
                            "SIGHUP: workers = {wanted} takes effect when wsd restarts; \
                             {} workers go on",
                            self.slots.len()
                        );
                    }
                }
                Err(e) => warn!("SIGHUP: the config does not read, the workers keep theirs: {e}"),
            }
        }
        let mut passed = 0;
        for slot in &mut self.slots {
            let Some(child) = &slot.child else {
                continue;
            };
            if slot.ready {
                send(child, SIGHUP);
                passed += 1;
            } else {
                slot.hup_pending = true;
            }
        }
        info!("SIGHUP: passed to {passed} workers");
    }

    /// Collects every worker that has exited.
    fn reap(&mut self) {
        for i in 0..self.slots.len() {
            let Some(child) = self.slots[i].child.as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => self.exited(i, Some(status)),
                Err(e) => {
                    warn!("worker {}: waitpid: {e}", i + 1);
                    self.exited(i, None);
                }
            }
        }
    }

    fn exited(&mut self, i: usize, status: Option<ExitStatus>) {
        // A byte written just before exiting still counts.
        self.check_ready(i);
        let n = i + 1;
        let slot = &mut self.slots[i];
        let pid = slot.child.take().map_or(0, |c| c.id());
        if let Some(mut receiver) = slot.ready_pipe.take() {
            let _ = self.poll.registry().deregister(&mut receiver);
        }
        let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
        if self.stopping.is_some() || self.failure.is_some() {
            info!("worker {n} (pid {pid}) exited: {status}");
            return;
        }
        if slot.launches == 1 && !slot.ready {
            self.fail(format!(
                "worker {n} (pid {pid}) exited before it was up ({status}); its lines above say why"
            ));
            return;
        }
        let ran = slot.launched_at.elapsed();
        if ran >= STEADY {
            slot.backoff = FIRST_BACKOFF;
        }
        let delay = slot.backoff;
        slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
        slot.restart_at = Some(Instant::now() + delay);
        slot.ready = false;
        slot.hup_pending = false;
        warn!(
            "worker {n} (pid {pid}) exited unexpectedly ({status}) after {} ms; restarting in {} ms",
            ran.as_millis(),
            delay.as_millis()
        );
    }

    /// Starts again every worker whose backoff has passed.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].restart_at.is_none_or(|at| at > now) {
                continue;
            }
            match self.start(i) {
                Ok(pid) => info!("worker {} restarted (pid {pid})", i + 1),
                Err(e) => {
                    let slot = &mut self.slots[i];
                    let delay = slot.backoff;
                    slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
                    slot.restart_at = Some(now + delay);
                    error!(
                        "worker {} cannot be restarted: {e}; trying again in {} ms",
                        i + 1,
                        delay.as_millis()
                    );
                }
            }
        }
    }

    /// Gives up: every worker is stopped and the supervisor exits 1 with
    /// `why` once they are gone.
    fn fail(&mut self, why: String) {
        let live = self.slots.iter().filter(|s| s.child.is_some()).count();
        error!("{why}; stopping the {live} other workers");
        self.failure.get_or_insert(why);
        for slot in &mut self.slots {
            slot.restart_at = None;
            if let Some(child) = &slot.child {
                send(child, SIGTERM);
            }
        }
    }
}

/// Sends `signal` to a worker that has not been reaped (so its pid is still
/// its own).
fn send(child: &Child, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill only sends a signal; `pid` is an unreaped child of this
    // process, so it names no other process.
    if unsafe { libc::kill(pid, signal) } != 0 {
        warn!(
            "cannot send signal {signal} to pid {pid}: {}",
            io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ListenAddr, ProxyProtocol};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn port_map_round_trips_and_fills_port_zero_by_kind_and_order() {
        let map = PortMap {
            entries: vec![
                (
                    ListenerKind::Plain,
                    addr("127.0.0.1:0"),
                    addr("127.0.0.1:4001"),
                ),
                (
                    ListenerKind::Plain,
                    addr("127.0.0.1:0"),
                    addr("127.0.0.1:4002"),
                ),
                (ListenerKind::Tls, addr("[::1]:0"), addr("[::1]:4003")),
                (
                    ListenerKind::Metrics,
                    addr("127.0.0.1:0"),
                    addr("127.0.0.1:4004"),
                ),
            ],
        };
        assert_eq!(PortMap::decode(&map.encode()).unwrap(), map);
        assert_eq!(PortMap::decode("").unwrap(), PortMap::default());
        assert!(PortMap::decode("listen=127.0.0.1:0").is_err());

        let mut config = Config::builtin();
        config.server.listen = vec![
            ListenAddr {
                addr: addr("127.0.0.1:0"),
                proxy_protocol: ProxyProtocol::V2,
            },
            ListenAddr::plain(addr("127.0.0.1:9001")),
            ListenAddr::plain(addr("127.0.0.1:0")),
        ];
        config.server.listen_tls = vec![ListenAddr::plain(addr("[::1]:0"))];
        config.metrics.listen = Some(ListenAddr::plain(addr("127.0.0.1:0")));
        map.apply(&mut config).unwrap();
        let listen: Vec<_> = config.server.listen.iter().map(|a| a.addr).collect();
        assert_eq!(
            listen,
            [
                addr("127.0.0.1:4001"),
                addr("127.0.0.1:9001"),
                addr("127.0.0.1:4002")
            ]
        );
        assert_eq!(config.server.listen[0].proxy_protocol, ProxyProtocol::V2);
        assert_eq!(config.server.listen_tls[0].addr, addr("[::1]:4003"));
        assert_eq!(
            config.metrics.listen.map(|a| a.addr),
            Some(addr("127.0.0.1:4004"))
        );

        // A port 0 the supervisor never saw (a reload added it) is refused.
        let mut more = Config::builtin();
        more.server.listen = vec![ListenAddr::plain(addr("127.0.0.2:0"))];
        let error = map.apply(&mut more).unwrap_err();
        assert!(error.contains("127.0.0.2:0"), "{error}");
    }

    #[test]
    fn a_held_port_is_bound_but_refuses_connections() {
        let (socket, local) = hold(addr("127.0.0.1:0")).unwrap();
        assert_ne!(local.port(), 0);
        assert!(std::net::TcpStream::connect(local).is_err());
        drop(socket);
    }
}
