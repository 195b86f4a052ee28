//! Static VTI against Linux's own ESP: a Lifeline site (`tunnel mode ipsec ipv4`, IKEv2 PSK, tunnel-mode
//! transform sets, raw ESP: no NAT) and strongSwan in a QEMU guest with the kernel's XFRM (not
//! kernel-libipsec: this machine's kernel has no ESP), route-based through XFRM interfaces (`if_id`),
//! 0.0.0.0/0 selectors both ways, as a VTI. Two tunnels at once, one per transform: Tunnel0 to the guest's
//! 192.0.2.1 with AES-GCM-256, Tunnel1 to its 192.0.2.2 with AES-CBC-256 + HMAC-SHA-256-128. Lifeline
//! initiates both. For each: pings LAN to LAN both ways, the guest's XFRM state shows the kernel's
//! algorithm and tunnel mode, then a short iperf3 TCP stream each way. Then charon initiates both again and
//! Lifeline responds (each peer's identity picks its IKEv2 profile). The bridge capture must hold raw
//! ESP between each pair of addresses and IKE, and nothing else between them (no ESP in UDP, no clear
//! ICMP). Independent-implementation interop of the ESP data plane (encapsulation, padding, ICV, anti-replay
//! window, sequence numbers) and of IKEv2 tunnel-mode CHILD_SA negotiation.
//!
//! ```text
//!  netns site (Lifeline)             netns lab: bridge br0 (capture)        QEMU guest (Linux 6.1, charon)
//!  eth0 192.0.2.11/24  <-- veth -->  vsite   tap0  <-- virtio-net -->  eth0 192.0.2.1/24, 192.0.2.2/24
//!  Tunnel0 (GCM)  -> 10.2.0.0/24                                       xfrm1 (if_id 1) 10.2.0.1 on lo
//!  Tunnel1 (CBC)  -> 10.3.0.0/24                                       xfrm2 (if_id 2) 10.3.0.1 on lo
//!  Loopback1 10.1.0.1/24                                               (from 10.3.0.1: table 102 -> xfrm2)
//! ```
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::guest::{Guest, GuestOpts};
use common::lifeline::Lifeline;
use common::*;

const PSK: &str = "lifeline-guest-svti-psk-5521";

/// One IKEv2 profile per IPsec profile: an IKEv2 profile negotiates one IPsec profile's transform sets
/// for all its tunnels (`lifeline check` warns otherwise; with one shared profile, Tunnel1 offered GCM and
/// strongSwan refused its CHILD_SA). Each matches its peer's identity, so that as responder Lifeline picks
/// the right one (`address A 255.255.255.255` used to be taken for any peer). The keyring's `address 192.0.2.0 255.255.255.0` keys both guest
/// addresses (it used to be taken for 192.0.2.0 alone).
fn site_config() -> String {
    format!(
        "\
hostname lifeline-svti
!
crypto ikev2 keyring KR
 peer GUEST
  address 192.0.2.0 255.255.255.0
  pre-shared-key {PSK}
!
crypto ikev2 profile PROF-GCM
 match identity remote address 192.0.2.1 255.255.255.255
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
!
crypto ikev2 profile PROF-CBC
 match identity remote address 192.0.2.2 255.255.255.255
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
!
crypto ipsec transform-set GCM esp-gcm 256
 mode tunnel
!
crypto ipsec transform-set CBC esp-aes 256 esp-sha256-hmac
 mode tunnel
!
crypto ipsec profile P-GCM
 set transform-set GCM
 set ikev2-profile PROF-GCM
!
crypto ipsec profile P-CBC
 set transform-set CBC
 set ikev2-profile PROF-CBC
!
interface GigabitEthernet0
 device eth0
 ip address 192.0.2.11 255.255.255.0
!
interface Loopback1
 ip address 10.1.0.1 255.255.255.0
!
interface Tunnel0
 ip address 172.16.0.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination 192.0.2.1
 tunnel protection ipsec profile P-GCM
!
interface Tunnel1
 ip address 172.16.1.1 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination 192.0.2.2
 tunnel protection ipsec profile P-CBC
!
ip route 10.2.0.0 255.255.255.0 Tunnel0
ip route 10.3.0.0 255.255.255.0 Tunnel1
"
    )
}

/// The guest's per-boot script: two addresses, two XFRM interfaces, charon with one route-based connection
/// per tunnel (responder only), an iperf3 server.
fn guest_script() -> String {
    let conn = |name: &str, local: &str, if_id: u32, esp: &str| {
        format!(
            "    {name} {{
        version = 2
        local_addrs = {local}
        remote_addrs = 192.0.2.11
        proposals = aes256-sha256-ecp256,aes256-sha256-modp2048
        local {{
            auth = psk
            id = {local}
        }}
        remote {{
            auth = psk
        }}
        children {{
            {name} {{
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                if_id_in = {if_id}
                if_id_out = {if_id}
                esp_proposals = {esp}
            }}
        }}
    }}
"
        )
    };
    format!(
        "set -eu
. /usr/local/lib/llg/lib.sh
ip addr add 192.0.2.1/24 dev eth0
ip addr add 192.0.2.2/24 dev eth0
ip addr add 10.2.0.1/32 dev lo
ip addr add 10.3.0.1/32 dev lo
sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
for i in 1 2; do
    ip link add xfrm$i type xfrm dev eth0 if_id $i
    sysctl -qw net.ipv4.conf.xfrm$i.rp_filter=0
    ip link set xfrm$i up
done
ip route add 10.1.0.0/24 dev xfrm1 src 10.2.0.1
ip route add 10.1.0.0/24 dev xfrm2 src 10.3.0.1 table 102
ip rule add from 10.3.0.1 lookup 102
cat >/etc/swanctl/conf.d/svti.conf <<'CONF'
connections {{
{}{}}}
secrets {{
    ike-svti {{
        secret = \"{PSK}\"
    }}
}}
CONF
llg_charon_start
iperf3 -s -D --logfile /run/iperf3.log
ip -d link show xfrm1 | head -3
",
        conn("gcm", "192.0.2.1", 1, "aes256gcm16"),
        conn("cbc", "192.0.2.2", 2, "aes256-sha256")
    )
}

/// iperf3 TCP for 2 s from the site's LAN to `dst` in the guest (`reverse`: the guest sends); Mbit/s.
/// The guest's server (TCG) re-opens its listener after each test: "unable to connect", "busy" and a reset
/// control connection (seen right after the previous test) are retried.
fn iperf3(site: &Netns, dst: &str, reverse: bool) -> f64 {
    let mut argv = vec![
        "timeout", "40", "iperf3", "-c", dst, "-B", "10.1.0.1", "-t", "2", "-J",
    ];
    if reverse {
        argv.push("-R");
    }
    let t0 = Instant::now();
    let json = loop {
        let out = site.cmd(argv[0]).args(&argv[1..]).output().unwrap();
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        let transient = [
            "unable to connect",
            "busy",
            "unable to receive control message",
        ]
        .iter()
        .any(|t| json.contains(t));
        if !transient || t0.elapsed() > Duration::from_secs(20) {
            break json;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("iperf3 to {dst}: {e}: {json}"));
    assert!(v.get("error").is_none(), "iperf3 to {dst}: {json}");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6
}

#[test]
fn lifeline_svti_and_linux_kernel_esp_gcm_and_cbc() {
    if !guest::guest_available("lifeline_svti_and_linux_kernel_esp_gcm_and_cbc") {
        return;
    }
    let t0 = Instant::now();
    let lab = Netns::new("gsvLab");
    guest::bridge(&lab);
    let cap = Capture::start(&lab, "br0", "gsv").expect("tcpdump on br0");
    let t_cap = Instant::now();
    while std::fs::metadata(&cap.path).map_or(0, |m| m.len()) < 24
        && t_cap.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let site_ns = Netns::new("gsvSite");
    guest::veth_to_bridge(&lab, "vsite", &site_ns, "eth0", "192.0.2.11/24");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("guest-svti-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("svti-guest.sh");
    std::fs::write(&script, guest_script()).unwrap();
    let g = Guest::start(
        &lab,
        "tap0",
        GuestOpts {
            script: script.to_str().unwrap(),
            bridge: Some("br0"),
            ..Default::default()
        },
    );
    println!(
        "guest ready {:.1} s (script {:.1} s)",
        g.boot_secs, g.script_secs
    );
    let site = Lifeline::start(&site_ns, "ll", &site_config());

    // Both tunnels up: Lifeline initiates, charon installs both CHILD_SAs in the kernel.
    let t_up = Instant::now();
    let up = g.wait_until(
        "swanctl --list-sas | grep -c INSTALLED | grep -qx 2",
        Duration::from_secs(60),
    );
    let sas = g.exec("swanctl --list-sas").1;
    assert!(
        up.is_ok(),
        "both CHILD_SAs not installed in the guest:\n{sas}\n--- charon ---\n{}\n--- lifeline ---\n{}",
        g.exec("grep -vE 'sending packet|received packet' /run/charon.log | tail -60")
            .1,
        site.log()
    );
    println!(
        "both tunnels up {:.1} s after Lifeline started\nguest# swanctl --list-sas\n{sas}",
        t_up.elapsed().as_secs_f64()
    );
    let xfrm = g.run("ip xfrm state");
    println!("guest# ip xfrm state\n{xfrm}");
    assert!(
        xfrm.contains("rfc4106(gcm(aes))") && xfrm.contains("cbc(aes)"),
        "the kernel's SAs are not AES-GCM and AES-CBC:\n{xfrm}"
    );
    assert!(
        xfrm.lines()
            .any(|l| l.contains("auth-trunc hmac(sha256)") && l.trim_end().ends_with(" 128")),
        "no HMAC-SHA-256-128 SA:\n{xfrm}"
    );
    assert_eq!(
        xfrm.matches("mode tunnel").count(),
        4,
        "four tunnel-mode SAs expected:\n{xfrm}"
    );

    // Pings both ways through each tunnel (the first ones may race the routes: wait for one).
    for (lan, name) in [("10.2.0.1", "GCM"), ("10.3.0.1", "CBC")] {
        ping_until(&site_ns, "10.1.0.1", lan, Duration::from_secs(20));
        let out = site_ns.run(&[
            "ping", "-c", "10", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", lan,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        println!(
            "{name}: Lifeline -> guest: {}",
            text.lines().find(|l| l.contains("received")).unwrap_or("")
        );
        let out = g.run(&format!("ping -c 10 -i 0.2 -W 2 -I {lan} 10.1.0.1"));
        println!(
            "{name}: guest -> Lifeline: {}",
            out.lines().find(|l| l.contains("received")).unwrap_or("")
        );
        assert!(
            out.contains(" 0% packet loss"),
            "{name}: guest pings lost:\n{out}"
        );
    }
    println!(
        "lifeline# show crypto ipsec sa\n{}",
        site.show(&["show", "crypto", "ipsec", "sa"])
    );

    // The capture of pings and IKE only (the iperf3 runs below are left out of it: the pcap stays small).
    let pcap = cap.finish();
    let count = |filter: &str| {
        let out = sh(Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args(["-Y", filter]));
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let esp = |a: &str, b: &str| count(&format!("esp && !udp && ip.src == {a} && ip.dst == {b}"));
    let (g1o, g1i, g2o, g2i) = (
        esp("192.0.2.11", "192.0.2.1"),
        esp("192.0.2.1", "192.0.2.11"),
        esp("192.0.2.11", "192.0.2.2"),
        esp("192.0.2.2", "192.0.2.11"),
    );
    let (ike, esp_udp, clear) = (
        count("isakmp"),
        count("udp.port == 4500"),
        count("icmp && ip.addr == 10.1.0.1"),
    );
    println!(
        "bridge capture: raw ESP GCM {g1o} out / {g1i} in, CBC {g2o} out / {g2i} in; IKE {ike}, \
         UDP 4500 {esp_udp}, clear LAN ICMP {clear}"
    );
    assert!(
        g1o >= 20 && g1i >= 20 && g2o >= 20 && g2i >= 20,
        "raw ESP missing on a tunnel ({})\n{}",
        pcap.display(),
        site.log()
    );
    assert!(
        ike >= 4 && esp_udp == 0 && clear == 0,
        "expected raw ESP and IKE only ({})",
        pcap.display()
    );
    let _ = std::fs::remove_file(&pcap);

    // iperf3 both ways through each tunnel.
    for (lan, name) in [("10.2.0.1", "GCM"), ("10.3.0.1", "CBC")] {
        let up = iperf3(&site_ns, lan, false);
        let down = iperf3(&site_ns, lan, true);
        println!(
            "iperf3 {name}: Lifeline -> kernel {up:.1} Mbit/s, kernel -> Lifeline {down:.1} Mbit/s"
        );
        assert!(
            up > 1.0 && down > 1.0,
            "{name}: iperf3 {up} / {down} Mbit/s"
        );
    }
    // The kernel side initiates: charon deletes both IKE SAs and negotiates them again, Lifeline responds
    // (each peer's identity picks its IKEv2 profile and so its transform set); traffic flows again.
    let log_before = site.log().matches("SA_INSTALLED").count();
    g.run(
        "swanctl --terminate --ike gcm --timeout 15 >/dev/null && \
         swanctl --terminate --ike cbc --timeout 15 >/dev/null && \
         swanctl --initiate --child gcm --timeout 30 >/dev/null && \
         swanctl --initiate --child cbc --timeout 30 >/dev/null",
    );
    let sas = g.run("swanctl --list-sas");
    println!("guest# swanctl --list-sas (charon initiated)\n{sas}");
    // (swanctl marks the local end's SPI with `*`: the initiator's SPI comes first)
    assert_eq!(
        sas.lines()
            .filter(|l| l.contains("ESTABLISHED") && l.contains("_i* "))
            .count(),
        2,
        "charon is not the initiator of both IKE SAs:\n{sas}"
    );
    for lan in ["10.2.0.1", "10.3.0.1"] {
        ping_until(&site_ns, "10.1.0.1", lan, Duration::from_secs(20));
        g.run(&format!("ping -c 3 -i 0.2 -W 2 -I {lan} 10.1.0.1"));
    }
    assert!(
        site.log().matches("SA_INSTALLED").count() >= log_before + 2,
        "{}",
        site.log()
    );
    println!(
        "guest-initiated IKE SAs answered, both tunnels carry pings again ({:.1} s into the test)",
        t0.elapsed().as_secs_f64()
    );
    let xfrm =
        g.run("ip -s xfrm state | grep -E '^src|replay-window|lifetime current' -A1 | head -40");
    println!("guest# ip -s xfrm state\n{xfrm}");
    println!(
        "whole test {:.1} s, of which {:.1} s waiting for a guest slot",
        t0.elapsed().as_secs_f64(),
        g.waited_secs
    );
}
