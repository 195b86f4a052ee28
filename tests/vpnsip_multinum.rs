//! VPN-SIP with several local numbers, end to end in network namespaces with Kamailio (digest on).
//!
//! ```text
//!  branch1 ns (1001) eth-bak 198.51.100.2 --- r-b1 \
//!                                                  reg ns (router, Kamailio 198.51.100.1) --- r-hq --- hq ns
//!  branch2 ns (1004) eth-bak 10.200.0.2  --- r-b2 /                                  eth-bak 203.0.113.2
//! ```
//! The head end has two local numbers on one backup WAN: 1002 bound to Tunnel0 (remote 1001, branch 1)
//! and 1003 bound to Tunnel1 (remote 1004, branch 2), each tunnel with its own IKEv2 profile and 1003 with
//! its own digest account. Both numbers register with Kamailio (two bindings for one contact address).
//! Each branch pings the head-end LAN through its tunnel: branch 1 calls 1002, branch 2 calls 1003, both
//! sessions come up at once and carry traffic; `show vpn-sip registration-status` and
//! `show vpn-sip session` list both numbers. Then the head end calls branch 2 itself (traffic from its
//! LAN into Tunnel1 after the first session ended) and branch 2 sees 1003 as the caller. An INVITE to a
//! number the head end does not have gets 404 and is counted.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kamailio::Kamailio;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

const PROFILE: &str = " match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local vpn-sip-keyring
 nat force-encap
!
";

/// A branch: one number, one tunnel to the head-end number `hq_number`, its LAN `lan`.1.
fn branch_config(me: &str, number: &str, hq_number: &str, wan: &str, inside: &str) -> String {
    format!(
        "\
hostname {me}
!
crypto ikev2 keyring vpn-sip-keyring
 peer headend
  identity key-id {hq_number}
  pre-shared-key multinum-key-{number}
!
crypto ikev2 profile vpn-sip-profile
{PROFILE}crypto ipsec profile vpn-sip-ipsec
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number {number} address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar 198.51.100.1 username {number} password secret{number}
vpn-sip logging
!
interface Loopback11
 ip address {inside} 255.255.255.255
 ip nat inside
!
interface GigabitEthernet1
 device eth-bak
 ip address {wan} 255.255.255.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number {number} remote-number {hq_number} bandwidth 1000
!
ip route 10.2.0.0 255.255.0.0 Tunnel0
"
    )
}

/// The head end: 1002 on Tunnel0 (for 1001), 1003 on Tunnel1 (for 1004, its own account and profile).
fn headend_config() -> String {
    format!(
        "\
hostname headend
!
crypto ikev2 keyring vpn-sip-keyring
 peer branch1
  identity key-id 1001
  pre-shared-key multinum-key-1001
 peer branch2
  identity key-id 1004
  pre-shared-key multinum-key-1004
!
crypto ikev2 profile vpn-sip-profile
{PROFILE}crypto ikev2 profile vpn-sip-profile-1003
{PROFILE}crypto ipsec profile vpn-sip-ipsec
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number 1002 address ipv4 GigabitEthernet1
vpn-sip local-number 1003 address ipv4 GigabitEthernet1 username 1003 password secret1003
vpn-sip tunnel source Loopback11
vpn-sip registrar 198.51.100.1 username 1002 password secret1002
vpn-sip logging
!
interface Loopback11
 ip address 10.9.9.2 255.255.255.255
 ip nat inside
!
interface GigabitEthernet1
 device eth-bak
 ip address 203.0.113.2 255.255.255.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number 1002 remote-number 1001 bandwidth 1000
!
interface Tunnel1
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile-1003
 vpn-sip local-number 1003 remote-number 1004 bandwidth 512
!
ip route 10.1.0.0 255.255.0.0 Tunnel0
ip route 10.3.0.0 255.255.0.0 Tunnel1
"
    )
}

struct Appliance {
    sock: PathBuf,
    _daemon: Daemon,
}

fn start(ns: &Netns, name: &str, cfg: &str) -> Appliance {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("multinum-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.cfg"));
    std::fs::write(&path, cfg).unwrap();
    let check = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let sock = dir.join("ctl.sock");
    let child = ns
        .cmd(BIN)
        // The IPsec idle timer at 5 s (the test hook; the configuration's minimum is 60 s): continuous
        // pings keep the sessions up, and the test sees them end.
        .args(["run", "--idle-override", "5", "-c"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Appliance {
        sock,
        _daemon: Daemon(child),
    }
}

fn show(a: &Appliance, what: &str) -> String {
    let out = Command::new(BIN)
        .arg("show")
        .args(what.split_whitespace())
        .arg("--socket")
        .arg(&a.sock)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// The session block of `interface` in `show vpn-sip session` output.
fn block<'a>(sessions: &'a str, interface: &str) -> &'a str {
    let start = sessions
        .find(&format!("Interface: {interface}\n"))
        .unwrap_or_else(|| panic!("no {interface} in\n{sessions}"));
    let rest = &sessions[start..];
    let end = rest[1..]
        .find("\nInterface: ")
        .map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn vpnsip_head_end_with_two_local_numbers_serves_two_branches_at_once() {
    let name = "vpnsip_head_end_with_two_local_numbers_serves_two_branches_at_once";
    if !netns_available(name) {
        return;
    }
    let t0 = Instant::now();
    let b1 = Netns::new("mb1");
    let b2 = Netns::new("mb2");
    let hq = Netns::new("mhq");
    let reg = Netns::new("mrg");
    veth(
        &b1,
        "eth-bak",
        "198.51.100.2/24",
        &reg,
        "r-b1",
        "198.51.100.1/24",
    );
    veth(
        &b2,
        "eth-bak",
        "10.200.0.2/24",
        &reg,
        "r-b2",
        "10.200.0.1/24",
    );
    veth(
        &hq,
        "eth-bak",
        "203.0.113.2/24",
        &reg,
        "r-hq",
        "203.0.113.1/24",
    );
    reg.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for ns in [&b1, &b2, &hq] {
        ns.run(&["ip", "route", "add", "default", "dev", "eth-bak"]);
    }
    b1.run(&["ip", "route", "replace", "default", "via", "198.51.100.1"]);
    b2.run(&["ip", "route", "replace", "default", "via", "10.200.0.1"]);
    hq.run(&["ip", "route", "replace", "default", "via", "203.0.113.1"]);
    b1.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    b1.run(&["ip", "addr", "add", "10.9.9.1/32", "dev", "lo"]);
    b2.run(&["ip", "addr", "add", "10.3.0.1/24", "dev", "lo"]);
    b2.run(&["ip", "addr", "add", "10.9.9.3/32", "dev", "lo"]);
    hq.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"]);
    hq.run(&["ip", "addr", "add", "10.9.9.2/32", "dev", "lo"]);
    let Some(kam) = Kamailio::start(&reg, "198.51.100.1") else {
        let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "kamailio is not installed (scripts/install-deps installs it)"
        );
        eprintln!("SKIP: kamailio not installed");
        return;
    };
    let cap = Capture::start(&reg, "r-hq", "vpnsip-multinum");
    let h = start(&hq, "headend", &headend_config());
    let a1 = start(
        &b1,
        "branch1",
        &branch_config("branch1", "1001", "1002", "198.51.100.2", "10.9.9.1"),
    );
    let a2 = start(
        &b2,
        "branch2",
        &branch_config("branch2", "1004", "1003", "10.200.0.2", "10.9.9.3"),
    );

    // Four numbers registered; the head end's two share its contact address.
    wait_for(
        "all four numbers registered",
        Duration::from_secs(15),
        || {
            kam.kamcmd("ul.dump").is_some_and(|d| {
                ["1001", "1002", "1003", "1004"]
                    .iter()
                    .all(|n| d.contains(&format!("sip:{n}@")))
            })
        },
    );
    let ul = kam.kamcmd("ul.dump").unwrap();
    for n in ["1002", "1003"] {
        assert!(
            ul.contains(&format!("sip:{n}@203.0.113.2:5060")),
            "{n}:\n{ul}"
        );
    }
    wait_for(
        "the head end shows both registrations",
        Duration::from_secs(5),
        || show(&h, "vpn-sip registration-status").lines().count() == 2,
    );
    let status = show(&h, "vpn-sip registration-status");
    assert_eq!(
        status,
        "SIP registration of local number 1002 : registered 203.0.113.2\n\
         SIP registration of local number 1003 : registered 203.0.113.2\n"
    );
    let registrar = show(&h, "vpn-sip sip registrar");
    for n in ["1002", "1003"] {
        assert!(
            registrar
                .lines()
                .any(|l| l.starts_with(n) && l.contains("203.0.113.2") && l.contains("UDP")),
            "{registrar}"
        );
    }
    println!("{name}: registered after {:?}", t0.elapsed());

    // Both branches call at once: continuous pings from each branch LAN to the head-end LAN.
    let pinger = |ns: &Netns, src: &str| {
        ns.cmd("ping")
            .args(["-i", "0.2", "-c", "60", "-W", "1", "-I", src, "10.2.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let p1 = pinger(&b1, "10.1.0.1");
    let p2 = pinger(&b2, "10.3.0.1");
    let up = wait_for("both sessions up at once", Duration::from_secs(15), || {
        let s = show(&h, "vpn-sip session");
        s.matches("SESSION_UP (R)").count() == 2
    });
    println!("{name}: both sessions up {up:?} after the first packets");
    let sessions = show(&h, "vpn-sip session");
    let t0s = block(&sessions, "Tunnel0");
    let t1s = block(&sessions, "Tunnel1");
    assert!(
        t0s.contains("Local number  : 1002") && t0s.contains("Remote number : 1001"),
        "{sessions}"
    );
    assert!(
        t1s.contains("Local number  : 1003") && t1s.contains("Remote number : 1004"),
        "{sessions}"
    );
    assert!(t0s.contains("Remote address:port: 198.51.100.2:"), "{t0s}");
    assert!(t1s.contains("Remote address:port: 10.200.0.2:"), "{t1s}");
    let detail = show(&h, "vpn-sip session detail");
    assert!(
        block(&detail, "Tunnel1").contains("Configured/Negotiated bandwidth: 512/512 kbps"),
        "{detail}"
    );
    // The branches see the head-end number they called, answered as initiator.
    assert!(show(&a1, "vpn-sip session").contains("Remote number : 1002"));
    assert!(show(&a2, "vpn-sip session").contains("Remote number : 1003"));
    assert!(show(&a1, "vpn-sip session").contains("SESSION_UP (I)"));
    assert!(show(&a2, "vpn-sip session").contains("SESSION_UP (I)"));
    // Traffic on both while both are up: the head end's tunnels count decrypted and encrypted packets.
    let counters = |t: &str| -> (u64, u64) {
        let sa = show(&h, &format!("crypto ipsec sa {t}"));
        let grab = |key: &str| {
            sa.lines()
                .find_map(|l| {
                    l.split_once(key)
                        .and_then(|(_, r)| r.split(',').next())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        (grab("#pkts decrypt:"), grab("#pkts encrypt:"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (d0, e0) = counters("Tunnel0");
        let (d1, e1) = counters("Tunnel1");
        if d0 >= 5 && e0 >= 5 && d1 >= 5 && e1 >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both tunnels carry traffic in both directions: {:?} {:?}\n{}\n{}",
            (d0, e0),
            (d1, e1),
            show(&h, "crypto ipsec sa Tunnel0"),
            show(&h, "crypto ipsec sa Tunnel1")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        show(&h, "vpn-sip session").matches("SESSION_UP").count(),
        2,
        "both still up"
    );
    for (p, who) in [(p1, "branch 1"), (p2, "branch 2")] {
        let mut p = p;
        let _ = p.kill();
        let out = p.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let replies = text.matches("bytes from 10.2.0.1").count();
        assert!(replies >= 5, "{who}: {replies} replies\n{text}");
    }

    // An INVITE to a number the head end does not have: 404, counted.
    let invite = "INVITE sip:1009@203.0.113.2:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 203.0.113.1:5099;branch=z9hG4bKmultinum404\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:1001@lifeline.test>;tag=t404\r\n\
        To: <sip:1009@lifeline.test>\r\n\
        Call-ID: multinum-404@203.0.113.1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";
    // (one datagram: bash's /dev/udp would send it line by line)
    let mut send = reg.cmd("python3");
    send.args([
        "-c",
        "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), ('203.0.113.2', 5060))",
        invite,
    ]);
    sh(&mut send);
    wait_for("the 404 is counted", Duration::from_secs(5), || {
        show(&h, "vpn-sip registration-status")
            .contains("Calls to unknown numbers refused (404): 1")
    });

    // Both sessions end by the idle timer; then traffic from the head-end LAN into Tunnel1 makes the
    // head end call branch 2 from 1003 (branch 2 answers only that caller).
    wait_for(
        "both sessions end when idle",
        Duration::from_secs(20),
        || {
            show(&h, "vpn-sip session")
                .matches("READY_TO_CONNECT")
                .count()
                == 2
        },
    );
    // (and branch 2 has taken the BYE, or it would refuse the next call as busy)
    wait_for("branch 2 idle too", Duration::from_secs(10), || {
        show(&a2, "vpn-sip session").contains("READY_TO_CONNECT")
    });
    assert!(
        hq.try_run(&["ping", "-c", "1", "-W", "5", "-I", "10.2.0.1", "10.3.0.1"]),
        "head end to branch 2: {}\n{}",
        show(&h, "vpn-sip session detail"),
        show(&a2, "vpn-sip session detail")
    );
    let t1 = show(&h, "vpn-sip session");
    assert!(block(&t1, "Tunnel1").contains("SESSION_UP (I)"), "{t1}");
    let b2s = show(&a2, "vpn-sip session");
    assert!(
        b2s.contains("SESSION_UP (R)") && b2s.contains("Remote number : 1003"),
        "{b2s}"
    );
    if let Some(c) = cap {
        let _ = std::fs::remove_file(c.finish());
    }
    println!("{name}: {:?}", t0.elapsed());
}
