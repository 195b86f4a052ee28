//! GRE and DMVPN end to end (issue #13), Lifeline appliances in network namespaces, GRE in user space over
//! raw IP protocol 47 (this kernel has no GRE module and the appliance needs none).
//!
//! - `p2p_gre_*`: two sites with `tunnel mode gre ip` (key, `ip mtu`, `tunnel source` by interface): ping and
//!   iperf3 between the sites' LANs; tshark decodes the keyed GRE on the wire.
//! - `dmvpn_*`: a Lifeline hub (NHS) and two Lifeline spokes (NHC) on mGRE (the seeds' EX-1/EX-2 shape,
//!   without IPsec and EIGRP), each on its own subnet behind a router namespace: registration, spoke-to-spoke
//!   resolution through the hub (phase 2), hub redirect + spoke shortcut (phase 3), `show dmvpn`,
//!   `show ip nhrp`, `clear ip nhrp`, NHRP decoded by tshark.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

struct Site {
    ns: Netns,
    sock: PathBuf,
    log: PathBuf,
    _daemon: Daemon,
}

fn start_site(ns: Netns, name: &str, config: &str) -> Site {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dmvpn-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join(format!("{name}.cfg"));
    std::fs::write(&cfg, config).unwrap();
    let sock = dir.join("ctl.sock");
    let log = dir.join("lifeline.log");
    let child = ns
        .cmd(BIN)
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Site {
        ns,
        sock,
        log,
        _daemon: Daemon(child),
    }
}

impl Site {
    fn cli(&self, words: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(words)
            .arg("--socket")
            .arg(&self.sock)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{words:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn ping_until(ns: &Netns, src: &str, dst: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
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

/// `count` pings at 0.1 s intervals; the number answered.
fn pings(ns: &Netns, src: &str, dst: &str, count: u32) -> u32 {
    let out = ns
        .cmd("ping")
        .args([
            "-c",
            &count.to_string(),
            "-i",
            "0.1",
            "-W",
            "1",
            "-I",
            src,
            dst,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" packets transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// iperf3 TCP from `client` (bound to `src`) to a server on `server` at `dst`: receiver Mbit/s.
fn iperf(client: &Netns, src: &str, server: &Netns, dst: &str, secs: u32) -> f64 {
    let _server = Daemon(
        server
            .cmd("iperf3")
            .args(["-s", "-B", dst, "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = client
        .cmd("iperf3")
        .args(["-J", "-c", dst, "-B", src, "-t"])
        .arg(secs.to_string())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 -J: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6
}

/// tshark's one-line-per-packet view of `pcap` with `fields`, filtered by `filter`.
fn tshark(pcap: &std::path::Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.args(["-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn p2p_config(me: &str, wan: &str, peer_wan: &str, tunnel_ip: &str, remote_lan: &str) -> String {
    format!(
        "\
hostname {me}
!
interface GigabitEthernet0
 device eth0
 ip address {wan} 255.255.255.0
!
interface Tunnel0
 device gre0x
 ip address {tunnel_ip} 255.255.255.252
 ip mtu 1400
 ip tcp adjust-mss 1360
 tunnel source GigabitEthernet0
 tunnel mode gre ip
 tunnel destination {peer_wan}
 tunnel key 100
!
ip route {remote_lan} 255.255.255.0 Tunnel0
"
    )
}

#[test]
fn p2p_gre_carries_ping_and_iperf3_between_two_lifeline_sites() {
    if !netns_available("p2p_gre_carries_ping_and_iperf3_between_two_lifeline_sites") {
        return;
    }
    let a = Netns::new("greA");
    let b = Netns::new("greB");
    veth(&a, "eth0", "198.51.100.1/24", &b, "eth0", "198.51.100.2/24");
    a.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    b.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"]);
    let cap = Capture::start(&a, "eth0", "gre-p2p");
    let ca = p2p_config(
        "siteA",
        "198.51.100.1",
        "198.51.100.2",
        "172.16.0.1",
        "10.2.0.0",
    );
    let cb = p2p_config(
        "siteB",
        "198.51.100.2",
        "198.51.100.1",
        "172.16.0.2",
        "10.1.0.0",
    );
    let sa = start_site(a, "siteA", &ca);
    let sb = start_site(b, "siteB", &cb);
    let took = ping_until(&sa.ns, "10.1.0.1", "10.2.0.1", Duration::from_secs(20));
    println!("[p2p gre] first answer through Tunnel0 after {took:?}");
    assert_eq!(
        pings(&sa.ns, "10.1.0.1", "10.2.0.1", 10),
        10,
        "{}",
        sa.log()
    );
    assert_eq!(
        pings(&sb.ns, "10.2.0.1", "10.1.0.1", 10),
        10,
        "{}",
        sb.log()
    );
    // The tunnel's address answers too (the connected /30 over the TUN device).
    assert_eq!(pings(&sa.ns, "172.16.0.1", "172.16.0.2", 3), 3);
    // `ip mtu 1400`: the TUN device carries it.
    let link =
        String::from_utf8_lossy(&sa.ns.run(&["ip", "link", "show", "gre0x"]).stdout).to_string();
    assert!(link.contains("mtu 1400"), "{link}");
    let mbits = iperf(&sa.ns, "10.1.0.1", &sb.ns, "10.2.0.1", 3);
    println!("[p2p gre] iperf3 through Tunnel0: {mbits:.0} Mbit/s");
    assert!(mbits > 1.0, "iperf3 carried {mbits} Mbit/s");
    let pcap = cap.expect("tcpdump").finish();
    // tshark decodes GRE with the key and the ICMP inside.
    let rows = tshark(
        &pcap,
        "gre && icmp",
        &["ip.src", "ip.dst", "gre.key", "gre.proto"],
    );
    assert!(
        !rows.is_empty(),
        "no GRE/ICMP decoded in {}",
        pcap.display()
    );
    let first = rows[0].split('\t').collect::<Vec<_>>();
    println!(
        "[p2p gre] tshark: {} GRE/ICMP packets, first {first:?}",
        rows.len()
    );
    // `tunnel key 100` (tshark prints the key field in hex).
    assert!(
        rows.iter()
            .all(|r| r.split('\t').nth(2) == Some("0x00000064")),
        "{rows:?}"
    );
    // `ip tcp adjust-mss 1360`: the SYN of the iperf3 control connection left with MSS 1360 at most.
    let mss = tshark(&pcap, "gre && tcp.flags.syn == 1", &["tcp.options.mss_val"]);
    assert!(
        mss.iter()
            .any(|m| m.parse::<u32>().is_ok_and(|v| v <= 1360)),
        "{mss:?}"
    );
    let _ = std::fs::remove_file(&pcap);
    assert!(
        sa.cli(&["show", "running-config"])
            .contains("tunnel key 100")
    );
    drop(sb);
}
