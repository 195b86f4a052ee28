//! A Lifeline daemon in a test namespace: its configuration, control socket and log in a directory of its
//! own under the test's tmp dir, `show` through the control socket, and the log printed when the test
//! fails. Stopped (SIGKILL) on drop.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Daemon, Netns};

/// The appliance binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

pub struct Lifeline {
    /// `CARGO_TARGET_TMPDIR/LABEL-NETNS`: the configuration, `ctl.sock`, `lifeline.log`.
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    daemon: Option<Daemon>,
}

impl Lifeline {
    /// `lifeline run -c CONFIG --socket ...` in `ns`.
    pub fn start(ns: &Netns, label: &str, config: &str) -> Lifeline {
        Lifeline::start_with(ns, label, config, &[] as &[&str])
    }

    /// [`Lifeline::start`] with more `run` arguments (e.g. `--state-dir DIR`, hidden test hooks).
    pub fn start_with<S: AsRef<OsStr>>(
        ns: &Netns,
        label: &str,
        config: &str,
        extra: &[S],
    ) -> Lifeline {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{label}-{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join(format!("{label}.cfg"));
        std::fs::write(&cfg, config).unwrap();
        let sock = dir.join("ctl.sock");
        let log = dir.join("lifeline.log");
        let child = ns
            .cmd(BIN)
            .arg("run")
            .args(extra)
            .arg("-c")
            .arg(&cfg)
            .arg("--socket")
            .arg(&sock)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Lifeline {
            dir,
            sock,
            log,
            daemon: Some(Daemon(child)),
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `show` (or `clear`) command through the control socket; waits up to 10 s for the socket to
    /// answer, then asserts success.
    pub fn show(&self, words: &[&str]) -> String {
        let t0 = Instant::now();
        loop {
            let out = Command::new(BIN)
                .args(words)
                .arg("--socket")
                .arg(&self.sock)
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{words:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the log contains `what`.
    pub fn wait_log(&self, what: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t0.elapsed() < limit,
                "no `{what}` in the log within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill the daemon (SIGKILL: no DELETE goes out), as a crashed or unplugged peer.
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.0.kill();
            let _ = d.0.wait();
        }
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- Lifeline log {} ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}
