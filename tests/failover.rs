//! Failover in network namespaces (issue: IP SLA, tracking and route failover).
//!
//! A branch namespace with a primary and a backup uplink to an HQ namespace. The branch runs `lifeline run`
//! with an IP SLA probing an HQ address across the primary, a track object, and two static routes to the HQ
//! LAN: the tracked primary (distance 1) and the backup (distance 250). The primary is cut by an nftables drop
//! rule (100% loss; this kernel has no netem) and, separately, by taking the link down. The kernel route must
//! move to the backup within `timeout + frequency` and back when the primary returns; the probes must keep
//! using the primary while the routes are on the backup, or fallback could never happen.
#![allow(clippy::unwrap_used)]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");
const TIMEOUT: Duration = Duration::from_millis(300);
const FREQUENCY: Duration = Duration::from_secs(1);
/// Scheduling slack for a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(700);

const BRANCH_CONFIG: &str = "\
hostname branch
!
interface Loopback0
 ip address 10.1.255.1 255.255.255.255
!
interface GigabitEthernet0
 description primary WAN
 device eth-pri
 ip address 192.0.2.1 255.255.255.0
!
interface GigabitEthernet1
 description backup WAN
 device eth-bak
 ip address 198.51.100.1 255.255.255.0
!
ip sla 1
 icmp-echo 203.0.113.1 source-interface GigabitEthernet0
 threshold 300
 timeout 300
 frequency 1
ip sla schedule 1 life forever start-time now
track 1 ip sla 1 reachability
!
ip route 203.0.113.1 255.255.255.255 192.0.2.11
ip route 10.2.0.0 255.255.0.0 192.0.2.11 track 1
ip route 10.2.0.0 255.255.0.0 198.51.100.11 250
ip route 10.3.0.0 255.255.0.0 GigabitEthernet0
";

struct Topology {
    branch: Netns,
    hq: Netns,
}

fn topology() -> Topology {
    let branch = Netns::new("br");
    let hq = Netns::new("hq");
    veth(
        &branch,
        "eth-pri",
        "192.0.2.1/24",
        &hq,
        "eth-pri",
        "192.0.2.11/24",
    );
    veth(
        &branch,
        "eth-bak",
        "198.51.100.1/24",
        &hq,
        "eth-bak",
        "198.51.100.11/24",
    );
    hq.run(&["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"]);
    hq.run(&["ip", "addr", "add", "10.2.0.1/32", "dev", "lo"]);
    hq.run(&["nft", "add", "table", "inet", "lltest"]);
    hq.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "lltest",
        "in",
        "{ type filter hook input priority 0 ; }",
    ]);
    Topology { branch, hq }
}

/// The branch's kernel route to `prefix` in Lifeline's table, as `ip route` prints it.
fn route_of(t: &Topology, prefix: &str) -> String {
    let out = t
        .branch
        .cmd("ip")
        .args(["-4", "route", "show", "table", "4711", prefix])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The branch's kernel route to the HQ LAN, as `ip route` prints it.
fn hq_route(t: &Topology) -> String {
    // Before the daemon's first route the table does not exist yet: that reads as empty.
    let out = t
        .branch
        .cmd("ip")
        .args(["-4", "route", "show", "table", "4711", "10.2.0.0/16"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_route(t: &Topology, via: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let r = hq_route(t);
        if r.contains(&format!("via {via}")) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "route did not move to {via} within {limit:?}; table 4711 has: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Echo requests that reached HQ's primary interface (counted by the drop rule, dropped or not).
fn primary_probe_count(t: &Topology) -> u64 {
    let out = t.hq.run(&["nft", "list", "chain", "inet", "lltest", "in"]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn route_fails_over_to_backup_and_back() {
    if !netns_available("route_fails_over_to_backup_and_back") {
        return;
    }
    let t = topology();
    let _cap = Capture::start(&t.branch, "any", "failover");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("failover-{}", t.branch.name));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("branch.cfg");
    std::fs::write(&cfg, BRANCH_CONFIG).unwrap();
    let sock = dir.join("ctl.sock");
    let child = t
        .branch
        .cmd(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);

    // Start: probes succeed, the tracked primary is installed.
    let up = wait_route(&t, "192.0.2.11", Duration::from_secs(5));
    println!("primary installed {up:?} after start");
    let limit_down = TIMEOUT + FREQUENCY + SLACK;
    let limit_up = FREQUENCY + SLACK;
    let mut report = Vec::new();

    for round in 0..2 {
        // --- cut 1: 100% loss on the primary (nftables drop on HQ's primary interface).
        t.hq.run(&[
            "nft", "add", "rule", "inet", "lltest", "in", "iifname", "eth-pri", "counter", "drop",
        ]);
        let failover = wait_route(&t, "198.51.100.11", limit_down + Duration::from_secs(2));
        // Probes keep using the primary while the route is on the backup.
        let before = primary_probe_count(&t);
        std::thread::sleep(FREQUENCY * 2 + Duration::from_millis(200));
        let after = primary_probe_count(&t);
        assert!(
            after > before,
            "no probe reached HQ over the primary after the route moved ({before} -> {after})"
        );
        t.hq.run(&["nft", "flush", "chain", "inet", "lltest", "in"]);
        let fallback = wait_route(&t, "192.0.2.11", limit_up + Duration::from_secs(2));
        println!(
            "round {round} drop: failover {failover:?} (limit {limit_down:?}), fallback {fallback:?} (limit {limit_up:?})"
        );
        report.push(("nft drop", failover, fallback));

        // --- cut 2: the primary link goes down (HQ side, so the branch sees carrier loss).
        t.hq.run(&["ip", "link", "set", "eth-pri", "down"]);
        let failover = wait_route(&t, "198.51.100.11", limit_down + Duration::from_secs(2));
        // The carrier loss withdraws the untracked interface route too (netlink link events).
        let t0 = Instant::now();
        while !route_of(&t, "10.3.0.0/16").is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "interface route survived the link going down"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        t.hq.run(&["ip", "link", "set", "eth-pri", "up"]);
        let fallback = wait_route(&t, "192.0.2.11", limit_up + Duration::from_secs(3));
        let t0 = Instant::now();
        while !route_of(&t, "10.3.0.0/16").contains("dev eth-pri") {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "interface route not back after the link came up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("round {round} link down: failover {failover:?}, fallback {fallback:?}");
        report.push(("link down", failover, fallback));
    }
    for (cut, failover, fallback) in &report {
        assert!(
            *failover <= limit_down,
            "{cut}: failover took {failover:?} > {limit_down:?}"
        );
        // A link that comes back needs carrier negotiation before the next probe can succeed.
        let fb_limit = if *cut == "link down" {
            limit_up + Duration::from_secs(1)
        } else {
            limit_up
        };
        assert!(
            *fallback <= fb_limit,
            "{cut}: fallback took {fallback:?} > {fb_limit:?}"
        );
    }

    // The daemon's own view agrees.
    let out = Command::new(BIN)
        .args(["show", "track", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Track 1"), "{text}");
    assert!(text.contains("is Up"), "{text}");

    // `interface Loopback0` (no `device`) lives on the host's lo.
    let lo = String::from_utf8_lossy(
        &t.branch
            .run(&["ip", "-4", "addr", "show", "dev", "lo"])
            .stdout,
    )
    .to_string();
    assert!(
        lo.contains("10.1.255.1/32"),
        "Loopback0's address is not on lo: {lo}"
    );

    // A clean stop leaves the kernel as Lifeline found it: no routes in table 4711, no ip rules of its own.
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(hq_route(&t), "", "routes left in table 4711 after shutdown");
    let rules = String::from_utf8_lossy(&t.branch.run(&["ip", "rule"]).stdout).to_string();
    assert!(
        !rules.contains("4711") && !rules.contains("4710"),
        "ip rules left after shutdown: {rules}"
    );
}
