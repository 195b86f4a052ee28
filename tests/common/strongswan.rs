//! A private strongSwan (charon + swanctl) peer inside a [`Netns`], for interop tests.
//!
//! The machine's kernel has no ESP/XFRM crypto, so charon does ESP in user space (`kernel-libipsec`, TUN
//! `ipsec0` in the namespace). Several charons coexist because each runs in its own mount namespace
//! (`unshare --mount --propagation private`) where its state directory is bind-mounted on `/run`: charon
//! hard-codes `/run/charon.pid`, and its vici socket and log land in the state directory as well. swanctl
//! runs outside with `--uri unix://STATE/charon.vici`. Everything is stopped and removed on drop (the
//! state directory is kept, with the path printed, when the test panics).
//!
//! Configuration comes from the templates in `tests/fixtures/strongswan/` (`@NAME@` placeholders), which
//! `scripts/bench-throughput` uses too.
//!
//! Quirks of kernel-libipsec (strongSwan 5.9) worth knowing:
//! * it only does ESP in UDP, so charon fakes a NAT (a random NATD_SOURCE_IP): the peer must do NAT-T.
//! * for every CHILD_SA it routes the remote selector into `ipsec0` in table 220 (rule `220: from all
//!   lookup 220`); with 0.0.0.0/0 selectors that is everything, so [`Charon::route_based`] deletes the rule
//!   and routes only the given prefixes into `ipsec0`, which is what an SVTI does.
//! * `start_action = trap` does not work (libipsec has no acquire): initiate with [`Charon::initiate`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Netns, fixture};

/// Where Debian installs charon.
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// True when charon and swanctl are installed. Like [`super::netns_available`]: prints SKIP and returns
/// false, or panics when `LIFELINE_REQUIRE_NETNS=1`.
pub fn strongswan_available(test: &str) -> bool {
    let charon = Path::new(CHARON).exists();
    // (`swanctl --version` wants a running daemon: look the binary up instead.)
    let swanctl = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("swanctl").is_file()));
    if charon && swanctl {
        return true;
    }
    let why = "strongSwan (strongswan-charon, strongswan-swanctl, libcharon-extra-plugins, \
               libstrongswan-standard-plugins) is not installed";
    if std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{test}: LIFELINE_REQUIRE_NETNS=1 but {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// One route-based IKEv2 PSK connection (`tests/fixtures/strongswan/route.swanctl.conf`).
#[derive(Clone, Debug)]
pub struct RouteConn {
    pub local_addr: String,
    pub remote_addr: String,
    /// Key-id identities (`keyid:NAME`).
    pub local_id: String,
    pub remote_id: String,
    pub psk: String,
    /// strongSwan proposal syntax, e.g. `aes256-sha256-ecp256`.
    pub ike_proposals: String,
    /// e.g. `aes256gcm16` or `aes256-sha256`.
    pub esp_proposals: String,
    /// `none` (respond only) or `start`.
    pub start_action: String,
}

impl RouteConn {
    /// The swanctl.conf text.
    pub fn render(&self) -> String {
        let template = std::fs::read_to_string(fixture("strongswan/route.swanctl.conf"))
            .expect("tests/fixtures/strongswan/route.swanctl.conf");
        template
            .replace("@LOCAL_ADDR@", &self.local_addr)
            .replace("@REMOTE_ADDR@", &self.remote_addr)
            .replace("@LOCAL_ID@", &self.local_id)
            .replace("@REMOTE_ID@", &self.remote_id)
            .replace("@PSK@", &self.psk)
            .replace("@IKE_PROPOSALS@", &self.ike_proposals)
            .replace("@ESP_PROPOSALS@", &self.esp_proposals)
            .replace("@START_ACTION@", &self.start_action)
    }
}

/// A running charon in a namespace. Stopped (TERM, then KILL) on drop.
pub struct Charon {
    /// State directory (outside view of charon's `/run`).
    pub state: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Charon {
    /// Start charon in `ns` with `swanctl_conf` loaded; panics (with charon's log) if that fails.
    pub fn start(ns: &Netns, swanctl_conf: &str) -> Charon {
        Charon::start_with_ports(ns, swanctl_conf, 500, 4500)
    }

    /// [`Charon::start`] with charon's IKE port and NAT-T port (`charon.port`, `charon.port_nat_t`) set,
    /// e.g. to the port a VPN-SIP head end names in its SDP.
    pub fn start_with_ports(ns: &Netns, swanctl_conf: &str, port: u16, port_nat_t: u16) -> Charon {
        Charon::start_full(ns, swanctl_conf, port, port_nat_t, &[])
    }

    /// [`Charon::start`] with credential files copied into swanctl's directories first: `(dir, file)`
    /// pairs such as `("x509ca", path)`, `("private", path)`.
    pub fn start_with_creds(ns: &Netns, swanctl_conf: &str, creds: &[(&str, &Path)]) -> Charon {
        Charon::start_full(ns, swanctl_conf, 500, 4500, creds)
    }

    fn start_full(
        ns: &Netns,
        swanctl_conf: &str,
        port: u16,
        port_nat_t: u16,
        creds: &[(&str, &Path)],
    ) -> Charon {
        let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sw-{}", ns.name));
        let _ = std::fs::remove_dir_all(&state);
        let swanctl_dir = state.join("swanctl");
        // swanctl complains about every credential directory that is missing.
        for d in [
            "x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "private", "rsa", "ecdsa",
            "bliss", "pkcs8", "pkcs12", "pubkey",
        ] {
            std::fs::create_dir_all(swanctl_dir.join(d)).unwrap();
        }
        let conf = std::fs::read_to_string(fixture("strongswan/strongswan.conf"))
            .expect("tests/fixtures/strongswan/strongswan.conf")
            .replace("@LEVEL@", "2")
            .replace("port = 500\n", &format!("port = {port}\n"))
            .replace(
                "port_nat_t = 4500\n",
                &format!("port_nat_t = {port_nat_t}\n"),
            );
        std::fs::write(state.join("strongswan.conf"), conf).unwrap();
        std::fs::write(swanctl_dir.join("swanctl.conf"), swanctl_conf).unwrap();
        for (dir, file) in creds {
            let name = file.file_name().expect("credential file name");
            std::fs::copy(file, swanctl_dir.join(dir).join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
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
            ns: ns.name.clone(),
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
            std::thread::sleep(Duration::from_millis(50));
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
                && text.contains("successfully loaded 1 connections")
                && !text.contains("invalid")
                && !text.contains("failed"),
            "swanctl --load-all: {text}\n{}",
            charon.log()
        );
        charon
    }

    /// Run swanctl against this charon (`swanctl CMD --uri ... ARGS`), returning its output.
    pub fn swanctl(&self, args: &[&str]) -> Output {
        let uri = format!("unix://{}", self.state.join("charon.vici").display());
        Command::new("swanctl")
            .arg(args[0])
            .args(["--uri", &uri])
            .args(&args[1..])
            .env("STRONGSWAN_CONF", self.state.join("strongswan.conf"))
            .env("SWANCTL_DIR", self.state.join("swanctl"))
            .stdin(Stdio::null())
            .output()
            .expect("cannot run swanctl")
    }

    /// `swanctl --initiate --child CHILD --timeout SECS`; Ok(output) when charon says it succeeded.
    pub fn initiate(&self, child: &str, timeout_secs: u32) -> Result<String, String> {
        let t = timeout_secs.to_string();
        let out = self.swanctl(&["--initiate", "--child", child, "--timeout", &t]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("initiate completed successfully") {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// `swanctl --list-sas` output.
    pub fn list_sas(&self) -> String {
        String::from_utf8_lossy(&self.swanctl(&["--list-sas"]).stdout).into_owned()
    }

    /// charon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("charon.log")).unwrap_or_default()
    }

    /// Route-based forwarding, as an SVTI: delete charon's `lookup 220` rule (kernel-libipsec routes every
    /// remote selector, 0.0.0.0/0 here, into `ipsec0` there) and route each prefix into `ipsec0` in the
    /// main table with `src` (the local LAN address). Waits for `ipsec0` (created at charon start).
    pub fn route_based(&self, ns: &Netns, prefixes: &[&str], src: &str) {
        let t0 = Instant::now();
        while !ns.try_run(&["ip", "link", "show", "ipsec0"]) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "ipsec0 did not appear in {}",
                self.ns
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let t0 = Instant::now();
        while !ns.try_run(&["ip", "rule", "del", "pref", "220"]) {
            if t0.elapsed() > Duration::from_secs(2) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in prefixes {
            ns.run(&["ip", "route", "replace", p, "dev", "ipsec0", "src", src]);
        }
    }

    /// The PID of charon, if it is still running.
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
                    std::thread::sleep(Duration::from_millis(50));
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
