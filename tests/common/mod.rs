//! Shared helpers for the integration tests: network namespaces with RAII cleanup, veth links, packet
//! captures kept on failure, and the root/skip policy.
//!
//! Policy: a test that needs root calls [`netns_available`]. Without root it is skipped with a message,
//! unless `LIFELINE_REQUIRE_NETNS=1` (CI sets it), in which case it fails: CI must never pass by skipping.
#![allow(dead_code)]

pub mod dnsmasq;
pub mod guest;
pub mod kamailio;
pub mod lifeline;
pub mod strongswan;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// True when namespace tests can run here. Panics when they cannot but `LIFELINE_REQUIRE_NETNS=1`.
pub fn netns_available(test: &str) -> bool {
    let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let root = is_root();
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    let why = if !root {
        "not running as root"
    } else {
        "iproute2 (`ip`) is missing"
    };
    if required {
        panic!("{test}: LIFELINE_REQUIRE_NETNS=1 but {why}");
    }
    eprintln!("SKIP {test}: {why} (set LIFELINE_REQUIRE_NETNS=1 to make this a failure)");
    false
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Run a command, panic with its output if it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with its interfaces) when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("ll-{role}-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside this namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run argv inside the namespace; panic on failure.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..]);
        sh(&mut c)
    }

    /// Run argv inside the namespace; return whether it succeeded.
    pub fn try_run(&self, argv: &[&str]) -> bool {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().is_ok_and(|s| s.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Connect two namespaces with a veth pair and give each end an address (`a/len`).
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    sh(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]));
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.run(&["ip", "addr", "add", addr, "dev", ifname]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
}

/// A tcpdump capture in a namespace. The pcap is kept (and its path printed) only if the test panics.
pub struct Capture {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Capture {
    pub fn start(ns: &Netns, ifname: &str, label: &str) -> Option<Capture> {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pcaps");
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(format!("{label}-{}.pcap", ns.name));
        let child = ns
            .cmd("tcpdump")
            // `--immediate-mode`: without it libpcap hands packets over in ring blocks (up to ~1 s late),
            // and a packet sent just before `finish` (a BYE at the idle timer) never reached the file.
            .args(["-i", ifname, "--immediate-mode", "-U", "-n", "-w"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Capture {
            child: Some(child),
            path,
        })
    }
}

impl Capture {
    /// Stop capturing and keep the file (the caller reads it, e.g. with tshark).
    pub fn finish(mut self) -> PathBuf {
        if let Some(mut c) = self.child.take() {
            // SIGINT lets tcpdump flush its buffer.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        let p = self.path.clone();
        self.path = PathBuf::new();
        p
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("capture kept for the failed test: {}", self.path.display());
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A child process killed when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two sites on one veth: namespaces `{label}A` and `{label}B` with WANs `a_wan`/`b_wan` (/24) on `eth0`
/// and LAN addresses `a_lan`/`b_lan` (/24) on `lo`. B routes into a tunnel device that is not its WAN
/// (strongSwan's `ipsec0`), so its reverse-path filter is off.
pub fn wan_pair(label: &str, a_wan: &str, a_lan: &str, b_wan: &str, b_lan: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{label}A"));
    let b = Netns::new(&format!("{label}B"));
    veth(
        &a,
        "eth0",
        &format!("{a_wan}/24"),
        &b,
        "eth0",
        &format!("{b_wan}/24"),
    );
    a.run(&["ip", "addr", "add", &format!("{a_lan}/24"), "dev", "lo"]);
    b.run(&["ip", "addr", "add", &format!("{b_lan}/24"), "dev", "lo"]);
    b.run(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    (a, b)
}

/// One ping a second from `src` to `dst` in `ns` until one is answered; returns how long that took.
/// Panics after `limit`.
pub fn ping_until(
    ns: &Netns,
    src: &str,
    dst: &str,
    limit: std::time::Duration,
) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    loop {
        if ns.try_run(&["ping", "-c", "1", "-W", "1", "-I", src, dst]) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "no answer from {dst} within {limit:?}"
        );
    }
}

/// Path of a fixture under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
