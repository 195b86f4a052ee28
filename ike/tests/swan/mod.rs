//! strongSwan harness for the `ike` crate's interop tests (`strongswan.rs`, `v1_strongswan.rs`,
//! `sa_rate.rs`): network namespaces with RAII clean-up, veth links, a private charon per namespace, and
//! the re-run of the test binary inside a namespace (the library does no I/O; a test may, but it must
//! be *inside* the namespace to bind there).
//!
//! Everything it needs is in this crate (`tests/interop/strongswan.conf`, `tests/data/`), so the tests
//! run from any checkout; only the Debian packages are required (strongswan-charon, strongswan-swanctl,
//! libcharon-extra-plugins for kernel-libipsec, libstrongswan-standard-plugins for openssl/gcm,
//! strongswan-pki for the certificate tests, nftables for the NAT test). Modelled on the appliance's
//! `tests/common/{mod,strongswan}.rs`.
//!
//! Policy: without root or strongSwan a test prints SKIP and passes, unless `LIFELINE_REQUIRE_NETNS=1`
//! (CI), where it fails.
//!
//! How charons are kept apart: each runs in its own mount namespace (`unshare --mount`) in which its
//! state directory is bind-mounted on `/run` (charon hard-codes `/run/charon.pid`); the vici socket and
//! the log land there. swanctl runs outside with `--uri`.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian installs charon.
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// Set in the re-run process: which inner test runs, and where charon's state directory is.
pub const INNER_ENV: &str = "LIFELINE_IKE_SWAN_INNER";
pub const STATE_ENV: &str = "LIFELINE_IKE_SWAN_STATE";

/// True when namespace tests with strongSwan can run. Prints SKIP and returns false, or panics when
/// `LIFELINE_REQUIRE_NETNS=1`. Always false inside a re-run (the outer test is the one that checks).
pub fn available(test: &str, needs: &[&str]) -> bool {
    if std::env::var(INNER_ENV).is_ok() {
        return false;
    }
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_string());
    }
    if !Path::new(CHARON).exists() {
        missing.push(CHARON.to_string());
    }
    for b in ["ip", "swanctl", "unshare"].iter().chain(needs) {
        if !on_path(b) {
            missing.push((*b).to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    if std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{test}: LIFELINE_REQUIRE_NETNS=1 but {why}");
    }
    eprintln!("SKIP {test}: {why} (set LIFELINE_REQUIRE_NETNS=1 to make this a failure)");
    false
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `tests/data/NAME` of this crate.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
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
        let name = format!("lli-{role}-{}-{n}", std::process::id());
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

    /// Run argv inside the namespace; whether it succeeded.
    pub fn try_run(&self, argv: &[&str]) -> bool {
        let mut c = self.cmd(argv[0]);
        c.args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().is_ok_and(|s| s.success())
    }

    /// Re-run this test binary inside the namespace, running only the ignored test `inner` (which
    /// returns at once unless [`INNER_ENV`] names it). `state` is the charon whose swanctl the inner
    /// test uses. Kills it after `timeout`. Returns (success, stdout + stderr).
    pub fn rerun(
        &self,
        inner: &str,
        state: Option<&Path>,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> (bool, String) {
        let exe = std::env::current_exe().unwrap();
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", &timeout.as_secs().to_string()])
            .args(["ip", "netns", "exec", &self.name])
            .arg(&exe)
            .args([
                "--exact",
                inner,
                "--include-ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(INNER_ENV, inner);
        if let Some(s) = state {
            c.env(STATE_ENV, s);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A filtered-out run ("0 passed") is not a pass: the inner test must have run.
        let ran = text.contains("1 passed");
        (out.status.success() && ran, text)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// True in the re-run process of inner test `name`.
pub fn is_inner(name: &str) -> bool {
    std::env::var(INNER_ENV).is_ok_and(|v| v == name)
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

/// A credential file for charon: `swanctl/<dir>/<name>` (dir: x509, x509ca, x509crl, private).
pub struct Cred<'a> {
    pub dir: &'a str,
    pub name: &'a str,
    pub der: Vec<u8>,
}

/// A running charon in a namespace. Stopped (TERM, then KILL) on drop; the state directory (with the
/// log) is kept when the test panics.
pub struct Charon {
    /// State directory (outside view of charon's `/run`).
    pub state: PathBuf,
    child: Option<Child>,
}

impl Charon {
    /// Starts charon in `ns` with `swanctl_conf` and `creds` loaded; `extra` goes inside
    /// `charon { }` of strongswan.conf (after the defaults, so it overrides them), `level` is the log
    /// level for ike/cfg/knl/net. Panics (with the log) if charon does not come up or swanctl complains.
    pub fn start(
        ns: &Netns,
        swanctl_conf: &str,
        creds: &[Cred<'_>],
        extra: &str,
        level: u8,
    ) -> Charon {
        let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("swan-{}", ns.name));
        let _ = std::fs::remove_dir_all(&state);
        let swanctl_dir = state.join("swanctl");
        // swanctl complains about every credential directory that is missing.
        for d in [
            "x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "private", "rsa", "ecdsa",
            "bliss", "pkcs8", "pkcs12", "pubkey",
        ] {
            std::fs::create_dir_all(swanctl_dir.join(d)).unwrap();
        }
        for c in creds {
            std::fs::write(swanctl_dir.join(c.dir).join(c.name), &c.der).unwrap();
        }
        let template = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/strongswan.conf"),
        )
        .unwrap();
        let conf = template
            .replace("@LEVEL@", &level.to_string())
            .replace("@EXTRA@", extra);
        std::fs::write(state.join("strongswan.conf"), conf).unwrap();
        std::fs::write(swanctl_dir.join("swanctl.conf"), swanctl_conf).unwrap();
        // `ip netns exec`, `unshare` and `sh -c exec` all exec: the child's PID is charon's.
        let child = ns
            .cmd("unshare")
            .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg(r#"mount --bind "$1" /run && STRONGSWAN_CONF=/run/strongswan.conf exec "$2""#)
            .arg("sh")
            .arg(&state)
            .arg(CHARON)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start charon");
        let mut charon = Charon {
            state,
            child: Some(child),
        };
        let vici = charon.state.join("charon.vici");
        let t0 = Instant::now();
        while !vici.exists() {
            if let Some(c) = charon.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("charon exited ({status}) at start:\n{}", charon.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "charon's vici socket did not appear:\n{}",
                charon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // `swanctl --load-all` exits 0 even for a file with syntax errors: check what it says.
        let out = charon.swanctl(&["--load-all", "--noprompt"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success()
                && text.contains("successfully loaded")
                && !text.contains("invalid")
                && !text.contains("failed"),
            "swanctl --load-all: {text}\n{}",
            charon.log()
        );
        charon
    }

    /// Run swanctl against this charon (`swanctl CMD --uri ... ARGS`), returning its output.
    pub fn swanctl(&self, args: &[&str]) -> Output {
        swanctl_cmd(&self.state, args).output().unwrap()
    }

    /// charon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("charon.log")).unwrap_or_default()
    }

    /// The PID of charon, if it is still ours.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
                let t0 = Instant::now();
                while matches!(c.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "charon state kept for the failed test (log: {}/charon.log)",
                self.state.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// A swanctl command for the charon whose state directory is `state` (usable from the re-run process,
/// which gets it in [`STATE_ENV`]).
pub fn swanctl_cmd(state: &Path, args: &[&str]) -> Command {
    let uri = format!("unix://{}", state.join("charon.vici").display());
    let mut c = Command::new("swanctl");
    c.arg(args[0])
        .args(["--uri", &uri])
        .args(&args[1..])
        .env("STRONGSWAN_CONF", state.join("strongswan.conf"))
        .env("SWANCTL_DIR", state.join("swanctl"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// In the re-run process: swanctl for the outer test's charon, started (not waited for).
pub fn inner_swanctl(args: &[&str]) -> Child {
    let state = std::env::var(STATE_ENV).expect("no charon state directory passed in");
    swanctl_cmd(Path::new(&state), args).spawn().unwrap()
}

/// In the re-run process: the outer test's charon's log so far.
pub fn inner_charon_log() -> String {
    let state = std::env::var(STATE_ENV).expect("no charon state directory passed in");
    std::fs::read_to_string(Path::new(&state).join("charon.log")).unwrap_or_default()
}

/// charon log lines that complain (errors, invalid, failed, discarded), minus the kernel/ESP
/// subsystems (kernel-libipsec noise) and lines containing any of `allowed`.
pub fn complaints<'a>(log: &'a str, allowed: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            let low = l.to_ascii_lowercase();
            (low.contains("error")
                || low.contains("invalid")
                || low.contains("failed")
                || low.contains("discard"))
                && !low.contains("[knl]")
                && !low.contains("[esp]")
                && !allowed.iter().any(|a| l.contains(a))
        })
        .collect()
}
