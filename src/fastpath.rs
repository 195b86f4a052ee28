//! The multi-threaded ESP data plane (`lifeline run --dataplane-threads N`): what the data-plane worker
//! threads share with the node loop, and the I/O-free part of a worker (seal or open one batch of packets
//! of one tunnel under one lock).
//!
//! Ownership (ARCHITECTURE.md, "Threads (data plane)"):
//! - each static VTI's [`dataplane::Tunnel`] (its SAs, sequence numbers, replay windows, counters, events)
//!   lives in a [`SharedTunnel`], a `Mutex` shared by the node loop and the workers. The node keeps every
//!   control action (install, replace and remove SAs, timers, events, `show`) and locks the tunnel for
//!   each; a worker locks it once per batch of packets (never per packet), never holds two tunnel locks,
//!   and never holds one across an `await`;
//! - the inbound SPI -> tunnel map is a [`SpiMap`] (written by the node at SA install and removal, read by
//!   the ESP readers on the workers);
//! - a worker that leaves events or an earlier deadline in a tunnel asks the node to look at it
//!   ([`SharedTunnel::request_attention`], at most one request outstanding per tunnel); the node then drains
//!   the events and re-arms the tunnel's timer as it does for its own packets.
//!
//! Only tunnels marked fast ([`SharedTunnel::fast`], decided by the node at start) take the worker path;
//! the others' packets still go to the node loop (shaped tunnels, VPN-SIP, IKEv1-keyed tunnels).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use dataplane::{RecvMeta, Tunnel, UdpPorts, Verdict};

/// Room for ESP around the largest inner packet.
pub const BUF_LEN: usize = dataplane::HEADROOM + 65535 + dataplane::TAILROOM;

struct Cell {
    dp: Mutex<Tunnel>,
    /// Its packets may be sealed and opened on a worker (see the module text).
    fast: AtomicBool,
    /// A worker asked the node to look at the tunnel and the node has not yet.
    attention: AtomicBool,
}

/// One tunnel's data-plane state, shared by the node loop and the data-plane workers.
#[derive(Clone)]
pub struct SharedTunnel(Arc<Cell>);

impl SharedTunnel {
    pub fn new(t: Tunnel) -> SharedTunnel {
        SharedTunnel(Arc::new(Cell {
            dp: Mutex::new(t),
            fast: AtomicBool::new(false),
            attention: AtomicBool::new(false),
        }))
    }

    /// The tunnel, locked. A poisoned lock is taken rather than unwrapped: a panic in a data-plane worker
    /// task aborts the whole process (`crate::workers`, `supervise`: logged `%SYS-2-DATAPLANE_FAILED`, so a
    /// supervisor restarts the appliance), so a tunnel a panicking worker may have left half-updated is used
    /// by the other threads only for the moment until the abort; unwrapping here would only add panics.
    pub fn lock(&self) -> MutexGuard<'_, Tunnel> {
        self.0.dp.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its packets are sealed and opened on the data-plane workers.
    pub fn fast(&self) -> bool {
        self.0.fast.load(Ordering::Acquire)
    }

    pub fn set_fast(&self, on: bool) {
        self.0.fast.store(on, Ordering::Release);
    }

    /// A worker wants the node to look at the tunnel: true if the caller must send the request (none is
    /// outstanding).
    pub fn request_attention(&self) -> bool {
        !self.0.attention.swap(true, Ordering::AcqRel)
    }

    /// The node takes the request (before it drains the tunnel, so later work asks again).
    pub fn attention_taken(&self) {
        self.0.attention.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for SharedTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTunnel")
            .field("fast", &self.fast())
            .finish_non_exhaustive()
    }
}

/// Inbound SPI -> tunnel index, shared with the ESP readers on the workers.
#[derive(Clone, Default)]
pub struct SpiMap(Arc<RwLock<HashMap<u32, usize>>>);

impl SpiMap {
    pub fn insert(&self, spi: u32, idx: usize) -> Option<usize> {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spi, idx)
    }

    pub fn remove(&self, spi: &u32) -> Option<usize> {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(spi)
    }

    pub fn get(&self, spi: u32) -> Option<usize> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&spi)
            .copied()
    }

    pub fn contains_key(&self, spi: &u32) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(spi)
    }
}

/// Packet counts of one data-plane worker thread (`show crypto engine`).
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub name: String,
    /// Packets sealed (ESP out).
    pub sealed: AtomicU64,
    /// Packets opened (ESP in, written to the TUN device).
    pub opened: AtomicU64,
    /// Packets passed to the node loop (tunnels that are not fast, IKE, unknown SPIs).
    pub to_node: AtomicU64,
    /// Packets dropped because the node loop's queue was full (a reader never waits for the node with
    /// data: the other tunnels' packets behind it would wait too).
    pub dropped: AtomicU64,
    /// What it reads (set when it starts).
    pub role: std::sync::OnceLock<String>,
}

impl WorkerStats {
    pub fn new(name: String) -> WorkerStats {
        WorkerStats {
            name,
            ..WorkerStats::default()
        }
    }
}

/// What a worker must send or write after a seal or an open (bytes borrowed from the [`Engine`]).
#[derive(Debug)]
pub enum FastOut<'a> {
    /// ESP in UDP from `src` (our address and port) to `dst`.
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &'a [u8],
        tos: u8,
    },
    /// Raw ESP (IP protocol 50).
    Raw {
        dst: Ipv4Addr,
        payload: &'a [u8],
        tos: u8,
    },
    /// An IP packet for the tunnel's TUN device (opened, or an ICMP error for an inside sender).
    Tun(&'a [u8]),
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchResult {
    /// Packets sealed (seal) or opened to the tunnel (open).
    pub done: usize,
    /// The caller must tell the node to look at the tunnel (events or an earlier deadline).
    pub notify: bool,
}

/// A worker's working buffer: seals and opens batches without allocating.
pub struct Engine {
    buf: Vec<u8>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            buf: vec![0u8; BUF_LEN],
        }
    }
}

impl Engine {
    /// Seals `packets` (inner IP packets routed into the tunnel) under one lock of `t`; what leaves goes
    /// to `emit` while the lock is held (the caller copies it into its send batch).
    pub fn seal<'p>(
        &mut self,
        now: Instant,
        t: &SharedTunnel,
        packets: impl IntoIterator<Item = &'p [u8]>,
        emit: &mut impl FnMut(FastOut<'_>),
    ) -> BatchResult {
        let mut dp = t.lock();
        let before = dp.poll_timeout();
        let mut done = 0;
        let start = dataplane::HEADROOM;
        for p in packets {
            // Packets held for an SA that is now installed go first: they take the lower sequence numbers
            // and leave before this one (the node may not have drained them yet).
            while let Some(v) = dp.poll_transmit(now, &mut self.buf) {
                done += usize::from(emit_verdict(&self.buf, v, emit));
            }
            let Some(slot) = self.buf.get_mut(start..start + p.len()) else {
                continue;
            };
            slot.copy_from_slice(p);
            let v = dp.send(now, &mut self.buf, start..start + p.len());
            done += usize::from(emit_verdict(&self.buf, v, emit));
            // Later fragments (pre-fragmentation).
            while let Some(v) = dp.poll_transmit(now, &mut self.buf) {
                done += usize::from(emit_verdict(&self.buf, v, emit));
            }
        }
        let notify = needs_node(&dp, before);
        drop(dp);
        BatchResult {
            done,
            notify: notify && t.request_attention(),
        }
    }

    /// Opens ESP `packets` (the ESP packet, or the UDP payload of ESP in UDP) of tunnel `t` under one lock.
    pub fn open<'p>(
        &mut self,
        now: Instant,
        t: &SharedTunnel,
        packets: impl IntoIterator<Item = (&'p [u8], RecvMeta)>,
        emit: &mut impl FnMut(FastOut<'_>),
    ) -> BatchResult {
        let mut dp = t.lock();
        let before = dp.poll_timeout();
        let mut done = 0;
        for (p, meta) in packets {
            let Some(slot) = self.buf.get_mut(..p.len()) else {
                continue;
            };
            slot.copy_from_slice(p);
            let v = dp.receive(now, &mut self.buf, 0..p.len(), meta);
            done += usize::from(matches!(v, Verdict::ToTunnel(_)));
            emit_verdict(&self.buf, v, emit);
        }
        let notify = needs_node(&dp, before);
        drop(dp);
        BatchResult {
            done,
            notify: notify && t.request_attention(),
        }
    }
}

/// The node must look at the tunnel: it raised events, or its next deadline came earlier than the one
/// the node armed (traffic only ever moves idle and keepalive deadlines later; a first packet without an
/// SA starts the acquire timer).
fn needs_node(dp: &Tunnel, before: Option<Instant>) -> bool {
    dp.has_events()
        || match (before, dp.poll_timeout()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => a < b,
        }
}

/// Passes a verdict's output to `emit`; true for an ESP packet sent to the network (a NAT keepalive, one
/// 0xFF byte in UDP, is passed on but not counted as sealed).
fn emit_verdict(buf: &[u8], v: Verdict, emit: &mut impl FnMut(FastOut<'_>)) -> bool {
    match v {
        Verdict::ToNetwork(tx) => {
            let Some(payload) = buf.get(tx.range.clone()) else {
                return false;
            };
            match (tx.src, tx.dst, tx.udp) {
                (IpAddr::V4(src), IpAddr::V4(dst), Some(UdpPorts { local, remote })) => {
                    emit(FastOut::Udp {
                        src: SocketAddrV4::new(src, local),
                        dst: SocketAddrV4::new(dst, remote),
                        payload,
                        tos: tx.tos,
                    });
                    payload != [0xff]
                }
                (IpAddr::V4(_), IpAddr::V4(dst), None) => {
                    emit(FastOut::Raw {
                        dst,
                        payload,
                        tos: tx.tos,
                    });
                    true
                }
                _ => false,
            }
        }
        Verdict::ToTunnel(r) => {
            if let Some(p) = buf.get(r) {
                emit(FastOut::Tun(p));
            }
            false
        }
        Verdict::Queued | Verdict::Consumed | Verdict::Drop(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::crypto::AesKeyLen;
    use dataplane::{Encr, InboundSa, Lifetime, Mode, OutboundSa, SaParams, TunnelConfig};

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn params(spi: u32) -> SaParams<'static> {
        SaParams {
            spi,
            encr: Encr::AesGcm16(AesKeyLen::Aes128),
            integ: None,
            enc_key: &[0x5a; 20],
            integ_key: &[],
            esn: false,
            mode: Mode::Tunnel,
            replay_window: 64,
            lifetime: Lifetime::unlimited(),
            idle_timeout: None,
        }
    }

    fn tunnel(local: Ipv4Addr, remote: Ipv4Addr) -> Tunnel {
        let mut c = TunnelConfig::new(1, IpAddr::V4(local), Some(IpAddr::V4(remote)));
        c.udp_encap = Some(UdpPorts {
            local: 4500,
            remote: 4500,
        });
        Tunnel::new(c)
    }

    /// An IPv4/UDP packet 10.1.1.1 -> 10.2.2.2 whose one data byte is `mark`.
    fn packet(mark: u8) -> Vec<u8> {
        let mut p = vec![0u8; 29];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&29u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 1, 1]);
        p[16..20].copy_from_slice(&[10, 2, 2, 2]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p[24..26].copy_from_slice(&9u16.to_be_bytes());
        p[28] = mark;
        let sum = !p[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        p[10..12].copy_from_slice(&((sum & 0xffff) as u16).to_be_bytes());
        p
    }

    #[test]
    fn a_nat_keepalive_is_sent_but_not_counted_as_sealed() {
        let buf = [0xffu8, 0, 0, 0x10, 0, 0, 0, 0, 1];
        let tx = |range| {
            Verdict::ToNetwork(dataplane::Transmit {
                range,
                src: IpAddr::V4(A),
                dst: IpAddr::V4(B),
                udp: Some(UdpPorts {
                    local: 4500,
                    remote: 4500,
                }),
                df: false,
                tos: 0,
            })
        };
        let mut sent = 0;
        let mut emit = |_: FastOut<'_>| sent += 1;
        assert!(!emit_verdict(&buf, tx(0..1), &mut emit));
        assert!(emit_verdict(&buf, tx(1..9), &mut emit));
        assert_eq!(sent, 2);
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn packets_held_for_a_new_sa_leave_before_the_next_packet_a_worker_seals() {
        let now = Instant::now();
        let a = SharedTunnel::new(tunnel(A, B));
        let mut b = tunnel(B, A);
        let mut engine = Engine::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut collect = |o: FastOut<'_>| {
            if let FastOut::Udp { payload, .. } = o {
                out.push(payload.to_vec());
            }
        };
        // Five packets without an SA are held (one acquire).
        let held: Vec<Vec<u8>> = (1..=5).map(packet).collect();
        let r = engine.seal(now, &a, held.iter().map(|p| &p[..]), &mut collect);
        assert_eq!(r.done, 0);
        // The node installs the SA but has not drained the queue yet; a worker seals packet 6.
        a.lock().install_sa(
            now,
            OutboundSa::new(now, &params(0x1000)).unwrap(),
            InboundSa::new(now, &params(0x2000)).unwrap(),
        );
        b.install_sa(
            now,
            OutboundSa::new(now, &params(0x2000)).unwrap(),
            InboundSa::new(now, &params(0x1000)).unwrap(),
        );
        let six = packet(6);
        let r = engine.seal(now, &a, [&six[..]], &mut collect);
        assert_eq!(r.done, 6);
        let seqs: Vec<u32> = out
            .iter()
            .map(|e| u32::from_be_bytes(e[4..8].try_into().unwrap()))
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        let mut buf = vec![0u8; BUF_LEN];
        let marks: Vec<u8> = out
            .iter()
            .map(|e| {
                buf[..e.len()].copy_from_slice(e);
                let meta = RecvMeta {
                    from: std::net::SocketAddr::from((A, 4500)),
                    tos: 0,
                };
                match b.receive(now, &mut buf, 0..e.len(), meta) {
                    Verdict::ToTunnel(r) => buf[r][28],
                    v => panic!("{v:?}"),
                }
            })
            .collect();
        assert_eq!(marks, [1, 2, 3, 4, 5, 6]);
        // Nothing is left for the node to drain.
        assert!(a.lock().poll_transmit(now, &mut buf).is_none());
    }
}
