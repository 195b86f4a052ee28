//! `lifeline run`: the daemon.
//!
//! One task owns the appliance state ([`Appliance`]). Control-socket connections, signals and (in later
//! features) the protocol drivers talk to it through channels; nothing shares state behind a mutex.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use monitors::SlaId;
use monitors::rib::{RibEvent, RouteSource};

use crate::control::{Reply, Request};
use crate::node::{self, Node, Output};
use crate::os::icmp::IcmpSocket;
use crate::os::raw_ip::{IPPROTO_ESP, IPPROTO_GRE, RawIp, RawRecvBatch, RawSendBatch};
use crate::os::route::{KernelRoute, Routes};
use crate::os::tun;
use crate::pkt::PacketBuf;
use crate::{ios, show};

/// Everything the daemon knows. Owned by the daemon task alone.
pub struct Appliance {
    pub node: Node,
    pub started: Instant,
}

/// Messages from driver tasks (and data-plane workers) to the daemon task.
pub(crate) enum DriverMsg {
    /// A data-plane worker left events or an earlier deadline in tunnel `tunnel` (`crate::workers`).
    Touched {
        tunnel: usize,
    },
    Icmp {
        from: Ipv4Addr,
        bytes: Vec<u8>,
    },
    /// One datagram, or a GRO batch of datagrams of `segment` bytes each (the last may be shorter).
    /// The data messages carry pooled buffers ([`PacketBuf`]): no allocation per packet.
    Udp {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: PacketBuf,
        segment: usize,
    },
    RawEsp {
        from: Ipv4Addr,
        tos: u8,
        bytes: PacketBuf,
    },
    Tun {
        tunnel: usize,
        bytes: PacketBuf,
    },
    /// A GRE datagram (IP protocol 47) from `from` to our address `local`.
    Gre {
        local: Ipv4Addr,
        from: Ipv4Addr,
        bytes: PacketBuf,
    },
    /// A kernel route with a gateway over GRE tunnel `tunnel`'s device appeared or went (`RTM_NEWROUTE`).
    KernelRoute {
        tunnel: usize,
        prefix: Ipv4Addr,
        len: u8,
        gateway: Ipv4Addr,
        add: bool,
    },
    /// A packet the kernel routed into GRE tunnel `tunnel`'s TUN device.
    GreTun {
        tunnel: usize,
        bytes: PacketBuf,
    },
    /// A DHCP message arrived on a device's UDP 68 socket.
    Dhcp {
        device: String,
        bytes: Vec<u8>,
    },
    /// A Linux device's carrier changed (`RTM_NEWLINK`).
    Link {
        device: String,
        up: bool,
    },
    /// SIP over TCP/TLS and RFC 3263 results (`os::sip_transport`).
    Sip(crate::sipnet::SipIn),
}

type ControlMsg = (Request, oneshot::Sender<Reply>);

/// Hidden `lifeline run` options that compress IOS timers for tests.
#[derive(Debug, Default, Clone)]
pub struct TestHooks {
    pub idle: Option<Duration>,
    pub lifetime_s: Option<u32>,
    /// ISAKMP SA lifetime for every `crypto isakmp policy` (IKEv1 phase-1 rekey tests).
    pub isakmp_lifetime_s: Option<u32>,
    /// Advertise this SDP fingerprint instead of our own (VPN-SIP mismatch tests).
    pub sdp_fingerprint: Option<ike::Fingerprint>,
    /// `--debug-esp-keys`: where to append ESP keys for tshark (tests only).
    pub esp_keys: Option<std::path::PathBuf>,
}

/// `dataplane_threads`: data-plane worker threads (`run --dataplane-threads N`); 0 seals and opens every
/// packet on the node loop; `None`: [`default_threads`].
pub fn run(
    config_path: &Path,
    socket: &Path,
    state_dir: &Path,
    hooks: TestHooks,
    dataplane_threads: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let text = crate::cli::read_config(config_path)?;
    let parsed = config::parse(&text);
    for d in &parsed.diagnostics {
        match d.severity {
            config::Severity::Error => ios!(
                PARSER,
                Error,
                CONFIG_ERROR,
                "{}: {d}",
                config_path.display()
            ),
            config::Severity::Warning => {
                ios!(
                    PARSER,
                    Warning,
                    CONFIG_WARNING,
                    "{}: {d}",
                    config_path.display()
                )
            }
        }
    }
    if parsed.has_errors() {
        anyhow::bail!(
            "configuration {} has errors; not starting",
            config_path.display()
        );
    }
    let now = Instant::now();
    let mut seed = [0u8; 4];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))?;
    let mut cfg = parsed.config;
    if let Some(s) = hooks.lifetime_s {
        for p in &mut cfg.ipsec.profiles {
            p.sa.lifetime_seconds = Some(s);
        }
    }
    if let Some(s) = hooks.isakmp_lifetime_s {
        for p in &mut cfg.isakmp.policies {
            p.lifetime = Some(Duration::from_secs(u64::from(s)));
        }
    }
    // `crypto pki trustpoint`: keys and certificates before the IKE profiles that sign with them.
    let store = crate::pki::enroll(&cfg, state_dir)?;
    let (mut node, problems) = Node::new(now, cfg, u32::from_ne_bytes(seed));
    let pki_problems = crate::pki::install(&mut node, &store, now, std::time::SystemTime::now());
    if !pki_problems.is_empty() {
        anyhow::bail!("{}; not starting", pki_problems.join("; "));
    }
    node.sdp_fingerprint_override = hooks.sdp_fingerprint;
    if let Some(idle) = hooks.idle {
        node.set_idle_timeout(idle);
    }
    node.esp_key_log = hooks.esp_keys;
    for p in problems {
        ios!(PARSER, Warning, CONFIG_WARNING, "{p}");
    }
    let app = Appliance { node, started: now };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    // A LocalSet: the raw ESP reader keeps `recvmmsg` headers (not `Send`) across its awaits.
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(app, socket, dataplane_threads))?;
    Ok(ExitCode::SUCCESS)
}

/// Data-plane threads when `--dataplane-threads` is not given: one per fast tunnel plus the ESP reader,
/// at most one per core, none without fast tunnels (an idle worker would only cost a thread).
pub fn default_threads(cores: usize, fast: usize) -> usize {
    if fast == 0 {
        0
    } else {
        cores.min(fast + 1).max(1)
    }
}

async fn serve(mut app: Appliance, socket: &Path, threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A socket file left by a daemon that died is stale; a live daemon answers and we refuse to start.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            anyhow::bail!(
                "another lifeline daemon is listening on {}",
                socket.display()
            );
        }
        std::fs::remove_file(socket).ok();
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot bind the control socket {}", socket.display()))?;
    let _cleanup = RemoveOnDrop(socket.to_path_buf());
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (tx, mut rx) = mpsc::channel::<ControlMsg>(64);
    let (dtx, mut drx) = mpsc::channel::<DriverMsg>(1024);
    // Data-plane workers, when asked for and some tunnel can use them (`Node::enable_fast_path`).
    let fast = if threads != Some(0) {
        app.node.enable_fast_path()
    } else {
        0
    };
    let (threads, how) = match threads {
        Some(n) => (n, "--dataplane-threads"),
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (
                default_threads(cores, fast),
                "default: min(cores, fast tunnels + 1)",
            )
        }
    };
    let workers = if fast > 0 {
        match crate::workers::Workers::spawn(threads) {
            Ok(w) => Some(w),
            Err(e) => {
                ios!(SYS, Error, NO_THREAD, "data-plane threads not started: {e}");
                for t in &app.node.tunnels {
                    t.dp.set_fast(false);
                }
                None
            }
        }
    } else {
        None
    };
    if let Some(w) = &workers {
        app.node.workers = w.stats.clone();
    }
    let mut os = OsDrivers::open(&app.node, &dtx, workers.as_ref()).await;
    ios!(
        SYS,
        Notice,
        DATAPLANE,
        "{} data-plane thread(s) ({how}){}; {fast} of {} tunnel(s) sealed and opened on them{}",
        workers.as_ref().map_or(0, |w| w.len()),
        if workers.is_none() {
            ", every packet on the node loop"
        } else {
            ""
        },
        app.node.tunnels.len(),
        match app.node.not_fast() {
            v if v.is_empty() => String::new(),
            v => format!("; on the node loop: {}", v.join(", ")),
        }
    );
    for (ios, device, mac) in std::mem::take(&mut os.dhcp_macs) {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        app.node
            .start_dhcp(Instant::now(), &ios, &device, mac, u64::from_ne_bytes(seed));
    }
    app.node.start(Instant::now());
    ios!(
        SYS,
        Notice,
        STARTED,
        "lifeline {} started, control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket.display()
    );
    loop {
        os.flush(&mut app).await;
        let deadline = app.node.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => app.node.handle_timeout(Instant::now()),
            Some(msg) = drx.recv() => {
                let now = Instant::now();
                dispatch(&mut app, now, msg);
                // Take what else the drivers queued meanwhile before flushing: the outputs of a burst
                // leave together (UDP GSO in `flush`), and the timer and select are paid once per burst.
                for _ in 0..BURST {
                    match drx.try_recv() {
                        Ok(msg) => dispatch(&mut app, now, msg),
                        Err(_) => break,
                    }
                }
            },
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(stream, tx.clone()));
                }
            }
            Some((req, reply)) = rx.recv() => {
                let _ = reply.send(handle(&mut app, &req));
            }
            _ = sigterm.recv() => { ios!(SYS, Notice, SHUTDOWN, "SIGTERM received, shutting down"); break; }
            _ = sigint.recv() => { ios!(SYS, Notice, SHUTDOWN, "SIGINT received, shutting down"); break; }
        }
    }
    os.shutdown().await;
    if let Some(w) = workers
        && !w.stop(Duration::from_secs(2)).await
    {
        ios!(
            SYS,
            Warning,
            DATAPLANE,
            "data-plane threads did not stop within 2 s"
        );
    }
    Ok(())
}

/// Driver messages handled per wake-up of the daemon loop before its outputs are flushed.
const BURST: usize = 63;

fn dispatch(app: &mut Appliance, now: Instant, msg: DriverMsg) {
    match msg {
        DriverMsg::Icmp { from, bytes } => app.node.failover.handle_icmp(now, from, &bytes),
        DriverMsg::Udp {
            local,
            remote,
            bytes,
            segment,
        } => {
            for d in bytes.chunks(segment.max(1)) {
                app.node.handle_udp(now, local, remote, d, 0);
            }
        }
        DriverMsg::RawEsp { from, tos, bytes } => app.node.handle_raw_esp(now, from, &bytes, tos),
        DriverMsg::Tun { tunnel, bytes } => app.node.handle_tun(now, tunnel, &bytes),
        DriverMsg::Touched { tunnel } => app.node.tunnel_touched(now, tunnel),
        DriverMsg::Gre { local, from, bytes } => app.node.gre.handle_gre(now, local, from, bytes),
        DriverMsg::GreTun { tunnel, bytes } => app.node.gre.handle_tun(now, tunnel, bytes),
        DriverMsg::KernelRoute {
            tunnel,
            prefix,
            len,
            gateway,
            add,
        } => app
            .node
            .gre
            .kernel_route(tunnel, nhrp::Prefix::new(prefix, len), gateway, add),
        DriverMsg::Link { device, up } => app.node.handle_link(now, &device, up),
        DriverMsg::Dhcp { device, bytes } => app.node.handle_dhcp(now, &device, &bytes),
        DriverMsg::Sip(ev) => app.node.handle_sip(now, ev),
    }
}

/// Consecutive ESP-in-UDP datagrams for one peer, sent as one UDP GSO `sendmsg`: equal-size segments
/// (the last may be shorter), at most [`crate::os::udp::GSO_MAX_SEGMENTS`].
pub(crate) struct GsoBatch {
    pub sock: Arc<tokio::net::UdpSocket>,
    pub to: SocketAddrV4,
    pub segment: usize,
    pub count: usize,
    /// IP TOS of every datagram in the batch (ESP copies the inner DSCP, e.g. VPN-SIP's CS4).
    pub tos: u8,
    /// The last segment was shorter: nothing more may follow.
    closed: bool,
    buf: Vec<u8>,
}

impl GsoBatch {
    pub fn new(sock: Arc<tokio::net::UdpSocket>, to: SocketAddrV4) -> GsoBatch {
        GsoBatch {
            sock,
            to,
            segment: 0,
            count: 0,
            tos: 0,
            closed: false,
            buf: Vec::with_capacity(crate::os::udp::GSO_MAX_BYTES),
        }
    }

    pub fn accepts(
        &self,
        sock: &Arc<tokio::net::UdpSocket>,
        to: SocketAddrV4,
        len: usize,
        tos: u8,
    ) -> bool {
        !self.closed
            && self.tos == tos
            && Arc::ptr_eq(&self.sock, sock)
            && self.to == to
            && len <= self.segment
            && self.count < crate::os::udp::GSO_MAX_SEGMENTS
            && self.buf.len() + len <= crate::os::udp::GSO_MAX_BYTES
    }

    pub fn push(&mut self, payload: &[u8]) {
        self.closed = payload.len() < self.segment;
        self.count += 1;
        self.buf.extend_from_slice(payload);
    }

    /// Sends the batch; `gso` turns false (and stays false) when the kernel or the path refuses GSO.
    pub async fn send(&mut self, gso: &mut bool) {
        if self.count == 0 {
            return;
        }
        // A marked batch carries its TOS in a control message (the socket is shared between threads).
        let tos = self.tos;
        let sent = if self.count > 1 && *gso {
            let seg = u16::try_from(self.segment).unwrap_or(u16::MAX);
            match crate::os::udp::send_gso(&self.sock, &self.buf, Some(seg), self.to, tos).await {
                Ok(()) => true,
                // Segments above the route's MTU (EINVAL, EMSGSIZE): this batch goes one by one and
                // the kernel fragments as it would a single datagram.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EMSGSIZE)) => false,
                // No UDP GSO here at all (old kernel, device without checksum offload: EIO, ENOPROTOOPT).
                Err(e) => {
                    ios!(
                        SYS,
                        Warning,
                        NO_GSO,
                        "UDP GSO unavailable ({e}): sending datagrams one by one"
                    );
                    *gso = false;
                    false
                }
            }
        } else {
            false
        };
        if !sent {
            for d in self.buf.chunks(self.segment.max(1)) {
                let _ = crate::os::udp::send_gso(&self.sock, d, None, self.to, tos).await;
            }
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

/// The kernel side of the daemon: ICMP probe sockets, the route table, TUN devices and the IKE/ESP sockets.
/// Without root they are absent, logged once, and the cores still run, so `show` stays truthful.
struct OsDrivers {
    routes: Option<Routes>,
    probes: HashMap<SlaId, Arc<IcmpSocket>>,
    tuns: Vec<Option<Arc<tun_rs::AsyncDevice>>>,
    /// TUN devices of the GRE tunnels (`node.gre.tunnels` order).
    gre_tuns: Vec<Option<Arc<tun_rs::AsyncDevice>>>,
    /// Raw protocol-47 sockets by tunnel source address.
    gre: HashMap<Ipv4Addr, Arc<RawIp>>,
    /// GRE packets waiting to leave the socket of source `.0` in one `sendmmsg`.
    gre_batch: (Ipv4Addr, RawSendBatch),
    udp: HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>,
    readers: HashMap<SocketAddr, tokio::task::JoinHandle<()>>,
    raw_esp: Option<Arc<RawIp>>,
    /// Raw ESP packets waiting to leave in one `sendmmsg` (see [`RawSendBatch`]).
    raw_batch: RawSendBatch,
    /// ESP-in-UDP datagrams waiting to leave in one UDP GSO send (see [`GsoBatch`]).
    gso_batch: Option<GsoBatch>,
    /// UDP GSO works here (cleared at the first refusal).
    gso: bool,
    tx: mpsc::Sender<DriverMsg>,
    /// DHCP sockets (UDP 68, bound to their device) by device.
    dhcp: HashMap<String, Arc<tokio::net::UdpSocket>>,
    /// (IOS name, device, MAC) of the DHCP interfaces, for the node to start their clients.
    dhcp_macs: Vec<(String, String, [u8; 6])>,
    handle: Option<rtnetlink::Handle>,
    /// Addresses of Loopback interfaces that Lifeline put on `lo` (removed at shutdown).
    loopback_added: Vec<(Ipv4Addr, u8)>,
    /// SIP over TCP/TLS connections and the RFC 3263 resolver.
    sip: crate::os::sip_transport::SipStreams<DriverMsg>,
}

impl OsDrivers {
    async fn open(
        node: &Node,
        tx: &mpsc::Sender<DriverMsg>,
        workers: Option<&crate::workers::Workers>,
    ) -> OsDrivers {
        let cfg = &node.config;
        let handle = match rtnetlink::new_connection() {
            Ok((conn, handle, _)) => {
                tokio::spawn(conn);
                Some(handle)
            }
            Err(e) => {
                ios!(SYS, Warning, NO_NETLINK, "no rtnetlink: {e}");
                None
            }
        };
        if let Err(e) = watch_links(tx.clone()) {
            ios!(
                SYS,
                Warning,
                NO_LINK_EVENTS,
                "interface state is not followed: {e}"
            );
        }
        let routes = match &handle {
            Some(h) if !cfg.ip_routes.is_empty() || !node.gre.tunnels.is_empty() => {
                match Routes::open(h.clone()).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        ios!(
                            SYS,
                            Warning,
                            NO_KERNEL_ROUTES,
                            "routes stay in the RIB only: {e:#}"
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let mut probes = HashMap::new();
        for s in &cfg.ip_slas {
            let Some(config::SlaOperation::IcmpEcho {
                source_interface,
                source_ip,
                ..
            }) = &s.operation
            else {
                continue;
            };
            let device = source_interface
                .as_deref()
                .and_then(|i| cfg.interface(i))
                .and_then(|i| i.linux_name());
            match IcmpSocket::open(device, *source_ip, s.tos.unwrap_or(0)) {
                Ok(sock) => {
                    let sock = Arc::new(sock);
                    tokio::spawn(icmp_reader(sock.clone(), tx.clone()));
                    probes.insert(SlaId(s.id), sock);
                }
                Err(e) => ios!(
                    RTT,
                    Warning,
                    NO_PROBE_SOCKET,
                    "ip sla {}: cannot open an ICMP socket: {e}",
                    s.id
                ),
            }
        }
        // Loopback interfaces without `device` live on the host's `lo`.
        let loopbacks: Vec<(Ipv4Addr, u8)> = cfg
            .interfaces
            .iter()
            .filter(|i| i.kind == Some(config::InterfaceKind::Loopback) && i.device.is_none())
            .filter_map(|i| match &i.ip {
                config::IpAddressing::Static { primary, .. } => {
                    Some((primary.addr, primary.prefix_len))
                }
                _ => None,
            })
            .collect();
        let loopback_added = match (&handle, loopbacks.is_empty()) {
            (Some(h), false) => {
                match crate::os::link::add_loopback_addresses(h, &loopbacks).await {
                    Ok(added) => added,
                    Err(e) => {
                        ios!(
                            SYS,
                            Warning,
                            NO_LOOPBACK,
                            "loopback addresses not configured: {e:#}"
                        );
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        let mut tuns = Vec::new();
        let mut mtus = Vec::new();
        for (idx, t) in node.tunnels.iter().enumerate() {
            let mtu = t.dp.lock().ip_mtu();
            mtus.push(mtu);
            let dev = match (&handle, workers) {
                // A fast tunnel's device is read by its data-plane worker.
                (Some(h), Some(w)) if t.dp.fast() => {
                    let d = match tun::open_sync(h, &t.device, t.address, mtu).await {
                        Ok(d) => w.register_tun(idx, d).await,
                        Err(e) => Err(e),
                    };
                    match d {
                        Ok(d) => Some(d),
                        Err(e) => {
                            ios!(TUNNEL, Warning, NO_DEVICE, "{}: {e:#}", t.ios_name);
                            None
                        }
                    }
                }
                (Some(h), _) => match tun::open(h, &t.device, t.address, mtu).await {
                    Ok(d) => {
                        tokio::spawn(tun_reader(idx, mtu, d.clone(), tx.clone()));
                        Some(d)
                    }
                    Err(e) => {
                        ios!(TUNNEL, Warning, NO_DEVICE, "{}: {e:#}", t.ios_name);
                        None
                    }
                },
                (None, _) => None,
            };
            tuns.push(dev);
        }
        let mut gre_tuns = Vec::new();
        for (idx, t) in node.gre.tunnels.iter().enumerate() {
            let dev = match &handle {
                Some(h) => match tun::open(h, &t.device, t.address, t.mtu).await {
                    Ok(d) => {
                        tokio::spawn(gre_tun_reader(idx, t.mtu, d.clone(), tx.clone()));
                        Some(d)
                    }
                    Err(e) => {
                        ios!(TUNNEL, Warning, NO_DEVICE, "{}: {e:#}", t.ios_name);
                        None
                    }
                },
                None => None,
            };
            gre_tuns.push(dev);
        }
        if let Some(h) = &handle {
            let mut indexes = HashMap::new();
            for (idx, t) in node.gre.tunnels.iter().enumerate() {
                if let Ok(i) = crate::os::link::link_index(h, &t.device).await {
                    indexes.insert(i, idx);
                }
            }
            if !indexes.is_empty()
                && let Err(e) = watch_routes(indexes, tx.clone())
            {
                ios!(
                    SYS,
                    Warning,
                    NO_ROUTE_EVENTS,
                    "routes over GRE tunnels are not followed: {e}"
                );
            }
        }
        let mut gre = HashMap::new();
        for a in node.gre.sources() {
            match RawIp::open(IPPROTO_GRE, Some(a)) {
                Ok(sock) => {
                    let sock = Arc::new(sock);
                    tokio::task::spawn_local(gre_reader(sock.clone(), tx.clone()));
                    gre.insert(a, sock);
                }
                Err(e) => ios!(
                    TUNNEL,
                    Warning,
                    NO_SOCKET,
                    "cannot open a raw GRE socket on {a}: {e}"
                ),
            }
        }
        let mut udp = HashMap::new();
        // With workers, they read the ESP-carrying sockets (UDP 4500, raw ESP) and pass on what is not
        // a fast tunnel's ESP; the node keeps its own descriptors for what it sends.
        let mut esp_udp = Vec::new();
        for a in node.ike_addresses() {
            for port in [node::IKE_PORT, node::NAT_T_PORT] {
                let local = SocketAddrV4::new(a, port);
                match crate::os::udp::bind_udp(local) {
                    Ok(sock) => {
                        let dup = (workers.is_some() && port == node::NAT_T_PORT)
                            .then(|| crate::workers::dup_udp(&sock).ok())
                            .flatten();
                        match dup {
                            Some(d) => esp_udp.push((local, d)),
                            None => {
                                tokio::spawn(udp_reader(
                                    SocketAddr::V4(local),
                                    sock.clone(),
                                    tx.clone(),
                                ));
                            }
                        }
                        udp.insert(SocketAddr::V4(local), sock);
                    }
                    Err(e) => ios!(IKEV2, Warning, NO_SOCKET, "cannot bind {local}: {e}"),
                }
            }
        }
        let mut esp_raw = None;
        let raw_esp = if node.tunnels.is_empty() && node.gre.tunnels.iter().all(|t| !t.protected())
        {
            None
        } else {
            match RawIp::open(IPPROTO_ESP, None) {
                Ok(r) => {
                    esp_raw = workers.and_then(|_| r.try_clone_socket().ok());
                    // Workers read it: the node's descriptor only sends (no wake-up per packet in).
                    let r = match esp_raw {
                        Some(_) => r.send_only(),
                        None => Ok(r),
                    };
                    match r {
                        Ok(r) => {
                            let r = Arc::new(r);
                            if esp_raw.is_none() {
                                tokio::task::spawn_local(raw_esp_reader(r.clone(), tx.clone()));
                            }
                            Some(r)
                        }
                        Err(e) => {
                            ios!(IPSEC, Warning, NO_RAW_ESP, "raw ESP unavailable: {e}");
                            None
                        }
                    }
                }
                Err(e) => {
                    ios!(
                        IPSEC,
                        Warning,
                        NO_RAW_ESP,
                        "raw ESP unavailable (NAT-T only): {e}"
                    );
                    None
                }
            }
        };
        let mut dhcp = HashMap::new();
        let mut dhcp_macs = Vec::new();
        for (ios, device) in node.dhcp_interfaces() {
            let mac = std::fs::read_to_string(format!("/sys/class/net/{device}/address"))
                .ok()
                .and_then(|s| parse_mac(s.trim()));
            let sock = crate::os::udp::bind_dhcp(&device);
            match (mac, sock) {
                (Some(mac), Ok(sock)) => {
                    tokio::spawn(dhcp_reader(device.clone(), sock.clone(), tx.clone()));
                    dhcp.insert(device.clone(), sock);
                    dhcp_macs.push((ios, device, mac));
                }
                (None, _) => ios!(DHCP, Warning, NO_DEVICE, "{ios}: no device {device}"),
                (_, Err(e)) => ios!(
                    DHCP,
                    Warning,
                    NO_SOCKET,
                    "{ios}: cannot open UDP 68 on {device}: {e}"
                ),
            }
        }
        if let Some(w) = workers {
            w.start(Arc::new(crate::workers::Ctx {
                tunnels: node.tunnels.iter().map(|t| t.dp.clone()).collect(),
                spis: node.spis.clone(),
                tuns: tuns.clone(),
                mtus,
                udp: esp_udp,
                raw: esp_raw,
                tx: tx.clone(),
            }));
        }
        OsDrivers {
            routes,
            probes,
            tuns,
            gre_tuns,
            gre,
            gre_batch: (Ipv4Addr::UNSPECIFIED, RawSendBatch::default()),
            udp,
            readers: HashMap::new(),
            raw_esp,
            raw_batch: RawSendBatch::default(),
            gso_batch: None,
            gso: true,
            tx: tx.clone(),
            dhcp,
            dhcp_macs,
            handle,
            loopback_added,
            sip: crate::os::sip_transport::SipStreams::new(tx.clone(), DriverMsg::Sip),
        }
    }

    /// Send what the cores want sent, apply the route changes they decided.
    async fn flush(&mut self, app: &mut Appliance) {
        // GRE first: a protected packet for a new peer starts IKE, whose first message is a node output.
        self.flush_gre(app).await;
        while let Some(o) = app.node.poll_output() {
            if !matches!(o, Output::Udp { .. } | Output::Tun { .. })
                && let Some(b) = self.gso_batch.as_mut()
            {
                // Keep the order of what leaves by UDP/IP (IKE after the ESP before it); TUN writes may pass.
                b.send(&mut self.gso).await;
            }
            if !matches!(o, Output::RawEsp { .. } | Output::Tun { .. })
                && !self.raw_batch.packets.is_empty()
                && let Some(r) = &self.raw_esp
            {
                r.send_batch(&mut self.raw_batch).await;
            }
            match o {
                Output::Udp {
                    local,
                    remote,
                    payload,
                    tos,
                } => {
                    let sock = self.udp.get(&local).or_else(|| {
                        // IKE answers from the address it was reached on; fall back to any socket on the port.
                        self.udp
                            .iter()
                            .find(|(a, _)| a.port() == local.port())
                            .map(|(_, s)| s)
                    });
                    let Some(s) = sock else { continue };
                    let SocketAddr::V4(to) = remote else {
                        let _ = s.send_to(&payload, remote).await;
                        continue;
                    };
                    let s = s.clone();
                    let batch = self.gso_batch.get_or_insert_with(|| GsoBatch {
                        sock: s.clone(),
                        to,
                        segment: payload.len(),
                        count: 0,
                        tos,
                        closed: false,
                        buf: Vec::with_capacity(crate::os::udp::GSO_MAX_BYTES),
                    });
                    if batch.count > 0 && !batch.accepts(&s, to, payload.len(), tos) {
                        batch.send(&mut self.gso).await;
                    }
                    if batch.count == 0 {
                        batch.sock = s;
                        batch.to = to;
                        batch.tos = tos;
                        batch.segment = payload.len();
                    }
                    batch.push(&payload);
                }
                Output::RawEsp { dst, payload, tos } => {
                    if let Some(r) = &self.raw_esp {
                        if !self.raw_batch.accepts(tos) {
                            r.send_batch(&mut self.raw_batch).await;
                        }
                        self.raw_batch.tos = tos;
                        self.raw_batch.packets.push((dst, payload));
                    }
                }
                Output::Tun { tunnel, packet } => {
                    if let Some(Some(dev)) = self.tuns.get(tunnel) {
                        let _ = dev.send(&packet).await;
                    }
                }
                Output::Dhcp {
                    device,
                    dst,
                    payload,
                } => {
                    if let Some(s) = self.dhcp.get(&device) {
                        let _ = s
                            .send_to(&payload, SocketAddr::V4(SocketAddrV4::new(dst, 67)))
                            .await;
                    }
                }
                Output::SetAddress {
                    device,
                    addr,
                    prefix,
                    old,
                } => {
                    if let Some(h) = &self.handle
                        && let Err(e) =
                            crate::os::link::set_address(h, &device, addr, prefix, old).await
                    {
                        ios!(DHCP, Error, ADDRESS_FAILED, "{device}: {e:#}");
                    }
                }
                Output::OpenPort(local) => {
                    let SocketAddr::V4(v4) = local else { continue };
                    match crate::os::udp::bind_udp(v4) {
                        Ok(sock) => {
                            let reader =
                                tokio::spawn(udp_reader(local, sock.clone(), self.tx.clone()));
                            self.udp.insert(local, sock);
                            self.readers.insert(local, reader);
                        }
                        Err(e) => ios!(VPN_SIP, Error, NO_SOCKET, "cannot bind {local}: {e}"),
                    }
                }
                Output::ClosePort(local) => {
                    self.udp.remove(&local);
                    if let Some(r) = self.readers.remove(&local) {
                        r.abort();
                    }
                }
                Output::Sip(o) => self.sip.handle(o),
            }
        }
        while let Some(p) = app.node.failover.poll_probe() {
            if let Some(sock) = self.probes.get(&p.op_id) {
                // A send error (link down) is a lost probe: the SLA times it out, which is the point.
                let _ = sock.send_to(&p.payload, p.dest).await;
            }
        }
        while let Some(change) = app.node.failover.poll_route_change() {
            let Some(routes) = &self.routes else { continue };
            match change {
                // Connected routes are the kernel's own.
                RibEvent::Installed(entry) if entry.source == RouteSource::Connected => {}
                RibEvent::Installed(entry) => {
                    let Some(nh) = entry.next_hops().next() else {
                        continue;
                    };
                    let route = KernelRoute {
                        prefix: entry.prefix.addr(),
                        len: entry.prefix.prefix_len(),
                        gateway: nh.gateway,
                        device: app
                            .node
                            .config
                            .interface(&nh.interface)
                            .and_then(|i| i.linux_name())
                            .map(str::to_string),
                    };
                    match routes.add(&route).await {
                        Ok(()) => ios!(
                            IP,
                            Informational,
                            ROUTE_INSTALLED,
                            "{} via {} {} [{}]",
                            entry.prefix,
                            nh.gateway
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| "-".into()),
                            nh.interface,
                            entry.distance
                        ),
                        Err(e) => ios!(IP, Error, ROUTE_FAILED, "{e:#}"),
                    }
                }
                RibEvent::Withdrawn { prefix } => {
                    let route = KernelRoute {
                        prefix: prefix.addr(),
                        len: prefix.prefix_len(),
                        gateway: None,
                        device: None,
                    };
                    match routes.del_prefix(&route).await {
                        Ok(()) => ios!(IP, Informational, ROUTE_WITHDRAWN, "{prefix}"),
                        Err(e) => ios!(IP, Error, ROUTE_FAILED, "{e:#}"),
                    }
                }
            }
        }
        if let Some(b) = self.gso_batch.as_mut() {
            b.send(&mut self.gso).await;
        }
        if let Some(r) = &self.raw_esp {
            r.send_batch(&mut self.raw_batch).await;
        }
    }

    /// GRE datagrams, TUN writes and shortcut routes of the GRE tunnels.
    async fn flush_gre(&mut self, app: &mut Appliance) {
        use crate::gre::GreOut;
        let now = Instant::now();
        while let Some(o) = app.node.poll_gre_output(now) {
            match o {
                // Protected GRE's raw ESP joins the raw-ESP batch (sent at the end of `flush`, or before
                // anything that must not overtake it).
                GreOut::Esp { dst, payload } => {
                    if let Some(r) = &self.raw_esp {
                        if !self.raw_batch.accepts(0) {
                            r.send_batch(&mut self.raw_batch).await;
                        }
                        self.raw_batch.tos = 0;
                        self.raw_batch.packets.push((dst, payload));
                    }
                }
                GreOut::Ip {
                    src, dst, payload, ..
                } => {
                    let (at, batch) = &mut self.gre_batch;
                    if !batch.packets.is_empty() && (*at != src || !batch.accepts(0)) {
                        if let Some(s) = self.gre.get(at) {
                            s.send_batch(batch).await;
                        }
                        batch.packets.clear();
                    }
                    if self.gre.contains_key(&src) {
                        *at = src;
                        batch.packets.push((dst, payload));
                    }
                }
                GreOut::Tun { tunnel, packet } => {
                    if let Some(Some(dev)) = self.gre_tuns.get(tunnel) {
                        let _ = dev.send(&packet).await;
                    }
                }
                GreOut::RouteAdd {
                    tunnel,
                    prefix,
                    len,
                } => {
                    let Some(routes) = &self.routes else { continue };
                    let device = app.node.gre.tunnels.get(tunnel).map(|t| t.device.clone());
                    let route = KernelRoute {
                        prefix,
                        len,
                        gateway: None,
                        device,
                    };
                    match routes.add(&route).await {
                        Ok(()) => ios!(
                            IP,
                            Informational,
                            ROUTE_INSTALLED,
                            "{prefix}/{len} via NHRP shortcut [250]"
                        ),
                        Err(e) => ios!(IP, Error, ROUTE_FAILED, "{e:#}"),
                    }
                }
                GreOut::RouteDel {
                    tunnel: _,
                    prefix,
                    len,
                    restore,
                } => {
                    let Some(routes) = &self.routes else { continue };
                    let route = KernelRoute {
                        prefix,
                        len,
                        gateway: restore,
                        device: None,
                    };
                    // The static route the shortcut replaced comes back; else the shortcut just goes.
                    let r = if restore.is_some() {
                        routes.add(&route).await
                    } else {
                        routes.del_prefix(&route).await
                    };
                    match r {
                        Ok(()) => ios!(
                            IP,
                            Informational,
                            ROUTE_WITHDRAWN,
                            "{prefix}/{len} NHRP shortcut removed"
                        ),
                        Err(e) => ios!(IP, Error, ROUTE_FAILED, "{e:#}"),
                    }
                }
            }
        }
        let (at, batch) = &mut self.gre_batch;
        if let Some(s) = self.gre.get(at) {
            s.send_batch(batch).await;
        }
        batch.packets.clear();
    }

    async fn shutdown(mut self) {
        self.sip.shutdown();
        if let Some(h) = &self.handle
            && !self.loopback_added.is_empty()
        {
            let _ = crate::os::link::remove_loopback_addresses(h, &self.loopback_added).await;
        }
        if let Some(r) = self.routes
            && let Err(e) = r.remove_all().await
        {
            ios!(IP, Error, ROUTE_FAILED, "cleaning up at shutdown: {e:#}");
        }
    }
}

/// Follow carrier changes of every device (`RTMGRP_LINK`), so routes through an interface that went down
/// are withdrawn at once and `track N interface X line-protocol` objects follow the line.
fn watch_links(tx: mpsc::Sender<DriverMsg>) -> std::io::Result<()> {
    use futures::StreamExt;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags};
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    let groups = rtnetlink::sys::SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK);
    {
        use rtnetlink::sys::AsyncSocket;
        conn.socket_mut().socket_mut().bind(&groups)?;
    }
    tokio::spawn(conn);
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = msg.payload
            else {
                continue;
            };
            let Some(device) = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }) else {
                continue;
            };
            let up = link.header.flags.contains(LinkFlags::Up)
                && link.header.flags.contains(LinkFlags::LowerUp);
            if tx.send(DriverMsg::Link { device, up }).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Follow kernel routes with a gateway over the GRE tunnels' TUN devices (`RTMGRP_IPV4_ROUTE`): a TUN device
/// does not tell which gateway the kernel chose, so mGRE forwarding keeps its own copy of these routes
/// (`Gre::kernel_route`). `indexes` maps interface index -> GRE tunnel.
fn watch_routes(indexes: HashMap<u32, usize>, tx: mpsc::Sender<DriverMsg>) -> std::io::Result<()> {
    use futures::StreamExt;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let (mut conn, _handle, mut messages) = rtnetlink::new_connection()?;
    let groups = rtnetlink::sys::SocketAddr::new(0, rtnetlink::constants::RTMGRP_IPV4_ROUTE);
    {
        use rtnetlink::sys::AsyncSocket;
        conn.socket_mut().socket_mut().bind(&groups)?;
    }
    tokio::spawn(conn);
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let (route, add) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => (r, true),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => (r, false),
                _ => continue,
            };
            let mut oif = None;
            let mut gateway = None;
            let mut dst = Some(Ipv4Addr::UNSPECIFIED);
            for a in &route.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(*d),
                    RouteAttribute::Destination(_) => dst = None,
                    _ => {}
                }
            }
            let (Some(tunnel), Some(gateway), Some(prefix)) =
                (oif.and_then(|i| indexes.get(&i)), gateway, dst)
            else {
                continue;
            };
            let msg = DriverMsg::KernelRoute {
                tunnel: *tunnel,
                prefix,
                len: route.header.destination_prefix_length,
                gateway,
                add,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

async fn dhcp_reader(
    device: String,
    sock: Arc<tokio::net::UdpSocket>,
    tx: mpsc::Sender<DriverMsg>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        match sock.recv_from(&mut buf).await {
            // Only servers (port 67) talk to a DHCP client.
            Ok((n, from)) if from.port() == 67 => {
                let bytes = buf[..n].to_vec();
                if tx
                    .send(DriverMsg::Dhcp {
                        device: device.clone(),
                        bytes,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) | Err(_) => continue,
        }
    }
}

/// Reads straight into pooled buffers (no copy, no allocation per packet); `mtu` is the device's.
async fn tun_reader(
    tunnel: usize,
    mtu: u16,
    dev: Arc<tun_rs::AsyncDevice>,
    tx: mpsc::Sender<DriverMsg>,
) {
    let room = usize::from(mtu).max(1500);
    loop {
        let mut bytes = PacketBuf::with_room(room);
        let Ok(n) = dev.recv(bytes.space_mut()).await else {
            return;
        };
        bytes.set_len(n);
        // Only IPv4 goes through a Lifeline tunnel (the buffer goes back to the pool).
        if n == 0 || bytes[0] >> 4 != 4 {
            continue;
        }
        if tx.send(DriverMsg::Tun { tunnel, bytes }).await.is_err() {
            return;
        }
    }
}

/// Reads straight into pooled buffers with room in front for the GRE header and ESP (no copy, no
/// allocation per packet); `mtu` is the device's.
async fn gre_tun_reader(
    tunnel: usize,
    mtu: u16,
    dev: Arc<tun_rs::AsyncDevice>,
    tx: mpsc::Sender<DriverMsg>,
) {
    let room = usize::from(mtu).max(1500);
    loop {
        let mut bytes = PacketBuf::with_headroom(crate::pkt::GRE_HEADROOM, room);
        let Ok(n) = dev.recv(bytes.space_mut()).await else {
            return;
        };
        bytes.set_len(n);
        if n == 0 || bytes[0] >> 4 != 4 {
            continue;
        }
        if tx.send(DriverMsg::GreTun { tunnel, bytes }).await.is_err() {
            return;
        }
    }
}

/// Up to [`crate::os::raw_ip::RAW_BATCH`] GRE datagrams per `recvmmsg`, each read into a pooled buffer.
async fn gre_reader(sock: Arc<RawIp>, tx: mpsc::Sender<DriverMsg>) {
    let mut batch = RawRecvBatch::default();
    while let Ok(n) = sock.recv_batch(&mut batch).await {
        for i in 0..n {
            let Some(p) = batch.take(i) else { continue };
            let local = if p.to.is_multicast() || p.to.is_broadcast() {
                sock.local
            } else {
                p.to
            };
            let msg = DriverMsg::Gre {
                local,
                from: p.from,
                bytes: p.bytes,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

async fn udp_reader(
    local: SocketAddr,
    sock: Arc<tokio::net::UdpSocket>,
    tx: mpsc::Sender<DriverMsg>,
) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = crate::os::udp::gro_cmsg_buffer();
    loop {
        match crate::os::udp::recv_gro(&sock, &mut buf, &mut cmsg).await {
            Ok(r) => {
                let bytes = PacketBuf::copy_from(&buf[..r.len]);
                if tx
                    .send(DriverMsg::Udp {
                        local,
                        remote: r.from,
                        bytes,
                        segment: r.segment,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP errors surface as recv errors on UDP sockets: not fatal.
            Err(_) => continue,
        }
    }
}

/// Up to [`crate::os::raw_ip::RAW_BATCH`] ESP packets per `recvmmsg`, each read into a pooled buffer.
async fn raw_esp_reader(sock: Arc<RawIp>, tx: mpsc::Sender<DriverMsg>) {
    let mut batch = RawRecvBatch::default();
    while let Ok(n) = sock.recv_batch(&mut batch).await {
        for i in 0..n {
            let Some(p) = batch.take(i) else { continue };
            let msg = DriverMsg::RawEsp {
                from: p.from,
                tos: p.tos,
                bytes: p.bytes,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

async fn icmp_reader(sock: Arc<IcmpSocket>, tx: mpsc::Sender<DriverMsg>) {
    let mut buf = vec![0u8; 2048];
    while let Ok((from, range)) = sock.recv(&mut buf).await {
        let bytes = buf[range].to_vec();
        if tx.send(DriverMsg::Icmp { from, bytes }).await.is_err() {
            return;
        }
    }
}

fn handle(app: &mut Appliance, req: &Request) -> Reply {
    match req.words.first().map(|w| w.to_ascii_lowercase()) {
        Some(w) if w.len() >= 2 && "clear".starts_with(&w) => {
            let words: Vec<String> = req.words.iter().map(|w| w.to_ascii_lowercase()).collect();
            let is = |i: usize, full: &str| {
                words
                    .get(i)
                    .is_some_and(|w| !w.is_empty() && full.starts_with(w.as_str()))
            };
            if is(1, "crypto") && is(2, "session") {
                let n = app.node.clear_crypto_sessions(Instant::now());
                Reply {
                    ok: true,
                    output: format!("{n} crypto session(s) cleared\n"),
                }
            } else if is(1, "ip") && is(2, "nhrp") {
                let n = app.node.gre.clear_nhrp(Instant::now());
                Reply {
                    ok: true,
                    output: format!("{n} NHRP cache entr(ies) cleared\n"),
                }
            } else if is(1, "vpn-sip") && is(2, "session") {
                let n = app.node.clear_vpnsip_sessions(Instant::now());
                Reply {
                    ok: true,
                    output: format!("{n} VPN-SIP session(s) cleared\n"),
                }
            } else {
                Reply {
                    ok: false,
                    output: format!("% Invalid input detected: `{}`", req.words.join(" ")),
                }
            }
        }
        Some(w) if !w.is_empty() && "show".starts_with(&w) => match show::resolve(&req.words) {
            Ok((cmd, args)) => Reply {
                ok: true,
                output: show::answer(&app.node, app.started, cmd, &args, req.json),
            },
            Err(e) => Reply {
                ok: false,
                output: e,
            },
        },
        _ => Reply {
            ok: false,
            output: format!("% Invalid input detected: `{}`", req.words.join(" ")),
        },
    }
}

async fn connection(stream: UnixStream, tx: mpsc::Sender<ControlMsg>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is one line; a client that sends garbage gets an error reply, never a crash.
    let reply = match BufReader::new(read).read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let (otx, orx) = oneshot::channel();
                if tx.send((req, otx)).await.is_err() {
                    return;
                }
                match orx.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            Err(e) => Reply {
                ok: false,
                output: format!("% malformed request: {e}"),
            },
        },
        Err(_) => return,
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dataplane_threads_are_one_per_fast_tunnel_plus_the_reader_capped_by_cores() {
        assert_eq!(default_threads(8, 0), 0, "no fast tunnel: no idle workers");
        assert_eq!(default_threads(8, 1), 2);
        assert_eq!(default_threads(8, 3), 4);
        assert_eq!(default_threads(2, 5), 2);
        assert_eq!(default_threads(1, 1), 1);
    }

    /// Set in the child process that does the measuring (see the test below).
    const CHILD: &str = "LIFELINE_NO_ALLOC_CHILD";

    fn site(me: &str, peer: &str, wan: &str, peer_wan: &str, tunnel_ip: &str, extra: &str) -> Node {
        let (profile_extra, policy, iface_extra) = match extra {
            "udp" => (" nat force-encap\n", "", ""),
            "shaped" => (
                "",
                "policy-map OUT\n class class-default\n  shape average 10000000\n",
                " service-policy output OUT\n",
            ),
            _ => ("", "", ""),
        };
        let text = format!(
            "hostname {me}
crypto ikev2 keyring KR
 peer {peer}
  address {peer_wan}
  identity key-id {peer}
  pre-shared-key lifeline-test-key-0388
crypto ikev2 profile PROF
 match identity remote key-id {peer}
 identity local key-id {me}
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
{profile_extra}crypto ipsec transform-set TS esp-gcm 256
 mode tunnel
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
{policy}interface GigabitEthernet0
 ip address {wan} 255.255.255.0
interface Tunnel0
 ip address {tunnel_ip} 255.255.255.252
 tunnel source GigabitEthernet0
 tunnel mode ipsec ipv4
 tunnel destination {peer_wan}
 tunnel protection ipsec profile IPS
{iface_extra}"
        );
        let parsed = config::parse(&text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let (node, problems) = Node::new(Instant::now(), parsed.config, 7);
        assert!(problems.is_empty(), "{problems:?}");
        node
    }

    /// An IPv4/UDP packet of `len` bytes (valid header checksum) from `src` to `dst`.
    fn packet(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let mut s: u32 = p[..20]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        p[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&5678u16.to_be_bytes());
        p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
        p
    }

    /// What a driver would read: every output of `from` that travels (UDP, raw ESP) goes to `to` as the
    /// driver message its reader would send, through the same channel type, and is dispatched there. TUN
    /// writes are counted and dropped (their buffers go back to the pool). One output at a time: the
    /// harness itself must not allocate.
    fn deliver(
        now: Instant,
        from: &mut Appliance,
        to: &mut Appliance,
        from_wan: Ipv4Addr,
        ch: &mut (mpsc::Sender<DriverMsg>, mpsc::Receiver<DriverMsg>),
    ) -> usize {
        let mut tun = 0;
        while let Some(o) = from.node.poll_output() {
            let msg = match o {
                Output::Udp {
                    local,
                    remote,
                    payload,
                    ..
                } => {
                    let segment = payload.len();
                    DriverMsg::Udp {
                        local: remote,
                        remote: local,
                        bytes: payload,
                        segment,
                    }
                }
                Output::RawEsp { payload, tos, .. } => DriverMsg::RawEsp {
                    from: from_wan,
                    tos,
                    bytes: payload,
                },
                Output::Tun { .. } => {
                    tun += 1;
                    continue;
                }
                _ => continue,
            };
            hand_over(now, to, ch, msg);
        }
        tun
    }

    /// `msg` through the driver channel (as a reader sends it) into `to`'s dispatch.
    fn hand_over(
        now: Instant,
        to: &mut Appliance,
        ch: &mut (mpsc::Sender<DriverMsg>, mpsc::Receiver<DriverMsg>),
        msg: DriverMsg,
    ) {
        assert!(ch.0.try_send(msg).is_ok());
        let msg = ch.1.try_recv().unwrap();
        dispatch(to, now, msg);
    }

    fn timers(now: Instant, app: &mut Appliance) {
        if app.node.poll_timeout().is_some_and(|d| d <= now) {
            app.node.handle_timeout(now);
        }
    }

    /// Per variant: (packets that reached the far TUN, allocations, pool blocks allocated) over the
    /// measured rounds.
    fn measure(variant: &str) -> (usize, u64, u64) {
        let (wan_a, wan_b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let t0 = Instant::now();
        // `worker-*`: after the SAs are up, the packets take the data-plane worker's path instead.
        let (worker, config) = match variant.strip_prefix("worker-") {
            Some(v) => (true, v),
            None => (false, variant),
        };
        let mut a = Appliance {
            node: site("A", "B", "192.0.2.1", "192.0.2.2", "10.0.0.1", config),
            started: t0,
        };
        let mut b = Appliance {
            node: site("B", "A", "192.0.2.2", "192.0.2.1", "10.0.0.2", config),
            started: t0,
        };
        let mut ch = mpsc::channel::<DriverMsg>(1024);
        a.node.start(t0);
        for _ in 0..10 {
            deliver(t0, &mut a, &mut b, wan_a, &mut ch);
            deliver(t0, &mut b, &mut a, wan_b, &mut ch);
        }
        assert!(
            a.node.tunnels[0].dp.lock().outbound_spi().is_some(),
            "{variant}: no SA"
        );
        let pkts: Vec<(Vec<u8>, Vec<u8>)> = [64, 512, 1400]
            .iter()
            .map(|&n| {
                (
                    packet([10, 0, 0, 1], [10, 0, 0, 2], n),
                    packet([10, 0, 0, 2], [10, 0, 0, 1], n),
                )
            })
            .collect();
        if worker {
            assert_eq!(a.node.enable_fast_path(), 1, "{variant}");
            assert_eq!(b.node.enable_fast_path(), 1, "{variant}");
        }
        // The worker's state: its engine and staging vectors (allocated once, as in `crate::workers`).
        let mut engine = crate::fastpath::Engine::default();
        let mut staged: Vec<crate::workers::Staged> = Vec::with_capacity(64);
        let mut opened: Vec<crate::workers::Staged> = Vec::with_capacity(64);
        let mut round = |now: Instant, a: &mut Appliance, b: &mut Appliance| {
            let mut got = 0;
            if worker {
                for (ab, ba) in &pkts {
                    got += worker_pass(now, &mut engine, &mut staged, &mut opened, a, b, ab, wan_a);
                    got += worker_pass(now, &mut engine, &mut staged, &mut opened, b, a, ba, wan_b);
                    timers(now, a);
                    timers(now, b);
                    got += deliver(now, a, b, wan_a, &mut ch);
                    got += deliver(now, b, a, wan_b, &mut ch);
                }
                return got;
            }
            for (ab, ba) in &pkts {
                let m = DriverMsg::Tun {
                    tunnel: 0,
                    bytes: PacketBuf::copy_from(ab),
                };
                assert!(ch.0.try_send(m).is_ok());
                let m = ch.1.try_recv().unwrap();
                dispatch(a, now, m);
                let m = DriverMsg::Tun {
                    tunnel: 0,
                    bytes: PacketBuf::copy_from(ba),
                };
                assert!(ch.0.try_send(m).is_ok());
                let m = ch.1.try_recv().unwrap();
                dispatch(b, now, m);
                timers(now, a);
                timers(now, b);
                got += deliver(now, a, b, wan_a, &mut ch);
                got += deliver(now, b, a, wan_b, &mut ch);
            }
            got
        };
        // Warm-up: the pool, the queues and the channel reach their working size.
        let mut now = t0;
        for _ in 0..200 {
            now += Duration::from_millis(1);
            round(now, &mut a, &mut b);
        }
        let fresh = crate::pkt::fresh_blocks();
        let reg = stats_alloc::Region::new(crate::GLOBAL);
        let mut got = 0;
        for _ in 0..1000 {
            now += Duration::from_millis(1);
            got += round(now, &mut a, &mut b);
        }
        let stats = reg.change();
        let fresh = crate::pkt::fresh_blocks() - fresh;
        (got, (stats.allocations + stats.reallocations) as u64, fresh)
    }

    /// False in the test process: it runs test `name` again in a child process with one test thread
    /// (so no other test allocates while it counts) and checks that it passed and printed `no_alloc: ok`.
    /// True in that child, which does the measuring.
    fn in_child(name: &str) -> bool {
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("daemon::tests::{name}"),
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{text}");
        assert!(out.status.success(), "{text}");
        assert!(text.contains("no_alloc: ok"), "{text}");
        false
    }

    /// One packet through the data-plane worker code (`crate::workers`): sealed on `from`'s tunnel 0 as
    /// the TUN reader's batch, staged in pooled buffers, demultiplexed by SPI as the ESP readers do, opened
    /// on `to`'s tunnel 0, staged for the TUN write. Returns the packets that reached `to`'s TUN.
    #[allow(clippy::too_many_arguments)]
    fn worker_pass(
        now: Instant,
        engine: &mut crate::fastpath::Engine,
        staged: &mut Vec<crate::workers::Staged>,
        opened: &mut Vec<crate::workers::Staged>,
        from: &mut Appliance,
        to: &mut Appliance,
        packet: &[u8],
        from_wan: Ipv4Addr,
    ) -> usize {
        use crate::workers::{Staged, stage};
        let r = engine.seal(now, &from.node.tunnels[0].dp, [packet], &mut |o| {
            stage(staged, o)
        });
        if r.notify {
            from.node.tunnel_touched(now, 0);
        }
        for s in staged.drain(..) {
            let (esp, src) = match &s {
                Staged::Udp { bytes, src, .. } => (&bytes[..], SocketAddr::V4(*src)),
                Staged::Raw { bytes, .. } => (&bytes[..], SocketAddr::from((from_wan, 0))),
                Staged::Tun(_) => continue,
            };
            let spi = u32::from_be_bytes([esp[0], esp[1], esp[2], esp[3]]);
            let idx = to.node.spis.get(spi).expect("SPI known");
            let meta = dataplane::RecvMeta { from: src, tos: 0 };
            let r = engine.open(now, &to.node.tunnels[idx].dp, [(esp, meta)], &mut |o| {
                stage(opened, o)
            });
            if r.notify {
                to.node.tunnel_touched(now, idx);
            }
        }
        let n = opened.len();
        opened.clear();
        n
    }

    /// Item 5 of the ESP issue, "per-packet path with no allocation", for the appliance and not only the
    /// library: after warm-up, 6000 packets (64, 512 and 1400 bytes, both directions, 1000 rounds) go
    /// driver message -> channel -> `dispatch` -> node (seal) -> `Output` -> driver message -> channel ->
    /// `dispatch` -> node (open) -> `Output::Tun`, with timers polled as the daemon loop does, under a
    /// counting global allocator: zero allocations, for raw ESP, ESP in UDP (`nat force-encap`) and a
    /// tunnel with a `shape average` policy (queued and released by timers); `worker-raw` and `worker-udp`
    /// send the same packets through the data-plane worker code instead (`worker_pass`: seal under one
    /// lock, stage in pooled buffers, SPI lookup, open, stage for the TUN). The measuring runs in a
    /// child process with one test thread, so no other test allocates meanwhile.
    #[test]
    fn steady_state_packet_path_does_not_allocate() {
        if !in_child("steady_state_packet_path_does_not_allocate") {
            return;
        }
        for variant in ["raw", "udp", "shaped", "worker-raw", "worker-udp"] {
            let (got, allocs, fresh) = measure(variant);
            println!(
                "{variant}: {got} packets delivered to the far TUN in 1000 rounds; {allocs} allocations, {fresh} new pool blocks"
            );
            if variant == "shaped" {
                // 10 Mbit/s shaper, offered ~31 Mbit/s: it queues, releases on timers and tail-drops.
                assert!(got > 500, "{variant}: {got}");
            } else {
                assert_eq!(got, 6000, "{variant}");
            }
            assert_eq!(allocs, 0, "{variant}: the per-packet path allocated");
            assert_eq!(fresh, 0, "{variant}");
        }
        println!("no_alloc: ok");
    }

    /// A DMVPN node (mGRE, key, a static NHRP map to the peer) for the GRE variants: "gre" plain, "gre-esp"
    /// protected by raw ESP (IKEv2, AES-GCM-256, transport mode), "gre-udp" protected by ESP in UDP
    /// (`nat force-encap`).
    fn gre_site(
        me: &str,
        wan: &str,
        peer_wan: &str,
        tunnel_ip: &str,
        peer_ip: &str,
        variant: &str,
    ) -> Node {
        let crypto = format!(
            "crypto ikev2 keyring KR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key lifeline-test-key-0388
crypto ikev2 profile PROF
 match identity remote key-id dmvpn
 identity local key-id dmvpn
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
{}crypto ipsec transform-set TS esp-gcm 256
 mode transport
crypto ipsec profile IPS
 set transform-set TS
 set ikev2-profile PROF
",
            if variant == "gre-udp" {
                " nat force-encap\n"
            } else {
                ""
            }
        );
        let protected = variant != "gre";
        let text = format!(
            "hostname {me}
{}interface GigabitEthernet0
 ip address {wan} 255.255.255.0
interface Tunnel0
 ip address {tunnel_ip} 255.255.255.0
 ip nhrp map {peer_ip} {peer_wan}
 ip nhrp network-id 99
 tunnel source GigabitEthernet0
 tunnel mode gre multipoint
 tunnel key 100000
{}",
            if protected { crypto.as_str() } else { "" },
            if protected {
                " tunnel protection ipsec profile IPS\n"
            } else {
                ""
            }
        );
        let parsed = config::parse(&text);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let (node, problems) = Node::new(Instant::now(), parsed.config, 7);
        assert!(problems.is_empty(), "{problems:?}");
        node
    }

    /// [`deliver`] for GRE: the GRE outputs of `from` (GRE datagrams, raw ESP) go to `to` as the raw GRE and
    /// raw ESP readers' messages, then the node outputs (IKE, ESP in UDP); GRE TUN writes are counted.
    fn deliver_gre(
        now: Instant,
        from: &mut Appliance,
        to: &mut Appliance,
        (from_wan, to_wan): (Ipv4Addr, Ipv4Addr),
        ch: &mut (mpsc::Sender<DriverMsg>, mpsc::Receiver<DriverMsg>),
    ) -> usize {
        use crate::gre::GreOut;
        let mut tun = 0;
        while let Some(o) = from.node.poll_gre_output(now) {
            let msg = match o {
                GreOut::Ip { payload, .. } => DriverMsg::Gre {
                    local: to_wan,
                    from: from_wan,
                    bytes: payload,
                },
                GreOut::Esp { payload, .. } => DriverMsg::RawEsp {
                    from: from_wan,
                    tos: 0,
                    bytes: payload,
                },
                GreOut::Tun { .. } => {
                    tun += 1;
                    continue;
                }
                _ => continue,
            };
            hand_over(now, to, ch, msg);
        }
        tun + deliver(now, from, to, from_wan, ch)
    }

    /// [`measure`] for a GRE variant of [`gre_site`]: packets from the TUN reader (in pooled buffers with
    /// GRE headroom, as `gre_tun_reader` makes them) through GRE (and ESP) to the far node's TUN output.
    fn measure_gre(variant: &str) -> (usize, u64, u64) {
        let (wan_a, wan_b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let t0 = Instant::now();
        let mut a = Appliance {
            node: gre_site(
                "A",
                "192.0.2.1",
                "192.0.2.2",
                "10.0.0.1",
                "10.0.0.2",
                variant,
            ),
            started: t0,
        };
        let mut b = Appliance {
            node: gre_site(
                "B",
                "192.0.2.2",
                "192.0.2.1",
                "10.0.0.2",
                "10.0.0.1",
                variant,
            ),
            started: t0,
        };
        let mut ch = mpsc::channel::<DriverMsg>(1024);
        a.node.start(t0);
        b.node.start(t0);
        let pkts: Vec<(Vec<u8>, Vec<u8>)> = [64, 512, 1400]
            .iter()
            .map(|&n| {
                (
                    packet([10, 0, 0, 1], [10, 0, 0, 2], n),
                    packet([10, 0, 0, 2], [10, 0, 0, 1], n),
                )
            })
            .collect();
        let gre_buf = |p: &[u8]| PacketBuf::copy_with_headroom(crate::pkt::GRE_HEADROOM, p);
        let mut round = |now: Instant, a: &mut Appliance, b: &mut Appliance| {
            let mut got = 0;
            for (ab, ba) in &pkts {
                for (node, bytes) in [(&mut *a, gre_buf(ab)), (&mut *b, gre_buf(ba))] {
                    let m = DriverMsg::GreTun { tunnel: 0, bytes };
                    assert!(ch.0.try_send(m).is_ok());
                    let m = ch.1.try_recv().unwrap();
                    dispatch(node, now, m);
                }
                timers(now, a);
                timers(now, b);
                got += deliver_gre(now, a, b, (wan_a, wan_b), &mut ch);
                got += deliver_gre(now, b, a, (wan_b, wan_a), &mut ch);
            }
            got
        };
        // Warm-up: IKE keys the peers (protected variants; the first packets wait for the SA), then the
        // pool, the queues and the channel reach their working size.
        let mut now = t0;
        for _ in 0..200 {
            now += Duration::from_millis(1);
            round(now, &mut a, &mut b);
        }
        if variant != "gre" {
            for n in [&a, &b] {
                assert!(
                    n.node.gre_esp.peers.values().any(|p| p.out.is_some()),
                    "{variant}: no SA"
                );
            }
        }
        let fresh = crate::pkt::fresh_blocks();
        let reg = stats_alloc::Region::new(crate::GLOBAL);
        let mut got = 0;
        for _ in 0..1000 {
            now += Duration::from_millis(1);
            got += round(now, &mut a, &mut b);
        }
        let stats = reg.change();
        let fresh = crate::pkt::fresh_blocks() - fresh;
        let esp: u64 = a.node.gre_esp.peers.values().map(|p| p.encrypted).sum();
        if variant != "gre" {
            assert!(esp >= 3000, "{variant}: only {esp} packets were sealed");
            let udp = a.node.gre_esp.peers.values().any(|p| p.udp.is_some());
            assert_eq!(udp, variant == "gre-udp", "{variant}: ESP in UDP");
        }
        (got, (stats.allocations + stats.reallocations) as u64, fresh)
    }

    /// The same for DMVPN's GRE (#13's data path): after warm-up, 6000 packets go GRE TUN message ->
    /// channel -> `dispatch` -> GRE header in place (-> ESP seal in place) -> `GreOut`/`Output` -> raw GRE,
    /// raw ESP or UDP message -> `dispatch` -> (ESP open ->) GRE demux -> TUN output, with zero allocations
    /// and no new pool block: plain mGRE, mGRE protected by raw ESP and by ESP in UDP.
    #[test]
    fn gre_steady_state_packet_path_does_not_allocate() {
        if !in_child("gre_steady_state_packet_path_does_not_allocate") {
            return;
        }
        for variant in ["gre", "gre-esp", "gre-udp"] {
            let (got, allocs, fresh) = measure_gre(variant);
            println!(
                "{variant}: {got} packets delivered to the far TUN in 1000 rounds; {allocs} allocations, {fresh} new pool blocks"
            );
            assert_eq!(got, 6000, "{variant}");
            assert_eq!(allocs, 0, "{variant}: the per-packet path allocated");
            assert_eq!(fresh, 0, "{variant}");
        }
        println!("no_alloc: ok");
    }
}
