//! Point-to-point GRE against Linux's own: a Lifeline site (`interface Tunnel0`, `tunnel mode gre ip`,
//! `tunnel key 100`: user-space GRE over a raw protocol-47 socket, this machine's kernel has no GRE) and a
//! QEMU guest's kernel GRE (`ip link add gre1 type gre local G remote H key 100`) ping each other both
//! ways, tunnel address to tunnel address and LAN to LAN through static routes. The capture on the bridge
//! between them must show GRE with key 100 around ICMP echo requests and replies in both directions, only
//! keyed GRE, and no "protocol unreachable" from the appliance's kernel. Then an iperf3 stream crosses.
//!
//! ```text
//!  netns site (Lifeline)            netns lab: bridge br0 (capture)           QEMU guest (Linux 6.1)
//!  eth0 192.0.2.254/24  <-- veth -->  vsite   tap0  <-- virtio-net -->  eth0 192.0.2.1/24
//!  Tunnel0 10.100.0.2/30 (TUN)                                          gre1 10.100.0.1/30 key 100
//!  lo 10.1.0.1/24                                                       lo   10.2.0.1/24
//! ```
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::guest::{Guest, GuestOpts};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");
const KEY: u32 = 100;

fn site_config() -> String {
    format!(
        "\
hostname lifeline-gre
!
interface GigabitEthernet0
 device eth0
 ip address 192.0.2.254 255.255.255.0
!
interface Loopback1
 ip address 10.1.0.1 255.255.255.0
!
interface Tunnel0
 ip address 10.100.0.2 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode gre ip
 tunnel destination 192.0.2.1
 tunnel key {KEY}
!
ip route 10.2.0.0 255.255.255.0 Tunnel0
"
    )
}

fn ping_until(ns: &Netns, src: &str, dst: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ns.try_run(&["ping", "-c", "1", "-W", "1", "-I", src, dst]) {
            return Some(t0.elapsed());
        }
    }
    None
}

/// (outer source, outer destination, GRE key, inner ICMP type) of every GRE packet in the capture.
fn gre_packets(pcap: &std::path::Path) -> Vec<(String, String, String, String)> {
    let out = sh(Command::new("tshark").args(["-n", "-r"]).arg(pcap).args([
        "-Y",
        "gre",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "ip.src",
        "-e",
        "ip.dst",
        "-e",
        "gre.key",
        "-e",
        "icmp.type",
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
            (
                first(f[0]),
                first(f[1]),
                f.get(2).copied().unwrap_or("").to_string(),
                f.get(3).copied().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn lifeline_gre_and_linux_kernel_gre_ping_both_ways() {
    if !guest::guest_available("lifeline_gre_and_linux_kernel_gre_ping_both_ways") {
        return;
    }
    let t0 = Instant::now();
    let lab = Netns::new("greLab");
    let site = Netns::new("greSite");
    guest::bridge(&lab);
    guest::veth_to_bridge(&lab, "vsite", &site, "eth0", "192.0.2.254/24");
    let cap = Capture::start(&lab, "br0", "guest-gre").expect("tcpdump on br0");

    // The appliance first: from then on its raw socket takes every GRE datagram (the kernel's own
    // "protocol unreachable" would answer the guest's first GRE packets otherwise).
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("guest-gre-{}", site.name));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("site.cfg");
    std::fs::write(&cfg, site_config()).unwrap();
    let log = dir.join("lifeline.log");
    let sock = dir.join("ctl.sock");
    let _daemon = Daemon(
        site.cmd(BIN)
            .arg("run")
            .arg("-c")
            .arg(&cfg)
            .arg("--socket")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let key = KEY.to_string();
    let g = Guest::start(
        &lab,
        "tap0",
        GuestOpts {
            script: "gre.sh",
            env: &[
                ("GUEST_ADDR", "192.0.2.1/24"),
                ("GUEST_GRE_REMOTE", "192.0.2.254"),
                ("GUEST_GRE_KEY", &key),
                ("GUEST_GRE_ADDR", "10.100.0.1/30"),
            ],
            bridge: Some("br0"),
            ..Default::default()
        },
    );
    println!(
        "guest {}: ready after {:.1} s, gre.sh done after {:.1} s",
        g.name, g.boot_secs, g.script_secs
    );
    g.run("ip addr add 10.2.0.1/24 dev lo && ip route add 10.1.0.0/24 dev gre1");

    let fail = |what: &str| -> ! {
        let (_, gstate) = g.exec("ip -s -d link show gre1; ip route; ip -br addr");
        panic!(
            "{what}\n--- lifeline log ---\n{}\n--- guest ---\n{gstate}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };

    // Lifeline -> guest, LAN to LAN (static route over Tunnel0), then tunnel address to tunnel address.
    let Some(first) = ping_until(&site, "10.1.0.1", "10.2.0.1", Duration::from_secs(30)) else {
        fail("no answer from the guest's LAN 10.2.0.1 through GRE within 30 s");
    };
    println!("first answer from the guest's LAN through GRE after {first:?}");
    for (src, dst) in [("10.1.0.1", "10.2.0.1"), ("10.100.0.2", "10.100.0.1")] {
        if !site.try_run(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", src, dst]) {
            fail(&format!("Lifeline: ping -I {src} {dst} lost packets"));
        }
    }
    // guest -> Lifeline, the same two ways.
    for (src, dst) in [("10.2.0.1", "10.1.0.1"), ("10.100.0.1", "10.100.0.2")] {
        let (rc, out) = g.exec(&format!("ping -c 5 -i 0.2 -W 2 -I {src} {dst}"));
        if rc != 0 {
            fail(&format!("guest: ping -I {src} {dst} exited {rc}:\n{out}"));
        }
        println!(
            "guest ping {src} -> {dst}: {}",
            out.lines().last().unwrap_or("")
        );
    }
    // The wire: keyed GRE around ICMP both ways, nothing else.
    let pcap = cap.finish();
    let pkts = gre_packets(&pcap);
    let key_ok = |k: &str| k == key || k == format!("0x{KEY:08x}");
    let unkeyed: Vec<_> = pkts.iter().filter(|p| !key_ok(&p.2)).collect();
    assert!(
        unkeyed.is_empty(),
        "GRE without key {KEY}: {unkeyed:?} ({})",
        pcap.display()
    );
    let count = |src: &str, icmp: &str| {
        pkts.iter()
            .filter(|p| p.0 == src && p.3 == icmp && key_ok(&p.2))
            .count()
    };
    for p in pkts.iter().filter(|p| !p.3.is_empty()).take(4) {
        println!("  GRE {} -> {} key {} ICMP type {}", p.0, p.1, p.2, p.3);
    }
    let (site_req, site_rep) = (count("192.0.2.254", "8"), count("192.0.2.254", "0"));
    let (guest_req, guest_rep) = (count("192.0.2.1", "8"), count("192.0.2.1", "0"));
    println!(
        "capture: {} GRE packets (key {KEY}); ICMP in GRE from Lifeline: {site_req} requests, {site_rep} replies; \
         from the guest: {guest_req} requests, {guest_rep} replies",
        pkts.len()
    );
    assert!(
        site_req >= 10 && guest_rep >= 10 && guest_req >= 10 && site_rep >= 10,
        "ICMP in GRE missing in one direction ({})",
        pcap.display()
    );
    // The appliance's kernel must not answer GRE with ICMP protocol unreachable (the raw socket holds it).
    let out = sh(Command::new("tshark").args(["-n", "-r"]).arg(&pcap).args([
        "-Y",
        "icmp.type == 3 && icmp.code == 2",
        "-T",
        "fields",
        "-e",
        "ip.src",
    ]));
    let unreach = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(unreach, 0, "ICMP protocol unreachable on the wire");
    let _ = std::fs::remove_file(&pcap);
    // Then (not captured: the pcap stays small) TCP streams both ways through the tunnel (gre.sh started an
    // iperf3 server in the guest): the MTUs agree (the kernel's gre1 is 1472 with a key: 1500 - 20 - 8).
    for (dir, extra) in [
        ("Lifeline -> guest", None),
        ("guest -> Lifeline", Some("-R")),
    ] {
        let mut argv = vec![
            "iperf3", "-c", "10.2.0.1", "-B", "10.1.0.1", "-t", "2", "-J",
        ];
        argv.extend(extra);
        // The guest's iperf3 server (under TCG) re-opens its listening socket after each test and may
        // still be busy with the last one: "unable to connect" / "busy" is retried for a while.
        let t_iperf = Instant::now();
        let json = loop {
            let out = site.run(&argv);
            let json = String::from_utf8_lossy(&out.stdout).into_owned();
            let transient = json.contains("unable to connect") || json.contains("busy");
            if !transient || t_iperf.elapsed() > Duration::from_secs(20) {
                break json;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let bps: f64 = json
            .split("\"sum_received\"")
            .nth(1)
            .and_then(|r| r.split("\"bits_per_second\":").nth(1))
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0.0);
        println!("iperf3 {dir} through GRE: {:.1} Mbit/s", bps / 1e6);
        assert!(bps > 1e6, "iperf3 {dir} through GRE: {bps} bit/s\n{json}");
    }
    let gre1 = g.run("ip -s link show gre1");
    println!("guest gre1 counters:\n{gre1}");
    println!(
        "whole test {:.1} s, of which {:.1} s waiting for guest slots",
        t0.elapsed().as_secs_f64(),
        g.waited_secs
    );
}
