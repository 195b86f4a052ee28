//! `lifeline demo` (the README's main command) runs the whole VPN-SIP story as a non-root user in well
//! under 30 s: failover, INVITE/200/ACK with RFC 6193 SDP, IKEv2, traffic through the tunnel, fallback,
//! idle timer, BYE.
#![allow(clippy::unwrap_used)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_tells_the_whole_failover_story() {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lifeline"))
        .arg("demo")
        .output()
        .unwrap();
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(30), "demo took {took:?}");
    for expected in [
        "route to 10.2.0.0/16 -> Tunnel0",
        "INVITE sip:0388884001@",
        "m=application 50001 udp ike-esp-udpencap",
        "a=ike-setup:active",
        "a=ike-setup:passive",
        "a=fingerprint:SHA-1 ",
        "b=AS:1000",
        "b=AS:512",
        "SESSION_UP (I)",
        "SESSION_UP (R)",
        "first ping answered through Tunnel0",
        "Configured/Negotiated bandwidth: 1000/512 kbps",
        "Service-policy output: VPN-SIP-Tunnel0-Bandwidth",
        "Capabilities:S",
        "shape (average) cir 512000",
        "udp 10.9.9.1:4500",
        "route to 10.2.0.0/16 -> GigabitEthernet0 via 192.0.2.11",
        "BYE sip:",
        "SESSION_UP (I) -> READY_TO_CONNECT",
    ] {
        assert!(
            text.contains(expected),
            "missing `{expected}` in the demo's story"
        );
    }
    // After the BYE the PAT entry is gone: the last `show ip nat translations` has only its header.
    let last_nat = text.rsplit("show ip nat translations").next().unwrap();
    assert!(
        !last_nat.lines().nth(2).unwrap_or("").starts_with("udp"),
        "PAT entry survived the session"
    );
}

/// `lifeline demo --netns` (root): the same story with TUN devices, kernel routes and `lifeline run` daemons in
/// network namespaces, the built-in registrar in a third one.
#[test]
fn demo_netns_tells_the_story_with_kernel_routes_and_tun_devices() {
    if !common::netns_available("demo_netns_tells_the_story_with_kernel_routes_and_tun_devices") {
        return;
    }
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_lifeline"))
        .args(["demo", "--netns"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "demo --netns failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "demo --netns took {took:?}");
    for expected in [
        ": registered 198.51.100.2",
        "answered over the primary",
        "primary cut",
        // the kernel's table 4711 before and after the move
        "10.2.0.0/16 via 192.0.2.11 dev eth-pri",
        "10.2.0.0/16 dev Tunnel0",
        "first ping answered through Tunnel0",
        "%VPN_SIP-5-SESSION_UP",
        "SESSION_UP (I)",
        "SESSION_UP (R)",
        "Configured/Negotiated bandwidth: 1000/512 kbps",
        "udp 10.9.9.1:4500",
        "Capabilities:S",
        "shape (average) cir 512000",
        "route back to GigabitEthernet0 via 192.0.2.11",
        "both ends READY_TO_CONNECT",
        "namespaces removed",
    ] {
        assert!(
            text.contains(expected),
            "missing `{expected}` in the netns demo's story"
        );
    }
    // Nothing left behind.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter(|l| l.starts_with("lldemo-") && l.contains(&format!("-{pid}")))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
