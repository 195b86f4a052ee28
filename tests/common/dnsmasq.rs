//! dnsmasq as the backup WAN's DHCPv4 server, serving option 120 (SIP servers, RFC 3361) in both
//! encodings and option 125 (V-I vendor-specific information, RFC 3925, enterprise 9).
//!
//! The configuration is written here (into a temp dir under `CARGO_TARGET_TMPDIR`), after the team's
//! verified DHCP test bed; nothing outside the checkout is read at run time. dnsmasq runs in the
//! foreground inside a [`Netns`] and is killed when the [`Dnsmasq`] is dropped; its log (`log-dhcp`:
//! every option sent) and lease file stay in [`Dnsmasq::dir`], kept only when the test panics.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Netns;

/// Option 120 encoding 1 (default class): these addresses, in order.
pub const SIP_ADDRS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 10),
    Ipv4Addr::new(198, 51, 100, 11),
];
/// Option 120 encoding 0 for clients whose option 60 contains [`SIPNAMES_CLASS`].
pub const SIP_NAMES: [&str; 2] = ["sip.lifeline.test", "sip2.lifeline.test"];
/// Vendor class (option 60) selecting the names form of option 120.
pub const SIPNAMES_CLASS: &str = "lifeline-sipnames";
/// Option 125 enterprise number (Cisco).
pub const ENTERPRISE: u32 = 9;
/// Option 125 sub-option 1: text.
pub const SUB1_URI: &str = "sip:198.51.100.10:5060";
/// Option 125 sub-option 2: an IPv4 address.
pub const SUB2_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

/// What the server hands out.
#[derive(Debug, Clone)]
pub struct DhcpServerConfig {
    /// Interface dnsmasq serves (must carry an address in the pool's subnet).
    pub interface: String,
    pub pool_start: Ipv4Addr,
    pub pool_end: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub lease_secs: u32,
    pub router: Ipv4Addr,
}

impl DhcpServerConfig {
    /// The test bed's plan: pool 198.51.100.100-150/24, 10 min leases, router 198.51.100.1.
    pub fn testbed(interface: &str) -> DhcpServerConfig {
        DhcpServerConfig {
            interface: interface.to_owned(),
            pool_start: Ipv4Addr::new(198, 51, 100, 100),
            pool_end: Ipv4Addr::new(198, 51, 100, 150),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            lease_secs: 600,
            router: Ipv4Addr::new(198, 51, 100, 1),
        }
    }

    /// True when `a` is inside the pool.
    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        (self.pool_start..=self.pool_end).contains(&a)
    }

    /// dnsmasq.conf text: DHCP only, options 120 (both encodings) and 125.
    pub fn render(&self) -> String {
        let names = SIP_NAMES.join(",");
        let addrs = SIP_ADDRS.map(|a| a.to_string()).join(",");
        format!(
            "\
# written by tests/common/dnsmasq.rs; DHCP only (port=0 turns DNS off)
port=0
interface={iface}
bind-interfaces
except-interface=lo
dhcp-authoritative
# answer at once (by default dnsmasq pings an address ~3 s before offering it)
no-ping
dhcp-range={start},{end},{mask},{lease}s
dhcp-option=option:router,{router}
log-dhcp
# option 120: encoding 1 by default, encoding 0 for vendor class {class}
dhcp-vendorclass=set:sipnames,{class}
dhcp-option=tag:!sipnames,option:sip-server,{addrs}
dhcp-option=tag:sipnames,option:sip-server,{names}
# option 125, enterprise {ent}: sent only to clients listing 125 in option 55
dhcp-option=vi-encap:{ent},1,\"{sub1}\"
dhcp-option=vi-encap:{ent},2,{sub2}
",
            iface = self.interface,
            start = self.pool_start,
            end = self.pool_end,
            mask = self.mask,
            lease = self.lease_secs,
            router = self.router,
            class = SIPNAMES_CLASS,
            ent = ENTERPRISE,
            sub1 = SUB1_URI,
            sub2 = SUB2_ADDR,
        )
    }
}

/// A running dnsmasq, killed on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    /// Config, log, lease and pid files.
    pub dir: PathBuf,
}

/// True when the `dnsmasq` binary can be run.
pub fn installed() -> bool {
    Command::new("dnsmasq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` with `cfg` and waits (≤ 5 s) until it listens on UDP 67.
    /// `None` when dnsmasq is not installed; panics (with its output) when it does not come up.
    pub fn start(ns: &Netns, cfg: &DhcpServerConfig) -> Option<Dnsmasq> {
        Dnsmasq::spawn(ns, "dnsmasq", &cfg.render(), "67")
    }

    /// dnsmasq as an authoritative-enough DNS server on `listen`:53 (UDP and TCP) in `ns`, answering only
    /// from `records` (dnsmasq.conf lines such as `naptr-record=...`, `srv-host=...`, `host-record=...`),
    /// DHCP off. `None` when dnsmasq is not installed.
    pub fn start_dns(ns: &Netns, listen: Ipv4Addr, records: &[String]) -> Option<Dnsmasq> {
        let conf = format!(
            "# written by tests/common/dnsmasq.rs; DNS only, from these records\n\
             listen-address={listen}\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\nlog-queries=extra\n{}\n",
            records.join("\n")
        );
        Dnsmasq::spawn(ns, "dnsmasq-dns", &conf, "53")
    }

    fn spawn(ns: &Netns, tag: &str, conf_text: &str, udp_port: &str) -> Option<Dnsmasq> {
        if !installed() {
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let conf = dir.join("dnsmasq.conf");
        std::fs::write(&conf, conf_text).ok()?;
        let out = std::fs::File::create(dir.join("dnsmasq.out")).ok()?;
        let child = ns
            .cmd("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.join("dnsmasq.leases").display()
            ))
            .arg(format!(
                "--log-facility={}",
                dir.join("dnsmasq.log").display()
            ))
            // stay root: the lease and log files are in a root-owned temp dir
            .args(["--user=root", "--group=root"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().ok()?)
            .stderr(out)
            .spawn()
            .ok()?;
        let mut d = Dnsmasq {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                d.child = None;
                panic!("dnsmasq exited at start ({status}):\n{}", d.output());
            }
            let ss = ns
                .cmd("ss")
                .args(["-Hlnu", "sport", &format!("= :{udp_port}")])
                .output();
            if ss.is_ok_and(|o| !o.stdout.is_empty()) {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dnsmasq did not listen on UDP {udp_port} within 5 s:\n{}",
            d.output()
        );
    }

    /// dnsmasq's log (`log-dhcp` lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// The lease file (one line per lease: expiry, MAC, address, hostname, client id).
    pub fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.leases")).unwrap_or_default()
    }

    /// Start-up output, the configuration and the log, for failure messages.
    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- dnsmasq.conf ---\n{}--- dnsmasq.out ---\n{}--- dnsmasq.log ---\n{}",
            read("dnsmasq.conf"),
            read("dnsmasq.out"),
            read("dnsmasq.log")
        )
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "dnsmasq files kept for the failed test: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
