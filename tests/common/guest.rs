//! Linux-kernel peers in QEMU guests, for interop with what this machine's kernel lacks (GRE, ESP/XFRM,
//! netem) and for FRR's `nhrpd`/strongSwan with kernel XFRM.
//!
//! The guest test bed lives in `tests/peers/guest/`: the project's copy of the team's verified recipe
//! (`../shared/testbed/guest/`; build, run, exec and stop scripts, the guest's `/init` and agent, per-boot
//! scenario scripts). A Debian 12 cloud kernel with the whole root filesystem as initramfs, booted under
//! TCG (no KVM), one virtio-net NIC on a TAP device in a test [`Netns`]. This module drives those scripts:
//! * [`guest_available`] checks the prerequisites and builds the image when it is missing (`build.sh`,
//!   about a minute from nothing, under a second when up to date; cache `/var/cache/lifeline-guest`),
//!   printing `SKIP` and returning false when it cannot (or panicking when `LIFELINE_REQUIRE_NETNS=1`).
//! * [`Guest::start`] boots a guest (about 6 s) and waits until its per-boot scenario script finished;
//!   [`Guest::exec`] runs shell snippets in it (about 0.5-1 s a call).
//! * Dropping a [`Guest`] stops QEMU (TERM, then KILL) and deletes the TAP devices it created; a guest left
//!   by a test process that was killed is stopped by the next [`Guest::start`] (names carry the PID).
//!
//! At most two guests run at once on this machine (two cores, TCG): [`Guest::start`] takes one of two
//! slots, file locks shared by every test process, and waits for one when both are taken.
//!
//! Guest state (console log, sockets, PID file) is in `/run/lifeline-guest/NAME/`; it is removed on drop
//! unless the test panics, and then its path is printed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Netns;

/// The project's copy of the guest test bed.
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/guest")
}

/// Where guests keep their state (the scripts' `LLG_RUN`; the default of `common.sh`).
pub const RUN_DIR: &str = "/run/lifeline-guest";
/// QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// How many guests may run at once (all test processes together).
pub const SLOTS: usize = 2;

/// A command for one of the test bed's scripts (`run.sh`, `exec.sh`, `stop.sh`, `build.sh`).
fn script(name: &str) -> Command {
    let mut c = Command::new(guest_dir().join(name));
    c.env("LLG_RUN", RUN_DIR).stdin(Stdio::null());
    c
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join(prog).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(prog).is_file())
    })
}

/// Builds the image once per test process (`build.sh` is idempotent, and serialised across processes by a
/// file lock). `Err` says why guests cannot run here.
fn ensure_image() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let missing: Vec<&str> = [QEMU, "python3", "debootstrap", "cpio", "lz4", "depmod"]
                .into_iter()
                .filter(|p| !on_path(p))
                .collect();
            let cache = std::env::var("LLG_CACHE").unwrap_or("/var/cache/lifeline-guest".into());
            let image = ["vmlinuz", "initrd.img"]
                .iter()
                .all(|f| Path::new(&cache).join(f).is_file());
            if image && on_path(QEMU) && on_path("python3") && !missing.is_empty() {
                // An image exists, only the tools to rebuild it are missing: use it as it is.
                eprintln!(
                    "guest harness: using the image in {cache} as it is (no {} to check or rebuild it)",
                    missing.join(", ")
                );
            } else if !missing.is_empty() {
                return Err(format!(
                    "missing {} (apt-get install qemu-system-x86 debootstrap cpio lz4 kmod python3; \
                     scripts/install-deps does it as root)",
                    missing.join(", ")
                ));
            }
            if !Path::new("/dev/net/tun").exists() {
                return Err("no /dev/net/tun".into());
            }
            std::fs::create_dir_all(RUN_DIR).map_err(|e| format!("{RUN_DIR}: {e}"))?;
            if !missing.is_empty() {
                return Ok(());
            }
            let lock = File::create(Path::new(RUN_DIR).join("build.lock"))
                .map_err(|e| format!("build lock: {e}"))?;
            lock.lock().map_err(|e| format!("build lock: {e}"))?;
            let t0 = Instant::now();
            let out = script("build.sh")
                .output()
                .map_err(|e| format!("cannot run build.sh: {e}"))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "guest image build failed (tests/peers/guest/build.sh):\n{}",
                    tail.join("\n")
                ));
            }
            if !text.contains("image up to date") {
                eprintln!(
                    "guest image built in {:.0} s: {}",
                    t0.elapsed().as_secs_f64(),
                    text.lines().last().unwrap_or("")
                );
            }
            Ok(())
        })
        .clone()
}

/// True when QEMU guests can run here (root, the packages, an image, built now if missing). Otherwise
/// prints `SKIP test: why` and returns false, or panics when `LIFELINE_REQUIRE_NETNS=1`.
pub fn guest_available(test: &str) -> bool {
    if !super::netns_available(test) {
        return false;
    }
    match ensure_image() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
                panic!("{test}: LIFELINE_REQUIRE_NETNS=1 but QEMU guests cannot run: {why}");
            }
            eprintln!("SKIP {test}: QEMU guests cannot run: {why}");
            false
        }
    }
}

/// One of the [`SLOTS`] machine-wide guest slots (an exclusive lock on a file), held while a guest runs.
struct Slot(#[allow(dead_code)] File);

impl Slot {
    /// `n` slots at once (all or none, so two tests wanting two each cannot deadlock holding one each).
    fn take(n: usize, limit: Duration) -> Vec<Slot> {
        assert!(n <= SLOTS, "{n} guests at once: the harness allows {SLOTS}");
        let t0 = Instant::now();
        loop {
            let mut got = Vec::new();
            for i in 0..SLOTS {
                let f = File::create(Path::new(RUN_DIR).join(format!("slot{i}.lock")))
                    .expect("guest slot lock file");
                if f.try_lock().is_ok() {
                    got.push(Slot(f));
                    if got.len() == n {
                        return got;
                    }
                }
            }
            drop(got);
            assert!(
                t0.elapsed() < limit,
                "{n} guest slot(s) not free within {limit:?} ({SLOTS} in all)"
            );
            // (a little jitter: two waiting processes should not keep taking one slot each)
            std::thread::sleep(Duration::from_millis(
                150 + u64::from(std::process::id() % 7) * 20,
            ));
        }
    }
}

/// Stops guests whose test process is gone (named `tPID-N`): what a killed test run left behind.
fn sweep_orphans() {
    static SWEEP: Mutex<()> = Mutex::new(());
    let _g = SWEEP.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(dir) = std::fs::read_dir(RUN_DIR) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix('t')
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = script("stop.sh")
            .arg(&name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(e.path());
        eprintln!("guest harness: stopped {name}, left by test process {pid}");
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A running guest. Stopped on drop.
pub struct Guest {
    /// Guest name (also its hostname), `tPID-N`.
    pub name: String,
    /// `/run/lifeline-guest/NAME`.
    pub dir: PathBuf,
    /// Seconds from QEMU start to `LLG: READY`.
    pub boot_secs: f64,
    /// Seconds from QEMU start to the end of the per-boot script.
    pub script_secs: f64,
    /// Seconds spent waiting for a free guest slot (other tests' guests) before booting.
    pub waited_secs: f64,
    _slot: Slot,
}

/// How to start a guest.
pub struct GuestOpts<'a> {
    /// Scenario under `tests/peers/guest/scenarios/` (e.g. `gre.sh`) or a path to a script.
    pub script: &'a str,
    /// `GUEST_*` variables for the script (name, value).
    pub env: &'a [(&'a str, &'a str)],
    /// Enslave the TAP to this bridge (in the same namespace) before boot.
    pub bridge: Option<&'a str>,
    /// Guest memory in MiB (384 is enough for FRR + charon).
    pub mem_mib: u32,
}

impl Default for GuestOpts<'_> {
    fn default() -> Self {
        GuestOpts {
            script: "basic.sh",
            env: &[],
            bridge: None,
            mem_mib: 384,
        }
    }
}

impl Guest {
    /// Boots a guest whose eth0 is TAP device `tap` in `ns` (created unless it exists) and waits until its
    /// scenario script exited 0 (panics with the console log otherwise). Call [`guest_available`] first.
    pub fn start(ns: &Netns, tap: &str, opts: GuestOpts<'_>) -> Guest {
        let t0 = Instant::now();
        let slot = Slot::take(1, Duration::from_secs(300)).remove(0);
        let mut g = Guest::start_in_slot(ns, tap, opts, slot);
        g.waited_secs = t0.elapsed().as_secs_f64() - g.script_secs;
        g.waited_secs = g.waited_secs.max(0.0);
        g
    }

    /// Two guests booted at once (two slots taken together); returns them in the order given.
    pub fn start_two(
        ns: &Netns,
        a: (&str, GuestOpts<'_>),
        b: (&str, GuestOpts<'_>),
    ) -> (Guest, Guest) {
        let t0 = Instant::now();
        let mut slots = Slot::take(2, Duration::from_secs(300));
        let waited = t0.elapsed().as_secs_f64();
        let (sb, sa) = (slots.pop().unwrap(), slots.pop().unwrap());
        std::thread::scope(|s| {
            let ha = s.spawn(|| Guest::start_in_slot(ns, a.0, a.1, sa));
            let hb = s.spawn(|| Guest::start_in_slot(ns, b.0, b.1, sb));
            let (ra, rb) = (ha.join(), hb.join());
            match (ra, rb) {
                (Ok(mut ga), Ok(mut gb)) => {
                    ga.waited_secs = waited;
                    gb.waited_secs = waited;
                    (ga, gb)
                }
                (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
            }
        })
    }

    fn start_in_slot(ns: &Netns, tap: &str, opts: GuestOpts<'_>, slot: Slot) -> Guest {
        sweep_orphans();
        let name = format!(
            "t{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = Path::new(RUN_DIR).join(&name);
        let scenario = if opts.script.contains('/') {
            PathBuf::from(opts.script)
        } else {
            guest_dir().join("scenarios").join(opts.script)
        };
        let mut cmd = script("run.sh");
        cmd.args([&name, &ns.name, tap])
            .arg(&scenario)
            .arg(opts.mem_mib.to_string());
        // Only the variables given here reach the script (run.sh exports every GUEST_* it sees), and
        // run.sh's own knobs are ours (LLG_CACHE/LLG_MIRROR from the environment still count).
        for (k, _) in std::env::vars() {
            if k.starts_with("GUEST_")
                || ["LLG_BRIDGE", "LLG_EXTRA_TAPS", "LLG_WAIT", "LLG_TIMEOUT"].contains(&k.as_str())
            {
                cmd.env_remove(k);
            }
        }
        // Inside a test's budget: boot is ~6 s (10 s on a busy host), scenario scripts < 10 s.
        cmd.env("LLG_TIMEOUT", "90");
        // On a busy host the emulated (TCG) PIT can miss the kernel's early check that the timer interrupt
        // reaches the IO-APIC, and the guest panics at once ("IO-APIC + timer doesn't work!"; seen with
        // both guests of a test while two builds ran). `no_timer_check` skips that check, as VM kernels do.
        let append = std::env::var("LLG_APPEND").unwrap_or_default();
        cmd.env("LLG_APPEND", format!("no_timer_check {append}").trim_end());
        if let Some(br) = opts.bridge {
            cmd.env("LLG_BRIDGE", br);
        }
        for (k, v) in opts.env {
            assert!(
                k.starts_with("GUEST_"),
                "guest variable {k} must be GUEST_*"
            );
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tests/peers/guest/run.sh");
        let mut guest = Guest {
            name,
            dir,
            boot_secs: 0.0,
            script_secs: 0.0,
            waited_secs: 0.0,
            _slot: slot,
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            panic!(
                "guest {} did not start ({}):\n{text}\n--- console ---\n{}",
                guest.name,
                scenario.display(),
                guest.console_tail(40)
            );
        }
        let secs = |tag: &str| -> f64 {
            text.lines()
                .find_map(|l| l.split(tag).nth(1))
                .and_then(|r| r.split('s').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0)
        };
        guest.boot_secs = secs("ready after ");
        guest.script_secs = secs("script done after ");
        guest
    }

    /// Runs a bash snippet in the guest; (exit status, stdout+stderr). 124: it ran past `secs`.
    pub fn exec_t(&self, secs: u32, cmd: &str) -> (i32, String) {
        let out: Output = script("exec.sh")
            .args(["-t", &secs.to_string(), &self.name, cmd])
            .output()
            .expect("run tests/peers/guest/exec.sh");
        let mut text = String::from_utf8_lossy(&out.stdout).to_string();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// [`Guest::exec_t`] with 30 s.
    pub fn exec(&self, cmd: &str) -> (i32, String) {
        self.exec_t(30, cmd)
    }

    /// Runs a bash snippet in the guest, panics (with its output) unless it exits 0; returns its output.
    /// When the guest's agent did not answer at all (125: a TCG guest starved on a loaded host, seen twice
    /// for a plain `ip xfrm state`), the snippet is sent once more.
    pub fn run(&self, cmd: &str) -> String {
        let (mut rc, mut out) = self.exec_t(60, cmd);
        if rc == 125 && out.contains("no answer from the guest agent") {
            eprintln!(
                "guest {}: no answer to `{cmd}`, sending it again",
                self.name
            );
            (rc, out) = self.exec_t(60, cmd);
        }
        assert_eq!(rc, 0, "guest {}: `{cmd}` exited {rc}:\n{out}", self.name);
        out
    }

    /// Polls `cmd` in the guest until it exits 0 (at most `limit`); returns its last output.
    pub fn wait_until(&self, cmd: &str, limit: Duration) -> Result<String, String> {
        let t0 = Instant::now();
        loop {
            let (rc, out) = self.exec(cmd);
            if rc == 0 {
                return Ok(out);
            }
            if t0.elapsed() > limit {
                return Err(out);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The last `n` lines of the guest's serial console.
    pub fn console_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// QEMU's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join("qemu.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with("qemu-system").then_some(pid)
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let pid = self.pid();
        let _ = script("stop.sh")
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // stop.sh waits for the process; should it not have run, kill QEMU here.
        if let Some(pid) = pid
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if std::thread::panicking() {
            eprintln!(
                "guest {} state kept for the failed test: {} (console.log)",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A namespace with a bridge `br0` (the "LAN" guests and appliances meet on); the place to capture.
pub fn bridge(ns: &Netns) {
    ns.run(&["ip", "link", "add", "br0", "type", "bridge"]);
    ns.run(&["ip", "link", "set", "br0", "up"]);
}

/// A veth from `site` (interface `ifname`, address `addr`) into `lab`'s bridge `br0`.
pub fn veth_to_bridge(lab: &Netns, port: &str, site: &Netns, ifname: &str, addr: &str) {
    super::sh(Command::new("ip").args([
        "link", "add", port, "netns", &lab.name, "type", "veth", "peer", "name", ifname, "netns",
        &site.name,
    ]));
    lab.run(&["ip", "link", "set", port, "master", "br0"]);
    lab.run(&["ip", "link", "set", port, "up"]);
    site.run(&["ip", "addr", "add", addr, "dev", ifname]);
    site.run(&["ip", "link", "set", ifname, "up"]);
}
