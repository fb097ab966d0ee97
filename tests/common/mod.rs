//! Shared helpers for behaviour tests: start the real `wsd` binary on an ephemeral
//! loopback port with a given config, and stop it. Must never talk to anything but
//! loopback, and every wait here is bounded.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `wsd` process; killed when dropped.
pub struct Wsd {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stderr line the daemon printed so far arrives here.
    pub log: mpsc::Receiver<String>,
    pub dir: PathBuf,
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wsd-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

impl Wsd {
    /// Starts `wsd --config <config> --listen 127.0.0.1:0` and waits (at most 10 s)
    /// for its `listening on ADDR` log line. The config is written to a temp file;
    /// relative paths in it (e.g. a static root) are relative to the repository root.
    pub fn start(config_toml: &str) -> Wsd {
        Self::start_with_args(config_toml, &[])
    }

    pub fn start_with_args(config_toml: &str, extra: &[&str]) -> Wsd {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::start_as_configured(config_toml, &args)
    }

    /// Starts wsd on the config's own `listen` addresses (use port 0); `addr`
    /// is the first one it reports.
    pub fn start_as_configured(config_toml: &str, extra: &[&str]) -> Wsd {
        let dir = temp_dir("wsd");
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--config")
            .arg(&config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsd");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.split("listening on ").nth(1) {
                        let addr = addr.split_whitespace().next().unwrap_or("");
                        if let Ok(addr) = addr.parse() {
                            return Wsd {
                                child,
                                addr,
                                log: rx,
                                dir,
                            };
                        }
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "wsd did not report a listening address within 10 s \
                         (the config's log level must be info or more verbose)"
                    );
                }
            }
        }
    }

    /// `ws://ADDR/PATH`
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Waits (bounded) for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Wsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
