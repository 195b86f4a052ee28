//! GRE and DMVPN end to end (issue #13), Lifeline appliances in network namespaces, GRE in user space over
//! raw IP protocol 47 (this kernel has no GRE module and the appliance needs none).
//!
//! - `p2p_gre_*`: two sites with `tunnel mode gre ip` (key, `ip mtu`, `tunnel source` by interface): ping and
//!   iperf3 between the sites' LANs; tshark decodes the keyed GRE on the wire.
//! - `dmvpn_*`: a Lifeline hub (NHS) and two Lifeline spokes (NHC) on mGRE (the seeds' EX-1/EX-2 shape,
//!   without IPsec and EIGRP), each on its own subnet behind a router namespace: registration, spoke-to-spoke
//!   resolution through the hub (phase 2), hub redirect + spoke shortcut (phase 3), `show dmvpn`,
//!   `show ip nhrp`, `clear ip nhrp`, NHRP decoded by tshark.
//! - `dmvpn_shared_*`: seed EX-8/EX-9's two mGRE clouds on one source with `tunnel protection ... shared`: one
//!   IKE SA and one SA pair per NBMA peer for both clouds, `show crypto map|socket` in the seed's shared form.
//! - `dmvpn_protected_*spoke_behind_nat*` / `*natted_spoke*`: spoke 1 behind a plain nftables masquerade: ESP
//!   in UDP, either spoke resolving first (the NATed side keys the pair), a NAT rebinding to a new port
//!   followed without renegotiation, and (with a port forward) the public spoke keying the pair itself
//!   5 s after the NATed one did not (`dmvpn_protected_public_spoke_initiates_after_5_s_*`); both spokes
//!   behind NAT keying each other at the same moment settle on one IKE SA; behind two port-translating
//!   NATs, where no direct SA can come up, traffic goes through the hub. `dmvpn_protected_by_ikev1_*`: the
//!   same keyed by IKEv1, with on-demand DPD.
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
    start_site_with(ns, name, config, &[])
}

/// [`start_site`] with extra `lifeline run` arguments (hidden test hooks).
fn start_site_with(ns: Netns, name: &str, config: &str, extra: &[&str]) -> Site {
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
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    // The control socket appears once the daemon has opened its devices and sockets.
    let t0 = Instant::now();
    while !sock.exists() {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!(
                "{name} exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{name}: no control socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Site {
        ns,
        sock,
        log,
        _daemon: daemon,
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

/// Hub (NHS) configuration: EX-1 without IPsec and EIGRP; static routes to the spokes' LANs instead.
fn hub_config(phase3: bool) -> String {
    let redirect = if phase3 { " ip nhrp redirect\n" } else { "" };
    format!(
        "\
hostname hub
!
interface GigabitEthernet0
 device eth0
 ip address 192.0.2.1 255.255.255.0
!
interface Tunnel0
 device dmvpn0
 bandwidth 1000
 ip address 10.0.0.1 255.255.255.0
 ip mtu 1400
 ip nhrp authentication donttell
 ip nhrp map multicast dynamic
 ip nhrp network-id 99
 ip nhrp holdtime 300
{redirect} ip tcp adjust-mss 1360
 delay 1000
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
!
ip route 10.1.1.0 255.255.255.0 10.0.0.11
ip route 10.1.2.0 255.255.255.0 10.0.0.12
"
    )
}

/// Spoke (NHC) configuration: EX-2 without IPsec and EIGRP. Phase 2: the other spoke's LAN is routed via
/// the other spoke's tunnel address (what EIGRP's `no ip next-hop-self` gives); phase 3: a summary via the
/// hub and `ip nhrp shortcut`.
fn spoke_config(n: u8, wan: &str, phase3: bool) -> String {
    let other = 3 - n;
    let (shortcut, routes) = if phase3 {
        (
            " ip nhrp shortcut\n".to_string(),
            "ip route 10.1.0.0 255.255.0.0 10.0.0.1\n".to_string(),
        )
    } else {
        (
            String::new(),
            format!("ip route 10.1.{other}.0 255.255.255.0 10.0.0.1{other}\n"),
        )
    };
    format!(
        "\
hostname spoke{n}
!
interface GigabitEthernet0
 device eth0
 ip address {wan} 255.255.255.0
!
interface Loopback1
 ip address 10.1.{n}.1 255.255.255.0
!
interface Tunnel0
 device dmvpn0
 bandwidth 1000
 ip address 10.0.0.1{n} 255.255.255.0
 ip mtu 1400
 ip nhrp authentication donttell
 ip nhrp map 10.0.0.1 192.0.2.1
 ip nhrp map multicast 192.0.2.1
 ip nhrp network-id 99
 ip nhrp holdtime 300
 ip nhrp nhs 10.0.0.1
{shortcut} ip tcp adjust-mss 1360
 delay 1000
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
!
{routes}"
    )
}

struct Cloud {
    /// tcpdump on the router's link to `capture_on`, started before the daemons.
    cap: Option<Capture>,
    hub: Site,
    s1: Site,
    s2: Site,
    /// The router between the three NBMA subnets (the "Internet").
    _wan: Netns,
    /// The NAT routers in front of spoke 1 and spoke 2, where there is one.
    nat: [Option<Netns>; 2],
}

/// Hub 192.0.2.1, spoke 1 198.51.100.1, spoke 2 203.0.113.1, each on its own subnet behind `wan`.
/// With `nat`, spoke 1 sits at 10.11.0.2 behind an nftables masquerading router whose outside address is
/// 198.51.100.1 ([`spoke_link`]).
fn cloud(phase3: bool, capture_on: &str, nat: bool) -> Cloud {
    cloud_with(phase3, capture_on, nat, false)
}

/// `tunnel protection ipsec profile IPS` (IKEv2 PSK, AES-GCM-256, transport mode) added to a DMVPN node's
/// configuration.
fn protect(config: String) -> String {
    let crypto = "\
crypto ikev2 keyring KR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key lifeline-dmvpn-key-0413
!
crypto ikev2 profile PROF
 match identity remote key-id dmvpn
 identity local key-id dmvpn
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
!
crypto ipsec transform-set TS esp-gcm 256
 mode transport
!
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
!
";
    format!("{crypto}{config}").replace(
        " tunnel key 100000\n",
        " tunnel key 100000\n tunnel protection ipsec profile IPS\n",
    )
}

/// The seeds' DMVPN crypto (EX-1/EX-2: `crypto isakmp policy`, a wildcard `crypto isakmp key`, a transport-mode
/// transform set, an IPsec profile without an IKEv2 profile, so IKEv1) with modern algorithms.
fn protect_ikev1(config: String) -> String {
    let crypto = "\
crypto isakmp policy 1
 encr aes 256
 hash sha256
 authentication pre-share
 group 14
crypto isakmp key lifeline-dmvpn-key-0413 address 0.0.0.0 0.0.0.0
!
crypto ipsec transform-set TS esp-aes 256 esp-sha256-hmac
 mode transport
!
crypto ipsec profile IPS
 set transform-set TS
!
";
    format!("{crypto}{config}").replace(
        " tunnel key 100000\n",
        " tunnel key 100000\n tunnel protection ipsec profile IPS\n",
    )
}

fn cloud_with(phase3: bool, capture_on: &str, nat: bool, protected: bool) -> Cloud {
    cloud_edited(phase3, capture_on, nat, protected, &|_, c| c)
}

/// [`cloud_with`], each node's configuration passed through `edit` (0: hub, 1 and 2: the spokes) first.
fn cloud_edited(
    phase3: bool,
    capture_on: &str,
    nat: bool,
    protected: bool,
    edit: &dyn Fn(u8, String) -> String,
) -> Cloud {
    cloud_natted(phase3, capture_on, [nat, false], protected, edit)
}

/// Spoke `n`'s link to `wan` (router side `e{n}`, outside address `outside`/24, router `.254`). Behind NAT
/// (`nat`), spoke `n` sits at 10.1{n}.0.2 behind an nftables masquerading router `nat{n}` whose outside
/// address is `outside`. Returns the router (if any), the spoke's WAN address and its default gateway.
fn spoke_link(
    wan: &Netns,
    spoke: &Netns,
    n: u8,
    outside: &str,
    nat: bool,
    protected: bool,
) -> (Option<Netns>, String, String) {
    let gw = outside
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.254"))
        .unwrap();
    let (wan_if, inside) = (format!("e{n}"), format!("10.1{n}.0"));
    if !nat {
        veth(
            wan,
            &wan_if,
            &format!("{gw}/24"),
            spoke,
            "eth0",
            &format!("{outside}/24"),
        );
        return (None, outside.to_string(), gw);
    }
    let r = Netns::new(&format!("nat{n}"));
    r.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    veth(
        wan,
        &wan_if,
        &format!("{gw}/24"),
        &r,
        "out",
        &format!("{outside}/24"),
    );
    veth(
        &r,
        "in",
        &format!("{inside}.1/24"),
        spoke,
        "eth0",
        &format!("{inside}.2/24"),
    );
    r.run(&["ip", "route", "add", "default", "via", &gw]);
    r.run(&["nft", "add", "table", "ip", "nat"]);
    r.run(&[
        "nft",
        "add chain ip nat post { type nat hook postrouting priority 100 ; }",
    ]);
    r.run(&[
        "nft",
        "add",
        "rule",
        "ip",
        "nat",
        "post",
        "oifname",
        "out",
        "masquerade",
    ]);
    // GRE arriving at the outside address goes to the spoke (a port forward for protocol 47): without
    // it the NAT drops what other spokes send before spoke 1 sent them anything (resolution replies).
    // Protected GRE needs none: ESP in UDP (see dmvpn_protected_spoke_behind_nat_*).
    r.run(&[
        "nft",
        "add chain ip nat pre { type nat hook prerouting priority -100 ; }",
    ]);
    if !protected {
        let to = format!("{inside}.2");
        r.run(&[
            "nft", "add", "rule", "ip", "nat", "pre", "iifname", "out", "ip", "protocol", "gre",
            "dnat", "to", &to,
        ]);
    }
    (Some(r), format!("{inside}.2"), format!("{inside}.1"))
}

/// [`cloud_edited`] with either spoke, or both, behind its own masquerading NAT ([`spoke_link`]).
fn cloud_natted(
    phase3: bool,
    capture_on: &str,
    nat: [bool; 2],
    protected: bool,
    edit: &dyn Fn(u8, String) -> String,
) -> Cloud {
    cloud_natted_with(phase3, capture_on, nat, protected, edit, &[])
}

/// [`cloud_natted`] with extra `lifeline run` arguments (hidden test hooks) for both spokes.
fn cloud_natted_with(
    phase3: bool,
    capture_on: &str,
    nat: [bool; 2],
    protected: bool,
    edit: &dyn Fn(u8, String) -> String,
    spoke_extra: &[&str],
) -> Cloud {
    let wrap = |n: u8, c: String| edit(n, if protected { protect(c) } else { c });
    let wan = Netns::new("wan");
    let h = Netns::new("hub");
    let a = Netns::new("sp1");
    let b = Netns::new("sp2");
    wan.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    veth(&wan, "eh", "192.0.2.254/24", &h, "eth0", "192.0.2.1/24");
    let (nat1, s1_wan, s1_gw) = spoke_link(&wan, &a, 1, "198.51.100.1", nat[0], protected);
    let (nat2, s2_wan, s2_gw) = spoke_link(&wan, &b, 2, "203.0.113.1", nat[1], protected);
    for (ns, gw) in [
        (&h, "192.0.2.254"),
        (&a, s1_gw.as_str()),
        (&b, s2_gw.as_str()),
    ] {
        ns.run(&["ip", "route", "add", "default", "via", gw]);
    }
    let cap = Capture::start(&wan, capture_on, "dmvpn");
    // tcpdump writes the pcap header once it listens: from then on nothing is missed (registrations).
    let t0 = Instant::now();
    while let Some(c) = &cap
        && std::fs::metadata(&c.path).map_or(0, |m| m.len()) < 24
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let hub = start_site(h, "hub", &wrap(0, hub_config(phase3)));
    let s1 = start_site_with(
        a,
        "spoke1",
        &wrap(1, spoke_config(1, &s1_wan, phase3)),
        spoke_extra,
    );
    let s2 = start_site_with(
        b,
        "spoke2",
        &wrap(2, spoke_config(2, &s2_wan, phase3)),
        spoke_extra,
    );
    Cloud {
        cap,
        hub,
        s1,
        s2,
        _wan: wan,
        nat: [nat1, nat2],
    }
}

fn json(site: &Site, words: &[&str]) -> serde_json::Value {
    let mut w = words.to_vec();
    w.push("--json");
    let text = site.cli(&w);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{words:?}: {e}: {text}"))
}

/// The NHRP cache entries of `site`'s Tunnel0 (prefix -> entry).
fn entries(site: &Site) -> Vec<serde_json::Value> {
    json(site, &["show", "ip", "nhrp"])["tunnels"][0]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(es: &'a [serde_json::Value], prefix: &str) -> Option<&'a serde_json::Value> {
    es.iter().find(|e| e["prefix"] == prefix)
}

fn gre_counter(site: &Site, name: &str) -> u64 {
    json(site, &["show", "dmvpn"])["tunnels"][0]["gre"][name]
        .as_u64()
        .unwrap()
}

/// Both spokes registered with the hub (the hub's cache has both, the spokes see their NHS up).
fn wait_registered(c: &Cloud) -> Duration {
    let t0 = Instant::now();
    loop {
        let es = entries(&c.hub);
        let ok = ["10.0.0.11/32", "10.0.0.12/32"].iter().all(|p| {
            entry(&es, p).is_some_and(|e| e["flags"].as_str().unwrap_or("").contains("registered"))
        }) && [&c.s1, &c.s2]
            .iter()
            .all(|s| json(s, &["show", "dmvpn"])["tunnels"][0]["nhs"][0]["up"] == true);
        if ok {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "spokes did not register: {es:?}\n{}\n{}\n{}",
            c.hub.log(),
            c.s1.log(),
            c.s2.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ping from spoke 1's LAN to spoke 2's once every 50 ms until `direct` says the direct path is in place;
/// returns the time from the first packet.
fn time_to_direct(c: &Cloud, direct: impl Fn(&Cloud) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        let _ =
            c.s1.ns
                .cmd("ping")
                .args(["-c", "1", "-W", "1", "-I", "10.1.1.1", "10.1.2.1"])
                .stdout(Stdio::null())
                .spawn()
                .map(|mut ch| {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = ch.wait();
                });
        if direct(c) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no direct path: {:?}\n{}",
            entries(&c.s1),
            c.s1.log()
        );
    }
}

/// Spoke-to-spoke traffic no longer crosses the hub: ten pings, the hub forwards none of them.
fn assert_direct(c: &Cloud) {
    let before = gre_counter(&c.hub, "hairpinned");
    let dump = || {
        format!(
            "spoke 1:\n{}\n{}\nspoke 2:\n{}\n{}\nhub:\n{}",
            c.s1.cli(&["show", "ip", "nhrp"]),
            json(&c.s1, &["show", "dmvpn"])["tunnels"][0]["gre"],
            c.s2.cli(&["show", "ip", "nhrp"]),
            json(&c.s2, &["show", "dmvpn"])["tunnels"][0]["gre"],
            json(&c.hub, &["show", "dmvpn"])["tunnels"][0]["gre"],
        )
    };
    assert_eq!(
        pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 10),
        10,
        "{}",
        dump()
    );
    assert_eq!(
        pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 10),
        10,
        "{}",
        dump()
    );
    let after = gre_counter(&c.hub, "hairpinned");
    assert_eq!(
        before, after,
        "the hub still forwards spoke-to-spoke packets"
    );
}

#[test]
fn dmvpn_phase2_spokes_register_and_resolve_each_other_through_the_hub() {
    if !netns_available("dmvpn_phase2_spokes_register_and_resolve_each_other_through_the_hub") {
        return;
    }
    let mut c = cloud(false, "e2", false);
    let reg = wait_registered(&c);
    println!("[dmvpn phase 2] both spokes registered {reg:?} after start");
    // Hub and spokes reach each other over the cloud.
    assert_eq!(pings(&c.s1.ns, "10.1.1.1", "10.0.0.1", 3), 3);
    assert_eq!(pings(&c.hub.ns, "10.0.0.1", "10.0.0.12", 3), 3);
    // Spoke 1 -> spoke 2's LAN: the first packets go via the hub while NHRP resolves 10.0.0.12.
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn phase 2] first packet to direct spoke-to-spoke path: {took:?}");
    assert_direct(&c);
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!("[dmvpn phase 2] iperf3 spoke 1 -> spoke 2 (direct): {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    let text = c.s1.cli(&["show", "dmvpn"]);
    println!("{text}");
    assert!(
        text.contains("192.0.2.1") && text.contains("203.0.113.1"),
        "{text}"
    );
    let hub_text = c.hub.cli(&["show", "ip", "nhrp"]);
    println!("{hub_text}");
    assert!(hub_text.contains("10.0.0.11/32") && hub_text.contains("10.0.0.12/32"));
    println!("{}", c.s1.cli(&["show", "ip", "nhrp", "traffic"]));
    // `clear ip nhrp` on spoke 1: the learnt entry goes, the static map to the hub stays, and the
    // spoke resolves again on the next packet.
    let out = c.s1.cli(&["clear", "ip", "nhrp"]);
    assert!(out.contains("cleared"), "{out}");
    let es = entries(&c.s1);
    assert!(
        entry(&es, "10.0.0.12/32").is_none_or(|e| e["nbma"].is_null()),
        "{es:?}"
    );
    assert!(entry(&es, "10.0.0.1/32").is_some(), "{es:?}");
    let again = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn phase 2] direct again {again:?} after clear ip nhrp");
    // tshark: keyed GRE, NHRP registration and resolution on the wire, and direct spoke-to-spoke GRE.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let ops = tshark(&pcap, "nhrp", &["nhrp.hdr.op.type"]);
    println!(
        "[dmvpn phase 2] NHRP packet types on spoke 2's link: {:?}",
        {
            let mut o = ops.clone();
            o.sort();
            o.dedup();
            o
        }
    );
    for op in ["1", "2", "3", "4"] {
        assert!(ops.iter().any(|o| o == op), "no NHRP type {op} in {ops:?}");
    }
    // Registration requests carry the authentication extension (7) and Cisco's NAT address extension.
    let exts = tshark(&pcap, "nhrp.hdr.op.type == 3", &["nhrp.ext.type"]);
    println!("[dmvpn phase 2] extensions of the registration requests: {exts:?}");
    assert!(
        exts.iter().any(|e| e.split(',').any(|t| t == "0x0007")),
        "{exts:?}"
    );
    let keys = tshark(&pcap, "gre", &["gre.key"]);
    assert!(keys.iter().all(|k| k == "0x000186a0"), "{keys:?}");
    let direct = tshark(
        &pcap,
        "gre && icmp && ip.src == 198.51.100.1 && ip.dst == 203.0.113.1",
        &["frame.number"],
    );
    assert!(
        !direct.is_empty(),
        "no direct spoke-to-spoke GRE on the wire"
    );
    println!(
        "[dmvpn phase 2] {} direct spoke-to-spoke GRE/ICMP packets seen",
        direct.len()
    );
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn dmvpn_phase3_hub_redirect_and_spoke_shortcut_build_a_direct_path() {
    if !netns_available("dmvpn_phase3_hub_redirect_and_spoke_shortcut_build_a_direct_path") {
        return;
    }
    let mut c = cloud(true, "e1", false);
    let reg = wait_registered(&c);
    println!("[dmvpn phase 3] both spokes registered {reg:?} after start");
    // Spoke 1 routes 10.1.0.0/16 via the hub; the hub forwards the first packets and redirects; spoke 1
    // resolves 10.1.2.1 and gets spoke 2's LAN prefix as a shortcut.
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.1.2.0/24").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn phase 3] first packet to shortcut (redirect + resolution): {took:?}");
    // The shortcut route is in the kernel (Lifeline's table), over the tunnel device.
    let t0 = Instant::now();
    loop {
        let r = String::from_utf8_lossy(
            &c.s1
                .ns
                .run(&["ip", "-4", "route", "show", "table", "4711", "10.1.2.0/24"])
                .stdout,
        )
        .to_string();
        if r.contains("dev dmvpn0") {
            println!("[dmvpn phase 3] kernel: {}", r.trim());
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no shortcut route: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The reverse direction learns its shortcut too (spoke 2's packets are redirected the same way).
    time_to_direct(&c, |c| {
        entry(&entries(&c.s2), "10.1.1.0/24").is_some_and(|e| e["nbma"] == "198.51.100.1")
    });
    assert_direct(&c);
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!("[dmvpn phase 3] iperf3 spoke 1 -> spoke 2 (shortcut): {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    println!("{}", c.s1.cli(&["show", "ip", "nhrp"]));
    println!("{}", c.hub.cli(&["show", "ip", "nhrp", "traffic"]));
    let pcap = c.cap.take().expect("tcpdump").finish();
    let ops = tshark(&pcap, "nhrp", &["nhrp.hdr.op.type"]);
    for op in ["1", "2", "3", "4", "8"] {
        assert!(ops.iter().any(|o| o == op), "no NHRP type {op} in {ops:?}");
    }
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn dmvpn_spoke_behind_nat_registers_with_the_nat_extension_and_goes_direct() {
    if !netns_available("dmvpn_spoke_behind_nat_registers_with_the_nat_extension_and_goes_direct") {
        return;
    }
    let mut c = cloud(false, "e1", true);
    let reg = wait_registered(&c);
    println!("[dmvpn nat] both spokes registered {reg:?} after start");
    // The hub maps spoke 1 to its post-NAT address and remembers the claimed one.
    let es = entries(&c.hub);
    let e = entry(&es, "10.0.0.11/32").unwrap();
    assert_eq!(e["nbma"], "198.51.100.1", "{e}");
    assert_eq!(e["claimed_nbma"], "10.11.0.2", "{e}");
    // The NHS told spoke 1 its post-NAT address (NAT extension in the registration reply).
    let t0 = Instant::now();
    while json(&c.s1, &["show", "dmvpn"])["tunnels"][0]["post_nat_nbma"] != "198.51.100.1" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no post-NAT address"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{}", c.hub.cli(&["show", "dmvpn"]));
    // Spoke 1 (NATed) -> spoke 2: resolution, then direct both ways through the NAT.
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn nat] first packet to direct path from the NATed spoke: {took:?}");
    let t0 = Instant::now();
    while !entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "spoke 2 does not know spoke 1's post-NAT address: {:?}",
            entries(&c.s2)
        );
        let _ = pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1);
    }
    assert_direct(&c);
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!("[dmvpn nat] iperf3 NATed spoke 1 -> spoke 2 (direct): {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    // On the wire (outside the NAT): the registration request claims 10.11.0.2 and carries the NAT
    // extension; the reply's NAT extension holds the post-NAT address.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let reqs = tshark(
        &pcap,
        "nhrp.hdr.op.type == 3",
        &["ip.src", "nhrp.src.nbma.addr", "nhrp.ext.type"],
    );
    println!("[dmvpn nat] registration requests: {reqs:?}");
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("198.51.100.1\t10.11.0.2\t") && r.contains("0x0009")),
        "{reqs:?}"
    );
    let replies = tshark(&pcap, "nhrp.hdr.op.type == 4", &["nhrp.client.nbma.addr"]);
    println!("[dmvpn nat] registration replies (client NBMA fields): {replies:?}");
    assert!(
        replies.iter().any(|r| r.contains("198.51.100.1")),
        "{replies:?}"
    );
    let _ = std::fs::remove_file(&pcap);
}

/// Dual hub on one cloud: hub `n` (1 or 2) at 10.0.0.n, NBMA `nbma`.
fn dual_hub_config(n: u8, nbma: &str) -> String {
    format!(
        "\
hostname hub{n}
!
interface GigabitEthernet0
 device eth0
 ip address {nbma} 255.255.255.0
!
interface Tunnel0
 device dmvpn0
 ip address 10.0.0.{n} 255.255.255.0
 ip mtu 1400
 ip nhrp authentication donttell
 ip nhrp map multicast dynamic
 ip nhrp network-id 99
 ip nhrp holdtime 300
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
!
ip route 10.1.1.0 255.255.255.0 10.0.0.11
ip route 10.1.2.0 255.255.255.0 10.0.0.12
"
    )
}

/// A spoke with two NHSes (`ip nhrp nhs` twice, in priority order) and a short registration timeout, so a
/// dead hub is noticed within seconds; the other spoke's LAN is routed into the tunnel, which sends it via
/// the NHS in use.
fn dual_spoke_config(n: u8, wan: &str) -> String {
    let other = 3 - n;
    format!(
        "\
hostname spoke{n}
!
interface GigabitEthernet0
 device eth0
 ip address {wan} 255.255.255.0
!
interface Loopback1
 ip address 10.1.{n}.1 255.255.255.0
!
interface Tunnel0
 device dmvpn0
 ip address 10.0.0.1{n} 255.255.255.0
 ip mtu 1400
 ip nhrp authentication donttell
 ip nhrp map 10.0.0.1 192.0.2.1
 ip nhrp map multicast 192.0.2.1
 ip nhrp map 10.0.0.2 10.20.0.2
 ip nhrp map multicast 10.20.0.2
 ip nhrp network-id 99
 ip nhrp holdtime 300
 ip nhrp nhs 10.0.0.1
 ip nhrp nhs 10.0.0.2
 ip nhrp registration timeout 2
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
!
ip route 10.1.{other}.0 255.255.255.0 Tunnel0
"
    )
}

#[test]
fn dmvpn_dual_hub_spokes_move_to_the_second_hub_when_the_first_dies() {
    if !netns_available("dmvpn_dual_hub_spokes_move_to_the_second_hub_when_the_first_dies") {
        return;
    }
    let wan = Netns::new("wan");
    let h1 = Netns::new("hub1");
    let h2 = Netns::new("hub2");
    let a = Netns::new("sp1");
    let b = Netns::new("sp2");
    wan.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    veth(&wan, "eh", "192.0.2.254/24", &h1, "eth0", "192.0.2.1/24");
    veth(&wan, "eh2", "10.20.0.254/24", &h2, "eth0", "10.20.0.2/24");
    veth(
        &wan,
        "e1",
        "198.51.100.254/24",
        &a,
        "eth0",
        "198.51.100.1/24",
    );
    veth(&wan, "e2", "203.0.113.254/24", &b, "eth0", "203.0.113.1/24");
    for (ns, gw) in [
        (&h1, "192.0.2.254"),
        (&h2, "10.20.0.254"),
        (&a, "198.51.100.254"),
        (&b, "203.0.113.254"),
    ] {
        ns.run(&["ip", "route", "add", "default", "via", gw]);
    }
    let hub1 = start_site(h1, "hub1", &dual_hub_config(1, "192.0.2.1"));
    let hub2 = start_site(h2, "hub2", &dual_hub_config(2, "10.20.0.2"));
    let s1 = start_site(a, "spoke1", &dual_spoke_config(1, "198.51.100.1"));
    let s2 = start_site(b, "spoke2", &dual_spoke_config(2, "203.0.113.1"));
    let nhs_up = |s: &Site| -> Vec<bool> {
        json(s, &["show", "dmvpn"])["tunnels"][0]["nhs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["up"] == true)
            .collect()
    };
    // Both spokes register with both hubs.
    let t0 = Instant::now();
    while !(nhs_up(&s1) == [true, true] && nhs_up(&s2) == [true, true]) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{:?} {:?}",
            nhs_up(&s1),
            nhs_up(&s2)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for hub in [&hub1, &hub2] {
        let es = entries(hub);
        assert!(entry(&es, "10.0.0.11/32").is_some() && entry(&es, "10.0.0.12/32").is_some());
    }
    println!("{}", s1.cli(&["show", "dmvpn"]));
    // Spoke to spoke through hub 1 (the first NHS).
    assert_eq!(pings(&s1.ns, "10.1.1.1", "10.1.2.1", 5), 5);
    assert!(gre_counter(&hub1, "hairpinned") >= 5);
    let via_hub2_before = gre_counter(&hub2, "hairpinned");
    // Hub 1 dies. The spokes notice (unanswered registrations) and send via hub 2.
    let died = Instant::now();
    drop(hub1);
    let back = ping_until(&s1.ns, "10.1.1.1", "10.1.2.1", Duration::from_secs(40));
    println!(
        "[dmvpn dual hub] traffic through hub 2 {back:?} after hub 1 died (NHS down detection)"
    );
    let t0 = Instant::now();
    // Both spokes: each notices on its own registration schedule.
    while nhs_up(&s1) != [false, true] || nhs_up(&s2) != [false, true] {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{:?} {:?}",
            nhs_up(&s1),
            nhs_up(&s2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "[dmvpn dual hub] both spokes see hub 1 down {:?} after it died",
        died.elapsed()
    );
    assert_eq!(pings(&s1.ns, "10.1.1.1", "10.1.2.1", 10), 10);
    assert_eq!(pings(&s2.ns, "10.1.2.1", "10.1.1.1", 10), 10);
    assert!(gre_counter(&hub2, "hairpinned") >= via_hub2_before + 20);
    let mbits = iperf(&s1.ns, "10.1.1.1", &s2.ns, "10.1.2.1", 1);
    println!("[dmvpn dual hub] iperf3 spoke 1 -> spoke 2 through hub 2: {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    println!("{}", s1.cli(&["show", "dmvpn"]));
    drop(wan);
}

/// FRR (zebra + a routing daemon) in a namespace, run as the `frr` user, stopped by pid when dropped.
struct Frr {
    dir: PathBuf,
    daemons: [&'static str; 2],
}

impl Frr {
    fn start(ns: &Netns, config: &str) -> Frr {
        Frr::start_with(ns, config, "bgpd")
    }

    fn start_with(ns: &Netns, config: &str, routing: &'static str) -> Frr {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("frr-{}", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.join("frr.conf");
        std::fs::write(&conf, config).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let daemons = ["zebra", routing];
        for daemon in daemons {
            let out = ns
                .cmd(&format!("/usr/lib/frr/{daemon}"))
                .args(["-d", "-u", "frr", "-g", "frr", "-i"])
                .arg(dir.join(format!("{daemon}.pid")))
                .arg("-z")
                .arg(dir.join("zserv.api"))
                .arg("--vty_socket")
                .arg(&dir)
                .arg("-f")
                .arg(&conf)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{daemon}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The routing daemon connects to zebra's socket: start it once zebra listens.
            let t0 = Instant::now();
            while daemon == "zebra" && !dir.join("zserv.api").exists() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "zebra did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Frr { dir, daemons }
    }

    fn vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for daemon in self.daemons.iter().rev() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

/// Hub and two spokes without static routes to the LANs (a routing daemon puts them in the kernel over the
/// tunnel device, and the appliance follows the kernel's routes over its GRE devices).
fn frr_cloud() -> Cloud {
    frr_cloud_with(false)
}

/// [`frr_cloud`]; `phase3`: the hub redirects, the spokes install shortcuts.
fn frr_cloud_with(phase3: bool) -> Cloud {
    let strip = |c: String| -> String {
        c.lines()
            .filter(|l| !l.starts_with("ip route"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let wan = Netns::new("wan");
    let h = Netns::new("hub");
    let a = Netns::new("sp1");
    let b = Netns::new("sp2");
    wan.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    veth(&wan, "eh", "192.0.2.254/24", &h, "eth0", "192.0.2.1/24");
    veth(
        &wan,
        "e1",
        "198.51.100.254/24",
        &a,
        "eth0",
        "198.51.100.1/24",
    );
    veth(&wan, "e2", "203.0.113.254/24", &b, "eth0", "203.0.113.1/24");
    for (ns, gw) in [
        (&h, "192.0.2.254"),
        (&a, "198.51.100.254"),
        (&b, "203.0.113.254"),
    ] {
        ns.run(&["ip", "route", "add", "default", "via", gw]);
    }
    let hub = start_site(h, "hub", &strip(hub_config(phase3)));
    let s1 = start_site(a, "spoke1", &strip(spoke_config(1, "198.51.100.1", phase3)));
    let s2 = start_site(b, "spoke2", &strip(spoke_config(2, "203.0.113.1", phase3)));
    Cloud {
        cap: None,
        hub,
        s1,
        s2,
        _wan: wan,
        nat: [None, None],
    }
}

/// Namespaces work and FRR's `daemon` is installed (a missing FRR fails when LIFELINE_REQUIRE_NETNS is set).
fn frr_available(test: &str, daemon: &str) -> bool {
    if !netns_available(test) {
        return false;
    }
    if !std::path::Path::new(&format!("/usr/lib/frr/{daemon}")).exists() {
        assert!(
            std::env::var_os("LIFELINE_REQUIRE_NETNS").is_none(),
            "FRR is not installed"
        );
        eprintln!("skipped: FRR is not installed");
        return false;
    }
    true
}

#[test]
fn dmvpn_frr_bgp_over_lifeline_dmvpn_gives_spoke_to_spoke_direct_paths() {
    if !frr_available(
        "dmvpn_frr_bgp_over_lifeline_dmvpn_gives_spoke_to_spoke_direct_paths",
        "bgpd",
    ) {
        return;
    }
    // No static routes to the LANs in Lifeline's configurations: BGP (hub = route reflector, next hop
    // unchanged, as DMVPN phase 2 wants) puts them in the kernel over the tunnel device, and the appliance
    // follows the kernel's routes over its GRE devices.
    let c = frr_cloud();
    wait_registered(&c);
    let hub_bgp = "\
frr defaults traditional
hostname hub
router bgp 65000
 bgp router-id 10.0.0.1
 neighbor SPOKES peer-group
 neighbor SPOKES remote-as 65000
 bgp listen range 10.0.0.0/24 peer-group SPOKES
 address-family ipv4 unicast
  neighbor SPOKES route-reflector-client
 exit-address-family
";
    let spoke_bgp = |n: u8| {
        format!(
            "\
frr defaults traditional
hostname spoke{n}
router bgp 65000
 bgp router-id 10.0.0.1{n}
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.1 timers connect 1
 address-family ipv4 unicast
  network 10.1.{n}.0/24
 exit-address-family
"
        )
    };
    let _f_hub = Frr::start(&c.hub.ns, hub_bgp);
    let f1 = Frr::start(&c.s1.ns, &spoke_bgp(1));
    let _f2 = Frr::start(&c.s2.ns, &spoke_bgp(2));
    // BGP converges over the DMVPN: spoke 1's kernel routes spoke 2's LAN via spoke 2's tunnel address.
    let t0 = Instant::now();
    loop {
        let r = String::from_utf8_lossy(
            &c.s1
                .ns
                .run(&["ip", "-4", "route", "show", "10.1.2.0/24"])
                .stdout,
        )
        .to_string();
        if r.contains("via 10.0.0.12 dev dmvpn0") {
            println!(
                "[dmvpn frr] BGP route after {:?}: {}",
                t0.elapsed(),
                r.trim()
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "no BGP route: {r}\n{}",
            f1.vtysh("show bgp summary")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn frr] first packet to direct spoke-to-spoke path: {took:?}");
    let t0 = Instant::now();
    while !entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            entries(&c.s2)
        );
        let _ = pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1);
    }
    assert_direct(&c);
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!("[dmvpn frr] iperf3 spoke 1 -> spoke 2 (direct, BGP routes): {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    println!("{}", f1.vtysh("show ip route bgp"));
}

/// `ip nhrp authentication` (seed 001:510, "must be set to the same value on all hubs and spokes"): spoke 1
/// carries the wrong string, spoke 2 the right one. The hub registers spoke 2 only, drops spoke 1's
/// registrations (counted in `show ip nhrp traffic` and `--json`, logged `%NHRP-4-AUTH_FAILURE`), and spoke 1
/// never sees its NHS up.
#[test]
fn dmvpn_nhrp_authentication_mismatch_keeps_the_spoke_unregistered() {
    if !netns_available("dmvpn_nhrp_authentication_mismatch_keeps_the_spoke_unregistered") {
        return;
    }
    let c = cloud_edited(false, "eh", false, false, &|n, cfg| {
        if n == 1 {
            cfg.replace(
                " ip nhrp authentication donttell\n",
                " ip nhrp authentication wrongkey\n",
            )
        } else {
            cfg
        }
    });
    let t0 = Instant::now();
    loop {
        let es = entries(&c.hub);
        let drops = json(&c.hub, &["show", "ip", "nhrp"])["tunnels"][0]["drops"]["authentication"]
            .as_u64()
            .unwrap_or(0);
        let s2_up = json(&c.s2, &["show", "dmvpn"])["tunnels"][0]["nhs"][0]["up"] == true;
        // Spoke 1 retries after 1 s, 2 s, ...: two refusals show the drop is not a one-off race.
        if s2_up && entry(&es, "10.0.0.12/32").is_some() && drops >= 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{es:?} drops {drops}\n{}\n{}",
            c.hub.log(),
            c.s1.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let es = entries(&c.hub);
    assert!(entry(&es, "10.0.0.11/32").is_none(), "{es:?}");
    assert_ne!(
        json(&c.s1, &["show", "dmvpn"])["tunnels"][0]["nhs"][0]["up"],
        true
    );
    let traffic = c.hub.cli(&["show", "ip", "nhrp", "traffic"]);
    println!("{traffic}");
    let line = traffic
        .lines()
        .find(|l| l.contains("Authentication"))
        .unwrap_or_else(|| panic!("no drop line: {traffic}"));
    let n: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!(n >= 2, "{traffic}");
    assert!(traffic.contains("Dropped: Total "), "{traffic}");
    let log = c.hub.log();
    assert!(
        log.contains(
            "%NHRP-4-AUTH_FAILURE: Tunnel0: NHRP packet from 198.51.100.1 failed authentication"
        ),
        "{log}"
    );
    assert!(
        !log.contains("wrongkey") && !log.contains("donttell"),
        "{log}"
    );
    assert!(!traffic.contains("wrongkey") && !traffic.contains("donttell"));
    // The registered spoke works through the hub, the other one has no NHS to send to.
    assert_eq!(pings(&c.s2.ns, "10.1.2.1", "10.0.0.1", 3), 3);
}

/// The cloud's GRE counter `name` on `site` (0 when absent).
/// The kernel's route to `lan` in the site's namespace.
fn lan_route(s: &Site, lan: &str) -> String {
    String::from_utf8_lossy(&s.ns.run(&["ip", "-4", "route", "show", lan]).stdout).to_string()
}

/// Waits (40 s at most) until spoke 1 routes spoke 2's LAN via `via.0` and spoke 2 routes spoke 1's via
/// `via.1`, over dmvpn0; prints the time taken after `what`, or fails with `diag()`.
fn wait_spoke_lan_routes(c: &Cloud, via: (&str, &str), what: &str, diag: impl Fn() -> String) {
    let t0 = Instant::now();
    loop {
        let r1 = lan_route(&c.s1, "10.1.2.0/24");
        let r2 = lan_route(&c.s2, "10.1.1.0/24");
        if r1.contains(&format!("via {} dev dmvpn0", via.0))
            && r2.contains(&format!("via {} dev dmvpn0", via.1))
        {
            println!(
                "{what} {:?} after ospfd start: {} / {}",
                t0.elapsed(),
                r1.trim(),
                r2.trim()
            );
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "no OSPF routes: {r1} / {r2}\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn gre_count(site: &Site, name: &str) -> u64 {
    json(site, &["show", "dmvpn"])["tunnels"][0]["gre"][name]
        .as_u64()
        .unwrap_or(0)
}

/// FRR's ospfd over the Lifeline DMVPN, the phase 2 design (`broadcast` network, the hub the DR, spokes
/// priority 0): the routing protocols' multicast (hellos to 224.0.0.5, updates to 224.0.0.5/6) goes through
/// the NHRP multicast list (`map multicast dynamic` on the hub, `map multicast <hub>` on the spokes),
/// adjacencies come up, each spoke learns the other's LAN via the other's tunnel address, and spoke-to-spoke
/// traffic goes direct after resolution.
#[test]
fn dmvpn_frr_ospf_over_lifeline_dmvpn_replicates_hellos_and_gives_direct_paths() {
    if !frr_available(
        "dmvpn_frr_ospf_over_lifeline_dmvpn_replicates_hellos_and_gives_direct_paths",
        "ospfd",
    ) {
        return;
    }
    let c = frr_cloud();
    wait_registered(&c);
    let ospf = |name: &str, id: &str, priority: u8| {
        format!(
            "\
frr defaults traditional
hostname {name}
ip prefix-list LAN seq 5 permit 10.1.0.0/16 le 24
route-map LAN permit 10
 match ip address prefix-list LAN
interface dmvpn0
 ip ospf network broadcast
 ip ospf priority {priority}
 ip ospf hello-interval 1
 ip ospf dead-interval 4
router ospf
 ospf router-id {id}
 timers throttle spf 0 50 500
 redistribute connected route-map LAN
 network 10.0.0.0/24 area 0
"
        )
    };
    let f_hub = Frr::start_with(&c.hub.ns, &ospf("hub", "10.0.0.1", 255), "ospfd");
    let _f1 = Frr::start_with(&c.s1.ns, &ospf("spoke1", "10.0.0.11", 0), "ospfd");
    let _f2 = Frr::start_with(&c.s2.ns, &ospf("spoke2", "10.0.0.12", 0), "ospfd");
    // Adjacencies through the tunnel, then each spoke's kernel routes the other's LAN via its tunnel address.
    wait_spoke_lan_routes(
        &c,
        ("10.0.0.12", "10.0.0.11"),
        "[dmvpn ospf] spoke LANs learnt",
        || {
            format!(
                "{}\nhub gre: {}",
                f_hub.vtysh("show ip ospf neighbor"),
                json(&c.hub, &["show", "dmvpn"])["tunnels"][0]["gre"]
            )
        },
    );
    let neighbors = f_hub.vtysh("show ip ospf neighbor");
    println!("{neighbors}");
    for spoke in ["10.0.0.11", "10.0.0.12"] {
        assert!(
            neighbors
                .lines()
                .any(|l| l.starts_with(spoke) && l.contains("Full")),
            "hub not Full with {spoke}: {neighbors}"
        );
    }
    // The hellos went through user-space replication: the hub copies each to both registered spokes, each
    // spoke copies its own to the hub.
    let (hub_out, hub_in) = (
        gre_count(&c.hub, "multicast_out"),
        gre_count(&c.hub, "multicast_in"),
    );
    let (s1_out, s1_in) = (
        gre_count(&c.s1, "multicast_out"),
        gre_count(&c.s1, "multicast_in"),
    );
    println!(
        "[dmvpn ospf] multicast copies: hub out {hub_out} in {hub_in}, spoke 1 out {s1_out} in {s1_in}"
    );
    assert!(hub_out >= 4 && hub_in >= 4 && s1_out >= 2 && s1_in >= 2);
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn ospf] first packet to direct spoke-to-spoke path: {took:?}");
    let t0 = Instant::now();
    while !entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            entries(&c.s2)
        );
        let _ = pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1);
    }
    assert_direct(&c);
    // The adjacencies survived the direct path (hellos still reach the hub and back).
    let neighbors = f_hub.vtysh("show ip ospf neighbor");
    assert_eq!(
        neighbors.lines().filter(|l| l.contains("Full")).count(),
        2,
        "{neighbors}"
    );
}

/// FRR's ospfd with `ip ospf network point-to-multipoint` over the Lifeline DMVPN (no DR; the hub's hellos
/// reach both spokes through the NHRP multicast replication, a spoke's reach the hub only): the hub is Full
/// with both spokes, the spokes are not adjacent to each other, and each spoke learns the other's LAN with
/// the hub as next hop - so the direct path needs phase 3: the hub forwards the first packets and redirects,
/// the spoke resolves the LAN and installs a shortcut, and the traffic goes direct while OSPF keeps routing
/// via the hub.
#[test]
fn dmvpn_frr_ospf_point_to_multipoint_routes_via_the_hub_and_phase3_goes_direct() {
    if !frr_available(
        "dmvpn_frr_ospf_point_to_multipoint_routes_via_the_hub_and_phase3_goes_direct",
        "ospfd",
    ) {
        return;
    }
    let c = frr_cloud_with(true);
    wait_registered(&c);
    let ospf = |name: &str, id: &str| {
        format!(
            "\
frr defaults traditional
hostname {name}
ip prefix-list LAN seq 5 permit 10.1.0.0/16 le 24
route-map LAN permit 10
 match ip address prefix-list LAN
interface dmvpn0
 ip ospf network point-to-multipoint
 ip ospf hello-interval 1
 ip ospf dead-interval 4
router ospf
 ospf router-id {id}
 timers throttle spf 0 50 500
 redistribute connected route-map LAN
 network 10.0.0.0/24 area 0
"
        )
    };
    let f_hub = Frr::start_with(&c.hub.ns, &ospf("hub", "10.0.0.1"), "ospfd");
    let f1 = Frr::start_with(&c.s1.ns, &ospf("spoke1", "10.0.0.11"), "ospfd");
    let _f2 = Frr::start_with(&c.s2.ns, &ospf("spoke2", "10.0.0.12"), "ospfd");
    wait_spoke_lan_routes(
        &c,
        ("10.0.0.1", "10.0.0.1"),
        "[dmvpn ospf p2mp] spoke LANs learnt via the hub",
        || {
            format!(
                "{}\n{}",
                f_hub.vtysh("show ip ospf neighbor"),
                f1.vtysh("show ip ospf route")
            )
        },
    );
    let neighbors = f_hub.vtysh("show ip ospf neighbor");
    println!("hub# show ip ospf neighbor\n{neighbors}");
    for spoke in ["10.0.0.11", "10.0.0.12"] {
        assert!(
            neighbors
                .lines()
                .any(|l| l.starts_with(spoke) && l.contains("Full")),
            "hub not Full with {spoke}: {neighbors}"
        );
    }
    let n1 = f1.vtysh("show ip ospf neighbor");
    println!("spoke1# show ip ospf neighbor\n{n1}");
    assert!(
        n1.lines()
            .any(|l| l.starts_with("10.0.0.1 ") && l.contains("Full"))
            && !n1.contains("10.0.0.12"),
        "spoke 1 should be adjacent to the hub only: {n1}"
    );
    println!(
        "spoke1# show ip route ospf\n{}",
        f1.vtysh("show ip route ospf")
    );
    // Phase 3: the first packets cross the hub, which redirects; spoke 1 resolves spoke 2's LAN.
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.1.2.0/24").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!("[dmvpn ospf p2mp] first packet to shortcut (redirect + resolution): {took:?}");
    let t0 = Instant::now();
    while !entry(&entries(&c.s2), "10.1.1.0/24").is_some_and(|e| e["nbma"] == "198.51.100.1") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            entries(&c.s2)
        );
        let _ = pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1);
    }
    assert_direct(&c);
    // OSPF still routes via the hub (the shortcut lives in Lifeline's table), and the adjacencies hold.
    assert!(lan_route(&c.s1, "10.1.2.0/24").contains("via 10.0.0.1 dev dmvpn0"));
    let shortcut = String::from_utf8_lossy(
        &c.s1
            .ns
            .run(&["ip", "-4", "route", "show", "table", "4711", "10.1.2.0/24"])
            .stdout,
    )
    .to_string();
    println!("[dmvpn ospf p2mp] spoke 1 shortcut: {}", shortcut.trim());
    assert!(shortcut.contains("dev dmvpn0"), "{shortcut}");
    let neighbors = f_hub.vtysh("show ip ospf neighbor");
    assert_eq!(
        neighbors.lines().filter(|l| l.contains("Full")).count(),
        2,
        "{neighbors}"
    );
}

#[test]
fn dmvpn_protected_gre_carries_registration_resolution_and_direct_traffic_in_esp() {
    if !netns_available(
        "dmvpn_protected_gre_carries_registration_resolution_and_direct_traffic_in_esp",
    ) {
        return;
    }
    let mut c = cloud_with(false, "e2", false, true);
    // Registration needs the hub's SA first: IKEv2 runs on the first GRE packet for each peer.
    let reg = wait_registered(&c);
    println!(
        "[dmvpn ipsec] both spokes registered {reg:?} after start (IKEv2 + transport-mode ESP)"
    );
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!(
        "[dmvpn ipsec] first packet to direct spoke-to-spoke path (resolution + IKE to the spoke): {took:?}"
    );
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1 {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", c.s1.log());
    }
    assert_direct(&c);
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!("[dmvpn ipsec] iperf3 spoke 1 -> spoke 2 (direct, protected): {mbits:.0} Mbit/s");
    assert!(mbits > 1.0);
    // `show crypto ipsec sa` on spoke 1: one transport-mode SA pair per NBMA peer (hub, spoke 2), GRE selectors.
    let sa = c.s1.cli(&["show", "crypto", "ipsec", "sa"]);
    println!("{sa}");
    assert!(
        sa.contains("local  ident (addr/mask/prot/port): (198.51.100.1/255.255.255.255/47/0)"),
        "{sa}"
    );
    for peer in ["192.0.2.1", "203.0.113.1"] {
        assert!(
            sa.contains(&format!(
                "remote ident (addr/mask/prot/port): ({peer}/255.255.255.255/47/0)"
            )),
            "{sa}"
        );
    }
    assert!(sa.contains("in use settings ={Transport, }"), "{sa}");
    assert!(!sa.contains("#pkts encaps: 0,"), "{sa}");
    // The same rows in `show crypto ipsec sa --json` (`gre`), with the SAs' counters.
    let rows = gre_sa_rows(&c.s1);
    let peers: Vec<&str> = rows.iter().map(|r| r["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, ["192.0.2.1", "203.0.113.1"], "{rows:?}");
    for r in &rows {
        assert_eq!(r["interface"], "Tunnel0", "{r}");
        assert_eq!(r["crypto_map_tag"], "Tunnel0-head-0", "{r}");
        assert_eq!(r["source"], "198.51.100.1", "{r}");
        assert!(r["udp_encap"].is_null(), "{r}");
        assert_eq!(r["outbound"]["mode"], "transport", "{r}");
        assert!(r["outbound"]["packets"].as_u64().unwrap() > 0, "{r}");
        assert!(
            r["encaps"].as_u64().unwrap() > 0 && r["decaps"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(!r["inbound"].as_array().unwrap().is_empty(), "{r}");
    }
    // `show crypto map` / `show crypto socket` on the live hub (seed-dmvpn §3.8 (a), §3.9): the generated map
    // Tunnel0-head-0, one PROFILE INSTANCE and one open socket per spoke. The spokes' order is the order
    // they registered in, so their addresses are masked.
    let mask = |t: String| {
        t.replace("198.51.100.1", "<spoke>")
            .replace("203.0.113.1", "<spoke>")
    };
    let map = c.hub.cli(&["show", "crypto", "map"]);
    println!("{map}");
    let common = "  Security association lifetime: 4608000 kilobytes/3600 seconds\n  PFS (Y/N): N\n  Transform sets={TS, }\n";
    let instance = |seq: u32| {
        format!(
            "Crypto Map \"Tunnel0-head-0\" {seq} ipsec-isakmp\n  Map is a PROFILE INSTANCE.\n  Peer = <spoke>\n  Extended IP access list\n    access-list permit gre host 192.0.2.1 host <spoke>\n  Current peer: <spoke>\n{common}"
        )
    };
    assert_eq!(
        mask(map),
        format!(
            "Crypto Map \"Tunnel0-head-0\" 10 ipsec-isakmp\n  Profile name: IPS\n{common}{}{}  Interfaces using crypto map Tunnel0-head-0:\n  Tunnel0\n",
            instance(20),
            instance(30)
        )
    );
    let socket = c.hub.cli(&["show", "crypto", "socket"]);
    println!("{socket}");
    let sock = "  Tu0 Peers (local/remote): 192.0.2.1\n/<spoke>\n  Local Ident (addr/mask/port/prot): (192.0.2.1/255.255.255.255/0/47)\n  Remote Ident (addr/mask/port/prot): (<spoke>/255.255.255.255/0/47)\n  IPsec Profile: \"IPS\"\n  Socket State: Open\n  Client: \"TUNNEL SEC\" (Client State: Active)\n";
    assert_eq!(
        mask(socket),
        format!(
            "Number of Crypto Socket connections 2\n{sock}{sock}Crypto Sockets in Listen state:\nClient: \"TUNNEL SEC\" Profile: \"IPS\" Map-name: \"Tunnel0-head-0\"\n"
        )
    );
    // Spoke 1's map in --json: the hub's instance first (registration), then spoke 2's (on demand).
    let m = &json(&c.s1, &["show", "crypto", "map"])["maps"][0];
    assert_eq!(m["name"], "Tunnel0-head-0", "{m}");
    assert_eq!(m["ipsec_profile"], "IPS", "{m}");
    assert_eq!(m["transform_sets"][0], "TS", "{m}");
    let peers: Vec<(u64, String, String)> = m["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["seq"].as_u64().unwrap(),
                i["peer"].as_str().unwrap().to_string(),
                i["socket_state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        peers,
        [
            (20, "192.0.2.1".to_string(), "Open".to_string()),
            (30, "203.0.113.1".to_string(), "Open".to_string())
        ],
        "{m}"
    );
    // On spoke 2's link: ESP between the spokes and with the hub, IKE, and no GRE in clear at all.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let esp = tshark(&pcap, "esp", &["ip.src", "ip.dst", "esp.spi"]);
    let direct = esp
        .iter()
        .filter(|r| {
            r.starts_with("198.51.100.1\t203.0.113.1\t")
                || r.starts_with("203.0.113.1\t198.51.100.1\t")
        })
        .count();
    println!(
        "[dmvpn ipsec] ESP packets on spoke 2's link: {}, spoke to spoke: {direct}",
        esp.len()
    );
    assert!(direct >= 20, "{esp:?}");
    assert!(
        esp.iter().any(|r| r.contains("192.0.2.1")),
        "no ESP with the hub"
    );
    let ike = tshark(&pcap, "isakmp", &["ip.src"]);
    assert!(!ike.is_empty(), "no IKE on the wire");
    let clear = tshark(&pcap, "gre", &["frame.number"]);
    assert!(clear.is_empty(), "GRE in clear on the wire: {clear:?}");
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn dmvpn_protected_spoke_behind_nat_uses_esp_in_udp_through_a_masquerading_nat() {
    if !netns_available(
        "dmvpn_protected_spoke_behind_nat_uses_esp_in_udp_through_a_masquerading_nat",
    ) {
        return;
    }
    // Spoke 1 behind a plain masquerade (no port forward at all); capture outside the NAT.
    let mut c = cloud_with(false, "e1", true, true);
    let reg = wait_registered(&c);
    println!(
        "[dmvpn ipsec nat] both spokes registered {reg:?} after start (IKEv2 NAT-T, ESP in UDP)"
    );
    let es = entries(&c.hub);
    let e = entry(&es, "10.0.0.11/32").unwrap();
    assert_eq!(e["nbma"], "198.51.100.1", "{e}");
    assert_eq!(e["claimed_nbma"], "10.11.0.2", "{e}");
    // Spoke 2 (public) resolves spoke 1 (NATed): the request goes through the hub, spoke 1's reply goes
    // direct and spoke 1 initiates IKE to spoke 2, which makes the NAT's UDP mappings (500, then 4500) for
    // spoke 2. (The NATed spoke resolving first: dmvpn_protected_natted_spoke_resolves_first_*.)
    let t0 = Instant::now();
    while pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1) != 1
        || !entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "spoke 2 has no direct path to spoke 1: {:?}\n{}\n{}\n{}\n{}",
            entries(&c.s2),
            c.hub.cli(&["show", "ip", "nhrp", "traffic"]),
            c.s2.cli(&["show", "ip", "nhrp", "traffic"]),
            c.hub.log(),
            c.s2.log()
        );
    }
    println!(
        "[dmvpn ipsec nat] public spoke 2 -> NATed spoke 1: direct path {:?} after the first packet",
        t0.elapsed()
    );
    // Now spoke 1's own resolution of spoke 2 is answered over the SA spoke 1 initiated.
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1
        || !entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no direct path both ways: {:?}\n{}\n{}",
            entries(&c.s2),
            c.s1.log(),
            c.s2.log()
        );
    }
    assert_direct(&c);
    // The hub's crypto map: the NATed spoke's instance is ESP in UDP (to the NAT's mapped port), spoke 2's raw.
    let m = &json(&c.hub, &["show", "crypto", "map"])["maps"][0];
    let inst = |peer: &str| {
        m["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["peer"] == peer)
            .cloned()
            .unwrap_or_else(|| panic!("no instance for {peer}: {m}"))
    };
    assert!(
        inst("198.51.100.1")["udp_encap"]
            .as_str()
            .is_some_and(|u| u.starts_with("198.51.100.1:")),
        "{m}"
    );
    assert!(inst("203.0.113.1")["udp_encap"].is_null(), "{m}");
    let sa = c.hub.cli(&["show", "crypto", "ipsec", "sa"]);
    assert!(sa.contains("current_peer 198.51.100.1 port 4500"), "{sa}");
    assert!(sa.contains("current_peer 203.0.113.1 port 500"), "{sa}");
    let rows = gre_sa_rows(&c.hub);
    let row = |peer: &str| rows.iter().find(|r| r["peer"] == peer).cloned().unwrap();
    assert_eq!(
        row("198.51.100.1")["udp_encap"]["remote"],
        "198.51.100.1:4500",
        "{rows:?}"
    );
    assert_eq!(
        row("198.51.100.1")["udp_encap"]["local"],
        "192.0.2.1:4500",
        "{rows:?}"
    );
    assert!(row("203.0.113.1")["udp_encap"].is_null(), "{rows:?}");
    let mbits = iperf(&c.s1.ns, "10.1.1.1", &c.s2.ns, "10.1.2.1", 1);
    println!(
        "[dmvpn ipsec nat] iperf3 NATed spoke 1 -> spoke 2 (direct, ESP in UDP): {mbits:.0} Mbit/s"
    );
    assert!(mbits > 1.0);
    // Outside the NAT: spoke 1's ESP only in UDP 4500 (with the hub and with spoke 2), no raw ESP, no clear GRE.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let udp = tshark(&pcap, "udp.port == 4500 && esp", &["ip.src", "ip.dst"]);
    let count = |a: &str, b: &str| {
        udp.iter()
            .filter(|r| **r == format!("{a}\t{b}") || **r == format!("{b}\t{a}"))
            .count()
    };
    let (hub, direct) = (
        count("198.51.100.1", "192.0.2.1"),
        count("198.51.100.1", "203.0.113.1"),
    );
    println!(
        "[dmvpn ipsec nat] ESP in UDP outside the NAT: with the hub {hub}, spoke to spoke {direct}"
    );
    assert!(hub >= 2 && direct >= 20, "{udp:?}");
    let raw = tshark(&pcap, "ip.proto == 50", &["ip.src", "ip.dst"]);
    assert!(raw.is_empty(), "raw ESP on the wire: {raw:?}");
    let clear = tshark(&pcap, "gre", &["frame.number"]);
    assert!(clear.is_empty(), "GRE in clear on the wire: {clear:?}");
    let _ = std::fs::remove_file(&pcap);
}

/// The NATed spoke resolves first, through a plain masquerade (no port forward): spoke 2 (public) learns from
/// the NAT extension that spoke 1 is behind NAT, sends its Resolution Reply through the hub (which relays it
/// over spoke 1's registration) and waits for spoke 1 to key it instead of sending IKE into the NAT; spoke 1
/// then initiates IKE itself and the direct path runs in ESP in UDP.
#[test]
fn dmvpn_protected_natted_spoke_resolves_first_through_a_plain_masquerade() {
    if !netns_available("dmvpn_protected_natted_spoke_resolves_first_through_a_plain_masquerade") {
        return;
    }
    let mut c = cloud_with(false, "e1", true, true);
    // One-way traffic: spoke 2 drops it silently, so nothing of spoke 2's own (an echo reply, a port
    // unreachable) makes spoke 2 resolve spoke 1 in turn (that reverse resolution, answered by the NATed
    // spoke, would key the pair from spoke 1's side and hide the case).
    c.s2.ns.run(&[
        "nft",
        "add table inet sink; add chain inet sink in { type filter hook input priority 0 ; }; add rule inet sink in udp dport 9 drop",
    ]);
    let reg = wait_registered(&c);
    println!("[dmvpn ipsec nat first] both spokes registered {reg:?} after start");
    let mut udp = c
        .s1
        .ns
        .cmd("python3")
        .args([
            "-c",
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('10.1.1.1', 0))\nfor _ in range(600):\n    s.sendto(b'x' * 64, ('10.1.2.1', 9))\n    time.sleep(0.05)\n",
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !(entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
        && gre_sa_rows(&c.s1)
            .iter()
            .any(|r| r["peer"] == "203.0.113.1" && !r["outbound"].is_null()))
    {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = udp.kill();
            panic!(
                "no direct path from the NATed spoke: {:?}\n{}\n{}\n{}",
                entries(&c.s1),
                c.s1.log(),
                c.s2.log(),
                c.hub.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    let _ = udp.kill();
    let _ = udp.wait();
    println!(
        "[dmvpn ipsec nat first] NATed spoke 1 -> public spoke 2 (one-way UDP), first packet to direct protected path: {took:?}"
    );
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{}
{}",
            c.s1.log(),
            c.s2.log()
        );
    }
    assert_direct(&c);
    // Spoke 2 knows spoke 1 behind NAT and answered through the hub, which relayed the reply.
    let e = entry(&entries(&c.s2), "10.0.0.11/32").cloned().unwrap();
    assert_eq!(e["nbma"], "198.51.100.1", "{e}");
    assert_eq!(e["claimed_nbma"], "10.11.0.2", "{e}");
    let hub = json(&c.hub, &["show", "dmvpn"])["tunnels"][0]["traffic"].clone();
    assert!(
        hub["rcvd"][1].as_u64().unwrap() >= 1 && hub["sent"][1].as_u64().unwrap() >= 1,
        "the hub relayed no Resolution Reply: {hub}"
    );
    // Spoke 1 keyed spoke 2 (spoke 2 is the responder of their one IKE SA), in UDP 4500.
    let sas = json(&c.s2, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
        .as_array()
        .cloned()
        .unwrap();
    let with_s1: Vec<_> = sas
        .iter()
        .filter(|s| s["remote"].as_str().unwrap().starts_with("198.51.100.1:"))
        .collect();
    assert_eq!(with_s1.len(), 1, "{sas:?}");
    assert_eq!(with_s1[0]["initiator"], false, "{sas:?}");
    let row = gre_sa_rows(&c.s2)
        .into_iter()
        .find(|r| r["peer"] == "198.51.100.1")
        .unwrap();
    assert!(
        row["udp_encap"]["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("198.51.100.1:")),
        "{row}"
    );
    let pcap = c.cap.take().expect("tcpdump").finish();
    let udp = tshark(&pcap, "udp.port == 4500 && esp", &["ip.src", "ip.dst"]);
    let direct = udp
        .iter()
        .filter(|r| {
            r.as_str() == "198.51.100.1\t203.0.113.1" || r.as_str() == "203.0.113.1\t198.51.100.1"
        })
        .count();
    println!("[dmvpn ipsec nat first] ESP in UDP spoke to spoke outside the NAT: {direct}");
    assert!(direct >= 20, "{udp:?}");
    let raw = tshark(&pcap, "ip.proto == 50 || gre", &["frame.number"]);
    assert!(raw.is_empty(), "raw ESP or clear GRE on the wire: {raw:?}");
    let _ = std::fs::remove_file(&pcap);
}

/// NAT rebinding: the masquerade in front of spoke 1 loses its mappings (UDP blocked ahead of conntrack
/// until they expire) and maps spoke 1 anew from another port range. Spoke 1's authenticated ESP in UDP from
/// the new port moves its SAs at spoke 2 and at the hub (and their IKE SAs) there, and traffic resumes both
/// ways without a new IKE negotiation.
#[test]
fn dmvpn_protected_natted_spoke_survives_a_nat_rebinding_to_a_new_port() {
    if !netns_available("dmvpn_protected_natted_spoke_survives_a_nat_rebinding_to_a_new_port") {
        return;
    }
    let c = cloud_with(false, "e1", true, true);
    let reg = wait_registered(&c);
    println!("[dmvpn nat rebind] both spokes registered {reg:?} after start");
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1
        || !gre_sa_rows(&c.s2)
            .iter()
            .any(|r| r["peer"] == "198.51.100.1" && !r["outbound"].is_null())
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", c.s1.log());
    }
    assert_direct(&c);
    let port_of = |site: &Site, peer: &str| -> u16 {
        gre_sa_rows(site)
            .iter()
            .find(|r| r["peer"] == peer)
            .and_then(|r| r["udp_encap"]["remote"].as_str().map(str::to_string))
            .and_then(|r| r.rsplit_once(':').map(|(_, p)| p.parse().unwrap()))
            .unwrap_or(0)
    };
    let (before_s2, before_hub) = (
        port_of(&c.s2, "198.51.100.1"),
        port_of(&c.hub, "198.51.100.1"),
    );
    println!(
        "[dmvpn nat rebind] spoke 1 seen from port {before_s2} by spoke 2, {before_hub} by the hub"
    );
    assert!(before_s2 < 40000 && before_hub < 40000);
    let ike_before: Vec<String> = ike_sas(&c.s2).into_iter().map(|(r, _)| r).collect();
    // Rebind: the NAT maps UDP from 40000-40999 from now on; its existing UDP mappings expire while UDP is
    // blocked ahead of conntrack (1 s timeouts, 3 s without a packet), then UDP flows again.
    let nat = c.nat[0].as_ref().expect("NAT router");
    let sysctl = |k: &str| {
        let o = nat.run(&["sysctl", "-n", k]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let keys = [
        "net.netfilter.nf_conntrack_udp_timeout",
        "net.netfilter.nf_conntrack_udp_timeout_stream",
    ];
    let saved: Vec<String> = keys.iter().map(|k| sysctl(k)).collect();
    nat.run(&["nft", "flush chain ip nat post"]);
    nat.run(&[
        "nft",
        "add rule ip nat post oifname out meta l4proto udp masquerade to :40000-40999",
    ]);
    nat.run(&["nft", "add rule ip nat post oifname out masquerade"]);
    for k in keys {
        nat.run(&["sysctl", "-qw", &format!("{k}=1")]);
    }
    // A packet each way refreshes the mappings with the 1 s timeouts, then nothing passes for 3 s.
    for dst in ["10.1.2.1", "10.0.0.1"] {
        ping_until(&c.s1.ns, "10.1.1.1", dst, Duration::from_secs(20));
    }
    nat.run(&[
        "nft",
        "add table ip block; add chain ip block pre { type filter hook prerouting priority -400 ; }; add rule ip block pre meta l4proto udp drop",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    nat.run(&["nft", "delete table ip block"]);
    for (k, v) in keys.iter().zip(&saved) {
        nat.run(&["sysctl", "-qw", &format!("{k}={v}")]);
    }
    let t0 = Instant::now();
    // Spoke 1 talks first (its NAT admits nothing else); spoke 2 answers at the new port.
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no traffic after the rebinding:\n{:?}\n{}\n{}",
            gre_sa_rows(&c.s2),
            c.s1.log(),
            c.s2.log()
        );
    }
    let resumed = t0.elapsed();
    // And the hub: spoke 1 pings the hub's tunnel address.
    while pings(&c.s1.ns, "10.1.1.1", "10.0.0.1", 1) != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "hub unreachable after the rebinding:\n{:?}\n{}",
            gre_sa_rows(&c.hub),
            c.hub.log()
        );
    }
    let (after_s2, after_hub) = (
        port_of(&c.s2, "198.51.100.1"),
        port_of(&c.hub, "198.51.100.1"),
    );
    println!(
        "[dmvpn nat rebind] traffic resumed {resumed:?} after the NAT came back; spoke 1 now seen from port {after_s2} by spoke 2, {after_hub} by the hub"
    );
    assert!((40000..41000).contains(&after_s2), "{after_s2}");
    assert!((40000..41000).contains(&after_hub), "{after_hub}");
    assert!(
        c.s2.log().contains(&format!(
            "NAT mapping moved from 198.51.100.1:{before_s2} to 198.51.100.1:{after_s2}"
        )),
        "{}",
        c.s2.log()
    );
    // The same IKE SA, now at the new port (no new negotiation).
    let ike_after: Vec<String> = ike_sas(&c.s2).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        ike_before.len(),
        ike_after.len(),
        "{ike_before:?} {ike_after:?}"
    );
    assert!(
        ike_after.contains(&format!("198.51.100.1:{after_s2}")),
        "{ike_after:?}\n{}",
        c.s2.log()
    );
    assert_direct(&c);
}

/// Both spokes behind their own masquerading NAT, traffic both ways at once: each spoke learns from the NAT
/// extension that the other is behind NAT, so both initiate, and their IKE_SA_INITs cross (each NAT lets the
/// other's in once its own spoke has sent). Exactly one IKE SA must survive, the same at both ends: a
/// tie-break on addresses (each end compares its private address with the other's public one) had each end
/// delete the SA the other kept, and the pair never settled.
#[test]
fn dmvpn_protected_two_natted_spokes_keying_each_other_at_once_keep_one_ike_sa() {
    if !netns_available(
        "dmvpn_protected_two_natted_spokes_keying_each_other_at_once_keep_one_ike_sa",
    ) {
        return;
    }
    let mut c = cloud_natted(false, "e2", [true, true], true, &|_, c| c);
    // Static NAT for IKE and ESP in UDP (a port forward of 500 and 4500 to the spoke), as a branch would
    // configure to be reachable. Through two plain masquerades the crossing IKE_SA_INITs never meet: the
    // first one to arrive finds no mapping, leaves a conntrack entry for the NAT router itself, and the
    // spoke's own packet then leaves from another port (see ARCHITECTURE.md, DMVPN behind NAT).
    for (n, r) in c.nat.iter().enumerate() {
        let to = format!("10.1{}.0.2", n + 1);
        r.as_ref().unwrap().run(&[
            "nft",
            "add",
            "rule",
            "ip",
            "nat",
            "pre",
            "iifname",
            "out",
            "udp",
            "dport",
            "{ 500, 4500 }",
            "dnat",
            "to",
            &to,
        ]);
    }
    let reg = wait_registered(&c);
    println!("[dmvpn ipsec two nats] both spokes registered {reg:?} after start");
    // One UDP packet every 50 ms from each LAN to the other's, started together.
    let flood = |ns: &Netns, src: &str, dst: &str| {
        ns.cmd("python3")
            .args([
                "-c",
                &format!(
                    "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{src}', 0))\nfor _ in range(400):\n    s.sendto(b'x' * 64, ('{dst}', 9))\n    time.sleep(0.05)\n"
                ),
            ])
            .spawn()
            .unwrap()
    };
    // The WAN drops UDP between the spokes until both have started IKE towards the other, so the two
    // IKE_SA_INITs surely cross (otherwise the second spoke usually sees the first one's in time and waits).
    c._wan.run(&[
        "nft",
        "add table inet hold; add chain inet hold f { type filter hook forward priority 0 ; }; \
         add rule inet hold f ip saddr { 198.51.100.1, 203.0.113.1 } ip daddr { 198.51.100.1, 203.0.113.1 } udp dport { 500, 4500 } drop",
    ]);
    let mut u1 = flood(&c.s1.ns, "10.1.1.1", "10.1.2.1");
    let mut u2 = flood(&c.s2.ns, "10.1.2.1", "10.1.1.1");
    let t0 = Instant::now();
    let initiating = |site: &Site, peer: &str| {
        json(site, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["initiator"] == true && s["remote"].as_str().unwrap().starts_with(peer))
    };
    while !(initiating(&c.s1, "203.0.113.1:") && initiating(&c.s2, "198.51.100.1:")) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the spokes did not both initiate:\n{}\n{}",
            c.s1.log(),
            c.s2.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c._wan.run(&["nft", "delete table inet hold"]);
    // The IKE SA between the spokes at `site`, as (local SPI, remote SPI) by initiator order, when exactly
    // one is up and its CHILD_SA installed.
    let pair = |site: &Site, peer: &str| -> Vec<(String, String)> {
        json(site, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["remote"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{peer}:"))
            })
            .map(|s| {
                let (l, r) = (
                    s["local_spi"].as_str().unwrap(),
                    s["remote_spi"].as_str().unwrap(),
                );
                let (i, r) = if s["initiator"] == true {
                    (l, r)
                } else {
                    (r, l)
                };
                (
                    format!(
                        "{}/{}",
                        s["status"],
                        s["child_sas"].as_array().map_or(0, Vec::len)
                    ),
                    format!("{i}:{r}"),
                )
            })
            .collect()
    };
    let settled = |c: &Cloud| {
        let (a, b) = (pair(&c.s1, "203.0.113.1"), pair(&c.s2, "198.51.100.1"));
        (a.len() == 1 && a[0].0 == "\"READY\"/1" && a == b).then(|| a[0].1.clone())
    };
    let t0 = Instant::now();
    let spis = loop {
        if let Some(spis) = settled(&c) {
            break spis;
        }
        if t0.elapsed() > Duration::from_secs(25) {
            let _ = (u1.kill(), u2.kill());
            panic!(
                "the spokes did not settle on one IKE SA: {:?} / {:?}\n{}\n{}",
                pair(&c.s1, "203.0.113.1"),
                pair(&c.s2, "198.51.100.1"),
                c.s1.log(),
                c.s2.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = t0.elapsed();
    println!(
        "[dmvpn ipsec two nats] one IKE SA {spis} between the NATed spokes {took:?} after the first packets"
    );
    let duplicates = [&c.s1, &c.s2]
        .iter()
        .map(|s| s.log().matches("DUPLICATE").count())
        .sum::<usize>();
    println!("[dmvpn ipsec two nats] duplicate IKE SAs resolved: {duplicates}");
    assert!(
        duplicates >= 1,
        "no duplicate IKE SA: the race was not exercised"
    );
    // It stays: two seconds later the same one SA, and traffic crosses directly both ways.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(settled(&c), Some(spis.clone()), "the IKE SA changed");
    let _ = (u1.kill(), u2.kill());
    let _ = (u1.wait(), u2.wait());
    assert_direct(&c);
    assert_eq!(settled(&c), Some(spis), "the IKE SA changed");
    let pcap = c.cap.take().expect("tcpdump").finish();
    let direct = tshark(
        &pcap,
        "udp.port == 4500 && esp && ip.src == 203.0.113.1 && ip.dst == 198.51.100.1",
        &["frame.number"],
    );
    assert!(direct.len() >= 10, "{direct:?}");
    let raw = tshark(&pcap, "ip.proto == 50 || gre", &["frame.number"]);
    assert!(raw.is_empty(), "raw ESP or clear GRE on the wire: {raw:?}");
    let _ = std::fs::remove_file(&pcap);
}

/// Both spokes behind plain masquerades (port-translating, no forward): their IKE_SA_INITs to each other
/// never meet (the first to arrive at the other's NAT finds no mapping and leaves a conntrack entry for the
/// NAT router itself, so the other spoke's own packet leaves from another port). Their traffic must still
/// flow, through the hub: a spoke sends a peer's packets through its NHS once they have waited 3 s for the
/// direct SA (or its negotiation failed), where they used to wait in a queue and be dropped for as long as
/// IKE retried (`detoured` counts them).
#[test]
fn dmvpn_protected_spokes_both_behind_masquerades_reach_each_other_through_the_hub() {
    if !netns_available(
        "dmvpn_protected_spokes_both_behind_masquerades_reach_each_other_through_the_hub",
    ) {
        return;
    }
    let c = cloud_natted(false, "e2", [true, true], true, &|_, c| c);
    let reg = wait_registered(&c);
    println!("[dmvpn ipsec two masquerades] both spokes registered {reg:?} after start");
    // Ping until each spoke has resolved the other and sends its packets through the hub (the first ones
    // go there before the resolution, the next wait 3 s for a direct SA).
    let t0 = Instant::now();
    for (s, src, dst) in [
        (&c.s1, "10.1.1.1", "10.1.2.1"),
        (&c.s2, "10.1.2.1", "10.1.1.1"),
    ] {
        while !(pings(&s.ns, src, dst, 1) == 1 && gre_counter(s, "detoured") > 0) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no path between the spokes:\n{}\n{}\n{}",
                c.s1.log(),
                c.s2.log(),
                c.hub.log()
            );
        }
    }
    println!(
        "[dmvpn ipsec two masquerades] pings answered through the hub after {:?}",
        t0.elapsed()
    );
    // Spoke 1 resolved spoke 2 (the direct SA cannot come up); the pings keep flowing through the hub.
    let e = entry(&entries(&c.s1), "10.0.0.12/32").cloned();
    assert!(
        e.is_some_and(|e| e["nbma"] == "203.0.113.1"),
        "{:?}",
        entries(&c.s1)
    );
    let before = gre_counter(&c.hub, "hairpinned");
    assert_eq!(pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 10), 10);
    assert_eq!(pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 10), 10);
    let hub = gre_counter(&c.hub, "hairpinned") - before;
    let detoured = (
        gre_counter(&c.s1, "detoured"),
        gre_counter(&c.s2, "detoured"),
    );
    println!(
        "[dmvpn ipsec two masquerades] hub forwarded {hub}, spokes sent {detoured:?} through it"
    );
    assert!(hub >= 40, "{hub}");
    assert!(detoured.0 >= 10 && detoured.1 >= 10, "{detoured:?}");
    // No SA pair between the spokes.
    for (s, peer) in [(&c.s1, "203.0.113.1"), (&c.s2, "198.51.100.1")] {
        assert!(
            !gre_sa_rows(s)
                .iter()
                .any(|r| r["peer"] == peer && !r["outbound"].is_null()),
            "{:?}",
            gre_sa_rows(s)
        );
    }
}

/// IKE gets through in one direction only. The WAN first drops all IKE between the spokes while both start
/// keying each other (each has a static map of the other), then only the
/// requests spoke 2 sends as initiator (the IKE header's flags: Initiator set, Response clear): spoke 2's
/// negotiation stays stuck, spoke 1's next retransmission completes. Spoke 2 must use spoke 1's established IKE SA at once
/// rather than keep its own stuck negotiation (which it would, before, whenever the stuck one had the lower
/// initiator SPI: then the direct path waited for that negotiation to time out).
#[test]
fn dmvpn_protected_spoke_uses_the_peers_ike_sa_while_its_own_negotiation_is_stuck() {
    if !netns_available(
        "dmvpn_protected_spoke_uses_the_peers_ike_sa_while_its_own_negotiation_is_stuck",
    ) {
        return;
    }
    // Each spoke maps the other statically, so each keys the other on its first data packet (with a
    // resolution, the Resolution Reply itself would wait for the blocked SA).
    let c = cloud_edited(false, "e2", false, true, &|n, cfg| {
        let (other, nbma) = if n == 1 {
            ("10.0.0.12", "203.0.113.1")
        } else {
            ("10.0.0.11", "198.51.100.1")
        };
        if n == 0 {
            return cfg;
        }
        cfg.replace(
            " ip nhrp map 10.0.0.1 192.0.2.1\n",
            &format!(" ip nhrp map 10.0.0.1 192.0.2.1\n ip nhrp map {other} {nbma}\n"),
        )
    });
    c._wan.run(&[
        "nft",
        "add table inet oneway; add chain inet oneway f { type filter hook forward priority 0 ; }; \
         add rule inet oneway f ip saddr { 198.51.100.1, 203.0.113.1 } ip daddr { 198.51.100.1, 203.0.113.1 } udp dport { 500, 4500 } drop",
    ]);
    let reg = wait_registered(&c);
    println!("[dmvpn ipsec one-way ike] both spokes registered {reg:?} after start");
    let udp = |ns: &Netns, src: &str, dst: &str, n: u32| {
        ns.cmd("python3")
            .args([
                "-c",
                &format!(
                    "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{src}', 0))\nfor _ in range({n}):\n    s.sendto(b'x' * 64, ('{dst}', 9))\n    time.sleep(0.05)\n"
                ),
            ])
            .status()
            .unwrap()
    };
    // Both spokes start IKE to each other on their data: the WAN drops both.
    udp(&c.s2.ns, "10.1.2.1", "10.1.1.1", 4);
    udp(&c.s1.ns, "10.1.1.1", "10.1.2.1", 4);
    let stuck = |s: &Site, peer: &str| {
        json(s, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| {
                x["initiator"] == true
                    && x["status"] == "IN-NEG"
                    && x["remote"].as_str().unwrap().starts_with(peer)
            })
    };
    let t0 = Instant::now();
    while !(stuck(&c.s2, "198.51.100.1:") && stuck(&c.s1, "203.0.113.1:")) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{}\n{}",
            c.s1.log(),
            c.s2.log()
        );
        udp(&c.s2.ns, "10.1.2.1", "10.1.1.1", 2);
        udp(&c.s1.ns, "10.1.1.1", "10.1.2.1", 2);
    }
    // From now on only spoke 2's IKE requests are dropped: spoke 1's retransmission gets through.
    c._wan.run(&[
        "nft",
        "flush chain inet oneway f; \
         add rule inet oneway f ip saddr 203.0.113.1 ip daddr 198.51.100.1 udp dport { 500, 4500 } @th,216,8 & 0x28 == 0x08 drop",
    ]);
    let t1 = Instant::now();
    let up = |s: &Site, peer: &str| {
        gre_sa_rows(s)
            .iter()
            .any(|r| r["peer"] == peer && !r["outbound"].is_null())
    };
    while !(up(&c.s1, "203.0.113.1") && up(&c.s2, "198.51.100.1")) {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "no direct SA pair while spoke 2's own negotiation is stuck:\n{}\n{}",
            c.s1.log(),
            c.s2.log()
        );
        udp(&c.s1.ns, "10.1.1.1", "10.1.2.1", 2);
    }
    let took = t1.elapsed();
    println!(
        "[dmvpn ipsec one-way ike] direct SA pair at both spokes {took:?} after the WAN let spoke 1's IKE through"
    );
    assert!(
        stuck(&c.s2, "198.51.100.1:"),
        "spoke 2's own negotiation is still under way"
    );
    assert!(c.s2.log().contains("still negotiates"), "{}", c.s2.log());
    // Spoke 2's packets for spoke 1 now go direct (the hub forwards none of them).
    let before = gre_counter(&c.hub, "hairpinned");
    udp(&c.s2.ns, "10.1.2.1", "10.1.1.1", 10);
    assert_eq!(gre_counter(&c.hub, "hairpinned"), before);
}

/// Seed EX-8/EX-9's dual DMVPN on one node: the `Tunnel0` protected by [`protect`] (cloud 1: 10.0.0.0/24, key
/// 100000) plus a copy as `Tunnel1` (cloud 2: 10.0.1.0/24, key 100001, network-id 98) on the same
/// `tunnel source`, both with `tunnel protection ipsec profile IPS shared`.
fn dual_shared(protected: String) -> String {
    let c = protected.replace(
        " tunnel protection ipsec profile IPS\n",
        " tunnel protection ipsec profile IPS shared\n",
    );
    let start = c.find("interface Tunnel0\n").unwrap();
    let end = start + c[start..].find("!\n").unwrap() + 2;
    let second = c[start..end]
        .replace("Tunnel0", "Tunnel1")
        .replace("dmvpn0", "dmvpn1")
        .replace("10.0.0.", "10.0.1.")
        .replace("network-id 99", "network-id 98")
        .replace("key 100000", "key 100001");
    format!("{}{second}{}", &c[..end], &c[end..])
}

/// The protected-GRE rows of `show crypto ipsec sa --json` (one per tunnel and NBMA peer).
fn gre_sa_rows(site: &Site) -> Vec<serde_json::Value> {
    let v = json(site, &["show", "crypto", "ipsec", "sa"]);
    v["gre"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no gre rows: {v}"))
}

/// The IKE SAs of `site` as (remote address, number of CHILD_SAs).
fn ike_sas(site: &Site) -> Vec<(String, usize)> {
    json(site, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["remote"].as_str().unwrap().to_string(),
                s["child_sas"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

#[test]
fn dmvpn_shared_protection_carries_two_clouds_in_one_sa_pair_per_peer() {
    if !netns_available("dmvpn_shared_protection_carries_two_clouds_in_one_sa_pair_per_peer") {
        return;
    }
    let mut c = cloud_edited(false, "e2", false, true, &|_, c| dual_shared(c));
    // Both clouds register (the hub's Tunnel0 and Tunnel1 caches hold both spokes).
    let t0 = Instant::now();
    loop {
        let v = json(&c.hub, &["show", "ip", "nhrp"]);
        let registered = |t: usize, p: &str| {
            v["tunnels"][t]["entries"]
                .as_array()
                .is_some_and(|es| es.iter().any(|e| e["prefix"] == p))
        };
        if registered(0, "10.0.0.11/32")
            && registered(0, "10.0.0.12/32")
            && registered(1, "10.0.1.11/32")
            && registered(1, "10.0.1.12/32")
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "clouds did not register: {v}\n{}\n{}",
            c.hub.log(),
            c.s1.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "[dmvpn shared] both spokes registered on both clouds {:?} after the last daemon started",
        t0.elapsed()
    );
    // Pings over each cloud: to the hub, and spoke to spoke (resolution, then direct).
    for (src, dst) in [
        ("10.0.0.11", "10.0.0.1"),
        ("10.0.1.11", "10.0.1.1"),
        ("10.0.0.11", "10.0.0.12"),
        ("10.0.1.11", "10.0.1.12"),
    ] {
        ping_until(&c.s1.ns, src, dst, Duration::from_secs(20));
    }
    // Spoke to spoke: wait for the direct path on each cloud (resolved to spoke 2's NBMA address).
    let t0 = Instant::now();
    for (t, p) in [(0, "10.0.0.12/32"), (1, "10.0.1.12/32")] {
        loop {
            let v = json(&c.s1, &["show", "ip", "nhrp"]);
            let es = v["tunnels"][t]["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if entry(&es, p).is_some_and(|e| e["nbma"] == "203.0.113.1") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no direct path: {v}\n{}",
                c.s1.log()
            );
            let _ = pings(&c.s1.ns, &format!("10.0.{t}.11"), &p[..p.len() - 3], 1);
        }
    }
    for (src, dst) in [
        ("10.0.0.11", "10.0.0.1"),
        ("10.0.1.11", "10.0.1.1"),
        ("10.0.0.11", "10.0.0.12"),
        ("10.0.1.11", "10.0.1.12"),
    ] {
        assert_eq!(
            pings(&c.s1.ns, src, dst, 5),
            5,
            "{src} -> {dst}\n{}\n{}",
            c.s1.cli(&["show", "ip", "nhrp"]),
            c.s1.log()
        );
    }
    for (src, dst) in [("10.0.0.12", "10.0.0.1"), ("10.0.1.12", "10.0.1.1")] {
        assert_eq!(pings(&c.s2.ns, src, dst, 5), 5, "{src} -> {dst}");
    }
    // One IKE SA with one CHILD_SA per NBMA peer, whatever the number of clouds.
    let hub_sas = ike_sas(&c.hub);
    let mut remotes: Vec<&str> = hub_sas.iter().map(|(r, _)| r.as_str()).collect();
    remotes.sort();
    assert_eq!(
        remotes,
        ["198.51.100.1:500", "203.0.113.1:500"],
        "{hub_sas:?}"
    );
    assert!(hub_sas.iter().all(|(_, n)| *n == 1), "{hub_sas:?}");
    let s1_sas = ike_sas(&c.s1);
    println!("[dmvpn shared] IKE SAs: hub {hub_sas:?}, spoke 1 {s1_sas:?}");
    assert_eq!(
        s1_sas.len(),
        2,
        "spoke 1: hub and spoke 2 once each: {s1_sas:?}\nspoke 1:\n{}\nspoke 2:\n{}",
        c.s1.log(),
        c.s2.log()
    );
    assert!(s1_sas.iter().all(|(_, n)| *n == 1), "{s1_sas:?}");
    // `show crypto ipsec sa` on the hub: the whole shared SADB (both spokes) under Tunnel0 and again under
    // Tunnel1 (seed-dmvpn SH-9), one outbound SPI per spoke.
    let sa = c.hub.cli(&["show", "crypto", "ipsec", "sa"]);
    println!("{sa}");
    assert_eq!(sa.matches("interface: Tunnel0\n").count(), 2, "{sa}");
    assert_eq!(sa.matches("interface: Tunnel1\n").count(), 2, "{sa}");
    assert_eq!(
        sa.matches("Crypto map tag: IPS-head-1, local addr 192.0.2.1\n")
            .count(),
        4,
        "{sa}"
    );
    let mut out_spis: Vec<&str> = sa
        .lines()
        .filter(|l| l.starts_with("     current outbound spi: "))
        .collect();
    out_spis.sort();
    out_spis.dedup();
    assert_eq!(out_spis.len(), 2, "{sa}");
    // `--json`: the same four rows, the SADB shared (one outbound SPI per spoke under both tunnels).
    let rows = gre_sa_rows(&c.hub);
    let mut seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["shared"], true, "{r}");
            assert_eq!(r["crypto_map_tag"], "IPS-head-1", "{r}");
            (
                r["interface"].as_str().unwrap().to_string(),
                r["peer"].as_str().unwrap().to_string(),
                r["outbound"]["spi"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 4, "{rows:?}");
    assert_eq!(
        (&seen[0].1, &seen[0].2),
        (&seen[2].1, &seen[2].2),
        "{rows:?}"
    );
    assert_eq!(
        (&seen[1].1, &seen[1].2),
        (&seen[3].1, &seen[3].2),
        "{rows:?}"
    );
    // `show crypto map` / `show crypto socket` on spoke 1 field for field with seed 001:3589-3665 (shared):
    // instance 65537 is the hub (registration), 65538 spoke 2 (on demand).
    let map = c.s1.cli(&["show", "crypto", "map"]);
    println!("{map}");
    let common = "  Security association lifetime: 4608000 kilobytes/3600 seconds\n  PFS (Y/N): N\n  Transform sets={\n    TS,\n  }\n";
    let instance = |seq: u32, peer: &str| {
        format!(
            "Crypto Map \"IPS-head-1\" {seq} ipsec-isakmp\n  Map is a PROFILE INSTANCE.\n  Peer = {peer}\n  Extended IP access list\n    access-list permit gre host 198.51.100.1 host {peer}\n  Current peer: {peer}\n{common}"
        )
    };
    assert_eq!(
        map,
        format!(
            "Crypto Map: \"IPS-head-1\" idb: GigabitEthernet0 local address: 198.51.100.1\nCrypto Map \"IPS-head-1\" 65536 ipsec-isakmp\n  Profile name: IPS\n{common}{}{}  Interfaces using crypto map IPS-head-1:\n    Tunnel1\n    Tunnel0\n",
            instance(65537, "192.0.2.1"),
            instance(65538, "203.0.113.1")
        )
    );
    let socket = c.s1.cli(&["show", "crypto", "socket"]);
    println!("{socket}");
    let sock = |peer: &str| {
        format!(
            "  Shd Peers (local/remote): 198.51.100.1\n/{peer}\n  Local Ident (addr/mask/port/prot): (198.51.100.1/255.255.255.255/0/47)\n  Remote Ident (addr/mask/port/prot): ({peer}/255.255.255.255/0/47)\n  Flags: shared\n  IPsec Profile: \"IPS\"\n  Socket State: Open\n  Client: \"TUNNEL SEC\" (Client State: Active)\n"
        )
    };
    assert_eq!(
        socket,
        format!(
            "Number of Crypto Socket connections 2\n{}{}Crypto Sockets in Listen state:\nClient: \"TUNNEL SEC\" Profile: \"IPS\" Map-name: \"IPS-head-1\"\n",
            sock("192.0.2.1"),
            sock("203.0.113.1")
        )
    );
    // On spoke 2's link: ESP and IKE only, no GRE in clear; spoke 2's ESP with the hub and spoke 1 uses one
    // outbound SPI per peer although two clouds cross it (its last ten packets to each: the answers to the
    // pings on both clouds above; a duplicate IKE SA of the start may have carried some before).
    let pcap = c.cap.take().expect("tcpdump").finish();
    let all = tshark(&pcap, "ip", &["_ws.col.Protocol"]);
    let odd: Vec<&String> = all
        .iter()
        .filter(|p| !matches!(p.as_str(), "ESP" | "ISAKMP"))
        .collect();
    assert!(
        odd.is_empty(),
        "not ESP or IKE on the wire: {odd:?}\n{:?}",
        tshark(
            &pcap,
            "!esp && !isakmp",
            &["frame.number", "ip.src", "ip.dst", "_ws.col.Info"]
        )
    );
    let esp = tshark(
        &pcap,
        "esp && ip.src == 203.0.113.1",
        &["ip.dst", "esp.spi"],
    );
    let mut spis: Vec<&String> = esp.iter().collect();
    spis.sort();
    spis.dedup();
    println!(
        "[dmvpn shared] spoke 2's ESP: {} packets, (peer, SPI) pairs {spis:?}",
        esp.len()
    );
    for peer in ["192.0.2.1\t", "198.51.100.1\t"] {
        let mut last: Vec<&String> = esp.iter().filter(|r| r.starts_with(peer)).collect();
        last = last.split_off(last.len().saturating_sub(10));
        assert_eq!(last.len(), 10, "{esp:?}");
        last.dedup();
        assert_eq!(last.len(), 1, "{peer}: {last:?}");
    }
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn dmvpn_protected_by_ikev1_seed_style_registers_resolves_and_goes_direct_in_esp() {
    if !netns_available(
        "dmvpn_protected_by_ikev1_seed_style_registers_resolves_and_goes_direct_in_esp",
    ) {
        return;
    }
    let mut c = cloud_edited(false, "e2", false, false, &|_, c| protect_ikev1(c));
    // Registration needs the hub's SA first: IKEv1 main mode + quick mode on the first GRE packet.
    let reg = wait_registered(&c);
    println!(
        "[dmvpn ikev1] both spokes registered {reg:?} after start (IKEv1 + transport-mode ESP)"
    );
    let took = time_to_direct(&c, |c| {
        entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    });
    println!(
        "[dmvpn ikev1] first packet to direct spoke-to-spoke path (resolution + IKEv1 to the spoke): {took:?}"
    );
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1 {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", c.s1.log());
    }
    assert_direct(&c);
    // `show crypto isakmp sa`: the hub has one QM_IDLE ISAKMP SA with each spoke; spoke 1 with the hub and spoke 2.
    let hub_sa = c.hub.cli(&["show", "crypto", "isakmp", "sa"]);
    let s1_sa = c.s1.cli(&["show", "crypto", "isakmp", "sa"]);
    println!("{hub_sa}\n{s1_sa}");
    for (out, peers) in [
        (&hub_sa, ["198.51.100.1", "203.0.113.1"]),
        (&s1_sa, ["192.0.2.1", "203.0.113.1"]),
    ] {
        for p in peers {
            assert!(
                out.lines().any(|l| l.contains(p) && l.contains("QM_IDLE")),
                "no QM_IDLE ISAKMP SA with {p}:\n{out}"
            );
        }
    }
    // `show crypto ipsec sa` on spoke 1: transport mode, GRE host selectors, per NBMA peer, packets through.
    let sa = c.s1.cli(&["show", "crypto", "ipsec", "sa"]);
    assert!(
        sa.contains("local  ident (addr/mask/prot/port): (198.51.100.1/255.255.255.255/47/0)"),
        "{sa}"
    );
    for peer in ["192.0.2.1", "203.0.113.1"] {
        assert!(
            sa.contains(&format!(
                "remote ident (addr/mask/prot/port): ({peer}/255.255.255.255/47/0)"
            )),
            "{sa}"
        );
    }
    assert!(sa.contains("in use settings ={Transport, }"), "{sa}");
    assert!(!sa.contains("#pkts encaps: 0,"), "{sa}");
    // The seeds' IKEv1 show samples: the hub's generated map has one PROFILE INSTANCE and one open socket per spoke.
    let map = c.hub.cli(&["show", "crypto", "map"]);
    assert_eq!(
        map.matches("Map is a PROFILE INSTANCE.").count(),
        2,
        "{map}"
    );
    assert!(map.contains("Transform sets={TS, }"), "{map}");
    let socket = c.hub.cli(&["show", "crypto", "socket"]);
    assert!(
        socket.starts_with("Number of Crypto Socket connections 2\n"),
        "{socket}"
    );
    assert_eq!(socket.matches("Socket State: Open").count(), 2, "{socket}");
    // On spoke 2's link: ISAKMP (UDP 500, IKEv1) and ESP only; ESP spoke to spoke and with the hub, no GRE in clear.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let esp = tshark(&pcap, "esp", &["ip.src", "ip.dst"]);
    let direct = esp
        .iter()
        .filter(|r| **r == "198.51.100.1\t203.0.113.1" || **r == "203.0.113.1\t198.51.100.1")
        .count();
    println!(
        "[dmvpn ikev1] ESP packets on spoke 2's link: {}, spoke to spoke: {direct}",
        esp.len()
    );
    assert!(direct >= 20, "{esp:?}");
    assert!(
        esp.iter().any(|r| r.contains("192.0.2.1")),
        "no ESP with the hub"
    );
    let versions = tshark(&pcap, "isakmp", &["isakmp.version"]);
    assert!(!versions.is_empty(), "no ISAKMP on the wire");
    assert!(
        versions.iter().all(|v| v.starts_with("1.0") || v == "0x10"),
        "not IKEv1: {versions:?}"
    );
    let other = tshark(
        &pcap,
        "ip && !esp && !isakmp",
        &["frame.number", "ip.proto"],
    );
    assert!(
        other.is_empty(),
        "packets other than ESP and ISAKMP: {other:?}"
    );
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn dmvpn_protected_by_ikev1_spoke_behind_nat_uses_esp_in_udp() {
    if !netns_available("dmvpn_protected_by_ikev1_spoke_behind_nat_uses_esp_in_udp") {
        return;
    }
    // Spoke 1 behind the masquerading NAT; capture outside it. (`protected` false only selects the NAT's
    // GRE forward, which protected GRE never uses: everything of spoke 1 below is ESP in UDP.)
    let mut c = cloud_edited(false, "e1", true, false, &|_, c| protect_ikev1(c));
    let reg = wait_registered(&c);
    println!(
        "[dmvpn ikev1 nat] both spokes registered {reg:?} after start (IKEv1 NAT-T, ESP in UDP)"
    );
    // The public spoke resolves the NATed one first (see the IKEv2 variant for why this order).
    let t0 = Instant::now();
    while pings(&c.s2.ns, "10.1.2.1", "10.1.1.1", 1) != 1
        || !entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "spoke 2 has no direct path to spoke 1: {:?}\n{}\n{}",
            entries(&c.s2),
            c.hub.log(),
            c.s2.log()
        );
    }
    println!(
        "[dmvpn ikev1 nat] public spoke 2 -> NATed spoke 1: direct path {:?} after the first packet",
        t0.elapsed()
    );
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1
        || !entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no direct path both ways: {:?}\n{}\n{}",
            entries(&c.s1),
            c.s1.log(),
            c.s2.log()
        );
    }
    assert_direct(&c);
    let sa = c.hub.cli(&["show", "crypto", "ipsec", "sa"]);
    assert!(sa.contains("current_peer 198.51.100.1 port 4500"), "{sa}");
    assert!(sa.contains("current_peer 203.0.113.1 port 500"), "{sa}");
    let isakmp = c.hub.cli(&["show", "crypto", "isakmp", "sa"]);
    println!("{isakmp}");
    assert!(
        isakmp
            .lines()
            .any(|l| l.contains("198.51.100.1") && l.contains("QM_IDLE")),
        "{isakmp}"
    );
    // Outside the NAT: spoke 1's ESP only in UDP 4500 (with the hub and with spoke 2), no raw ESP, no clear GRE.
    let pcap = c.cap.take().expect("tcpdump").finish();
    let udp = tshark(&pcap, "udp.port == 4500 && esp", &["ip.src", "ip.dst"]);
    let count = |a: &str, b: &str| {
        udp.iter()
            .filter(|r| **r == format!("{a}\t{b}") || **r == format!("{b}\t{a}"))
            .count()
    };
    let (hub, direct) = (
        count("198.51.100.1", "192.0.2.1"),
        count("198.51.100.1", "203.0.113.1"),
    );
    println!(
        "[dmvpn ikev1 nat] ESP in UDP outside the NAT: with the hub {hub}, spoke to spoke {direct}"
    );
    assert!(hub >= 2 && direct >= 20, "{udp:?}");
    let raw = tshark(&pcap, "ip.proto == 50", &["ip.src", "ip.dst"]);
    assert!(raw.is_empty(), "raw ESP on the wire: {raw:?}");
    let clear = tshark(&pcap, "gre", &["frame.number"]);
    assert!(clear.is_empty(), "GRE in clear on the wire: {clear:?}");
    let _ = std::fs::remove_file(&pcap);
}

/// `crypto isakmp keepalive 10 2` (IOS's on-demand DPD) on IKEv1-protected DMVPN: spoke 2 is killed (no
/// DELETE); spoke 1 keeps sending to it, and after 10 s without its ESP probes R-U-THERE, declares it dead
/// after the retries and takes the ISAKMP SA and the GRE SA pair with it down (the hub's stay).
#[test]
fn dmvpn_protected_by_ikev1_on_demand_dpd_declares_a_killed_spoke_dead() {
    if !netns_available("dmvpn_protected_by_ikev1_on_demand_dpd_declares_a_killed_spoke_dead") {
        return;
    }
    let c = cloud_edited(false, "e2", false, false, &|_, c| {
        protect_ikev1(c).replace(
            "crypto isakmp key ",
            "crypto isakmp keepalive 10 2\ncrypto isakmp key ",
        )
    });
    wait_registered(&c);
    let t0 = Instant::now();
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1
        || !entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1")
        || !gre_sa_rows(&c.s1)
            .iter()
            .any(|r| r["peer"] == "203.0.113.1" && !r["outbound"].is_null())
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", c.s1.log());
    }
    // SIGKILL spoke 2: nothing tells spoke 1.
    let Cloud { s2, s1, hub, .. } = c;
    drop(s2);
    let _ping = Daemon(
        s1.ns
            .cmd("ping")
            .args(["-q", "-i", "0.2", "-W", "1", "-I", "10.1.1.1", "10.1.2.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while !s1.log().contains("PeerDead") {
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "on-demand DPD did not declare the killed spoke dead:\n{}",
            s1.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t0.elapsed();
    println!(
        "[dmvpn ikev1 dpd] on-demand DPD: killed spoke declared dead after {took:?} of traffic"
    );
    assert!(
        took >= Duration::from_secs(9),
        "probed before the 10 s interval: {took:?}"
    );
    // Spoke 2's SA pair went with its ISAKMP SA (a new main mode may be under way); the hub's is untouched.
    let rows = gre_sa_rows(&s1);
    assert!(
        rows.iter()
            .all(|r| r["peer"] != "203.0.113.1" || r["inbound"].as_array().unwrap().is_empty()),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["peer"] == "192.0.2.1" && !r["outbound"].is_null()),
        "{rows:?}"
    );
    assert_eq!(pings(&s1.ns, "10.1.1.1", "10.0.0.1", 3), 3, "{}", s1.log());
    drop(hub);
}

/// The ISAKMP SAs in QM_IDLE of `site` with `peer` (its NBMA address), as (conn-id, we initiated).
fn isakmp_with(site: &Site, peer: &str) -> Vec<(u64, bool)> {
    let v = json(site, &["show", "crypto", "isakmp", "sa"]);
    v.as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter(|s| {
            s["state"] == "QM_IDLE"
                && s["remote"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{peer}:"))
        })
        .map(|s| {
            let src = s["src"].as_str().unwrap();
            (
                s["conn_id"].as_u64().unwrap(),
                !src.starts_with(&format!("{peer}:")),
            )
        })
        .collect()
}

/// The same on-demand DPD after a phase-1 rekey between the spokes (hidden hook: ISAKMP lifetime 34 s on
/// the spokes; the main-mode initiator starts a new main mode at about 31 s and deletes the old ISAKMP SA
/// 2 s later, while the IPsec SAs stay and move to the new one). The responder of that ISAKMP SA then
/// loses the initiator (killed) and must still declare it dead: before, its GRE peer had lost its ISAKMP SA
/// at the rekey, no R-U-THERE went out, and the SA pair only went when the new ISAKMP SA expired (with no
/// `PeerDead`). The new ISAKMP SA would expire about 34 s after the rekey; DPD needs about 22 s.
#[test]
fn dmvpn_protected_by_ikev1_on_demand_dpd_works_after_a_phase1_rekey() {
    if !netns_available("dmvpn_protected_by_ikev1_on_demand_dpd_works_after_a_phase1_rekey") {
        return;
    }
    let c = cloud_natted_with(
        false,
        "e2",
        [false, false],
        false,
        &|_, c| {
            protect_ikev1(c).replace(
                "crypto isakmp key ",
                "crypto isakmp keepalive 10 2\ncrypto isakmp key ",
            )
        },
        &["--isakmp-lifetime-override", "34"],
    );
    wait_registered(&c);
    let t0 = Instant::now();
    let (s1_nbma, s2_nbma) = ("198.51.100.1", "203.0.113.1");
    while pings(&c.s1.ns, "10.1.1.1", "10.1.2.1", 1) != 1
        || !gre_sa_rows(&c.s1)
            .iter()
            .any(|r| r["peer"] == s2_nbma && !r["outbound"].is_null())
        || isakmp_with(&c.s1, s2_nbma).len() != 1
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", c.s1.log());
    }
    // The survivor is the responder of the spokes' ISAKMP SA; the initiator rekeys it, then dies.
    let Cloud { s1, s2, hub, .. } = c;
    let s1_initiated = isakmp_with(&s1, s2_nbma)[0].1;
    let (survivor, victim, victim_nbma, from, to) = if s1_initiated {
        (s2, s1, s1_nbma, "10.1.2.1", "10.1.1.1")
    } else {
        (s1, s2, s2_nbma, "10.1.1.1", "10.1.2.1")
    };
    let first = isakmp_with(&survivor, victim_nbma);
    assert!(first.len() == 1 && !first[0].1, "{first:?}");
    let _ping = Daemon(
        survivor
            .ns
            .cmd("ping")
            .args(["-q", "-i", "0.2", "-W", "1", "-I", from, to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The rekey: one ISAKMP SA with the victim again, a new one, and the SA pair still up.
    let t0 = Instant::now();
    loop {
        let now = isakmp_with(&survivor, victim_nbma);
        if now.len() == 1 && now[0].0 != first[0].0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "no phase-1 rekey: {now:?}\n{}",
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rekeyed = t0.elapsed();
    assert!(
        gre_sa_rows(&survivor)
            .iter()
            .any(|r| r["peer"] == victim_nbma && !r["outbound"].is_null()),
        "the SA pair outlives the ISAKMP SA that made it"
    );
    let dead_before = survivor.log().matches("PeerDead").count();
    drop(victim);
    let t0 = Instant::now();
    while survivor.log().matches("PeerDead").count() == dead_before {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "on-demand DPD did not declare the killed spoke dead after the phase-1 rekey:\n{}",
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t0.elapsed();
    println!(
        "[dmvpn ikev1 dpd rekey] phase-1 rekey {rekeyed:?} after keying; killed spoke ({victim_nbma}, the main-mode initiator) declared dead after {took:?}"
    );
    assert!(
        took >= Duration::from_secs(9),
        "probed before the 10 s interval: {took:?}"
    );
    let rows = gre_sa_rows(&survivor);
    assert!(
        rows.iter()
            .all(|r| r["peer"] != victim_nbma || r["inbound"].as_array().unwrap().is_empty()),
        "{rows:?}"
    );
    drop(hub);
}

/// The `current outbound spi` values in `show crypto ipsec sa`.
fn outbound_spis(site: &Site) -> Vec<String> {
    site.cli(&["show", "crypto", "ipsec", "sa"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("current outbound spi: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn p2p_gre_protected_by_ikev1_rekeys_its_quick_mode_sa_under_traffic() {
    if !netns_available("p2p_gre_protected_by_ikev1_rekeys_its_quick_mode_sa_under_traffic") {
        return;
    }
    let a = Netns::new("g1A");
    let b = Netns::new("g1B");
    veth(&a, "eth0", "198.51.100.1/24", &b, "eth0", "198.51.100.2/24");
    a.run(&["ip", "addr", "add", "10.1.0.1/24", "dev", "lo"]);
    b.run(&["ip", "addr", "add", "10.2.0.1/24", "dev", "lo"]);
    let cfg = |me: &str, wan: &str, peer: &str, tip: &str, lan: &str| {
        protect_ikev1(
            p2p_config(me, wan, peer, tip, lan)
                .replace(" tunnel key 100\n", " tunnel key 100000\n"),
        )
    };
    // IPsec SA lifetime cut to 10 s (hidden hook; IOS allows 120 s at least): the quick mode initiator
    // rekeys at 9 s, the old SA goes at 10 s.
    let hook = ["--lifetime-override", "10"];
    let sa = start_site_with(
        a,
        "siteA",
        &cfg(
            "siteA",
            "198.51.100.1",
            "198.51.100.2",
            "172.16.0.1",
            "10.2.0.0",
        ),
        &hook,
    );
    let sb = start_site_with(
        b,
        "siteB",
        &cfg(
            "siteB",
            "198.51.100.2",
            "198.51.100.1",
            "172.16.0.2",
            "10.1.0.0",
        ),
        &hook,
    );
    let took = ping_until(&sa.ns, "10.1.0.1", "10.2.0.1", Duration::from_secs(20));
    println!("[p2p gre ikev1] first answer through Tunnel0 after {took:?}");
    let first = outbound_spis(&sa);
    assert_eq!(first.len(), 1, "{first:?}");
    // 14 s of pings every 200 ms across at least one rekey.
    let out = sa
        .ns
        .cmd("ping")
        .args([
            "-c", "70", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.2.0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let received: u32 = text
        .split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let later = outbound_spis(&sa);
    println!(
        "[p2p gre ikev1] {received}/70 pings across the rekey; outbound SPI {first:?} -> {later:?}"
    );
    assert!(received >= 66, "{text}\n{}\n{}", sa.log(), sb.log());
    assert_eq!(later.len(), 1, "{later:?}");
    assert_ne!(first, later, "no quick-mode rekey: {}", sa.log());
    let ups = |s: &Site| s.log().matches("for GRE (IKE SA").count();
    assert!(ups(&sa) >= 2 && ups(&sb) >= 2, "{}\n{}", sa.log(), sb.log());
    // The ISAKMP SA is still there (quick mode rekeys under it; its lifetime is a day).
    let isakmp = sa.cli(&["show", "crypto", "isakmp", "sa"]);
    assert!(isakmp.contains("QM_IDLE"), "{isakmp}");
}

/// The 5 s fallback behind a port forward: the public spoke initiates itself when a spoke behind NAT does not
/// key it. Spoke 1 sits behind the masquerade plus a port forward of UDP 500 and 4500 (a static NAT for IKE).
/// One packet from spoke 1 (via the hub) makes it resolve spoke 2: spoke 2 learns spoke 1 behind NAT and
/// answers through the hub, and spoke 1, with nothing more to send, never keys spoke 2. Then one packet from
/// spoke 2 to spoke 1: spoke 2 holds it, waiting for spoke 1 to key; after 5 s it initiates itself through
/// the port forward, and the packet arrives over the new SA pair. Before that timer, the wait ended only with
/// spoke 2's next packet for spoke 1: a single packet waited for ever.
#[test]
fn dmvpn_protected_public_spoke_initiates_after_5_s_through_a_natted_spokes_port_forward() {
    if !netns_available(
        "dmvpn_protected_public_spoke_initiates_after_5_s_through_a_natted_spokes_port_forward",
    ) {
        return;
    }
    use std::io::BufRead;
    let c = cloud_with(false, "e1", true, true);
    c.nat[0].as_ref().unwrap().run(&[
        "nft",
        "add rule ip nat pre iifname out udp dport { 500, 4500 } dnat to 10.11.0.2",
    ]);
    // Spoke 2 drops the first packet silently (nothing of its own goes back to spoke 1).
    c.s2.ns.run(&[
        "nft",
        "add table inet sink; add chain inet sink in { type filter hook input priority 0 ; }; add rule inet sink in udp dport 9 drop",
    ]);
    let reg = wait_registered(&c);
    println!("[dmvpn nat fallback] both spokes registered {reg:?} after start");
    let send = |site: &Site, src: &str, dst: &str, port: &str| {
        site.ns.run(&[
            "python3",
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{src}', 0))\ns.sendto(b'x' * 64, ('{dst}', {port}))\n"
            ),
        ]);
    };
    send(&c.s1, "10.1.1.1", "10.1.2.1", "9");
    let t0 = Instant::now();
    while !(entry(&entries(&c.s2), "10.0.0.11/32").is_some_and(|e| e["nbma"] == "198.51.100.1")
        && entry(&entries(&c.s1), "10.0.0.12/32").is_some_and(|e| e["nbma"] == "203.0.113.1"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no resolution: {:?}\n{:?}\n{}\n{}",
            entries(&c.s1),
            entries(&c.s2),
            c.s1.log(),
            c.s2.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = entry(&entries(&c.s2), "10.0.0.11/32").cloned().unwrap();
    assert_eq!(
        e["claimed_nbma"], "10.11.0.2",
        "spoke 2 knows spoke 1 behind NAT: {e}"
    );
    let keyed = |site: &Site, peer: &str| {
        gre_sa_rows(site)
            .iter()
            .any(|r| r["peer"] == peer && !r["outbound"].is_null())
    };
    assert!(!keyed(&c.s1, "203.0.113.1") && !keyed(&c.s2, "198.51.100.1"));

    let mut listener = c
        .s1
        .ns
        .cmd("python3")
        .args([
            "-c",
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('10.1.1.1', 9999))\n\
             s.settimeout(40)\nprint('ready', flush=True)\ns.recvfrom(100)\nprint('got', flush=True)\n",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(listener.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    send(&c.s2, "10.1.2.1", "10.1.1.1", "9999");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = listener.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(25) {
            let _ = listener.kill();
            let _ = listener.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    line.clear();
    let _ = out.read_line(&mut line);
    assert!(
        status.is_some_and(|s| s.success()) && line.trim() == "got",
        "spoke 2's packet never reached spoke 1 ({took:?}): {:?}\nspoke 2:\n{}\nspoke 1:\n{}",
        gre_sa_rows(&c.s2),
        c.s2.log(),
        c.s1.log()
    );
    println!("[dmvpn nat fallback] spoke 2's one packet reached spoke 1 after {took:?}");
    // It waited (about 5 s) for spoke 1, then spoke 2 keyed the pair itself, in UDP 4500 through the forward.
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(
        c.s2.log()
            .contains("did not start IKE within 5s, initiating"),
        "{}",
        c.s2.log()
    );
    let sas = json(&c.s2, &["show", "crypto", "ikev2", "sa"])["ikev2_sas"]
        .as_array()
        .cloned()
        .unwrap();
    let with_s1: Vec<_> = sas
        .iter()
        .filter(|s| s["remote"].as_str().unwrap().starts_with("198.51.100.1:"))
        .collect();
    assert_eq!(with_s1.len(), 1, "{sas:?}");
    assert_eq!(with_s1[0]["initiator"], true, "{sas:?}");
    assert!(keyed(&c.s2, "198.51.100.1"));
    let row = gre_sa_rows(&c.s2)
        .into_iter()
        .find(|r| r["peer"] == "198.51.100.1")
        .unwrap();
    assert_eq!(row["udp_encap"]["remote"], "198.51.100.1:4500", "{row}");
}
