//! VPN-SIP against a far end built from standard parts (issue: VPN-SIP, "standard parts as the far end"):
//! SIPp plays the head end's SIP side (registrar and called number 1002,
//! `tests/peers/sipp/vpnsip_headend.xml`) and strongSwan (charon, user-space ESP) its IKE side, listening
//! for NAT-T on the port that SIPp's RFC 6193 answer names (50200, not 4500). The SDP answer carries
//! strongSwan's fingerprint: SHA-1 of the pre-shared key both ends hold for the session (the seed's rule
//! for PSK profiles), computed here with `sha1sum`, independently of Lifeline.
//!
//! ```text
//!  branch ns (Lifeline 1001)                              head-end ns
//!   LAN 10.1.0.1 (lo)   eth-bak 198.51.100.2 ---- 198.51.100.1  SIPp :5060 (registrar + UAS 1002)
//!   Loopback11 10.9.9.1 (ip nat inside)                          charon IKE :500, NAT-T :50200
//!                                                                LAN 10.2.0.1 (lo), routed into ipsec0
//! ```
//! The branch registers with SIPp; the first ping from its LAN is routed into Tunnel0 and triggers the
//! INVITE; SIPp answers with strongSwan's address, port and fingerprint; Lifeline runs IKEv2 (forced UDP
//! encapsulation, from its per-session port) to strongSwan, authenticates it by AUTH and by the SDP
//! fingerprint, and the queued ping is answered through the tunnel. The IPsec idle timer (2 s here) then
//! deletes the SA at strongSwan and sends a BYE that SIPp answers. A second test gives SIPp's answer a
//! fingerprint that is not strongSwan's: the session fails with the reason shown and no traffic passes.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::strongswan::{Charon, RouteConn, strongswan_available};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");
const PSK: &str = "vpn-sip-standard-parts-key-7731";
const BRANCH_WAN: &str = "198.51.100.2";
const HEAD_WAN: &str = "198.51.100.1";
/// strongSwan's NAT-T port, the one SIPp's SDP names.
const IKE_PORT: u16 = 50200;

/// Two charons and two daemons on two cores: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn branch_config() -> String {
    format!(
        "\
hostname branch
!
crypto ikev2 keyring vpn-sip-keyring
 peer head-end
  identity key-id 1002
  pre-shared-key {PSK}
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local vpn-sip-keyring
 nat force-encap
!
crypto ipsec profile vpn-sip-ipsec
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number 1001 address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar {HEAD_WAN} username 1001 password secret1001
vpn-sip logging
!
interface Loopback11
 ip address 10.9.9.1 255.255.255.255
 ip nat inside
!
interface GigabitEthernet1
 device eth-bak
 ip address {BRANCH_WAN} 255.255.255.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number 1001 remote-number 1002 bandwidth 512
!
ip route 10.2.0.0 255.255.0.0 Tunnel0
"
    )
}

/// strongSwan's side: key-id identities (the SIP numbers), the same PSK, any remote address (the branch
/// comes from its session port, behind the PAT).
fn strongswan_conn() -> RouteConn {
    RouteConn {
        local_addr: HEAD_WAN.into(),
        remote_addr: "%any".into(),
        local_id: "1002".into(),
        remote_id: "1001".into(),
        psk: PSK.into(),
        ike_proposals: "aes256-sha256-ecp256".into(),
        // What Lifeline offers without a transform set: the IOS default, esp-aes esp-sha-hmac.
        esp_proposals: "aes128-sha1".into(),
        start_action: "none".into(),
    }
}

/// SHA-1 of the PSK as `AB:CD:...`, by coreutils.
fn psk_fingerprint() -> String {
    let out = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha1sum", "sh", PSK])
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    let hex = hex.split_whitespace().next().unwrap().to_ascii_uppercase();
    assert_eq!(hex.len(), 40, "sha1sum: {hex}");
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn sipp_available() -> bool {
    if Command::new("sh")
        .args(["-c", "command -v sipp"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return true;
    }
    assert!(
        !std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1"),
        "LIFELINE_REQUIRE_NETNS=1 but sipp is not installed"
    );
    eprintln!("SKIP: sipp is not installed");
    false
}

struct Bed {
    dir: PathBuf,
    branch: Netns,
    _head: Netns,
    charon: Charon,
    sipp: Option<Child>,
    sock: PathBuf,
    log: PathBuf,
    _lifeline: Daemon,
}

impl Bed {
    fn show(&self, what: &str) -> String {
        let out = Command::new(BIN)
            .arg("show")
            .args(what.split_whitespace())
            .arg("--socket")
            .arg(&self.sock)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sipp_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sipp.log")).unwrap_or_default()
    }

    /// Everything a failing assertion should print.
    fn state(&self) -> String {
        format!(
            "--- show vpn-sip session detail\n{}\n--- SIPp log\n{}\n--- Lifeline log\n{}\n--- charon log\n{}",
            self.show("vpn-sip session detail"),
            self.sipp_log(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.charon.log()
        )
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut c) = self.sipp.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// Namespaces, strongSwan, SIPp (answering with `answer_fp`) and the branch appliance, registered.
fn bed(label: &str, answer_fp: &str) -> Bed {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vpnsip-std-{label}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let branch = Netns::new("vsb");
    let head = Netns::new("vsh");
    veth(
        &branch,
        "eth-bak",
        &format!("{BRANCH_WAN}/24"),
        &head,
        "eth0",
        &format!("{HEAD_WAN}/24"),
    );
    branch.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    head.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"]);
    head.run(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);

    let charon = Charon::start_with_ports(&head, &strongswan_conn().render(), 500, IKE_PORT);
    charon.route_based(&head, &["10.1.0.0/16"], "10.2.0.1");

    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sipp/vpnsip_headend.xml");
    let port = IKE_PORT.to_string();
    let sipp = head
        .cmd("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", HEAD_WAN, "-p", "5060", "-m", "2", "-nostdin"])
        .args([
            "-timeout",
            "50s",
            "-timeout_error",
            "-trace_msg",
            "-trace_logs",
        ])
        .arg("-message_file")
        .arg(dir.join("sipp.msg"))
        .arg("-log_file")
        .arg(dir.join("sipp.log"))
        .args(["-key", "user", "1002", "-key", "ike_ip", HEAD_WAN])
        .args(["-key", "ike_port", &port, "-key", "fp", answer_fp])
        .args(["-key", "bw", "256"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("SIPp listens", Duration::from_secs(10), || {
        let out = head.cmd("ss").arg("-unl").output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{HEAD_WAN}:5060"))
    });

    let cfg = dir.join("branch.cfg");
    std::fs::write(&cfg, branch_config()).unwrap();
    let check = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let sock = dir.join("ctl.sock");
    let log = dir.join("lifeline.log");
    let child = branch
        .cmd(BIN)
        .args(["run", "--idle-override", "2", "-c"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let bed = Bed {
        dir,
        branch,
        _head: head,
        charon,
        sipp: Some(sipp),
        sock,
        log,
        _lifeline: Daemon(child),
    };
    let t0 = Instant::now();
    while !bed
        .show("vpn-sip registration-status")
        .contains("registered")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the branch did not register with SIPp\n{}",
            bed.state()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    bed
}

#[test]
fn vpnsip_branch_calls_sipp_and_strongswan_and_traffic_flows() {
    let test = "vpnsip_branch_calls_sipp_and_strongswan_and_traffic_flows";
    if !netns_available(test) || !strongswan_available(test) || !sipp_available() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fp = psk_fingerprint();
    let mut bed = bed("ok", &fp);
    let cap = Capture::start(&bed.branch, "eth-bak", "vpnsip-standard");

    // The first packet triggers the call; it waits in the tunnel's queue and is answered.
    let t0 = Instant::now();
    let answered = bed
        .branch
        .try_run(&["ping", "-c", "1", "-W", "8", "-I", "10.1.0.1", "10.2.0.1"]);
    assert!(
        answered,
        "the first ping was not answered through the tunnel\n{}",
        bed.state()
    );
    println!(
        "first packet -> answer through SIPp + strongSwan: {:?}",
        t0.elapsed()
    );
    bed.branch.run(&[
        "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
    ]);

    let s = bed.show("vpn-sip session detail");
    println!("{s}");
    assert!(s.contains("SESSION_UP (I)"), "{}", bed.state());
    assert!(
        s.contains(&format!("Remote address:port: {HEAD_WAN}:{IKE_PORT}")),
        "{s}"
    );
    assert!(
        s.contains("Configured/Negotiated bandwidth: 512/256 kbps"),
        "{s}"
    );
    let crypto = bed.show("crypto session detail");
    assert!(crypto.contains("Capabilities:S"), "{crypto}");
    let nat = bed.show("ip nat translations");
    println!("{nat}");
    assert!(nat.contains("udp 10.9.9.1:4500"), "{nat}");
    assert!(nat.contains(&format!("{HEAD_WAN}:{IKE_PORT}")), "{nat}");

    // SIPp saw an RFC 6193 offer with the branch's fingerprint: SHA-1 of the same PSK.
    let slog = bed.sipp_log();
    assert!(
        slog.contains("ike-esp-udpencap") && slog.contains("a=ike-setup:active"),
        "{slog}"
    );
    assert!(
        slog.to_ascii_uppercase()
            .contains(&format!("A=FINGERPRINT:SHA-1 {fp}")),
        "the offer's fingerprint is not SHA-1 of the PSK ({fp}):\n{slog}"
    );
    // strongSwan authenticated the branch (PSK AUTH) on the SDP's port, over UDP encapsulation.
    let clog = bed.charon.log();
    assert!(
        clog.contains("authentication of '1001' with pre-shared key successful"),
        "{}",
        bed.state()
    );
    let sas = bed.charon.list_sas();
    assert!(
        sas.contains("INSTALLED") && sas.contains("ESTABLISHED"),
        "{sas}"
    );
    assert!(sas.contains(&format!("{HEAD_WAN}[{IKE_PORT}]")), "{sas}");

    // Idle: the SA goes at strongSwan, the BYE reaches SIPp, which then finishes its two calls cleanly.
    wait_for(
        "idle timer ends the session",
        Duration::from_secs(10),
        || {
            bed.show("vpn-sip session detail")
                .contains("READY_TO_CONNECT")
        },
    );
    wait_for("strongSwan's SA deleted", Duration::from_secs(5), || {
        !bed.charon.list_sas().contains("ESTABLISHED")
    });
    let mut sipp = bed.sipp.take().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = sipp.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "SIPp did not get its BYE\n{}",
            bed.state()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIPp failed ({status})\n{}", bed.state());
    assert!(bed.sipp_log().contains("BYE received"));
    assert!(!bed.show("ip nat translations").contains("udp "));

    // On the wire: SIP and ESP in UDP between the session port and strongSwan's port, never the LANs.
    if let Some(cap) = cap {
        std::thread::sleep(Duration::from_millis(200));
        let pcap = cap.finish();
        let count = |filter: &str| {
            let out = Command::new("tcpdump")
                .args(["-n", "-r"])
                .arg(&pcap)
                .arg(filter)
                .stderr(Stdio::null())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let esp = count(&format!(
            "udp and src host {HEAD_WAN} and src port {IKE_PORT} and udp[8:4] != 0"
        ));
        let clear = count("net 10.1.0.0/24 or net 10.2.0.0/24");
        println!("wire: {esp} ESP-in-UDP packets from strongSwan's port, {clear} in the clear");
        // (tcpdump may miss the first packets while it starts: at least one answer must be seen.)
        assert!(esp >= 1, "no ESP in UDP from port {IKE_PORT}");
        assert_eq!(clear, 0);
        let _ = std::fs::remove_file(pcap);
    }
}

#[test]
fn vpnsip_far_end_whose_sdp_fingerprint_is_not_its_key_is_refused() {
    let test = "vpnsip_far_end_whose_sdp_fingerprint_is_not_its_key_is_refused";
    if !netns_available(test) || !strongswan_available(test) || !sipp_available() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // strongSwan holds the right PSK (its AUTH verifies), but the SDP's fingerprint is another one.
    let wrong = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33";
    assert_ne!(wrong, psk_fingerprint());
    let bed = bed("mismatch", wrong);
    assert!(
        !bed.branch
            .try_run(&["ping", "-c", "1", "-W", "3", "-I", "10.1.0.1", "10.2.0.1"]),
        "traffic crossed a tunnel whose peer does not hold the SDP's fingerprint"
    );
    wait_for(
        "a failure reason on the branch",
        Duration::from_secs(10),
        || bed.show("vpn-sip session detail").contains("Last failure"),
    );
    let s = bed.show("vpn-sip session detail");
    println!("{s}");
    assert!(s.contains("READY_TO_CONNECT"), "{}", bed.state());
    assert!(
        s.to_ascii_lowercase().contains("fingerprint"),
        "{}",
        bed.state()
    );
    assert!(!bed.show("ip nat translations").contains("udp "));
}
