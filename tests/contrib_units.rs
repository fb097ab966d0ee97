//! Checks the systemd units in `contrib/` by reading them (CI also runs
//! `systemd-analyze verify` where systemd is installable): every line sits in
//! a section, the service restarts on failure, reloads with SIGHUP, raises the
//! descriptor limit and is hardened, its command lines use flags wsd accepts,
//! and the socket unit listens somewhere.
//!
//! Owns assertions on the unit files' text. It must never start, enable or
//! reload a unit.

use std::collections::BTreeMap;
use std::process::Command;

/// Section name -> every `key=value` in it, in order.
fn parse(path: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("{path}:{}: outside a section", n + 1));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}:{}: not key=value: {line}", n + 1));
        sections
            .get_mut(&section)
            .expect("section")
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

fn value<'a>(
    units: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> &'a str {
    units
        .get(section)
        .and_then(|s| s.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("[{section}] {key} missing"))
}

#[test]
fn the_service_unit_is_complete_and_hardened() {
    let unit = parse("contrib/wsd.service");
    for section in ["Unit", "Service", "Install"] {
        assert!(unit.contains_key(section), "[{section}] missing");
    }
    assert_eq!(value(&unit, "Service", "Restart"), "on-failure");
    assert_eq!(
        value(&unit, "Service", "ExecReload"),
        "/bin/kill -HUP $MAINPID"
    );
    let nofile: u64 = value(&unit, "Service", "LimitNOFILE")
        .parse()
        .expect("a number");
    assert!(nofile >= 65_536, "{nofile}");
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("DynamicUser", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(value(&unit, "Service", key), expected, "{key}");
    }
    assert_eq!(value(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn the_service_command_lines_use_flags_wsd_accepts() {
    let unit = parse("contrib/wsd.service");
    let config = format!("{}/config.toml", env!("CARGO_MANIFEST_DIR"));
    for key in ["ExecStartPre", "ExecStart"] {
        let line = value(&unit, "Service", key);
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/wsd"), "{key}");
        let args: Vec<String> = words
            .map(|w| w.replace("/etc/wsd/config.toml", &config))
            .collect();
        // The same flags against the shipped config; --check-config makes
        // ExecStart's flags return at once instead of serving.
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsd"));
        command.args(&args);
        if key == "ExecStart" {
            command.args(["--check-config", &config]);
        }
        let out = command.output().expect("run wsd");
        assert!(
            out.status.success(),
            "{key}: wsd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_socket_unit_listens_and_names_its_socket() {
    let unit = parse("contrib/wsd.socket");
    let listen = value(&unit, "Socket", "ListenStream");
    assert!(listen.parse::<std::net::SocketAddr>().is_ok(), "{listen}");
    assert_eq!(value(&unit, "Socket", "FileDescriptorName"), "ws");
    assert_eq!(value(&unit, "Install", "WantedBy"), "sockets.target");
}
