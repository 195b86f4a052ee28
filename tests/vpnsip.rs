//! VPN-SIP end to end in network namespaces with a real registrar (issue: VPN-SIP).
//!
//! ```text
//!  branch ns ---- primary 192.0.2.0/24 ----------------------------- hq ns
//!   LAN 10.1.0.1    \                                                / LAN 10.2.0.1
//!                    backup 198.51.100.0/24 -- reg ns (router) -- 203.0.113.0/24
//!                                              Kamailio 198.51.100.1, digest on
//! ```
//! Both appliances register their numbers with Kamailio (1001 = branch, 1002 = head end) and probe the
//! primary with IP SLA. The primary is cut with nftables; a ping from the branch LAN to the HQ LAN must be
//! answered through the VPN-SIP tunnel (SIP call through Kamailio, IKEv2 to the SDP's port, ESP in UDP),
//! with no packet lost after the route moved. When the primary returns, traffic moves back, the IPsec idle
//! timer (2 s here) ends the session and a BYE crosses Kamailio; a second failure brings the session back.
#![allow(clippy::unwrap_used, clippy::too_many_arguments)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dnsmasq;
use common::kamailio::Kamailio;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

fn appliance_config(
    me: &str,
    number: &str,
    peer_number: &str,
    password: &str,
    wan: &str,
    primary: &str,
    primary_peer: &str,
    inside: &str,
    remote_lan: &str,
    bandwidth: u32,
    psk: &str,
    registrar: &str,
) -> String {
    // `wan` "dhcp": the backup WAN takes its address, and the registrar, from DHCP (options 120).
    let wan_lines = if wan == "dhcp" {
        " ip dhcp client request sip-server-address\n ip address dhcp".to_string()
    } else {
        format!(" ip address {wan} 255.255.255.0")
    };
    format!(
        "\
hostname {me}
!
crypto ikev2 keyring vpn-sip-keyring
 peer far-end
  identity key-id {peer_number}
  pre-shared-key {psk}
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
class-map match-all UDP
 match protocol ip
!
policy-map CBWFQ
 class UDP
  bandwidth percent 60
  queue-limit 12 packets
!
vpn-sip enable
vpn-sip local-number {number} address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar {registrar} username {number} password {password}
vpn-sip logging
!
interface Loopback11
 ip address {inside} 255.255.255.255
 ip nat inside
!
interface GigabitEthernet0
 device eth-pri
 ip address {primary} 255.255.255.0
!
interface GigabitEthernet1
 device eth-bak
{wan_lines}
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number {number} remote-number {peer_number} bandwidth {bandwidth} service-policy CBWFQ
!
ip sla 1
 icmp-echo {primary_peer} source-interface GigabitEthernet0
 threshold 300
 timeout 300
 frequency 1
ip sla schedule 1 life forever start-time now
track 1 ip sla 1 reachability
!
ip route {remote_lan} 255.255.0.0 {primary_peer} track 1
ip route {remote_lan} 255.255.0.0 Tunnel0 250
"
    )
}

/// The seed's self-signed-certificate variant (seed 002 ch. 4, "Using self-signed certificates for
/// authentication"): the keyring and PSK lines give way to a `crypto pki trustpoint selfCert` with
/// `enrollment selfsigned` used for signing and verifying; SDP then carries the certificate's SHA-1.
fn with_self_signed_certificate(cfg: &str) -> String {
    let start = cfg.find("crypto ikev2 keyring").unwrap();
    let end = cfg.find("crypto ipsec profile").unwrap();
    format!(
        "{}crypto pki trustpoint selfCert
 rsakeypair myRSA
 enrollment selfsigned
 revocation-check none
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local rsa-sig
 authentication remote rsa-sig
 pki trustpoint selfCert
 nat force-encap
!
{}",
        &cfg[..start],
        &cfg[end..]
    )
}

struct Appliance {
    sock: PathBuf,
    _daemon: Daemon,
}

fn start(ns: &Netns, name: &str, cfg: &str, extra: &[&str]) -> Appliance {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vpnsip-{}", ns.name));
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
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let sock = dir.join("ctl.sock");
    let child = ns
        .cmd(BIN)
        .args(["run", "--idle-override", "2", "-c"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
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
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// One ping with a short deadline; true if answered.
fn ping(ns: &Netns) -> bool {
    ns.try_run(&["ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1"])
}

struct Testbed {
    _dnsmasq: Option<dnsmasq::Dnsmasq>,
    _dns: Option<dnsmasq::Dnsmasq>,
    branch: Netns,
    hq: Netns,
    reg: Netns,
    kam: Kamailio,
    a: Appliance,
    h: Appliance,
    cap: Option<Capture>,
}

/// Three namespaces, Kamailio, and the two appliances (the head end with `hq_psk`), both registered.
fn testbed(hq_psk: &str, dhcp: bool) -> Option<Testbed> {
    testbed_with(hq_psk, dhcp, Sip::default())
}

/// How the appliances reach Kamailio (Lifeline's `vpn-sip registrar` extension).
#[derive(Debug, Clone, Copy, Default)]
struct Sip {
    /// `transport tcp|tls` ("" = UDP, the default).
    transport: &'static str,
    /// Register to `lifeline.test`, resolved by RFC 3263 through dnsmasq as DNS server (NAPTR -> SIP+D2T ->
    /// SRV port 5070 -> A), with `ip name-server`.
    dns: bool,
    /// Self-signed certificates (the seed's `enrollment selfsigned` example) instead of PSKs.
    certs: bool,
    /// Extra `lifeline run` words for the head end (test hooks).
    hq_extra: &'static [&'static str],
    /// With `dns`: the TCP SRV record's port instead of 5070 (a port nobody serves: the UDP target must take over).
    tcp_srv_port: Option<u16>,
}

/// The DNS zone for [`Sip::dns`]: NAPTR prefers TCP over UDP; the TCP SRV record names port 5070, which only
/// Kamailio's second TCP listener serves, so a registration there proves the records chose it.
fn sip_zone(tcp_port: u16) -> Vec<String> {
    vec![
        "naptr-record=lifeline.test,10,10,S,SIP+D2T,,_sip._tcp.lifeline.test".into(),
        "naptr-record=lifeline.test,20,10,S,SIP+D2U,,_sip._udp.lifeline.test".into(),
        format!("srv-host=_sip._tcp.lifeline.test,sip.lifeline.test,{tcp_port},0,10"),
        "srv-host=_sip._udp.lifeline.test,sip.lifeline.test,5060,0,10".into(),
        "host-record=sip.lifeline.test,198.51.100.1".into(),
    ]
}

fn testbed_with(hq_psk: &str, dhcp: bool, sip: Sip) -> Option<Testbed> {
    let auth = |c: String| {
        if sip.certs {
            with_self_signed_certificate(&c)
        } else {
            c
        }
    };
    // With `dhcp`, dnsmasq on the registrar's link hands the branch its backup-WAN address and option 120
    // (198.51.100.10, .11), and Kamailio listens on 198.51.100.10.
    let kam_ip = if dhcp {
        "198.51.100.10"
    } else {
        "198.51.100.1"
    };
    let branch = Netns::new("vbr");
    let hq = Netns::new("vhq");
    let reg = Netns::new("vrg");
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
        "198.51.100.2/24",
        &reg,
        "r-br",
        "198.51.100.1/24",
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
    branch.run(&[
        "ip",
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "198.51.100.1",
        "dev",
        "eth-bak",
        "onlink",
    ]);
    hq.run(&[
        "ip",
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "203.0.113.1",
    ]);
    branch.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    branch.run(&["ip", "addr", "add", "10.9.9.1/32", "dev", "lo"]);
    hq.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"]);
    hq.run(&["ip", "addr", "add", "10.9.9.2/32", "dev", "lo"]);
    let _dnsmasq = if dhcp {
        branch.run(&["ip", "addr", "flush", "dev", "eth-bak"]);
        reg.run(&["ip", "addr", "add", "198.51.100.10/24", "dev", "r-br"]);
        let d = dnsmasq::Dnsmasq::start(&reg, &dnsmasq::DhcpServerConfig::testbed("r-br"));
        if d.is_none() {
            let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "dnsmasq is not installed (scripts/install-deps installs it)"
            );
            eprintln!("SKIP: dnsmasq not installed");
            return None;
        }
        d
    } else {
        None
    };
    let dns = if sip.dns {
        let d = dnsmasq::Dnsmasq::start_dns(
            &reg,
            "198.51.100.1".parse().unwrap(),
            &sip_zone(sip.tcp_srv_port.unwrap_or(5070)),
        );
        if d.is_none() {
            let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
            assert!(!required, "dnsmasq is not installed");
            eprintln!("SKIP: dnsmasq not installed");
            return None;
        }
        d
    } else {
        None
    };
    let opts = common::kamailio::Options {
        tls: sip.transport == "tls",
        tcp_5070: sip.dns,
    };
    let Some(kam) = Kamailio::start_with(&reg, kam_ip, opts) else {
        let required = std::env::var("LIFELINE_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "kamailio is not installed (scripts/install-deps installs it)"
        );
        eprintln!("SKIP: kamailio not installed");
        return None;
    };
    let cap = Capture::start(&reg, "r-br", "vpnsip-sip");
    // `vpn-sip registrar HOST [transport ..] [ca-file ..]` and the name server, per `sip`
    let reg_opts = match sip.transport {
        "" => String::new(),
        "tls" => format!(" transport tls ca-file {}", kam.ca_file().display()),
        t => format!(" transport {t}"),
    };
    let registrar_for = |plain: &str| -> String {
        if sip.dns {
            "lifeline.test".to_string()
        } else if plain == "dhcp" {
            plain.to_string()
        } else {
            format!("{plain}{reg_opts}")
        }
    };
    let with_dns = |cfg: String| -> String {
        if sip.dns {
            cfg.replace(
                "vpn-sip enable\n",
                "ip name-server 198.51.100.1\n!\nvpn-sip enable\n",
            )
        } else {
            cfg
        }
    };
    let a = start(
        &branch,
        "branch",
        &with_dns(auth(appliance_config(
            "branch",
            "1001",
            "1002",
            "secret1001",
            if dhcp { "dhcp" } else { "198.51.100.2" },
            "192.0.2.1",
            "192.0.2.11",
            "10.9.9.1",
            "10.2.0.0",
            1000,
            "vpn-sip-netns-test-key",
            &registrar_for(if dhcp { "dhcp" } else { kam_ip }),
        ))),
        &[],
    );
    let h = start(
        &hq,
        "headend",
        &with_dns(auth(appliance_config(
            "headend",
            "1002",
            "1001",
            "secret1002",
            "203.0.113.2",
            "192.0.2.11",
            "192.0.2.1",
            "10.9.9.2",
            "10.1.0.0",
            512,
            hq_psk,
            &registrar_for(kam_ip),
        ))),
        sip.hq_extra,
    );
    wait_for(
        "both registered in Kamailio",
        Duration::from_secs(10),
        || {
            kam.kamcmd("ul.dump")
                .is_some_and(|d| d.contains("1001") && d.contains("1002"))
        },
    );
    let reg_status = show(&a, "vpn-sip registration-status");
    let expected = if dhcp {
        "registered 198.51.100.1"
    } else {
        "registered 198.51.100.2"
    };
    assert!(reg_status.contains(expected), "{reg_status}");
    wait_for("primary path answers", Duration::from_secs(10), || {
        ping(&branch)
    });

    Some(Testbed {
        _dnsmasq,
        _dns: dns,
        branch,
        hq,
        reg,
        kam,
        a,
        h,
        cap,
    })
}

/// Cut the primary in both directions on the branch side.
fn cut_primary(branch: &Netns) {
    branch.run(&["nft", "add", "table", "inet", "cut"]);
    branch.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "cut",
        "in",
        "{ type filter hook input priority 0 ; }",
    ]);
    branch.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "cut",
        "out",
        "{ type filter hook output priority 0 ; }",
    ]);
    branch.run(&[
        "nft", "add", "rule", "inet", "cut", "in", "iifname", "eth-pri", "drop",
    ]);
    branch.run(&[
        "nft", "add", "rule", "inet", "cut", "out", "oifname", "eth-pri", "drop",
    ]);
}

#[test]
fn vpnsip_backup_through_kamailio_carries_traffic_and_hangs_up_when_idle() {
    if !netns_available("vpnsip_backup_through_kamailio_carries_traffic_and_hangs_up_when_idle") {
        return;
    }
    // The whole story with dnsmasq handing the branch its backup-WAN address and option 120.
    let Some(tb) = testbed("vpn-sip-netns-test-key", true) else {
        return;
    };
    let pcap = backup_story(tb, 2);
    let _ = std::fs::remove_file(pcap);
}

#[test]
fn vpnsip_backup_with_self_signed_certificates_carries_traffic_and_hangs_up_when_idle() {
    if !netns_available(
        "vpnsip_backup_with_self_signed_certificates_carries_traffic_and_hangs_up_when_idle",
    ) {
        return;
    }
    let Some(tb) = testbed_with(
        "unused",
        true,
        Sip {
            certs: true,
            ..Sip::default()
        },
    ) else {
        return;
    };
    // Each appliance made its key pair and self-signed certificate at start (state dir, key 0600).
    let cert = |a: &Appliance| {
        let dir = a.sock.parent().unwrap().join("state/pki");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("myRSA.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::read(dir.join("selfCert.crt")).unwrap()
    };
    let (cert_a, cert_h) = (cert(&tb.a), cert(&tb.h));
    let pcap = backup_story(tb, 2);
    // The SDP on the registrar's wire carried each certificate's SHA-1 (RFC 6193 a=fingerprint).
    let wire = std::fs::read(&pcap).unwrap();
    for (who, der) in [("branch", &cert_a), ("head end", &cert_h)] {
        let fp = sha1_hex(der);
        let line = format!("a=fingerprint:SHA-1 {fp}");
        assert!(
            wire.windows(line.len()).any(|w| w == line.as_bytes()),
            "{who}'s certificate fingerprint {fp} not in any SDP on the wire"
        );
        println!("{who}: SDP carried {line}");
    }
    let _ = std::fs::remove_file(pcap);
}

#[test]
fn vpnsip_head_end_whose_certificate_is_not_its_sdp_fingerprint_fails_the_session() {
    if !netns_available(
        "vpnsip_head_end_whose_certificate_is_not_its_sdp_fingerprint_fails_the_session",
    ) {
        return;
    }
    // The head end advertises a stale fingerprint (a hidden test hook: as if its certificate had been
    // regenerated after the SDP was built); its AUTH signature verifies with the certificate it sends, but
    // that certificate is not the one its SDP named. The branch must refuse it and say why.
    const STALE: &str = "DE:AD:BE:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch,
        hq: _hq,
        reg: _reg,
        kam: _kam,
        a,
        h,
        cap: _cap,
    }) = testbed_with(
        "unused",
        false,
        Sip {
            certs: true,
            hq_extra: &["--sdp-fingerprint-override", STALE],
            ..Sip::default()
        },
    )
    else {
        return;
    };
    cut_primary(&branch);
    wait_for("branch route to Tunnel0", Duration::from_secs(5), || {
        show(&a, "ip route static").contains("is directly connected, Tunnel0")
    });
    assert!(
        !ping(&branch),
        "traffic crossed a tunnel whose peer failed the fingerprint check"
    );
    wait_for(
        "a failure reason on the branch",
        Duration::from_secs(10),
        || show(&a, "vpn-sip session detail").contains("Last failure"),
    );
    let s = show(&a, "vpn-sip session detail");
    println!(
        "branch after the mismatch:\n{s}\nhead end:\n{}",
        show(&h, "vpn-sip session detail")
    );
    assert!(s.contains("READY_TO_CONNECT"), "{s}");
    assert!(s.contains("fingerprint mismatch"), "{s}");
    assert!(
        s.contains("DE:AD:BE:EF"),
        "the expected (SDP) fingerprint is shown: {s}"
    );
    assert!(!show(&a, "ip nat translations").contains("udp "));
}

/// SHA-1 of `data` as RFC 4572 upper-case colon-separated hex (via `sha1sum`, independent of Lifeline).
fn sha1_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_ascii_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// Cut the primary, see the VPN-SIP session carry traffic, restore it, see the idle timer end the session;
/// `rounds` times. Returns the registrar-link capture (BYEs checked).
fn backup_story(tb: Testbed, rounds: u32) -> PathBuf {
    let Testbed {
        _dnsmasq,
        _dns,
        branch,
        hq: _hq,
        reg: _reg,
        kam: _kam,
        a,
        h,
        cap,
    } = tb;
    for round in 1..=rounds {
        cut_primary(&branch);
        let cut = Instant::now();
        // Both sides' routes move to Tunnel0.
        wait_for("branch route to Tunnel0", Duration::from_secs(5), || {
            show(&a, "ip route static").contains("is directly connected, Tunnel0")
        });
        // The head end detects the loss with its own probes, up to one SLA period later; until it does, it
        // answers over the (cut) primary. "After the route moved" means both ends' routes.
        wait_for("head-end route to Tunnel0", Duration::from_secs(5), || {
            show(&h, "ip route static").contains("is directly connected, Tunnel0")
        });
        let moved = cut.elapsed();
        // From now on every ping must be answered (the first one waits in the tunnel's acquire queue).
        let first = Instant::now();
        assert!(
            branch.try_run(&["ping", "-c", "1", "-W", "5", "-I", "10.1.0.1", "10.2.0.1"]),
            "round {round}: the first packet after the route moved was lost\nbranch: {}\nheadend: {}",
            show(&a, "vpn-sip session detail"),
            show(&h, "vpn-sip session detail")
        );
        println!(
            "round {round}: route moved {moved:?} after the cut; first answer through the tunnel {:?} after the cut ({:?} after the packet)",
            cut.elapsed(),
            first.elapsed()
        );
        branch.run(&[
            "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
        ]);
        let s = show(&a, "vpn-sip session detail");
        assert!(s.contains("SESSION_UP (I)"), "{s}");
        assert!(
            s.contains("Configured/Negotiated bandwidth: 1000/512 kbps"),
            "{s}"
        );
        assert!(show(&h, "vpn-sip session detail").contains("SESSION_UP (R)"));
        let nat = show(&a, "ip nat translations");
        assert!(nat.contains("udp 10.9.9.1:4500"), "{nat}");
        // Shaped to the smaller b=AS (512 kbps) under the implicit VPN-SIP policy, marking CS4.
        let qos = show(&a, "policy-map interface Tunnel0");
        assert!(
            qos.contains("Service-policy output: VPN-SIP-Tunnel0-Bandwidth"),
            "{qos}"
        );
        assert!(qos.contains("shape (average) cir 512000"), "{qos}");
        assert!(qos.contains("dscp cs4"), "{qos}");
        // The seed's child policy (002 L3536-3555) under the implicit one, its share of the negotiated rate.
        assert!(qos.contains("Service-policy : CBWFQ"), "{qos}");
        assert!(qos.contains("bandwidth 60% (307 kbps)"), "{qos}");
        assert!(qos.contains("queue limit 12 packets"), "{qos}");

        // The primary returns; the route moves back; the tunnel goes idle; the call ends.
        branch.run(&["nft", "delete", "table", "inet", "cut"]);
        wait_for("route back to the primary", Duration::from_secs(5), || {
            show(&a, "ip route static").contains("via 192.0.2.11")
        });
        assert!(ping(&branch));
        wait_for(
            "idle timer ends the session",
            Duration::from_secs(10),
            || {
                show(&a, "vpn-sip session detail").contains("READY_TO_CONNECT")
                    && show(&h, "vpn-sip session detail").contains("READY_TO_CONNECT")
            },
        );
        let nat = show(&a, "ip nat translations");
        assert!(
            !nat.contains("udp "),
            "PAT entry outlived the session: {nat}"
        );
        let qos = show(&a, "policy-map interface Tunnel0");
        assert!(
            !qos.contains("VPN-SIP-Tunnel0-Bandwidth"),
            "implicit policy outlived the session: {qos}"
        );
    }
    // The BYEs crossed Kamailio (seen on the registrar's wire, decoded by tshark).
    let pcap = cap.expect("tcpdump is installed").finish();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-Y",
            "sip.Method == \"BYE\"",
            "-T",
            "fields",
            "-e",
            "sip.Request-Line",
        ])
        .output()
        .expect("tshark is installed");
    let byes = String::from_utf8_lossy(&out.stdout);
    println!("BYE requests on the registrar's link:\n{byes}");
    assert!(
        byes.lines().filter(|l| l.starts_with("BYE sip:")).count() >= rounds as usize,
        "no BYE seen through Kamailio: {byes}"
    );
    // The implicit VPN-SIP policy marks DSCP CS4 (seed 002 L3577-3579): the ESP in UDP both appliances
    // send through their session ports carries it in the outer header (the tunnel copies the inner
    // DSCP), as tshark reads it on the registrar's link. Every one, including the first packet of a
    // session (queued for the SA, then offered to the policy attached with it).
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-Y",
            "udp.srcport >= 50001",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dsfield.dscp",
            "-e",
            "udp.payload",
        ])
        .output()
        .expect("tshark is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    // (source, DSCP) of every ESP packet: a payload longer than 8 bytes without the IKE marker.
    let esp: Vec<(String, u8)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let payload = f.get(2)?.replace(':', "");
            (payload.len() > 16 && !payload.starts_with("00000000"))
                .then(|| Some((f[0].to_string(), f.get(1)?.parse().ok()?)))?
        })
        .collect();
    // From the session ports: the head end (203.0.113.2) or the branch (whatever address its backup WAN
    // has, static or leased).
    let count = |head_end: bool, cs4: bool| {
        esp.iter()
            .filter(|(s, d)| (s == "203.0.113.2") == head_end && (*d == 32) == cs4)
            .count()
    };
    let (b4, bx, h4, hx) = (
        count(false, true),
        count(false, false),
        count(true, true),
        count(true, false),
    );
    println!(
        "ESP on the registrar's link: branch {b4} packets CS4, {bx} other; head end {h4} CS4, {hx} other"
    );
    assert!(
        b4 >= 4 * rounds as usize && h4 >= 4 * rounds as usize,
        "too few CS4-marked ESP packets:\n{text}"
    );
    assert!(
        bx == 0 && hx == 0,
        "unmarked ESP under the VPN-SIP policy:\n{text}"
    );
    pcap
}

#[test]
fn vpnsip_peer_with_another_key_fails_the_session_with_a_visible_reason() {
    if !netns_available("vpnsip_peer_with_another_key_fails_the_session_with_a_visible_reason") {
        return;
    }
    // The head end holds another key for the branch's number: its SDP fingerprint is not the hash of the
    // key the branch looked up, and its AUTH payload does not verify. The session must fail, visibly.
    // (A peer whose AUTH verifies but whose certificate differs from its SDP fingerprint:
    // `vpnsip_head_end_whose_certificate_is_not_its_sdp_fingerprint_fails_the_session`.)
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch,
        hq: _hq,
        reg: _reg,
        kam: _kam,
        a,
        h,
        cap: _cap,
    }) = testbed("a-different-key-on-the-head-end", false)
    else {
        return;
    };
    cut_primary(&branch);
    wait_for("branch route to Tunnel0", Duration::from_secs(5), || {
        show(&a, "ip route static").contains("is directly connected, Tunnel0")
    });
    assert!(
        !ping(&branch),
        "traffic crossed a tunnel whose peer failed the fingerprint check"
    );
    wait_for(
        "a failure reason on the branch",
        Duration::from_secs(10),
        || show(&a, "vpn-sip session detail").contains("Last failure"),
    );
    let s = show(&a, "vpn-sip session detail");
    println!(
        "branch after the mismatch:\n{s}\nhead end:\n{}",
        show(&h, "vpn-sip session detail")
    );
    assert!(s.contains("READY_TO_CONNECT"), "{s}");
    assert!(
        s.to_ascii_lowercase().contains("fingerprint")
            || s.contains("AUTHENTICATION_FAILED")
            || s.contains("authentication"),
        "{s}"
    );
    assert!(!show(&a, "ip nat translations").contains("udp "));
}

#[test]
fn vpnsip_registrar_from_dhcp_option_120_places_the_call() {
    if !netns_available("vpnsip_registrar_from_dhcp_option_120_places_the_call") {
        return;
    }
    // The branch's backup WAN has `ip address dhcp` and `ip dhcp client request sip-server-address`: its
    // address and its registrar come from dnsmasq (option 120, encoding 1), as the seed describes.
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch,
        hq: _hq,
        reg: _reg,
        kam: _kam,
        a,
        h,
        cap: _cap,
    }) = testbed("vpn-sip-netns-test-key", true)
    else {
        return;
    };
    let dhcp = show(&a, "vpn-sip sip dhcp");
    println!("{dhcp}");
    assert!(
        dhcp.contains("SIP-DHCP interface: GigabitEthernet1"),
        "{dhcp}"
    );
    assert!(dhcp.contains("198.51.100.10"), "{dhcp}");
    cut_primary(&branch);
    wait_for("both routes to Tunnel0", Duration::from_secs(5), || {
        show(&a, "ip route static").contains("is directly connected, Tunnel0")
            && show(&h, "ip route static").contains("is directly connected, Tunnel0")
    });
    assert!(
        branch.try_run(&["ping", "-c", "1", "-W", "5", "-I", "10.1.0.1", "10.2.0.1"]),
        "no answer through the tunnel\nbranch: {}\nheadend: {}",
        show(&a, "vpn-sip session detail"),
        show(&h, "vpn-sip session detail")
    );
    let s = show(&a, "vpn-sip session detail");
    assert!(s.contains("SESSION_UP (I)"), "{s}");
    assert!(s.contains("Local address:port : 198.51.100.1"), "{s}");
}

/// Both appliances register over a stream transport (or the transport DNS chose), the primary is cut, the
/// first packet's SIP call crosses Kamailio over that transport and the tunnel carries the ping, and when
/// the primary returns the idle timer's BYE reaches the far end through Kamailio (connection reuse: Kamailio
/// sends to the registered contact over the connection the appliance registered on).
fn vpnsip_call_over(name: &str, sip: Sip, socket: &str, contact_param: &str) {
    if !netns_available(name) {
        return;
    }
    let t0 = Instant::now();
    // every field bound: the namespaces and daemons live until the end of the test
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch,
        hq: _hq,
        reg: _reg,
        kam,
        a,
        h,
        cap: _cap,
    }) = testbed_with("vpn-sip-netns-test-key", false, sip)
    else {
        return;
    };
    let ul = kam.kamcmd("ul.dump").unwrap();
    for n in ["1001", "1002"] {
        assert!(
            ul.contains(&format!("sip:{n}@")) && ul.contains(contact_param),
            "{n} not registered with {contact_param}:\n{ul}"
        );
    }
    assert_eq!(
        ul.matches(&format!("Socket: {socket}")).count(),
        2,
        "both bindings on {socket}:\n{ul}"
    );
    cut_primary(&branch);
    wait_for("branch route to Tunnel0", Duration::from_secs(5), || {
        show(&a, "ip route static").contains("is directly connected, Tunnel0")
    });
    wait_for("head-end route to Tunnel0", Duration::from_secs(5), || {
        show(&h, "ip route static").contains("is directly connected, Tunnel0")
    });
    assert!(
        branch.try_run(&["ping", "-c", "1", "-W", "5", "-I", "10.1.0.1", "10.2.0.1"]),
        "first packet lost\nbranch: {}\nheadend: {}\nkamailio: {}",
        show(&a, "vpn-sip session detail"),
        show(&h, "vpn-sip session detail"),
        kam.dir.display()
    );
    assert!(show(&a, "vpn-sip session detail").contains("SESSION_UP (I)"));
    assert!(show(&h, "vpn-sip session detail").contains("SESSION_UP (R)"));
    branch.run(&["nft", "delete", "table", "inet", "cut"]);
    wait_for(
        "idle timer ends the session on both ends (BYE through Kamailio)",
        Duration::from_secs(15),
        || {
            show(&a, "vpn-sip session detail").contains("READY_TO_CONNECT")
                && show(&h, "vpn-sip session detail").contains("READY_TO_CONNECT")
        },
    );
    // kamailio.cfg logs every BYE it loose-routes in a dialog (the proxy Record-Routed the INVITE)
    wait_for("a BYE crossed Kamailio", Duration::from_secs(5), || {
        std::fs::read_to_string(kam.dir.join("kamailio.log"))
            .is_ok_and(|l| l.contains("BYE in dialog"))
    });
    println!("{name}: {:?}", t0.elapsed());
}

#[test]
fn vpnsip_over_sip_tcp_through_kamailio() {
    vpnsip_call_over(
        "vpnsip_over_sip_tcp_through_kamailio",
        Sip {
            transport: "tcp",
            ..Sip::default()
        },
        "tcp:198.51.100.1:5060",
        ";transport=tcp",
    );
}

#[test]
fn vpnsip_over_sip_tls_through_kamailio() {
    vpnsip_call_over(
        "vpnsip_over_sip_tls_through_kamailio",
        Sip {
            transport: "tls",
            ..Sip::default()
        },
        "tls:198.51.100.1:5061",
        ";transport=tls",
    );
}

/// RFC 3263: `vpn-sip registrar lifeline.test` with `ip name-server` pointing at dnsmasq; NAPTR prefers
/// SIP+D2T, whose SRV record names port 5070: both appliances register (and call) over TCP to 5070.
#[test]
fn vpnsip_registrar_by_dns_naptr_srv_a() {
    vpnsip_call_over(
        "vpnsip_registrar_by_dns_naptr_srv_a",
        Sip {
            dns: true,
            ..Sip::default()
        },
        "tcp:198.51.100.1:5070",
        ";transport=tcp",
    );
}

/// RFC 3263 failover: the preferred target (NAPTR SIP+D2T -> SRV port 5071) refuses connections; the
/// connection error fails the REGISTER at once and the next target (SIP+D2U -> UDP 5060) takes over.
#[test]
fn vpnsip_registrar_by_dns_fails_over_to_the_next_target() {
    if !netns_available("vpnsip_registrar_by_dns_fails_over_to_the_next_target") {
        return;
    }
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch: _branch,
        hq: _hq,
        reg: _reg,
        kam,
        a,
        h: _h,
        cap: _cap,
    }) = testbed_with(
        "vpn-sip-netns-test-key",
        false,
        Sip {
            dns: true,
            tcp_srv_port: Some(5071),
            ..Sip::default()
        },
    )
    else {
        return;
    };
    let ul = kam.kamcmd("ul.dump").unwrap();
    assert_eq!(
        ul.matches("Socket: udp:198.51.100.1:5060").count(),
        2,
        "both on the UDP target:\n{ul}"
    );
    assert!(show(&a, "vpn-sip registration-status").contains("registered"));
}

/// The registrar restarts (its TCP connections close, its location table is empty): the appliances see the
/// connection go, reconnect (with backoff while Kamailio is down) and register again.
#[test]
fn vpnsip_tcp_reconnects_and_reregisters_after_the_registrar_restarts() {
    if !netns_available("vpnsip_tcp_reconnects_and_reregisters_after_the_registrar_restarts") {
        return;
    }
    let Some(Testbed {
        _dnsmasq,
        _dns,
        branch: _branch,
        hq: _hq,
        reg,
        kam,
        a: _a,
        h: _h,
        cap: _cap,
    }) = testbed_with(
        "vpn-sip-netns-test-key",
        false,
        Sip {
            transport: "tcp",
            ..Sip::default()
        },
    )
    else {
        return;
    };
    drop(kam);
    std::thread::sleep(Duration::from_millis(1500));
    let kam = Kamailio::start(&reg, "198.51.100.1").unwrap();
    assert!(!kam.kamcmd("ul.dump").unwrap().contains("sip:1001@"));
    let took = wait_for("both registered again", Duration::from_secs(20), || {
        kam.kamcmd("ul.dump").is_some_and(|d| {
            d.contains("sip:1001@") && d.matches("Socket: tcp:198.51.100.1:5060").count() == 2
        })
    });
    println!("re-registered {took:?} after Kamailio came back");
}
