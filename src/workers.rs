//! The data-plane worker threads of `lifeline run --dataplane-threads N` (ARCHITECTURE.md, "Threads (data
//! plane)").
//!
//! Each worker `ll-dp-K` is an OS thread with its own current-thread tokio runtime (inside a `LocalSet`:
//! the raw ESP reader keeps nix `recvmmsg` headers, which are not `Send`). Fast tunnel `idx`'s TUN device
//! is registered with worker `idx % N`, which reads it, seals each batch under one lock of the tunnel
//! ([`crate::fastpath::Engine::seal`]) and sends the ESP itself (UDP GSO or `sendmmsg`, on its own
//! descriptors of the appliance's sockets). The ESP sockets (UDP 4500 per IKE address, raw ESP) are read
//! by the last worker; ESP for a fast tunnel is opened there and written to the tunnel's TUN device;
//! everything else goes to the node loop as before.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dataplane::RecvMeta;
use tokio::sync::{mpsc, oneshot};
use tun_rs::{AsyncDevice, SyncDevice};

use crate::daemon::{DriverMsg, GsoBatch};
use crate::fastpath::{BatchResult, Engine, FastOut, SharedTunnel, SpiMap, WorkerStats};
use crate::os::raw_ip::{RAW_BATCH, RawIp, RawPacket, RawRecvBatch, RawSendBatch};
use crate::pkt::PacketBuf;

/// Packets read from a TUN device (or opened from one `recvmmsg`) per lock of their tunnel.
pub const BATCH: usize = 32;

/// What the node loop tells a worker.
pub enum Cmd {
    /// Register tunnel `idx`'s TUN device with this worker's runtime and hand it back (the node and the
    /// ESP readers write to it from their threads).
    Tun {
        idx: usize,
        dev: SyncDevice,
        reply: oneshot::Sender<std::io::Result<Arc<AsyncDevice>>>,
    },
    /// Everything is open: start this worker's readers.
    Start(Arc<Ctx>),
}

/// What the workers share (built once the node loop opened the devices and sockets).
pub struct Ctx {
    pub tunnels: Vec<SharedTunnel>,
    pub spis: SpiMap,
    /// TUN devices of the SVTIs (`None`: no device, or not fast).
    pub tuns: Vec<Option<Arc<AsyncDevice>>>,
    /// MTU of each SVTI's device.
    pub mtus: Vec<u16>,
    /// The ESP-carrying UDP sockets (port 4500), duplicated once per worker that sends (shared by its TUN
    /// readers) and once for the reader.
    pub udp: Vec<(SocketAddrV4, std::net::UdpSocket)>,
    /// The raw ESP socket (duplicated likewise).
    pub raw: Option<socket2::Socket>,
    /// The node loop's driver channel.
    pub tx: mpsc::Sender<DriverMsg>,
}

/// The running workers.
pub struct Workers {
    pub stats: Vec<Arc<WorkerStats>>,
    cmds: Vec<mpsc::UnboundedSender<Cmd>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` (>= 1) worker threads `ll-dp-0` .. `ll-dp-{n-1}`.
    pub fn spawn(n: usize) -> std::io::Result<Workers> {
        let mut stats = Vec::new();
        let mut cmds = Vec::new();
        let mut threads = Vec::new();
        for k in 0..n {
            let s = Arc::new(WorkerStats::new(format!("ll-dp-{k}")));
            let (tx, rx) = mpsc::unbounded_channel();
            let st = s.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(s.name.clone())
                    .spawn(move || worker_main(k, n, st, rx))?,
            );
            stats.push(s);
            cmds.push(tx);
        }
        Ok(Workers {
            stats,
            cmds,
            threads,
        })
    }

    /// Stops the workers at shutdown: their command channels close, so each ends its command loop and
    /// with it its readers (dropped with its runtime) and its thread. Waits up to `timeout` for the threads
    /// and joins them; false when some did not end in time (they are left to the process exit).
    pub async fn stop(mut self, timeout: std::time::Duration) -> bool {
        self.cmds.clear();
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.threads.iter().all(|t| t.is_finished()) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        true
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Registers tunnel `idx`'s TUN device with its worker (`idx % N`).
    pub async fn register_tun(
        &self,
        idx: usize,
        dev: SyncDevice,
    ) -> anyhow::Result<Arc<AsyncDevice>> {
        let (reply, rx) = oneshot::channel();
        self.cmds[idx % self.len()]
            .send(Cmd::Tun { idx, dev, reply })
            .map_err(|_| anyhow::anyhow!("data-plane worker {} is gone", idx % self.len()))?;
        Ok(rx.await??)
    }

    pub fn start(&self, ctx: Arc<Ctx>) {
        for c in &self.cmds {
            let _ = c.send(Cmd::Start(ctx.clone()));
        }
    }
}

/// Which worker reads the ESP sockets (UDP 4500 on each address, raw ESP): the last one, so tunnel 0's
/// sending (worker 0) and the receiving run on different threads. (Counting down from the last worker per
/// socket put the raw ESP reader on worker 0 with one IKE address, next to tunnel 0's sealing: raw ESP then
/// ran at 587 Mbit/s against 712 inline in `scripts/bench-throughput`.)
pub fn reader_worker(n: usize) -> usize {
    n.saturating_sub(1)
}

fn worker_main(me: usize, n: usize, stats: Arc<WorkerStats>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::ios!(SYS, Error, NO_THREAD, "{}: no runtime: {e}", stats.name);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let name = format!("{}: commands", stats.name);
    // The command loop's own work (registering devices, spawning the readers) is supervised too.
    let body = async move {
        let mut devs: HashMap<usize, Arc<AsyncDevice>> = HashMap::new();
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Tun { idx, dev, reply } => {
                    let r = AsyncDevice::new(dev).map(Arc::new);
                    if let Ok(d) = &r {
                        devs.insert(idx, d.clone());
                    }
                    let _ = reply.send(r);
                }
                Cmd::Start(ctx) => start(me, n, &stats, &ctx, &devs),
            }
        }
        TaskEnd::NodeGone
    };
    local.block_on(&rt, supervise(name, body));
}

/// How a worker task ended (other than by a panic).
#[derive(Debug)]
pub enum TaskEnd {
    /// The node loop is gone (shutdown): nothing to report.
    NodeGone,
    /// A read failed for good: the task's socket or device is unusable.
    Failed(String),
}

/// Runs one worker task. A task that panics or whose reads failed for good would otherwise vanish and take
/// its share of the data plane with it (the last worker is the only reader of UDP 4500 and raw ESP) while
/// the daemon looks healthy: instead, log a critical message and abort the process, so that the
/// supervisor restarts the appliance, as a panic in the inline data plane would.
async fn supervise(name: String, task: impl Future<Output = TaskEnd>) {
    use futures::FutureExt;
    let r = std::panic::AssertUnwindSafe(task).catch_unwind().await;
    if let Some(why) = fatal(&name, r) {
        crate::ios!(
            SYS,
            Critical,
            DATAPLANE_FAILED,
            "{why}; aborting so that the appliance is restarted"
        );
        std::process::abort();
    }
}

/// What to say before aborting for a task's end, or `None` when it ended quietly (shutdown).
fn fatal(name: &str, r: std::thread::Result<TaskEnd>) -> Option<String> {
    match r {
        Ok(TaskEnd::NodeGone) => None,
        Ok(TaskEnd::Failed(e)) => Some(format!("data-plane task {name} failed: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            Some(format!("data-plane task {name} panicked: {msg}"))
        }
    }
}

/// Consecutive failed reads after which a reader gives up even on errors that are normally transient (a
/// socket that fails every read is as good as gone).
const MAX_READ_ERRORS: u32 = 10_000;

/// A read error after which the descriptor is unusable. Everything else is transient and retried: on
/// UDP, ICMP errors surface as `ECONNREFUSED`, `EHOSTUNREACH`, `ENETUNREACH`, `EMSGSIZE` ...; any read may
/// see `EINTR`, `ENOBUFS` or `ENOMEM`.
fn read_error_is_fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EBADF
                | libc::EBADFD
                | libc::ENOTSOCK
                | libc::EFAULT
                | libc::EINVAL
                | libc::ENODEV
                | libc::ENXIO
                | libc::EOPNOTSUPP
        )
    )
}

/// Counts a failed read: `Some` when the reader must stop.
fn read_failed(e: &std::io::Error, what: &str, errors: &mut u32) -> Option<TaskEnd> {
    *errors += 1;
    if read_error_is_fatal(e) || *errors >= MAX_READ_ERRORS {
        Some(TaskEnd::Failed(format!(
            "{what}: {e} ({errors} failed reads in a row)"
        )))
    } else {
        None
    }
}

/// Spawns this worker's readers: its tunnels' TUN readers and the ESP sockets it reads.
fn start(
    me: usize,
    n: usize,
    stats: &Arc<WorkerStats>,
    ctx: &Arc<Ctx>,
    devs: &HashMap<usize, Arc<AsyncDevice>>,
) {
    let mut role = Vec::new();
    let mut idxs: Vec<usize> = devs.keys().copied().collect();
    idxs.sort_unstable();
    // One set of send descriptors for all of this worker's tunnels. Without them its tunnels cannot send
    // here: they go back to the node loop (not fast) rather than have their ESP dropped.
    let socks = if idxs.is_empty() {
        SendSocks::default()
    } else {
        SendSocks::new(ctx).unwrap_or_else(|e| {
            crate::ios!(
                SYS,
                Error,
                NO_SOCKET,
                "{}: no send descriptors ({e}): tunnels {idxs:?} stay on the node loop",
                stats.name
            );
            for idx in &idxs {
                if let Some(t) = ctx.tunnels.get(*idx) {
                    t.set_fast(false);
                }
            }
            SendSocks::default()
        })
    };
    for idx in idxs {
        let Some(t) = ctx.tunnels.get(idx) else {
            continue;
        };
        role.push(format!("tunnel {idx} out"));
        let seal = Seal {
            idx,
            mtu: ctx.mtus.get(idx).copied().unwrap_or(1500),
            dev: devs[&idx].clone(),
            t: t.clone(),
            ctx: ctx.clone(),
            stats: stats.clone(),
            out: Out::new(&socks),
        };
        tokio::task::spawn_local(supervise(
            format!("{}: tunnel {idx} out", stats.name),
            seal.run(),
        ));
    }
    for (local, sock) in &ctx.udp {
        if reader_worker(n) != me {
            continue;
        }
        match sock.try_clone().and_then(tokio::net::UdpSocket::from_std) {
            Ok(s) => {
                role.push(format!("ESP in UDP {local} in"));
                tokio::task::spawn_local(supervise(
                    format!("{}: ESP in UDP {local} in", stats.name),
                    udp_reader(*local, s, ctx.clone(), stats.clone()),
                ));
            }
            Err(e) => crate::ios!(SYS, Error, NO_SOCKET, "{}: {local}: {e}", stats.name),
        }
    }
    if let Some(raw) = &ctx.raw
        && reader_worker(n) == me
    {
        match raw.try_clone().and_then(|s| {
            RawIp::from_socket(s, Ipv4Addr::UNSPECIFIED, tokio::io::Interest::READABLE)
        }) {
            Ok(r) => {
                role.push("raw ESP in".to_string());
                tokio::task::spawn_local(supervise(
                    format!("{}: raw ESP in", stats.name),
                    raw_reader(r, ctx.clone(), stats.clone()),
                ));
            }
            Err(e) => crate::ios!(SYS, Error, NO_SOCKET, "{}: raw ESP: {e}", stats.name),
        }
    }
    let _ = stats.role.set(role.join(", "));
}

/// One packet a seal or open produced, copied out of the engine (the tunnel's lock is released before
/// anything is sent or written).
pub enum Staged {
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        tos: u8,
        bytes: PacketBuf,
    },
    Raw {
        dst: std::net::Ipv4Addr,
        tos: u8,
        bytes: PacketBuf,
    },
    Tun(PacketBuf),
}

pub fn stage(staged: &mut Vec<Staged>, o: FastOut<'_>) {
    staged.push(match o {
        FastOut::Udp {
            src,
            dst,
            payload,
            tos,
        } => Staged::Udp {
            src,
            dst,
            tos,
            bytes: PacketBuf::copy_from(payload),
        },
        FastOut::Raw { dst, payload, tos } => Staged::Raw {
            dst,
            tos,
            bytes: PacketBuf::copy_from(payload),
        },
        FastOut::Tun(p) => Staged::Tun(PacketBuf::copy_from(p)),
    });
}

/// A worker task's own descriptors of the ESP sockets, and its send batches.
/// A worker's send descriptors (`dup`s of the appliance's UDP 4500 sockets and raw ESP socket), shared by
/// its TUN readers.
#[derive(Clone, Default)]
struct SendSocks {
    udp: Vec<(SocketAddrV4, Arc<tokio::net::UdpSocket>)>,
    raw: Option<Arc<RawIp>>,
}

impl SendSocks {
    fn new(ctx: &Ctx) -> std::io::Result<SendSocks> {
        let udp = ctx
            .udp
            .iter()
            .map(|(a, s)| {
                let s = s.try_clone().and_then(tokio::net::UdpSocket::from_std)?;
                Ok((*a, Arc::new(s)))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let raw = ctx
            .raw
            .as_ref()
            .map(|r| {
                r.try_clone()
                    .and_then(|s| {
                        RawIp::from_socket(s, Ipv4Addr::UNSPECIFIED, tokio::io::Interest::WRITABLE)
                    })
                    .map(Arc::new)
            })
            .transpose()?;
        Ok(SendSocks { udp, raw })
    }
}

struct Out {
    udp: Vec<(SocketAddrV4, Arc<tokio::net::UdpSocket>)>,
    raw: Option<Arc<RawIp>>,
    gso: Option<GsoBatch>,
    gso_ok: bool,
    raw_batch: RawSendBatch,
}

impl Out {
    fn new(socks: &SendSocks) -> Out {
        let SendSocks { udp, raw } = socks.clone();
        Out {
            udp,
            raw,
            gso: None,
            gso_ok: true,
            raw_batch: RawSendBatch::default(),
        }
    }

    /// Sends the staged ESP (in order, batched as the node loop batches its own) and writes the staged
    /// TUN packets to `dev`.
    async fn send(&mut self, staged: &mut Vec<Staged>, dev: Option<&AsyncDevice>) {
        for s in staged.drain(..) {
            match s {
                Staged::Udp {
                    src,
                    dst,
                    tos,
                    bytes,
                } => {
                    if !self.raw_batch.packets.is_empty()
                        && let Some(r) = &self.raw
                    {
                        r.send_batch(&mut self.raw_batch).await;
                    }
                    let sock = self
                        .udp
                        .iter()
                        .find(|(a, _)| *a == src)
                        .or_else(|| self.udp.iter().find(|(a, _)| a.port() == src.port()))
                        .map(|(_, s)| s.clone());
                    let Some(sock) = sock else { continue };
                    let batch = self
                        .gso
                        .get_or_insert_with(|| GsoBatch::new(sock.clone(), dst));
                    if batch.count > 0 && !batch.accepts(&sock, dst, bytes.len(), tos) {
                        batch.send(&mut self.gso_ok).await;
                    }
                    if batch.count == 0 {
                        batch.sock = sock;
                        batch.to = dst;
                        batch.tos = tos;
                        batch.segment = bytes.len();
                    }
                    batch.push(&bytes);
                }
                Staged::Raw { dst, tos, bytes } => {
                    if let Some(b) = self.gso.as_mut() {
                        b.send(&mut self.gso_ok).await;
                    }
                    if let Some(r) = &self.raw {
                        if !self.raw_batch.accepts(tos) {
                            r.send_batch(&mut self.raw_batch).await;
                        }
                        self.raw_batch.tos = tos;
                        self.raw_batch.packets.push((dst, bytes));
                    }
                }
                Staged::Tun(p) => {
                    if let Some(d) = dev {
                        let _ = d.send(&p).await;
                    }
                }
            }
        }
        if let Some(b) = self.gso.as_mut() {
            b.send(&mut self.gso_ok).await;
        }
        if let Some(r) = &self.raw {
            r.send_batch(&mut self.raw_batch).await;
        }
    }
}

/// Tunnel `idx`'s TUN reader and sealer.
struct Seal {
    idx: usize,
    mtu: u16,
    dev: Arc<AsyncDevice>,
    t: SharedTunnel,
    ctx: Arc<Ctx>,
    stats: Arc<WorkerStats>,
    out: Out,
}

impl Seal {
    async fn run(mut self) -> TaskEnd {
        let room = usize::from(self.mtu).max(1500);
        // BATCH packets of `room` bytes each, read in place: allocated once.
        let mut bufs = vec![0u8; BATCH * room];
        let mut lens = [0usize; BATCH];
        let mut engine = Engine::default();
        let mut staged: Vec<Staged> = Vec::with_capacity(4 * BATCH);
        let mut errors = 0;
        loop {
            // The first packet waits; the rest of the batch is what is already there.
            let len = match self.dev.recv(&mut bufs[..room]).await {
                Ok(len) => len,
                Err(e) => match read_failed(&e, "TUN read", &mut errors) {
                    Some(end) => return end,
                    None => continue,
                },
            };
            errors = 0;
            lens[0] = len;
            let mut n = 1;
            while n < BATCH {
                match self.dev.try_recv(&mut bufs[n * room..(n + 1) * room]) {
                    Ok(len) => {
                        lens[n] = len;
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            // Only IPv4 goes through a Lifeline tunnel.
            let packets = (0..n)
                .map(|i| &bufs[i * room..i * room + lens[i]])
                .filter(|p| p.first().is_some_and(|b| b >> 4 == 4));
            if !self.t.fast() {
                for p in packets {
                    let msg = DriverMsg::Tun {
                        tunnel: self.idx,
                        bytes: PacketBuf::copy_from(p),
                    };
                    if !to_node(&self.ctx, &self.stats, msg, 1) {
                        return TaskEnd::NodeGone;
                    }
                }
                continue;
            }
            let r = engine.seal(Instant::now(), &self.t, packets, &mut |o| {
                stage(&mut staged, o)
            });
            self.stats
                .sealed
                .fetch_add(r.done as u64, Ordering::Relaxed);
            // The node hears of new events or deadlines before this batch's I/O, not after it.
            if !notify(&self.ctx, self.idx, r).await {
                return TaskEnd::NodeGone;
            }
            self.out.send(&mut staged, Some(&self.dev)).await;
        }
    }
}

/// Tells the node loop to look at tunnel `idx` when the batch asked for it; false when the node is gone.
async fn notify(ctx: &Ctx, idx: usize, r: BatchResult) -> bool {
    !r.notify
        || ctx
            .tx
            .send(DriverMsg::Touched { tunnel: idx })
            .await
            .is_ok()
}

/// Passes data (`packets` packets) to the node loop without waiting: when its queue is full they are
/// dropped and counted (`show crypto engine`), since a reader that waited would hold up every fast
/// tunnel's packets behind them. False when the node is gone.
fn to_node(ctx: &Ctx, stats: &WorkerStats, msg: DriverMsg, packets: u64) -> bool {
    match ctx.tx.try_send(msg) {
        Ok(()) => {
            stats.to_node.fetch_add(packets, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            stats.dropped.fetch_add(packets, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// The fast tunnel an ESP packet (or UDP payload) belongs to, by SPI.
fn fast_tunnel(ctx: &Ctx, esp: &[u8]) -> Option<usize> {
    let spi = u32::from_be_bytes(esp.get(..4)?.try_into().ok()?);
    let idx = ctx.spis.get(spi)?;
    ctx.tunnels.get(idx)?.fast().then_some(idx)
}

/// Reads one ESP-carrying UDP socket (port 4500, with GRO): a burst of ESP for one fast tunnel is opened
/// here; anything else (IKE, keepalives, other tunnels' ESP) goes to the node loop as one message.
async fn udp_reader(
    local: SocketAddrV4,
    sock: tokio::net::UdpSocket,
    ctx: Arc<Ctx>,
    stats: Arc<WorkerStats>,
) -> TaskEnd {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = crate::os::udp::gro_cmsg_buffer();
    let mut engine = Engine::default();
    let mut staged: Vec<Staged> = Vec::with_capacity(crate::os::udp::GSO_MAX_SEGMENTS);
    let mut out = Out {
        udp: Vec::new(),
        raw: None,
        gso: None,
        gso_ok: false,
        raw_batch: RawSendBatch::default(),
    };
    let mut errors = 0;
    loop {
        let r = match crate::os::udp::recv_gro(&sock, &mut buf, &mut cmsg).await {
            Ok(r) => r,
            // ICMP errors surface as recv errors on UDP sockets: not fatal.
            Err(e) => match read_failed(&e, "UDP read", &mut errors) {
                Some(end) => return end,
                None => continue,
            },
        };
        errors = 0;
        let data = &buf[..r.len];
        let seg = r.segment.max(1);
        // One GRO burst is one flow: fast only when every datagram is ESP of the same fast tunnel.
        let idx = fast_tunnel(&ctx, data).filter(|_| {
            let spi = &data[..4];
            data.chunks(seg).all(|d| {
                matches!(dataplane::classify_udp4500(d), dataplane::Udp4500::Esp)
                    && d.get(..4) == Some(spi)
            })
        });
        let Some(idx) = idx else {
            let count = data.len().div_ceil(seg) as u64;
            // IKE waits for room in the node's queue (it is rare, and losing it costs a retransmission
            // timeout); ESP for the node's tunnels and keepalives are dropped when the queue is full.
            let ike = data
                .chunks(seg)
                .any(|d| matches!(dataplane::classify_udp4500(d), dataplane::Udp4500::Ike(_)));
            let msg = DriverMsg::Udp {
                local: SocketAddr::V4(local),
                remote: r.from,
                bytes: PacketBuf::copy_from(data),
                segment: seg,
            };
            let alive = if ike {
                stats.to_node.fetch_add(count, Ordering::Relaxed);
                ctx.tx.send(msg).await.is_ok()
            } else {
                to_node(&ctx, &stats, msg, count)
            };
            if !alive {
                return TaskEnd::NodeGone;
            }
            continue;
        };
        let meta = RecvMeta {
            from: r.from,
            tos: 0,
        };
        let res = engine.open(
            Instant::now(),
            &ctx.tunnels[idx],
            data.chunks(seg).map(|d| (d, meta)),
            &mut |o| stage(&mut staged, o),
        );
        stats.opened.fetch_add(res.done as u64, Ordering::Relaxed);
        if !notify(&ctx, idx, res).await {
            return TaskEnd::NodeGone;
        }
        let dev = ctx.tuns.get(idx).and_then(|d| d.as_deref());
        out.send(&mut staged, dev).await;
    }
}

/// Reads the raw ESP socket (`recvmmsg`, straight into pooled buffers): runs of packets for one fast
/// tunnel are opened under one lock; the rest goes to the node loop in the buffer it was read into.
async fn raw_reader(sock: RawIp, ctx: Arc<Ctx>, stats: Arc<WorkerStats>) -> TaskEnd {
    let mut batch = RawRecvBatch::default();
    let mut engine = Engine::default();
    let mut staged: Vec<Staged> = Vec::with_capacity(RAW_BATCH);
    let mut pkts: Vec<(Option<usize>, RawPacket)> = Vec::with_capacity(RAW_BATCH);
    let mut out = Out {
        udp: Vec::new(),
        raw: None,
        gso: None,
        gso_ok: false,
        raw_batch: RawSendBatch::default(),
    };
    let mut errors = 0;
    loop {
        let n = match sock.recv_batch(&mut batch).await {
            Ok(n) => n,
            Err(e) => match read_failed(&e, "raw ESP read", &mut errors) {
                Some(end) => return end,
                None => continue,
            },
        };
        errors = 0;
        pkts.extend(
            (0..n)
                .filter_map(|i| batch.take(i))
                .map(|p| (fast_tunnel(&ctx, &p.bytes), p)),
        );
        let mut i = 0;
        while i < pkts.len() {
            let Some(idx) = pkts[i].0 else {
                i += 1;
                continue;
            };
            // The run of packets for this tunnel.
            let mut j = i + 1;
            while j < pkts.len() && pkts[j].0 == Some(idx) {
                j += 1;
            }
            let res = engine.open(
                Instant::now(),
                &ctx.tunnels[idx],
                pkts[i..j].iter().map(|(_, p)| {
                    let from = SocketAddr::V4(SocketAddrV4::new(p.from, 0));
                    (&p.bytes[..], RecvMeta { from, tos: p.tos })
                }),
                &mut |o| stage(&mut staged, o),
            );
            stats.opened.fetch_add(res.done as u64, Ordering::Relaxed);
            if !notify(&ctx, idx, res).await {
                return TaskEnd::NodeGone;
            }
            let dev = ctx.tuns.get(idx).and_then(|d| d.as_deref());
            out.send(&mut staged, dev).await;
            i = j;
        }
        // The others, in their order, to the node loop.
        for (idx, p) in pkts.drain(..) {
            if idx.is_some() {
                continue;
            }
            let msg = DriverMsg::RawEsp {
                from: p.from,
                tos: p.tos,
                bytes: p.bytes,
            };
            if !to_node(&ctx, &stats, msg, 1) {
                return TaskEnd::NodeGone;
            }
        }
    }
}

/// Another descriptor of `sock` (`dup`), for the workers to register with their own runtimes.
pub fn dup_udp(sock: &tokio::net::UdpSocket) -> std::io::Result<std::net::UdpSocket> {
    Ok(std::net::UdpSocket::from(
        sock.as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(f)
    }

    #[test]
    fn a_panicking_task_takes_the_abort_path() {
        use futures::FutureExt;
        let r = run(std::panic::AssertUnwindSafe(async {
            if true {
                panic!("boom in the sealer");
            }
            TaskEnd::NodeGone
        })
        .catch_unwind());
        let why = fatal("ll-dp-1: raw ESP in", r).expect("a panic must abort");
        assert!(
            why.contains("ll-dp-1: raw ESP in") && why.contains("boom in the sealer"),
            "{why}"
        );
    }

    #[test]
    fn data_for_a_full_node_queue_is_dropped_and_counted_not_waited_for() {
        let (tx, mut rx) = mpsc::channel(1);
        let ctx = Ctx {
            tunnels: Vec::new(),
            spis: SpiMap::default(),
            tuns: Vec::new(),
            mtus: Vec::new(),
            udp: Vec::new(),
            raw: None,
            tx,
        };
        let stats = WorkerStats::new("ll-dp-0".into());
        let msg = || DriverMsg::Touched { tunnel: 0 };
        assert!(to_node(&ctx, &stats, msg(), 1));
        // The queue is full: returns at once, counted as dropped.
        assert!(to_node(&ctx, &stats, msg(), 3));
        assert_eq!(stats.to_node.load(Ordering::Relaxed), 1);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
        assert!(rx.try_recv().is_ok());
        drop(rx);
        assert!(!to_node(&ctx, &stats, msg(), 1));
    }

    #[test]
    fn stopped_workers_end_their_threads() {
        let w = Workers::spawn(2).unwrap();
        let stats = w.stats.clone();
        assert!(run(w.stop(std::time::Duration::from_secs(10))));
        // The threads ended, so nothing holds their counters but this test.
        assert!(stats.iter().all(|s| Arc::strong_count(s) == 1));
    }

    #[test]
    fn a_failed_read_aborts_and_a_shutdown_does_not() {
        assert!(fatal("t", Ok(TaskEnd::NodeGone)).is_none());
        assert!(fatal("t", Ok(TaskEnd::Failed("UDP read: EBADF".into()))).is_some());
    }

    #[test]
    fn transient_read_errors_are_retried_fatal_ones_end_the_reader() {
        let mut errors = 0;
        for e in [
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::EMSGSIZE,
            libc::EINTR,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EAGAIN,
        ] {
            let e = std::io::Error::from_raw_os_error(e);
            assert!(read_failed(&e, "UDP read", &mut errors).is_none(), "{e}");
        }
        let mut errors = 0;
        let e = std::io::Error::from_raw_os_error(libc::EBADF);
        assert!(matches!(
            read_failed(&e, "raw ESP read", &mut errors),
            Some(TaskEnd::Failed(_))
        ));
        // A transient error that never stops is fatal too.
        let mut errors = 0;
        let e = std::io::Error::from_raw_os_error(libc::ENOBUFS);
        let ends = (0..MAX_READ_ERRORS).filter_map(|_| read_failed(&e, "TUN read", &mut errors));
        assert_eq!(ends.count(), 1);
    }
}
