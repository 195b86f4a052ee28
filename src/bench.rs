//! `lifeline bench vpnsip`: VPN-SIP session setup figures.
//!
//! a) First packet into an idle VPN-SIP tunnel -> that packet delivered at the far end (SIP INVITE/200/ACK
//!    through the registrar, IKE_SA_INIT, IKE_AUTH, then ESP with the queued packet), p50/p99 over `--runs`
//!    runs, over real loopback UDP sockets (registrar 127.0.0.20, appliance 127.0.0.21, far end
//!    127.0.0.22, clear of the demo's 127.0.0.10-12) and over the in-memory [`Sim`]. Between runs the
//!    appliance deletes its IKE SA (the session ends with BYE) and both sides are back in READY_TO_CONNECT.
//! b) Sessions per second and memory per session: one appliance with N generated VPN-SIP tunnels (one per
//!    remote number) against N one-tunnel far-end nodes and the registrar, all in one [`Sim`] in real time.
//!    The appliance is the SIP caller for every session; at most `--window` setups are in progress at once.
//!    Memory is VmRSS (/proc/self/status) after registration and after every session is up, divided by N;
//!    it covers both ends of each session (the appliance's and its far end's). `KiB idle/N` is the cost of
//!    the idle network per tunnel (appliance tunnel + far-end node + registration); `KiB appl./N` is the
//!    appliance alone (configuration and idle tunnels) per configured tunnel. Session latencies under load
//!    reflect the window: [`Sim::step`] moves all sessions in lockstep, a batch of datagrams at a time.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::node::{Node, Output};
use crate::show::vpnsip::SessionStatus;
use crate::sim::{Sim, TunPacket};

/// `vpn-sip` allocates session ports 50001..=65535: at most this many concurrent sessions per appliance.
const SESSION_PORTS: usize =
    (crate::vpnsip::LAST_SESSION_PORT - crate::vpnsip::FIRST_SESSION_PORT) as usize + 1;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Scenario {
    /// VPN-SIP session setup: first-packet latency and concurrent bring-up.
    Vpnsip,
    /// ESP seal+open throughput of the data-plane worker code with 1, 2, ... threads.
    Dataplane,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Concurrent session counts for the bring-up test (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sessions: Vec<usize>,
    /// Runs of the first-packet latency test.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Session setups in progress at once during bring-up.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Skip the loopback-socket latency test.
    #[arg(long)]
    no_loopback: bool,
    /// dataplane: tunnels (each thread of N owns those with index % N == its number).
    #[arg(long, default_value_t = 4)]
    tunnels: usize,
    /// dataplane: thread counts to compare (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// dataplane: inner packet sizes in bytes (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "64,512,1400")]
    sizes: Vec<usize>,
    /// dataplane: seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Scenario::Dataplane = args.scenario {
        return crate::bench_dataplane::run(args.tunnels, &args.threads, &args.sizes, args.seconds);
    }
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(
        args.sessions.iter().all(|&n| n > 0),
        "--sessions counts must be at least 1"
    );
    println!(
        "lifeline bench vpnsip (release build expected; figures are wall-clock on this machine)\n"
    );
    let mut rows = Vec::new();
    if !args.no_loopback {
        let mut lo = Loopback::new()?;
        let lat = first_packet_latency(&mut lo, args.runs).context("loopback latency")?;
        rows.push(("loopback UDP sockets", lat));
    }
    {
        let topo = Topology::new(1);
        let mut sim = topo.build_sim(Instant::now())?;
        sim.start(Instant::now());
        wait_registered(&topo, &mut sim, Duration::from_secs(10))?;
        let lat = first_packet_latency(&mut sim, args.runs).context("in-memory latency")?;
        rows.push(("in-memory sim", lat));
    }
    println!("a) first packet into an idle VPN-SIP tunnel -> delivered at the far end");
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "network", "runs", "min ms", "p50 ms", "p99 ms", "max ms"
    );
    for (name, mut lat) in rows {
        lat.sort();
        println!(
            "{:<22} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            lat.len(),
            ms(lat[0]),
            ms(percentile(&lat, 50)),
            ms(percentile(&lat, 99)),
            ms(lat[lat.len() - 1])
        );
    }
    println!();
    println!(
        "b) concurrent bring-up: one appliance with N VPN-SIP tunnels, N one-tunnel far ends, in-memory, window {}",
        args.window
    );
    println!(
        "{:>6} {:>7} {:>9} {:>10} {:>9} {:>9} {:>11} {:>12} {:>12} {:>12}",
        "N",
        "up",
        "build s",
        "bring-up s",
        "sess/s",
        "p50 ms",
        "p99 ms",
        "KiB/session",
        "KiB idle/N",
        "KiB appl./N"
    );
    for &n in &args.sessions {
        let r = bring_up(n, args.window.max(1))?;
        println!(
            "{:>6} {:>7} {:>9.2} {:>10.2} {:>9.0} {:>9.2} {:>11.2} {:>12.1} {:>12.1} {:>12.1}",
            r.tunnels,
            r.up,
            r.build.as_secs_f64(),
            r.bring_up.as_secs_f64(),
            r.up as f64 / r.bring_up.as_secs_f64(),
            ms(r.p50),
            ms(r.p99),
            r.kib_per_session,
            r.kib_idle_per_tunnel,
            r.kib_appliance_per_tunnel,
        );
        if r.up < r.tunnels {
            println!(
                "       note: {} of {} tunnels brought up: an appliance has {SESSION_PORTS} VPN-SIP session ports (50001-65535)",
                r.up, r.tunnels
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------------------- topology

/// One appliance (node 0) with `n` VPN-SIP tunnels; far end `i` (node `i + 1`) is the remote number of the
/// appliance's tunnel `i` and has one tunnel back.
pub struct Topology {
    pub n: usize,
    pub registrar: Ipv4Addr,
    pub appliance_wan: Ipv4Addr,
    /// Far end `i`'s WAN address is this plus `i`.
    pub far_wan: Ipv4Addr,
}

const APPLIANCE_NUMBER: &str = "0399999999";

fn far_number(i: usize) -> String {
    format!("031{i:07}")
}

const PROFILES: &str = "\
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
 set security-association idle-time 3600
 set ikev2-profile vpn-sip-profile
!
";

impl Topology {
    /// Addresses for the in-memory network (documentation and shared address space, never routed).
    pub fn new(n: usize) -> Topology {
        Topology {
            n,
            registrar: Ipv4Addr::new(100, 64, 0, 254),
            appliance_wan: Ipv4Addr::new(100, 64, 0, 1),
            far_wan: Ipv4Addr::new(100, 65, 0, 1),
        }
    }

    /// One far end on loopback, clear of the demo's addresses.
    fn loopback() -> Topology {
        Topology {
            n: 1,
            registrar: Ipv4Addr::new(127, 0, 0, 20),
            appliance_wan: Ipv4Addr::new(127, 0, 0, 21),
            far_wan: Ipv4Addr::new(127, 0, 0, 22),
        }
    }

    fn far_wan(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.far_wan) + i as u32)
    }

    fn common(&self, out: &mut String, host: &str, number: &str, wan: Ipv4Addr, inside: u8) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{PROFILES}vpn-sip enable\n\
             vpn-sip local-number {number} address ipv4 GigabitEthernet1\n\
             vpn-sip tunnel source Loopback11\n\
             vpn-sip registrar {reg} port 5060\n\
             !\n\
             interface Loopback11\n ip address 10.9.9.{inside} 255.255.255.255\n ip nat inside\n!\n\
             interface GigabitEthernet1\n description WAN of {host}\n ip address {wan} 255.0.0.0\n ip nat outside\n!\n",
            reg = self.registrar
        );
    }

    fn tunnel(out: &mut String, idx: usize, local: &str, remote: &str) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "interface Tunnel{idx}\n ip unnumbered Loopback11\n tunnel source Loopback11\n tunnel mode ipsec ipv4\n \
             tunnel destination dynamic\n tunnel protection ipsec profile vpn-sip-ipsec ikev2-profile vpn-sip-profile\n \
             vpn-sip local-number {local} remote-number {remote} bandwidth 1000\n!\n"
        );
    }

    /// The appliance: a keyring peer and a tunnel per far end.
    pub fn appliance_config(&self) -> String {
        use std::fmt::Write;
        let mut c = String::from("hostname appliance\n!\ncrypto ikev2 keyring vpn-sip-keyring\n");
        for i in 0..self.n {
            let _ = write!(
                c,
                " peer far{i}\n  identity key-id {}\n  pre-shared-key bench-key-{i}\n",
                far_number(i)
            );
        }
        c.push_str("!\n");
        self.common(&mut c, "appliance", APPLIANCE_NUMBER, self.appliance_wan, 1);
        for i in 0..self.n {
            Self::tunnel(&mut c, i, APPLIANCE_NUMBER, &far_number(i));
        }
        c
    }

    /// Far end `i`: one keyring peer and one tunnel back to the appliance.
    pub fn far_config(&self, i: usize) -> String {
        let mut c = format!(
            "hostname far{i}\n!\ncrypto ikev2 keyring vpn-sip-keyring\n peer appliance\n  identity key-id {APPLIANCE_NUMBER}\n  pre-shared-key bench-key-{i}\n!\n"
        );
        self.common(&mut c, "far end", &far_number(i), self.far_wan(i), 2);
        Self::tunnel(&mut c, 0, &far_number(i), APPLIANCE_NUMBER);
        c
    }

    pub(crate) fn registrar(&self) -> sip::Registrar {
        let addr = SocketAddr::V4(SocketAddrV4::new(self.registrar, crate::vpnsip::SIP_PORT));
        sip::Registrar::new(
            sip::RegistrarConfig::new(self.registrar.to_string(), addr),
            Box::new(sip::SeededRandom::new(7)),
        )
    }

    /// The appliance (node 0) and the far ends (nodes 1..=n), not started.
    pub fn nodes(&self, now: Instant) -> anyhow::Result<Vec<Node>> {
        let mut nodes = Vec::with_capacity(self.n + 1);
        nodes.push(node(&self.appliance_config(), now, "appliance")?);
        for i in 0..self.n {
            nodes.push(node(&self.far_config(i), now, "far end")?);
        }
        Ok(nodes)
    }

    pub fn build_sim(&self, now: Instant) -> anyhow::Result<Sim> {
        let mut sim = Sim::new();
        sim.set_registrar(self.registrar());
        for n in self.nodes(now)? {
            sim.add_node(n);
        }
        Ok(sim)
    }

    pub fn all_registered(&self, sim: &Sim) -> bool {
        (0..sim.node_count()).all(|i| {
            sim.node(i)
                .vpnsip
                .as_ref()
                .is_some_and(|v| v.ua.is_registered())
        })
    }
}

pub(crate) fn node(cfg: &str, now: Instant, what: &str) -> anyhow::Result<Node> {
    let parsed = config::parse(cfg);
    if parsed.has_errors() {
        let errs: Vec<String> = parsed
            .diagnostics
            .iter()
            .filter(|d| d.severity == config::Severity::Error)
            .map(|d| d.to_string())
            .collect();
        anyhow::bail!("generated {what} configuration: {}", errs.join("; "));
    }
    let (node, problems) = Node::new(now, parsed.config, 0x5e55_1011);
    anyhow::ensure!(problems.is_empty(), "{what}: {}", problems.join("; "));
    Ok(node)
}

/// An ICMP echo request from the appliance's LAN to the far end's LAN, as a LAN host would send it.
pub fn echo_packet(ident: u16, seq: u16) -> Vec<u8> {
    let echo = monitors::icmp::EchoRepr {
        kind: monitors::icmp::EchoKind::Request,
        ident,
        seq_no: seq,
        data: b"lifeline bench: first packet....",
    };
    let mut p = vec![0u8; 20 + echo.buffer_len()];
    let len = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&[10, 1, 0, 10]);
    p[16..20].copy_from_slice(&[10, 2, 0, 10]);
    let c = dataplane::wire::ipv4::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let _ = echo.emit(&mut p[20..]);
    p
}

/// `packet` as the far end receives it under the VPN-SIP policy, which marks DSCP CS4 (ECN kept).
pub fn marked_cs4(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    if p.len() >= 20 {
        p[1] = 0x80 | (p[1] & 0x03);
        p[10..12].fill(0);
        let c = dataplane::wire::ipv4::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p
}

fn wait_registered(topo: &Topology, sim: &mut Sim, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !topo.all_registered(sim) {
        anyhow::ensure!(
            start.elapsed() < limit,
            "SIP registration did not finish in {limit:?}"
        );
        if sim.step(Instant::now()) == 0 {
            std::thread::yield_now();
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------ a) first-packet latency

/// What the latency test needs from a network.
trait Network {
    fn step(&mut self, now: Instant) -> usize;
    fn handle_tun(&mut self, now: Instant, node: usize, tunnel: usize, packet: &[u8]);
    fn take_delivered(&mut self) -> Vec<TunPacket>;
    fn node(&self, i: usize) -> &Node;
    fn node_mut(&mut self, i: usize) -> &mut Node;
}

impl Network for Sim {
    fn step(&mut self, now: Instant) -> usize {
        Sim::step(self, now)
    }
    fn handle_tun(&mut self, now: Instant, node: usize, tunnel: usize, packet: &[u8]) {
        Sim::handle_tun(self, now, node, tunnel, packet)
    }
    fn take_delivered(&mut self) -> Vec<TunPacket> {
        Sim::take_delivered(self)
    }
    fn node(&self, i: usize) -> &Node {
        Sim::node(self, i)
    }
    fn node_mut(&mut self, i: usize) -> &mut Node {
        Sim::node_mut(self, i)
    }
}

fn session_status(n: &Node, tunnel: usize) -> Option<SessionStatus> {
    n.vpnsip
        .as_ref()?
        .sessions
        .iter()
        .find(|s| s.tunnel == tunnel)
        .map(|s| s.status)
}

/// Step `net` in real time until `done` holds (or `limit` passes).
fn run_until<N: Network>(
    net: &mut N,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&mut N) -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if done(net) {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < limit, "{what}: not within {limit:?}");
        if net.step(Instant::now()) == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Runs of: first packet into the appliance's idle tunnel 0 -> the packet out of the far end's tunnel;
/// then the appliance deletes the IKE SA and both sides return to READY_TO_CONNECT.
fn first_packet_latency<N: Network>(net: &mut N, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let limit = Duration::from_secs(10);
    let mut lat = Vec::with_capacity(runs);
    for run in 0..runs {
        run_until(net, limit, "both sides READY_TO_CONNECT", |n| {
            session_status(n.node(0), 0) == Some(SessionStatus::ReadyToConnect)
                && session_status(n.node(1), 0) == Some(SessionStatus::ReadyToConnect)
        })?;
        // Let the previous session's last messages (BYE, IKE delete responses) land.
        let quiet = Instant::now() + Duration::from_millis(5);
        run_until(net, limit, "quiet", |_| Instant::now() >= quiet)?;
        let _ = net.take_delivered();

        let pkt = echo_packet(0x4c4c, run as u16);
        let marked = marked_cs4(&pkt);
        let t0 = Instant::now();
        net.handle_tun(t0, 0, 0, &pkt);
        let mut arrived = None;
        run_until(net, limit, "first packet at the far end", |n| {
            if n.take_delivered()
                .iter()
                .any(|p| p.node == 1 && p.tunnel == 0 && (p.packet == pkt || p.packet == marked))
            {
                arrived = Some(Instant::now());
            }
            arrived.is_some()
        })?;
        if let Some(t1) = arrived {
            lat.push(t1.duration_since(t0));
        }

        let now = Instant::now();
        let n = net.node_mut(0);
        if let Some(id) = n.tunnels[0].ike_sa {
            let _ = n.ike.delete_ike_sa(now, id);
        }
        n.handle_timeout(now);
    }
    Ok(lat)
}

/// The appliance and one far end over real loopback UDP sockets, driven like the demo drives its nodes.
struct Loopback {
    nodes: Vec<Node>,
    sockets: Vec<HashMap<SocketAddr, UdpSocket>>,
    registrar: sip::Registrar,
    registrar_socket: UdpSocket,
    delivered: Vec<TunPacket>,
    buf: Vec<u8>,
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)
        .with_context(|| format!("cannot bind {addr} (is another bench running?)"))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl Loopback {
    fn new() -> anyhow::Result<Loopback> {
        let topo = Topology::loopback();
        let now = Instant::now();
        let registrar = topo.registrar();
        let registrar_socket = bind(registrar.addr())?;
        let nodes = topo.nodes(now)?;
        let mut lo = Loopback {
            sockets: nodes.iter().map(|_| HashMap::new()).collect(),
            nodes,
            registrar,
            registrar_socket,
            delivered: Vec::new(),
            buf: vec![0; 65536],
        };
        for i in 0..lo.nodes.len() {
            lo.nodes[i].start(now);
            lo.drain(i)?;
        }
        run_until(&mut lo, Duration::from_secs(10), "SIP registration", |l| {
            l.nodes
                .iter()
                .all(|n| n.vpnsip.as_ref().is_some_and(|v| v.ua.is_registered()))
        })?;
        Ok(lo)
    }

    fn drain(&mut self, i: usize) -> anyhow::Result<()> {
        while let Some(o) = self.nodes[i].poll_output() {
            match o {
                Output::OpenPort(a) => {
                    self.sockets[i].insert(a, bind(a)?);
                }
                Output::ClosePort(a) => {
                    self.sockets[i].remove(&a);
                }
                Output::Udp {
                    local,
                    remote,
                    payload,
                    ..
                } => {
                    if let Some(s) = self.sockets[i].get(&local) {
                        let _ = s.send_to(&payload, remote);
                    }
                }
                Output::RawEsp { .. }
                | Output::Dhcp { .. }
                | Output::SetAddress { .. }
                | Output::Sip(_) => {}
                Output::Tun { tunnel, packet } => self.delivered.push(TunPacket {
                    node: i,
                    tunnel,
                    packet: packet.to_vec(),
                }),
            }
        }
        Ok(())
    }

    fn try_step(&mut self, now: Instant) -> anyhow::Result<usize> {
        let mut work = 0;
        while let Ok((n, from)) = self.registrar_socket.recv_from(&mut self.buf) {
            self.registrar.handle_input(now, from, &self.buf[..n]);
            work += 1;
        }
        if self.registrar.poll_timeout().is_some_and(|t| t <= now) {
            self.registrar.handle_timeout(now);
            work += 1;
        }
        while let Some(tx) = self.registrar.poll_transmit() {
            let _ = self.registrar_socket.send_to(&tx.payload, tx.to);
        }
        for i in 0..self.nodes.len() {
            let addrs: Vec<SocketAddr> = self.sockets[i].keys().copied().collect();
            for local in addrs {
                while let Some(Ok((n, from))) = self.sockets[i]
                    .get(&local)
                    .map(|s| s.recv_from(&mut self.buf))
                {
                    self.nodes[i].handle_udp(now, local, from, &self.buf[..n], 0);
                    work += 1;
                    self.drain(i)?;
                }
            }
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[i].handle_timeout(now);
                work += 1;
            }
            self.drain(i)?;
        }
        Ok(work)
    }
}

impl Network for Loopback {
    fn step(&mut self, now: Instant) -> usize {
        match self.try_step(now) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("lifeline bench: {e:#}");
                0
            }
        }
    }
    fn handle_tun(&mut self, now: Instant, node: usize, tunnel: usize, packet: &[u8]) {
        self.nodes[node].handle_tun(now, tunnel, packet);
        if let Err(e) = self.drain(node) {
            eprintln!("lifeline bench: {e:#}");
        }
    }
    fn take_delivered(&mut self) -> Vec<TunPacket> {
        std::mem::take(&mut self.delivered)
    }
    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
    fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
}

// --------------------------------------------------------------------------------- b) bring-up at scale

struct ScaleResult {
    tunnels: usize,
    up: usize,
    build: Duration,
    bring_up: Duration,
    p50: Duration,
    p99: Duration,
    kib_per_session: f64,
    kib_idle_per_tunnel: f64,
    kib_appliance_per_tunnel: f64,
}

fn bring_up(n: usize, window: usize) -> anyhow::Result<ScaleResult> {
    // The appliance cannot hold more concurrent sessions than it has session ports (it would spin looking for
    // a free one): bring up at most that many.
    let target = n.min(SESSION_PORTS);
    let topo = Topology::new(n);
    // The appliance alone first: its configuration and idle tunnels, per configured tunnel.
    let rss_empty = rss_kib();
    let appliance = node(&topo.appliance_config(), Instant::now(), "appliance")?;
    let kib_appliance_per_tunnel = rss_kib().saturating_sub(rss_empty) as f64 / n as f64;
    drop(appliance);
    let rss_empty = rss_kib();
    let t_build = Instant::now();
    let mut sim = topo.build_sim(Instant::now())?;
    sim.start(Instant::now());
    wait_registered(&topo, &mut sim, Duration::from_secs(120))?;
    let build = t_build.elapsed();
    let rss_idle = rss_kib();

    let limit = Duration::from_secs(600);
    let t0 = Instant::now();
    let mut next = 0;
    let mut pending: HashMap<usize, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(target);
    while next < target || !pending.is_empty() {
        let now = Instant::now();
        anyhow::ensure!(
            now.duration_since(t0) < limit,
            "bring-up of {n}: {} up after {limit:?}",
            lat.len()
        );
        while pending.len() < window && next < target {
            sim.handle_tun(now, 0, next, &echo_packet(next as u16, 1));
            pending.insert(next + 1, now);
            next += 1;
        }
        let w = sim.step(now);
        let done = Instant::now();
        for p in sim.take_delivered() {
            if let Some(t) = pending.remove(&p.node) {
                lat.push(done.duration_since(t));
            }
        }
        if w == 0 {
            std::thread::yield_now();
        }
    }
    let bring_up = t0.elapsed();
    let rss_up = rss_kib();
    let up = sim.node(0).vpnsip.as_ref().map_or(0, |v| {
        v.sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::SessionUp(_)))
            .count()
    });
    anyhow::ensure!(
        up == target,
        "{up} of {target} sessions up on the appliance"
    );
    lat.sort();
    Ok(ScaleResult {
        tunnels: n,
        up,
        build,
        bring_up,
        p50: percentile(&lat, 50),
        p99: percentile(&lat, 99),
        kib_per_session: rss_up.saturating_sub(rss_idle) as f64 / target as f64,
        kib_idle_per_tunnel: rss_idle.saturating_sub(rss_empty) as f64 / n as f64,
        kib_appliance_per_tunnel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configs_parse_without_errors() {
        let t = Topology::new(3);
        for cfg in [t.appliance_config(), t.far_config(2)] {
            let p = config::parse(&cfg);
            assert!(!p.has_errors(), "{:?}", p.diagnostics);
        }
        let nodes = t.nodes(Instant::now()).unwrap();
        assert_eq!(nodes[0].tunnels.len(), 3);
        assert_eq!(nodes[0].vpnsip.as_ref().unwrap().sessions.len(), 3);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Duration::from_millis(100));
        assert_eq!(percentile(&v, 99), Duration::from_millis(198));
        assert_eq!(percentile(&v[..1], 99), Duration::from_millis(1));
    }

    #[test]
    fn in_memory_latency_runs_repeat_after_teardown() {
        let topo = Topology::new(1);
        let mut sim = topo.build_sim(Instant::now()).unwrap();
        sim.start(Instant::now());
        wait_registered(&topo, &mut sim, Duration::from_secs(10)).unwrap();
        let lat = first_packet_latency(&mut sim, 3).unwrap();
        assert_eq!(lat.len(), 3);
    }
}
