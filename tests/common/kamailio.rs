//! Kamailio as the provider's SIP registrar and proxy (digest authentication on), started in a network
//! namespace from the project's copy of the team's test-bed configuration (`tests/peers/kamailio/`).
//! Accounts: numbers 1001..1004 with passwords `secret1001`..`secret1004`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::Netns;

pub struct Kamailio {
    child: Child,
    pub dir: PathBuf,
    ns: String,
}

impl Kamailio {
    /// `None` when kamailio is not installed.
    pub fn start(ns: &Netns, ip: &str) -> Option<Kamailio> {
        let bed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kamailio");
        if std::process::Command::new("sh")
            .args(["-c", "command -v kamailio && command -v kamcmd"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kamailio-{}", ns.name));
        std::fs::create_dir_all(&dir).ok()?;
        let child = ns
            .cmd("kamailio")
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-f"])
            .arg(bed.join("kamailio.cfg"))
            .args([
                "-A",
                &format!("LISTEN_IP=\"{ip}\""),
                "-A",
                "SIP_DOMAIN=\"lifeline.test\"",
            ])
            .args([
                "-A",
                &format!("CTL_SOCK=\"unix:{}/ctl\"", dir.display()),
                "-Y",
            ])
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("pid"))
            .arg("-w")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).ok()?)
            .spawn()
            .ok()?;
        let k = Kamailio {
            child,
            dir,
            ns: ns.name.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if k.kamcmd("core.uptime").is_some() {
                return Some(k);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "kamailio did not come up; see {}/kamailio.log",
            k.dir.display()
        );
    }

    /// Run a kamcmd command against this instance.
    pub fn kamcmd(&self, cmd: &str) -> Option<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "kamcmd", "-s"])
            .arg(format!("unix:{}/ctl", self.dir.display()))
            .arg(cmd)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
