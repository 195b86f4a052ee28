//! Static VTI interop with strongSwan: Lifeline site A (`interface Tunnel0`, `tunnel mode ipsec ipv4`,
//! IKEv2 PSK with key-id identities, as in `tests/svti.rs`) against a route-based strongSwan site B
//! (charon 5.9 with user-space ESP, 0.0.0.0/0 selectors, `keyid:` identities, the same PSK).
//!
//! For both initiators (Lifeline, strongSwan) and both transforms (AES-GCM-256, AES-CBC-256 +
//! HMAC-SHA-256-128): a ping each way between the sites' LANs through the tunnel, then a 5 s iperf3 TCP
//! stream each way (the figure is printed; run with `--nocapture`). kernel-libipsec only does ESP in UDP
//! (charon fakes a NAT), so these tests also cover Lifeline's NAT-T path (IKE floating to 4500, ESP in
//! UDP 4500) against another implementation. Also: strongSwan rekeys CHILD_SA and IKE SA under traffic,
//! and a wrong PSK or disjoint ESP proposals install nothing (the CHILD_SA refusal is logged and the IKE SA
//! deleted).
//!
//! Root and strongSwan are needed: skipped with a message otherwise, failed when `LIFELINE_REQUIRE_NETNS=1`.
//! On failure Lifeline's log, charon's log and a pcap of site A's WAN are kept and their paths printed.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::lifeline::Lifeline;
use common::strongswan::{Charon, RouteConn, strongswan_available};
use common::*;

const PSK: &str = "lifeline-strongswan-key-0388";
const A_WAN: &str = "198.51.100.1";
const B_WAN: &str = "198.51.100.2";
const A_LAN: &str = "10.1.0.1";
const B_LAN: &str = "10.2.0.1";

/// The tests share two cores with two tunnel endpoints and iperf3 each: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Lifeline's IOS configuration for site A. `initiate = false` leaves out `tunnel destination`, so the
/// appliance only responds (the keyring still names the peer's address).
fn lifeline_config(transform: &str, initiate: bool) -> String {
    let destination = if initiate {
        format!(" tunnel destination {B_WAN}\n")
    } else {
        String::new()
    };
    format!(
        "\
hostname siteA
!
crypto ikev2 keyring KR
 peer siteB
  address {B_WAN}
  identity key-id siteB
  pre-shared-key {PSK}
!
crypto ikev2 profile PROF
 match identity remote key-id siteB
 identity local key-id siteA
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
!
crypto ipsec transform-set TS {transform}
 mode tunnel
!
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
!
interface GigabitEthernet0
 device eth0
 ip address {A_WAN} 255.255.255.0
!
interface Tunnel0
 ip address 172.16.0.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
{destination} tunnel protection ipsec profile IPS
!
ip route 10.2.0.0 255.255.255.0 Tunnel0
"
    )
}

/// strongSwan's side: the same PSK and identities, route-based.
fn strongswan_conn(esp: &str) -> RouteConn {
    RouteConn {
        local_addr: B_WAN.into(),
        remote_addr: A_WAN.into(),
        local_id: "siteB".into(),
        remote_id: "siteA".into(),
        psk: PSK.into(),
        // Lifeline offers the IOS default proposal (AES-CBC, SHA-2/SHA-1, ECP-256 first).
        ike_proposals: "aes256-sha256-ecp256,aes256-sha256-modp2048".into(),
        esp_proposals: esp.into(),
        start_action: "none".into(),
    }
}

/// Site A's appliance, writing Wireshark `esp_sa` records of every CHILD_SA (the hidden
/// `--debug-esp-keys` test hook).
struct Site {
    ll: Lifeline,
    keys: PathBuf,
}

impl std::ops::Deref for Site {
    type Target = Lifeline;
    fn deref(&self) -> &Lifeline {
        &self.ll
    }
}

impl Site {
    fn start(ns: &Netns, config: &str) -> Site {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ll-{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("esp_sa");
        let _ = std::fs::remove_file(&keys);
        let ll = Lifeline::start_with(
            ns,
            "ll",
            config,
            &[std::ffi::OsStr::new("--debug-esp-keys"), keys.as_os_str()],
        );
        Site { ll, keys }
    }
}

/// Two namespaces: A (Lifeline) and B (strongSwan), WANs on one veth, each LAN address on `lo`.
fn topology() -> (Netns, Netns) {
    wan_pair("sw", A_WAN, A_LAN, B_WAN, B_LAN)
}

/// Wait until something in `ns` listens on UDP `addr:port`.
fn wait_udp_listen(ns: &Netns, addr: &str, port: u16) {
    let want = format!("{addr}:{port}");
    let t0 = Instant::now();
    loop {
        let out = ns.cmd("ss").args(["-unl"]).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&want) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nothing listens on UDP {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One iperf3 TCP stream, 5 s, from `client` (bound to `src`) to a one-shot server in `server` on `dst`.
/// Returns the received rate in Mbit/s.
fn iperf3(client: &Netns, src: &str, server: &Netns, dst: &str) -> f64 {
    let srv = Daemon(
        server
            .cmd("iperf3")
            .args(["-s", "-1", "-B", dst, "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    loop {
        let out = server.cmd("ss").args(["-tln"]).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!("{dst}:5201")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "iperf3 -s did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = client
        .cmd("timeout")
        .args([
            "30", "iperf3", "-c", dst, "-B", src, "-p", "5201", "-t", "5", "-J",
        ])
        .output()
        .unwrap();
    drop(srv);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 {src} -> {dst}: no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && json.get("error").is_none(),
        "iperf3 {src} -> {dst} failed: {json}"
    );
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e6
}

/// Ping both ways and an iperf3 stream each way, through the tunnel.
fn exercise(label: &str, a: &Netns, b: &Netns, ll: &Site) {
    // Steady state: ten pings each way, every one answered; captured on their own for tshark.
    let pings = Capture::start(a, "eth0", "svti-strongswan-pings");
    std::thread::sleep(Duration::from_millis(300));
    a.run(&[
        "ping", "-c", "10", "-i", "0.1", "-W", "1", "-I", A_LAN, B_LAN,
    ]);
    b.run(&[
        "ping", "-c", "10", "-i", "0.1", "-W", "1", "-I", B_LAN, A_LAN,
    ]);
    if let Some(cap) = pings {
        std::thread::sleep(Duration::from_millis(200));
        let pcap = cap.finish();
        tshark_decrypts(label, &pcap, &ll.keys);
        let _ = std::fs::remove_file(pcap);
    } else {
        println!("[{label}] no tcpdump: tshark decryption not checked");
    }
    let ab = iperf3(a, A_LAN, b, B_LAN);
    let ba = iperf3(b, B_LAN, a, A_LAN);
    println!(
        "[{label}] iperf3 TCP 5 s: Lifeline->strongSwan {ab:.0} Mbit/s, strongSwan->Lifeline {ba:.0} Mbit/s"
    );
    assert!(ab > 1.0 && ba > 1.0, "[{label}] throughput too low");
}

/// An independent ESP implementation reads the wire: tshark, given the SAs' keys (Lifeline's
/// `--debug-esp-keys` file in Wireshark's `esp_sa` format), dissects the capture as ESP in UDP 4500 and
/// decrypts the pings inside, both the ones Lifeline sealed and the ones strongSwan sealed.
fn tshark_decrypts(label: &str, pcap: &std::path::Path, keys: &std::path::Path) {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(
            std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v != "1")
                || std::env::var("LIFELINE_REQUIRE_NETNS").is_err(),
            "[{label}] LIFELINE_REQUIRE_NETNS=1 but tshark is not installed"
        );
        println!("[{label}] no tshark: decryption not checked");
        return;
    }
    let records = std::fs::read_to_string(keys).unwrap_or_default();
    assert!(
        records.lines().count() >= 2,
        "[{label}] no ESP keys in {}",
        keys.display()
    );
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(pcap)
        .args(["-o", "esp.enable_encryption_decode:TRUE"]);
    for r in records.lines() {
        cmd.arg("-o").arg(format!("uat:esp_sa:{r}"));
    }
    let out = cmd
        .args([
            "-Y",
            "udp.port == 4500 && esp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "ip.src",
            "-e",
            "esp.spi",
            "-e",
            "icmp.type",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "[{label}] tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Outer source, then the decrypted inner source, SPI, ICMP type: "198.51.100.1,10.1.0.1;0x...;8".
    // Every ESP packet in the capture must decrypt to ICMP (nothing else crossed the tunnel meanwhile).
    let esp = text.lines().count();
    let decrypted = |from: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{from},")))
            .filter(|l| l.rsplit(';').next().is_some_and(|t| t == "0" || t == "8"))
            .count()
    };
    let (from_lifeline, from_strongswan) = (decrypted(A_WAN), decrypted(B_WAN));
    println!(
        "[{label}] tshark: {esp} ESP-in-UDP packets, decrypted ICMP: {from_lifeline} sealed by Lifeline, {from_strongswan} by strongSwan"
    );
    // 20 pings each way: tcpdump may miss the first few while it starts.
    assert!(
        from_lifeline + from_strongswan == esp && from_lifeline >= 10 && from_strongswan >= 10,
        "[{label}] tshark did not decrypt every ESP packet to ICMP ({from_lifeline} from Lifeline, {from_strongswan} from strongSwan, of {esp}):\n{text}"
    );
}

/// Count the packets in a pcap that match a tcpdump filter.
fn pcap_count(path: &std::path::Path, filter: &str) -> usize {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(path)
        .arg(filter)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Site A's WAN carried the tunnel as ESP in UDP 4500 and never the LANs' packets in the clear.
/// Prints how many outer IP fragments there were (a full-size CBC+SHA-256 packet does not fit in UDP).
fn check_wire(label: &str, cap: Option<&Capture>) {
    let Some(cap) = cap else {
        println!("[{label}] no tcpdump: wire not checked");
        return;
    };
    std::thread::sleep(Duration::from_millis(200));
    let esp_in_udp = pcap_count(&cap.path, "udp port 4500 and udp[8:4] != 0");
    let clear = pcap_count(&cap.path, "net 10.1.0.0/24 or net 10.2.0.0/24");
    let raw_esp = pcap_count(&cap.path, "ip proto 50");
    let fragments = pcap_count(&cap.path, "ip[6:2] & 0x3fff != 0");
    println!(
        "[{label}] wire: {esp_in_udp} ESP-in-UDP packets, {raw_esp} raw ESP, {fragments} IP fragments, {clear} in the clear"
    );
    assert!(
        esp_in_udp > 1000,
        "[{label}] too little ESP in UDP on the wire"
    );
    assert_eq!(clear, 0, "[{label}] LAN packets in the clear on the wire");
}

/// What both sides must show once the tunnel is up.
fn check_logs(label: &str, lifeline: &Lifeline, charon: &Charon, esp: &str) {
    let llog = lifeline.log();
    assert!(
        llog.contains("SA_INSTALLED") && llog.contains("(UDP-encapsulated)"),
        "[{label}] Lifeline installed no UDP-encapsulated SA"
    );
    let clog = charon.log();
    assert!(
        clog.contains("CHILD_SA svti{") && clog.contains("established"),
        "[{label}] charon has no CHILD_SA:\n{clog}"
    );
    assert!(
        clog.contains(&format!("selected proposal: ESP:{esp}")),
        "[{label}] charon selected another ESP proposal than {esp}"
    );
    let sas = charon.list_sas();
    assert!(
        sas.contains("siteA") && sas.contains("INSTALLED"),
        "[{label}] swanctl --list-sas: {sas}"
    );
}

/// Lifeline initiates as soon as it starts (`tunnel destination`); charon only responds.
fn lifeline_initiates(transform: &str, swan_esp: &str, charon_esp: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let label = format!("Lifeline initiates, {transform}");
    let (a, b) = topology();
    let cap = Capture::start(&a, "eth0", "svti-strongswan");
    let charon = Charon::start(&b, &strongswan_conn(swan_esp).render());
    charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
    let ll = Site::start(&a, &lifeline_config(transform, true));
    let took = ping_until(&a, A_LAN, B_LAN, Duration::from_secs(20));
    println!("[{label}] first answer through the tunnel after {took:?}");
    check_logs(&label, &ll, &charon, charon_esp);
    let clog = charon.log();
    assert!(
        clog.contains("IKE_SA lifeline[1] established") && !clog.contains("initiating IKE_SA"),
        "[{label}] charon did not respond:\n{clog}"
    );
    exercise(&label, &a, &b, &ll);
    check_wire(&label, cap.as_ref());
}

/// charon initiates. Lifeline keeps `tunnel destination` (an SVTI needs it; a static tunnel without one
/// is not offered peer-initiated CHILD_SAs, see the report) and initiates when it starts, so: let that
/// tunnel come up, have charon delete the IKE SA (`swanctl --terminate`), then `swanctl --initiate` a
/// fresh one while no traffic enters Tunnel0 (nothing makes Lifeline re-initiate before that).
fn strongswan_initiates(transform: &str, swan_esp: &str, charon_esp: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let label = format!("strongSwan initiates, {transform}");
    let (a, b) = topology();
    let cap = Capture::start(&a, "eth0", "svti-strongswan");
    let charon = Charon::start(&b, &strongswan_conn(swan_esp).render());
    charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
    let ll = Site::start(&a, &lifeline_config(transform, true));
    ping_until(&a, A_LAN, B_LAN, Duration::from_secs(20));
    let out = charon.swanctl(&["--terminate", "--ike", "lifeline", "--timeout", "10"]);
    assert!(
        out.status.success(),
        "[{label}] swanctl --terminate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let t0 = Instant::now();
    while !ll.log().contains("deleted: PeerRequest") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "[{label}] Lifeline did not see charon's DELETE"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !b.try_run(&["ping", "-c", "1", "-W", "1", "-I", B_LAN, A_LAN]),
        "[{label}] traffic passes without an IKE SA"
    );
    let t0 = Instant::now();
    if let Err(out) = charon.initiate("svti", 20) {
        panic!(
            "[{label}] swanctl --initiate failed:\n{out}\n--- charon log ---\n{}",
            charon.log()
        );
    }
    println!(
        "[{label}] swanctl --initiate completed after {:?}",
        t0.elapsed()
    );
    let took = ping_until(&b, B_LAN, A_LAN, Duration::from_secs(10));
    println!("[{label}] first answer through the tunnel after {took:?}");
    check_logs(&label, &ll, &charon, charon_esp);
    let clog = charon.log();
    assert!(
        clog.contains("initiating IKE_SA lifeline[2]")
            && clog.contains("IKE_SA lifeline[2] established"),
        "[{label}] charon did not initiate:\n{clog}"
    );
    // Lifeline answered as responder: its second IKE SA, installed on Tunnel0 by `tunnel destination`.
    let llog = ll.log();
    assert_eq!(
        llog.matches("SA_INSTALLED: ").count(),
        2,
        "[{label}] Lifeline log:\n{llog}"
    );
    exercise(&label, &a, &b, &ll);
    check_wire(&label, cap.as_ref());
}

fn ready(test: &str) -> bool {
    netns_available(test) && strongswan_available(test) && {
        let iperf = Command::new("iperf3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !iperf && std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
            panic!("{test}: LIFELINE_REQUIRE_NETNS=1 but iperf3 is not installed");
        }
        if !iperf {
            eprintln!("SKIP {test}: iperf3 is not installed");
        }
        iperf
    }
}

#[test]
fn lifeline_initiates_svti_to_strongswan_gcm256() {
    if ready("lifeline_initiates_svti_to_strongswan_gcm256") {
        lifeline_initiates("esp-gcm 256", "aes256gcm16", "AES_GCM_16_256");
    }
}

#[test]
fn lifeline_initiates_svti_to_strongswan_cbc256_sha256() {
    if ready("lifeline_initiates_svti_to_strongswan_cbc256_sha256") {
        lifeline_initiates(
            "esp-aes 256 esp-sha256-hmac",
            "aes256-sha256",
            "AES_CBC_256/HMAC_SHA2_256_128",
        );
    }
}

#[test]
fn strongswan_initiates_svti_to_lifeline_gcm256() {
    if ready("strongswan_initiates_svti_to_lifeline_gcm256") {
        strongswan_initiates("esp-gcm 256", "aes256gcm16", "AES_GCM_16_256");
    }
}

#[test]
fn strongswan_initiates_svti_to_lifeline_cbc256_sha256() {
    if ready("strongswan_initiates_svti_to_lifeline_cbc256_sha256") {
        strongswan_initiates(
            "esp-aes 256 esp-sha256-hmac",
            "aes256-sha256",
            "AES_CBC_256/HMAC_SHA2_256_128",
        );
    }
}

/// A static tunnel without `tunnel destination` answering a peer's IKE SA: the CHILD_SA lands in that
/// tunnel. (Regression: a working tree of 2026-11-23 logged `%IPSEC-4-NO_TUNNEL ... matches no tunnel
/// interface` after answering the CREATE, and black-holed the traffic.)
#[test]
fn strongswan_initiates_to_lifeline_without_tunnel_destination() {
    if !ready("strongswan_initiates_to_lifeline_without_tunnel_destination") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = topology();
    let ll = Site::start(&a, &lifeline_config("esp-gcm 256", false));
    wait_udp_listen(&a, A_WAN, 500);
    wait_udp_listen(&a, A_WAN, 4500);
    let charon = Charon::start(&b, &strongswan_conn("aes256gcm16").render());
    charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
    charon
        .initiate("svti", 20)
        .unwrap_or_else(|out| panic!("swanctl --initiate: {out}\n{}", charon.log()));
    ping_until(&b, B_LAN, A_LAN, Duration::from_secs(10));
    check_logs("no tunnel destination", &ll, &charon, "AES_GCM_16_256");
}

/// Rekeying started by strongSwan on a tunnel Lifeline brought up: CHILD_SA (`swanctl --rekey --child`),
/// then IKE SA (`swanctl --rekey --ike`), then the CHILD_SA again under the new IKE SA; pings keep being
/// answered after each.
#[test]
fn strongswan_rekeys_child_and_ike_sa_of_lifeline_tunnel() {
    if !ready("strongswan_rekeys_child_and_ike_sa_of_lifeline_tunnel") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let label = "rekey, esp-gcm 256";
    let (a, b) = topology();
    let _cap = Capture::start(&a, "eth0", "svti-strongswan-rekey");
    let charon = Charon::start(&b, &strongswan_conn("aes256gcm16").render());
    charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
    let ll = Site::start(&a, &lifeline_config("esp-gcm 256", true));
    ping_until(&a, A_LAN, B_LAN, Duration::from_secs(20));
    let ping = |ns: &Netns, src: &str, dst: &str| {
        ns.run(&["ping", "-c", "5", "-i", "0.1", "-W", "1", "-I", src, dst]);
    };
    for (what, args) in [
        ("CHILD_SA", ["--rekey", "--child", "svti"]),
        ("IKE SA", ["--rekey", "--ike", "lifeline"]),
        (
            "CHILD_SA (under the new IKE SA)",
            ["--rekey", "--child", "svti"],
        ),
    ] {
        let out = charon.swanctl(&args);
        assert!(
            out.status.success(),
            "[{label}] swanctl {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
        ping(&a, A_LAN, B_LAN);
        ping(&b, B_LAN, A_LAN);
        println!("[{label}] {what} rekeyed by strongSwan, pings pass");
    }
    let clog = charon.log();
    assert!(
        clog.contains("CHILD_SA svti{2} established"),
        "[{label}] no rekeyed CHILD_SA:\n{clog}"
    );
    assert!(
        clog.contains("IKE_SA lifeline[2] rekeyed")
            && clog.contains("CHILD_SA svti{3} established"),
        "[{label}] no rekeyed IKE SA:\n{clog}"
    );
    let sas = charon.list_sas();
    assert!(sas.contains("INSTALLED"), "[{label}] {sas}");
    let llog = ll.log();
    assert_eq!(
        llog.matches("SA_INSTALLED: ").count(),
        3,
        "[{label}] Lifeline log:\n{llog}"
    );
    assert!(!llog.contains("SA_DOWN"), "[{label}] Lifeline log:\n{llog}");
}

/// Misconfigurations are refused, nothing is installed and no packet crosses: a PSK that differs (each
/// side initiating once), then ESP proposals with nothing in common (IKE SA up, CHILD_SA refused).
#[test]
fn mismatched_psk_or_esp_proposal_installs_nothing() {
    if !ready("mismatched_psk_or_esp_proposal_installs_nothing") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Wrong PSK on strongSwan's side; Lifeline initiates at start, then charon tries.
    {
        let label = "wrong PSK";
        let (a, b) = topology();
        let mut conn = strongswan_conn("aes256gcm16");
        conn.psk = "not-the-same-key".into();
        let charon = Charon::start(&b, &conn.render());
        charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
        let ll = Site::start(&a, &lifeline_config("esp-gcm 256", true));
        let t0 = Instant::now();
        while !charon.log().contains("MAC mismatched") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "[{label}] charon did not reject Lifeline's AUTH:\n{}",
                charon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = charon.initiate("svti", 10);
        assert!(out.is_err(), "[{label}] charon's initiation succeeded");
        assert!(!a.try_run(&["ping", "-c", "2", "-W", "1", "-I", A_LAN, B_LAN]));
        let llog = ll.log();
        println!("[{label}] Lifeline log:\n{llog}");
        assert!(llog.contains("AUTH_FAILED"), "[{label}] {llog}");
        assert!(!llog.contains("SA_INSTALLED: "), "[{label}] {llog}");
        // Refused, not retried in a loop (it was hundreds of IKE SAs a second): the next acquire retries.
        let downs = llog.matches("SA_DOWN").count();
        assert!(downs <= 4, "[{label}] {downs} IKE SAs came and went");
    }
    // ESP: Lifeline offers only AES-GCM-256, strongSwan accepts only AES-GCM-128.
    {
        let label = "ESP proposal mismatch";
        let (a, b) = topology();
        let charon = Charon::start(&b, &strongswan_conn("aes128gcm16").render());
        charon.route_based(&b, &["10.1.0.0/24"], B_LAN);
        let ll = Site::start(&a, &lifeline_config("esp-gcm 256", true));
        let t0 = Instant::now();
        while !charon.log().contains("no acceptable proposal found") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "[{label}] charon did not refuse the CHILD_SA:\n{}",
                charon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!a.try_run(&["ping", "-c", "2", "-W", "1", "-I", A_LAN, B_LAN]));
        let llog = ll.log();
        println!("[{label}] Lifeline log:\n{llog}");
        assert!(!llog.contains("SA_INSTALLED: "), "[{label}] {llog}");
        // The IKE SA without its CHILD_SA is not kept silently: deleted, with charon's reason logged,
        // and not retried in a loop.
        assert!(
            llog.contains("NegotiationFailed(NO_PROPOSAL_CHOSEN)"),
            "[{label}] the refused CHILD_SA is not logged:\n{llog}"
        );
        let downs = llog.matches("SA_DOWN").count();
        assert!(downs <= 4, "[{label}] {downs} IKE SAs came and went");
    }
}
