//! systemd socket activation: listening sockets handed over at start
//! (`LISTEN_PID`, `LISTEN_FDS`, optionally `LISTEN_FDNAMES`, descriptors from
//! 3 on), served instead of binding. A socket named `tls` serves wss:// and
//! https://, one named `metrics` the operator endpoints; any other name is a
//! plain listener. The config's addresses of a kind systemd provides are not
//! bound (a reload keeps the inherited sockets).
//!
//! Owns reading that hand-over once. It must never take a descriptor meant
//! for another process (`LISTEN_PID` must be ours) or one that is not a
//! listening TCP socket, and it clears the variables so children do not
//! inherit them.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};

use crate::config::ProxyProtocol;
use crate::server::listener::{Listener, ListenerKind};

/// The first descriptor systemd passes.
const FIRST_FD: RawFd = 3;

/// Whether systemd handed sockets to this process (`LISTEN_PID` is ours and
/// `LISTEN_FDS` is set); reads the variables without taking anything.
pub fn offered() -> bool {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    ours && std::env::var_os("LISTEN_FDS").is_some()
}

/// The listeners systemd handed over, if it did; an error names the
/// descriptor that cannot be used.
pub fn inherited_listeners() -> Result<Vec<Listener>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    // The hand-over is ours: children must not see it.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let count: RawFd = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))?;
    if !(0..=64).contains(&count) {
        return Err(format!("LISTEN_FDS={count}: expected 0 to 64 sockets"));
    }
    let names: Vec<String> = names
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut listeners = Vec::new();
    for i in 0..count {
        let fd = FIRST_FD + i;
        let name = names.get(i as usize).map_or("", String::as_str);
        listeners.push(adopt(fd, name)?);
    }
    Ok(listeners)
}

/// Takes descriptor `fd` as a listener of the kind `name` says.
fn adopt(fd: RawFd, name: &str) -> Result<Listener, String> {
    if !is_listening_tcp(fd) {
        return Err(format!(
            "inherited descriptor {fd} ({name:?}) is not a listening TCP socket"
        ));
    }
    // SAFETY: systemd passed `fd` to this process (LISTEN_PID is ours), it is
    // a listening socket (checked above), and nothing else in the process
    // owns it: it is taken exactly once, here.
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("inherited descriptor {fd}: {e}"))?;
    set_cloexec(fd);
    let addr: SocketAddr = std_listener
        .local_addr()
        .map_err(|e| format!("inherited descriptor {fd}: {e}"))?;
    let kind = match name {
        "tls" => ListenerKind::Tls,
        "metrics" => ListenerKind::Metrics,
        _ => ListenerKind::Plain,
    };
    Ok(Listener {
        socket: mio::net::TcpListener::from_std(std_listener),
        addr,
        kind,
        proxy: ProxyProtocol::Off,
        tls: None,
        inherited: true,
    })
}

fn is_listening_tcp(fd: RawFd) -> bool {
    let get = |opt: libc::c_int| -> Option<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`; a bad
        // descriptor only makes it fail.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    get(libc::SO_ACCEPTCONN) == Some(1) && get(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns; failure leaves it as is.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}
