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

/// Optional listeners.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// TLS on 5061 with a certificate for `lifeline.test` and the listen address, issued by a test CA
    /// ([`Kamailio::ca_file`]); needs the kamailio-tls-modules package.
    pub tls: bool,
    /// A second TCP listener on 5070.
    pub tcp_5070: bool,
}

impl Kamailio {
    /// `None` when kamailio is not installed.
    pub fn start(ns: &Netns, ip: &str) -> Option<Kamailio> {
        Kamailio::start_with(ns, ip, Options::default())
    }

    /// The test CA's certificate (PEM) that issued the TLS listener's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `None` when kamailio (or, with `tls`, its TLS module or openssl) is not installed.
    pub fn start_with(ns: &Netns, ip: &str, opts: Options) -> Option<Kamailio> {
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
        let mut defines: Vec<String> = Vec::new();
        if opts.tls {
            if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists()
                && !std::path::Path::new("/usr/lib/kamailio/modules/tls.so").exists()
            {
                return None;
            }
            tls_material(&dir, ip)?;
            defines.extend([
                "-A".into(),
                "WITH_TLS".into(),
                "-A".into(),
                format!("TLS_CFG=\"{}\"", dir.join("tls.cfg").display()),
            ]);
        }
        if opts.tcp_5070 {
            defines.extend(["-A".into(), "WITH_TCP_5070".into()]);
        }
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
            .args(&defines)
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

/// A test CA and a server certificate it issued for `lifeline.test` and `ip` (EC P-256, 2 days), and
/// Kamailio's tls.cfg, in `dir`.
fn tls_material(dir: &std::path::Path, ip: &str) -> Option<()> {
    let openssl = |args: &[&str]| -> Option<()> {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then_some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=Lifeline test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca)?;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=lifeline.test",
        "-keyout",
        "key.pem",
        "-out",
        "srv.csr",
    ]);
    openssl(&csr)?;
    std::fs::write(
        dir.join("srv.ext"),
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:lifeline.test,IP:{ip}\n"
        ),
    )
    .ok()?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "srv.ext",
        "-out",
        "cert.pem",
    ])?;
    std::fs::write(
        dir.join("tls.cfg"),
        format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {d}/key.pem\ncertificate = {d}/cert.pem\n\n[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
            d = dir.display()
        ),
    )
    .ok()?;
    Some(())
}

impl Drop for Kamailio {
    /// SIGTERM to the main process, which stops its worker processes; SIGKILL alone would leave the
    /// workers running (and holding the namespace, the sockets and the location table).
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
