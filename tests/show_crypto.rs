//! `show crypto session [detail]` and `show crypto ikev2 sa [detailed]` end to end: `lifeline run` with a
//! seed VPN-SIP configuration answers them through the control socket (abbreviated as an operator types
//! them). No root needed: the VPN-SIP tunnel is idle, so the session is DOWN and there is no IKE SA.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

/// The first seed fixture that configures VPN-SIP, and the name of its VPN-SIP tunnel.
fn vpn_sip_fixture() -> (PathBuf, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("vpn-sip enable") && t.contains("remote-number"))
        })
        .collect();
    names.sort();
    let path = names.into_iter().next().expect("a VPN-SIP seed fixture");
    let cfg = config::parse(&std::fs::read_to_string(&path).unwrap()).config;
    let text = config::render(&cfg);
    // The interface block that carries the `vpn-sip local-number` line.
    let mut current = None;
    let mut tunnel = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("interface ") {
            current = Some(name.trim().to_string());
        } else if line.trim_start().starts_with("vpn-sip local-number") {
            tunnel = current.clone();
            break;
        }
    }
    (path, tunnel.expect("a VPN-SIP tunnel in the fixture"))
}

fn wait_for_socket(sock: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("daemon exited early: {status}");
        }
        assert!(Instant::now() < deadline, "daemon did not open its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn show(sock: &Path, words: &str, json: bool) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("show").args(words.split_whitespace());
    if json {
        cmd.arg("--json");
    }
    let out = cmd.arg("--socket").arg(sock).output().unwrap();
    assert!(
        out.status.success(),
        "show {words}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn daemon_answers_show_crypto_session_and_ikev2_sa() {
    let (cfg, tunnel) = vpn_sip_fixture();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("show-crypto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_for_socket(&sock, &mut daemon.0);

    let detail = show(&sock, "cry sess det", false);
    println!("{detail}");
    assert!(
        detail.starts_with("Crypto session current status\n"),
        "{detail}"
    );
    assert!(detail.contains("S - SIP VPN-SIP\n"), "legend: {detail}");
    assert!(
        detail.contains(&format!("Interface: {tunnel}\n")),
        "{detail}"
    );
    // Idle VPN-SIP tunnel: no IKE SA, no IPsec SA.
    assert!(detail.contains("Session status: DOWN\n"), "{detail}");
    assert!(!detail.contains("IKEv2 SA:"), "{detail}");
    assert!(
        detail.contains("IPSEC FLOW: permit ip 0.0.0.0/0.0.0.0 0.0.0.0/0.0.0.0\n"),
        "{detail}"
    );
    assert!(
        detail.contains("Active SAs: 0, origin: crypto map\n"),
        "{detail}"
    );

    let brief = show(&sock, "crypto session", false);
    assert!(!brief.contains("Code: C"), "brief has no legend: {brief}");
    let filtered = show(&sock, "crypto session detail interface Tunnel999", false);
    assert!(!filtered.contains("Interface:"), "{filtered}");

    let json = show(&sock, "crypto session", true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["status"], "Down", "{json}");
    assert_eq!(v[0]["interface"], tunnel.as_str(), "{json}");

    let sa = show(&sock, "crypto ikev2 sa detailed", false);
    println!("{sa}");
    assert!(sa.starts_with(" IPv4 Crypto IKEv2  SA\n"), "{sa}");
    assert!(sa.contains(" IPv6 Crypto IKEv2  SA\n"), "{sa}");
    assert!(!sa.contains("READY"), "no IKE SA while idle: {sa}");
}
