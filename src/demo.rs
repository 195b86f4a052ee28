//! `lifeline demo`: the product's story in one process, no root, nothing installed.
//!
//! A branch appliance and a head end (two [`Node`]s, each built from an embedded IOS configuration) and the
//! built-in SIP registrar run on loopback addresses with real UDP sockets: SIP, IKEv2 and ESP cross the
//! kernel's loopback exactly as they would cross a WAN. What needs root is simulated in user space: the LAN
//! hosts are packet sources and sinks, the routing table is an in-memory FIB fed by the same RIB, and the
//! primary WAN is a switch the demo turns off (the IP SLA probes travel it in-process).
//!
//! Timeline: SLA probes answered -> primary cut -> track down -> route to Tunnel0 -> first packet ->
//! INVITE/200/ACK with RFC 6193 SDP -> IKEv2 (forced NAT-T, fingerprint checked) -> ESP carries the pings ->
//! primary back -> route back -> IPsec idle timer -> BYE -> READY_TO_CONNECT. The IPsec idle timer is
//! compressed to a few seconds (IOS allows 60 s at least) so the story fits in half a minute.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use monitors::rib::Fib;

use crate::node::{Node, Output};
use crate::show::vpnsip::SessionStatus;

const REGISTRAR: &str = "127.0.0.10:5060";
const DOMAIN: &str = "127.0.0.10";
const BRANCH_LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const HQ_LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 10);
/// The demo's compressed IPsec idle timer.
const IDLE: Duration = Duration::from_secs(3);

pub const BRANCH_CONFIG: &str = "\
hostname branch
!
crypto ikev2 keyring vpn-sip-keyring
 peer headend
  identity key-id 0388884001
  pre-shared-key branch-to-hq-demo-key
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local vpn-sip-keyring
 nat force-encap
!
crypto ipsec transform-set GCM esp-gcm 256
 mode tunnel
!
crypto ipsec profile vpn-sip-ipsec
 set transform-set GCM
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number 0388883001 address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar 127.0.0.10 port 5060
vpn-sip logging
!
interface Loopback11
 ip address 10.9.9.1 255.255.255.255
 ip nat inside
!
interface GigabitEthernet0
 description primary WAN (broadband)
 ip address 192.0.2.1 255.255.255.0
!
interface GigabitEthernet1
 description backup WAN (VPN-SIP)
 ip address 127.0.0.11 255.0.0.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number 0388883001 remote-number 0388884001 bandwidth 1000
!
ip sla 1
 icmp-echo 192.0.2.11 source-interface GigabitEthernet0
 threshold 500
 timeout 500
 frequency 1
ip sla schedule 1 life forever start-time now
track 1 ip sla 1 reachability
!
ip route 10.2.0.0 255.255.0.0 192.0.2.11 track 1
ip route 10.2.0.0 255.255.0.0 Tunnel0 250
";

pub const HEADEND_CONFIG: &str = "\
hostname headend
!
crypto ikev2 keyring vpn-sip-keyring
 peer branch1
  identity key-id 0388883001
  pre-shared-key branch-to-hq-demo-key
!
crypto ikev2 profile vpn-sip-profile
 match identity remote any
 authentication local pre-share
 authentication remote pre-share
 keyring local vpn-sip-keyring
 nat force-encap
!
crypto ipsec transform-set GCM esp-gcm 256
 mode tunnel
!
crypto ipsec profile vpn-sip-ipsec
 set transform-set GCM
 set security-association idle-time 120
 set ikev2-profile vpn-sip-profile
!
vpn-sip enable
vpn-sip local-number 0388884001 address ipv4 GigabitEthernet1
vpn-sip tunnel source Loopback11
vpn-sip registrar 127.0.0.10 port 5060
vpn-sip logging
!
interface Loopback11
 ip address 10.9.9.2 255.255.255.255
 ip nat inside
!
interface GigabitEthernet1
 description WAN
 ip address 127.0.0.12 255.0.0.0
 ip nat outside
!
interface Tunnel0
 ip unnumbered Loopback11
 tunnel source Loopback11
 tunnel mode ipsec ipv4
 tunnel destination dynamic
 tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile
 vpn-sip local-number 0388884001 remote-number 0388883001 bandwidth 512
!
ip route 10.1.0.0 255.255.0.0 Tunnel0
";

struct Clock(Instant);

impl Clock {
    fn say(&self, who: &str, what: impl AsRef<str>) {
        let t = self.0.elapsed().as_secs_f64();
        for (i, line) in what.as_ref().lines().enumerate() {
            if i == 0 {
                println!("[{t:6.3}s] {who:<9} {line}");
            } else {
                println!("{:19}{line}", "");
            }
        }
    }
}

/// One appliance with its sockets.
struct Box_ {
    name: &'static str,
    node: Node,
    sockets: HashMap<SocketAddr, UdpSocket>,
}

impl Box_ {
    fn new(name: &'static str, cfg: &str, now: Instant) -> anyhow::Result<Box_> {
        let parsed = config::parse(cfg);
        if parsed.has_errors() {
            let errs: Vec<String> = parsed.diagnostics.iter().map(|d| d.to_string()).collect();
            anyhow::bail!("embedded {name} configuration: {}", errs.join("; "));
        }
        let (mut node, problems) = Node::new(now, parsed.config, 0x11fe_11fe);
        if !problems.is_empty() {
            anyhow::bail!("{name}: {}", problems.join("; "));
        }
        node.set_idle_timeout(IDLE);
        Ok(Box_ {
            name,
            node,
            sockets: HashMap::new(),
        })
    }
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)
        .with_context(|| format!("cannot bind {addr} (is another demo running?)"))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// An IPv4 ICMP echo packet as a LAN host would send it.
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, reply: bool, ident: u16, seq: u16) -> Vec<u8> {
    let echo = monitors::icmp::EchoRepr {
        kind: if reply {
            monitors::icmp::EchoKind::Reply
        } else {
            monitors::icmp::EchoKind::Request
        },
        ident,
        seq_no: seq,
        data: b"lifeline demo: 32 bytes of data.",
    };
    let mut p = vec![0u8; 20 + echo.buffer_len()];
    let len = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = dataplane::wire::ipv4::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let _ = echo.emit(&mut p[20..]);
    p
}

/// The first line and, for INVITE/200 with a body, the SDP of a SIP message, for the timeline.
fn sip_summary(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let first = text.lines().next()?;
    let interesting = ["INVITE ", "ACK ", "BYE ", "REGISTER "]
        .iter()
        .any(|m| first.starts_with(m))
        || (first.starts_with("SIP/2.0 200")
            && (text.contains("CSeq: 1 INVITE")
                || text.contains(" INVITE\r\n")
                || text.contains(" BYE\r\n")
                || text.contains(" REGISTER\r\n")));
    if !interesting {
        return None;
    }
    let mut s = first.to_string();
    if let Some(cseq) = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cseq:"))
    {
        s.push_str(&format!("   ({})", cseq.trim()));
    }
    if let Some((_, body)) = text.split_once("\r\n\r\n")
        && !body.trim().is_empty()
    {
        for l in body.lines().filter(|l| {
            l.starts_with("m=") || l.starts_with("c=") || l.starts_with("a=") || l.starts_with("b=")
        }) {
            s.push_str(&format!("\n    {l}"));
        }
    }
    Some(s)
}

pub fn run() -> anyhow::Result<ExitCode> {
    let clock = Clock(Instant::now());
    println!(
        "Lifeline demo: a branch loses its broadband line; VPN-SIP brings up a backup IPsec tunnel"
    );
    println!(
        "through a SIP call, carries the branch's traffic, and hangs up when the line is back."
    );
    println!(
        "Branch WAN 127.0.0.11, head end 127.0.0.12, SIP registrar {REGISTRAR} (built in), all on loopback.\n"
    );

    let now = Instant::now();
    let reg_addr: SocketAddr = REGISTRAR.parse()?;
    let reg_sock = bind(reg_addr)?;
    let mut registrar = sip::Registrar::new(
        sip::RegistrarConfig::new(DOMAIN, reg_addr),
        Box::new(sip::SeededRandom::new(7)),
    );
    let mut boxes = [
        Box_::new("branch", BRANCH_CONFIG, now)?,
        Box_::new("headend", HEADEND_CONFIG, now)?,
    ];
    for b in &mut boxes {
        b.node.start(now);
    }
    let mut fib = Fib::new();
    let mut primary_up = true;
    let mut pending_probe_replies: Vec<(Instant, Ipv4Addr, Vec<u8>)> = Vec::new();
    let mut last_status = [SessionStatus::ReadyToConnect; 2];
    let mut next_ping = now + Duration::from_millis(500);
    let mut seq: u16 = 0;
    let mut sent_at: HashMap<u16, (Instant, &'static str)> = HashMap::new();
    let (mut via_primary, mut via_tunnel, mut lost) = (0u32, 0u32, 0u32);
    let mut cut_at: Option<Instant> = None;
    let mut restored_at: Option<Instant> = None;
    let mut first_tunnel_reply: Option<Duration> = None;
    let mut showed_up = false;
    let mut ended = false;
    let mut last_route = String::new();
    let deadline = now + Duration::from_secs(40);
    let mut buf = vec![0u8; 65536];

    while !ended {
        let now = Instant::now();
        anyhow::ensure!(now < deadline, "the demo did not finish within 40 s");

        // 1. Datagrams from the (loopback) network.
        while let Ok((n, from)) = reg_sock.recv_from(&mut buf) {
            registrar.handle_input(now, from, &buf[..n]);
        }
        for b in &mut boxes {
            let addrs: Vec<SocketAddr> = b.sockets.keys().copied().collect();
            for local in addrs {
                while let Some(Ok((n, from))) = b.sockets.get(&local).map(|s| s.recv_from(&mut buf))
                {
                    b.node.handle_udp(now, local, from, &buf[..n], 0);
                }
            }
            b.node.handle_timeout(now);
        }
        registrar.handle_timeout(now);
        while let Some(tx) = registrar.poll_transmit() {
            let _ = reg_sock.send_to(&tx.payload, tx.to);
        }

        // 2. The primary WAN: the SLA probes travel it in-process.
        let branch = &mut boxes[0];
        while let Some(p) = branch.node.failover.poll_probe() {
            if primary_up && let Ok(echo) = monitors::icmp::EchoRepr::parse_bytes(&p.payload) {
                let reply = echo.reply();
                let mut bytes = vec![0u8; reply.buffer_len()];
                if reply.emit(&mut bytes).is_ok() {
                    pending_probe_replies.push((now + Duration::from_millis(3), p.dest, bytes));
                }
            }
        }
        pending_probe_replies.retain(|(at, from, bytes)| {
            if *at <= now {
                branch.node.failover.handle_icmp(now, *from, bytes);
                false
            } else {
                true
            }
        });
        while let Some(change) = branch.node.failover.poll_route_change() {
            fib.apply(&change);
        }
        let route = match fib.lookup(HQ_LAN_HOST).and_then(|n| n.first()) {
            Some(nh) => format!(
                "{}{}",
                nh.interface,
                nh.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
            ),
            None => "no route".into(),
        };
        if route != last_route {
            clock.say("branch", format!("route to 10.2.0.0/16 -> {route}"));
            last_route = route;
        }

        // 3. The script.
        if cut_at.is_none() && now >= clock.0 + Duration::from_millis(2500) {
            primary_up = false;
            cut_at = Some(now);
            clock.say(
                "network",
                "*** the branch's broadband line goes down (IP SLA probes are lost from now on)",
            );
        }
        if restored_at.is_none() && via_tunnel >= 10 {
            primary_up = true;
            restored_at = Some(now);
            clock.say("network", "*** the broadband line is back");
        }

        // 4. The branch LAN pings the head end's LAN every 250 ms.
        if now >= next_ping && restored_at.is_none_or(|r| now < r + Duration::from_secs(2)) {
            next_ping = now + Duration::from_millis(250);
            seq += 1;
            let pkt = icmp_echo(BRANCH_LAN_HOST, HQ_LAN_HOST, false, 0x4c4c, seq);
            match fib
                .lookup(HQ_LAN_HOST)
                .and_then(|n| n.first())
                .map(|n| n.interface.clone())
            {
                Some(i) if i == "Tunnel0" => {
                    sent_at.insert(seq, (now, "Tunnel0"));
                    boxes[0].node.handle_tun(now, 0, &pkt);
                }
                Some(_) if primary_up => {
                    via_primary += 1;
                }
                _ => {
                    lost += 1;
                }
            }
        }

        // 5. Outputs.
        for bi in 0..boxes.len() {
            while let Some(o) = boxes[bi].node.poll_output() {
                let who = boxes[bi].name;
                match o {
                    Output::OpenPort(a) => {
                        boxes[bi].sockets.insert(a, bind(a)?);
                    }
                    Output::ClosePort(a) => {
                        boxes[bi].sockets.remove(&a);
                    }
                    Output::Udp {
                        local,
                        remote,
                        payload,
                        ..
                    } => {
                        if local.port() == crate::vpnsip::SIP_PORT
                            && let Some(s) = sip_summary(&payload)
                            && !s.starts_with("REGISTER")
                            && !(s.starts_with("SIP/2.0 200") && s.contains("REGISTER"))
                        {
                            clock.say(who, format!("SIP -> {remote}: {s}"));
                        }
                        if let Some(s) = boxes[bi].sockets.get(&local) {
                            let _ = s.send_to(&payload, remote);
                        }
                    }
                    Output::RawEsp { .. }
                    | Output::Dhcp { .. }
                    | Output::SetAddress { .. }
                    | Output::Sip(_) => {}
                    Output::Tun { tunnel, packet } => {
                        if bi == 1 {
                            // The head end's LAN host answers the ping.
                            if packet.len() >= 28 && packet[20] == 8 {
                                let id = u16::from_be_bytes([packet[24], packet[25]]);
                                let s = u16::from_be_bytes([packet[26], packet[27]]);
                                let reply = icmp_echo(HQ_LAN_HOST, BRANCH_LAN_HOST, true, id, s);
                                boxes[1].node.handle_tun(now, tunnel, &reply);
                            }
                        } else if packet.len() >= 28 && packet[20] == 0 {
                            let s = u16::from_be_bytes([packet[26], packet[27]]);
                            if let Some((t, _)) = sent_at.remove(&s) {
                                via_tunnel += 1;
                                let rtt = now.duration_since(t);
                                if first_tunnel_reply.is_none() {
                                    let since_cut =
                                        cut_at.map(|c| now.duration_since(c)).unwrap_or_default();
                                    first_tunnel_reply = Some(since_cut);
                                    clock.say(
                                        "branch",
                                        format!(
                                            "first ping answered through Tunnel0 (seq {s}, {:.1} ms after it was sent; {:.2} s after the cut)",
                                            rtt.as_secs_f64() * 1000.0,
                                            since_cut.as_secs_f64()
                                        ),
                                    );
                                } else if via_tunnel % 4 == 0 {
                                    clock.say("branch", format!("ping seq {s} answered through Tunnel0 in {:.1} ms ({via_tunnel} so far)", rtt.as_secs_f64() * 1000.0));
                                }
                            }
                        }
                    }
                }
            }
        }

        // 6. Session state changes, as `vpn-sip logging` would report them.
        for bi in 0..boxes.len() {
            let Some(v) = &boxes[bi].node.vpnsip else {
                continue;
            };
            let Some(s) = v.sessions.first() else {
                continue;
            };
            if s.status != last_status[bi] {
                let mut line = format!("Tunnel0 session: {} -> {}", last_status[bi], s.status);
                if let Some(f) = &s.last_failure {
                    line.push_str(&format!(" ({f})"));
                }
                clock.say(boxes[bi].name, line);
                last_status[bi] = s.status;
            }
        }
        let both_up = last_status
            .iter()
            .all(|s| matches!(s, SessionStatus::SessionUp(_)));
        if both_up && !showed_up && via_tunnel >= 4 {
            showed_up = true;
            println!();
            for b in &boxes {
                print_show(b, "show vpn-sip session detail");
                print_show(b, "show ip nat translations");
            }
            print_show(&boxes[0], "show crypto session detail");
            print_show(&boxes[0], "show crypto ikev2 sa");
            print_show(&boxes[0], "show policy-map interface Tunnel0");
            print_show(&boxes[0], "show vpn-sip registration-status");
            print_show(&boxes[0], "show crypto ipsec sa");
        }
        if showed_up
            && restored_at.is_some()
            && last_status
                .iter()
                .all(|s| *s == SessionStatus::ReadyToConnect)
        {
            ended = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let now = Instant::now();
    println!();
    print_show(&boxes[0], "show vpn-sip session detail");
    print_show(&boxes[0], "show ip nat translations");
    print_show(&boxes[0], "show track");
    print_show(&boxes[0], "show ip route static");
    let counters = boxes[0].node.tunnels[0].dp.lock().snapshot(now).counters;
    println!(
        "Summary: pings via the primary {via_primary}, through the VPN-SIP tunnel {via_tunnel}, lost while the route moved {lost}; \
         tunnel encaps {} decaps {}; first answer through the tunnel {:.2} s after the line went down; demo took {:.1} s.",
        counters.encaps,
        counters.decaps,
        first_tunnel_reply.unwrap_or_default().as_secs_f64(),
        clock.0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_show(b: &Box_, cmd: &str) {
    let words: Vec<String> = cmd.split_whitespace().map(String::from).collect();
    let out = match crate::show::resolve(&words) {
        Ok((c, args)) => crate::show::answer(&b.node, b.node.started, c, &args, false),
        Err(e) => e,
    };
    println!("{}# {cmd}\n{}", b.name, out.trim_end());
    println!();
}
