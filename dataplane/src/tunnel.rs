//! One static VTI (`interface TunnelN`, `tunnel mode ipsec ipv4`): the per-tunnel data plane.
//!
//! - Traffic routed into a tunnel without an SA is queued (bounded) and raises one
//!   [`Event::Acquire`], the VPN-SIP trigger; [`Tunnel::install_sa`] releases the queue through
//!   [`Tunnel::poll_transmit`].
//! - Outbound: `ip tcp adjust-mss`, tunnel MTU check, pre-fragmentation or ICMP "fragmentation
//!   needed" per `crypto ipsec df-bit` (seed 004 table 2), ESP tunnel-mode encapsulation, outer DF/TOS.
//! - Inbound: RFC 3948 demux, SPI lookup (unknown SPI: counted + [`Event::InvalidSpi`]),
//!   decapsulation, RFC 6040 ECN, MSS clamp.
//! - Rekey: [`Tunnel::replace_sa`] switches the outbound SA at once and keeps the old inbound SA until
//!   [`Tunnel::remove_inbound`], so packets in flight still decrypt.
//! - Timers: acquire timeout, SA soft/hard lifetimes, idle timer, NAT keepalives.

use crate::crypto::{AesKeyLen, Encr, Integ};
use crate::sa::{DropReason, Expiry, InboundSa, Mode, OutboundSa, SaCounters};
use crate::wire::ipv4::{self, clamp_tcp_mss};
use crate::wire::udp_encap::{NAT_KEEPALIVE, Udp4500, classify_udp4500};
use crate::wire::{IpProtocol, esp};
use crate::{HEADROOM, TAILROOM};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

/// `crypto ipsec df-bit {clear | set | copy}`: the DF bit of the outer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DfBit {
    Clear,
    Set,
    /// IOS default: copy the inner packet's DF bit.
    #[default]
    Copy,
}

/// UDP encapsulation ports (RFC 3948), local and remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPorts {
    pub local: u16,
    pub remote: u16,
}

/// Static configuration of one tunnel.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// Interface number (`Tunnel<id>`); carried in every event.
    pub id: u32,
    /// `tunnel source` address.
    pub source: IpAddr,
    /// `tunnel destination`; `None` = `tunnel destination dynamic` until set.
    pub destination: Option<IpAddr>,
    /// UDP encapsulation (NAT-T, VPN-SIP forces it); `None` = raw ESP (IP protocol 50).
    pub udp_encap: Option<UdpPorts>,
    /// MTU of the egress path (`path mtu` / `Tunnel transport MTU`).
    pub path_mtu: u16,
    /// Configured `ip mtu` on the tunnel, if any; the effective MTU is the smaller of this and the
    /// plaintext MTU the transform allows.
    pub ip_mtu: Option<u16>,
    pub df_bit: DfBit,
    /// `crypto ipsec fragmentation before-encryption` (IOS default on).
    pub prefragment: bool,
    /// `ip tcp adjust-mss <n>`.
    pub adjust_mss: Option<u16>,
    /// Packets held while an SA is being acquired.
    pub queue_limit: usize,
    /// How long an acquire may take before queued packets are dropped.
    pub acquire_timeout: Duration,
    /// NAT keepalive interval (`crypto isakmp nat keepalive`), only with UDP encapsulation.
    pub nat_keepalive: Option<Duration>,
    /// Source address of ICMP errors the tunnel generates (the tunnel's own IPv4 address).
    pub icmp_source: Ipv4Addr,
}

impl TunnelConfig {
    /// IOS defaults for a tunnel between `source` and `destination`.
    pub fn new(id: u32, source: IpAddr, destination: Option<IpAddr>) -> Self {
        Self {
            id,
            source,
            destination,
            udp_encap: None,
            path_mtu: 1500,
            ip_mtu: None,
            df_bit: DfBit::Copy,
            prefragment: true,
            adjust_mss: None,
            queue_limit: 64,
            acquire_timeout: Duration::from_secs(30),
            nat_keepalive: None,
            icmp_source: match source {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            },
        }
    }
}

/// Where an ESP packet goes: the driver sends `buf[range]` as the payload of a UDP datagram
/// (`udp` = Some) or of a raw IP protocol 50 packet, with the given outer header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub range: Range<usize>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub udp: Option<UdpPorts>,
    /// Outer DF bit.
    pub df: bool,
    /// Outer TOS byte (DSCP and ECN copied from the inner header, RFC 6040 normal mode).
    pub tos: u8,
}

/// What to do with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send to the peer.
    ToNetwork(Transmit),
    /// Write `buf[range]` (an IP packet) to the tunnel's inside (TUN): decrypted traffic, or an ICMP
    /// error generated for an inside sender.
    ToTunnel(Range<usize>),
    /// Held until an SA is installed.
    Queued,
    /// Consumed without output (NAT keepalive, ESP dummy packet).
    Consumed,
    /// Dropped and counted.
    Drop(DropReason),
}

/// Metadata of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    pub from: SocketAddr,
    /// Outer TOS byte (from `IP_RECVTOS`), for ECN decapsulation.
    pub tos: u8,
}

/// Facts for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Traffic needs an SA: start IKE (VPN-SIP: place the call).
    Acquire { tunnel: u32 },
    /// The acquire timed out; `dropped` queued packets were discarded.
    AcquireFailed { tunnel: u32, dropped: usize },
    /// Soft lifetime reached: rekey this SA.
    Rekey {
        tunnel: u32,
        spi: u32,
        inbound: bool,
    },
    /// Hard lifetime reached: the SA was removed.
    Expired {
        tunnel: u32,
        spi: u32,
        inbound: bool,
    },
    /// No traffic for the idle time (VPN-SIP: tear the session down).
    Idle { tunnel: u32, outbound_spi: u32 },
    /// ESP with an SPI this tunnel does not know (IKE may send INVALID_SPI; rate-limited to one per
    /// second per tunnel).
    InvalidSpi {
        tunnel: u32,
        spi: u32,
        from: SocketAddr,
    },
}

/// Tunnel-level counters (they survive rekeys, like IOS's per-flow counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelCounters {
    pub encaps: u64,
    pub decaps: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub replay_failures: u64,
    pub auth_failures: u64,
    pub invalid_spi: u64,
    pub queued: u64,
    pub acquires: u64,
    pub fragments: u64,
    pub icmp_too_big: u64,
    pub mss_clamped: u64,
    pub keepalives_sent: u64,
    pub keepalives_received: u64,
    pub dummy_received: u64,
}

/// Tunnel state for `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelState {
    /// No SA, nothing pending.
    Idle,
    /// Acquire raised, waiting for IKE.
    Acquiring,
    /// An outbound SA is installed.
    Up,
}

/// One SA as `show crypto ipsec sa` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaSnapshot {
    pub spi: u32,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub mode: Mode,
    pub iv_size: usize,
    pub replay_window: Option<u32>,
    pub remaining_kb: Option<u64>,
    pub remaining_secs: Option<u64>,
    pub counters: SaCounters,
}

/// Plain data for `show crypto ipsec sa` and `show interfaces TunnelN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSnapshot {
    pub id: u32,
    pub source: IpAddr,
    pub destination: Option<IpAddr>,
    pub udp_encap: Option<UdpPorts>,
    pub state: TunnelState,
    pub path_mtu: u16,
    /// `plaintext mtu`: what fits after ESP overhead.
    pub plaintext_mtu: u16,
    /// Effective tunnel IP MTU (configured `ip mtu` capped at the plaintext MTU).
    pub ip_mtu: u16,
    pub df_bit: DfBit,
    pub queue_len: usize,
    pub outbound: Option<SaSnapshot>,
    pub inbound: Vec<SaSnapshot>,
    pub counters: TunnelCounters,
    /// Drops by reason, indexed like [`DropReason::ALL`].
    pub drops: [u64; DropReason::COUNT],
}

const EVENT_LIMIT: usize = 256;
const INVALID_SPI_EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// One static VTI.
#[derive(Debug)]
pub struct Tunnel {
    cfg: TunnelConfig,
    outbound: Option<OutboundSa>,
    /// Current inbound SA last; older ones stay until deleted by IKE.
    inbound: Vec<InboundSa>,
    acquiring: Option<Instant>,
    /// Plaintext packets waiting for an SA.
    queue: VecDeque<Vec<u8>>,
    /// Plaintext packets ready to encapsulate (flushed queue, later fragments).
    pending: VecDeque<Vec<u8>>,
    /// Recycled buffers, so steady-state fragmentation allocates nothing.
    spare: Vec<Vec<u8>>,
    events: VecDeque<Event>,
    events_lost: u64,
    counters: TunnelCounters,
    drops: [u64; DropReason::COUNT],
    last_tx: Option<Instant>,
    last_rx: Option<Instant>,
    idle_fired: bool,
    keepalive_due: bool,
    last_invalid_spi_event: Option<Instant>,
    ip_ident: u16,
}

impl Tunnel {
    pub fn new(cfg: TunnelConfig) -> Self {
        Self {
            cfg,
            outbound: None,
            inbound: Vec::new(),
            acquiring: None,
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            events_lost: 0,
            counters: TunnelCounters::default(),
            drops: [0; DropReason::COUNT],
            last_tx: None,
            last_rx: None,
            idle_fired: false,
            keepalive_due: false,
            last_invalid_spi_event: None,
            ip_ident: 0,
        }
    }

    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    pub fn id(&self) -> u32 {
        self.cfg.id
    }

    /// SPIs of the installed inbound SAs (for an [`crate::SaDb`]).
    pub fn inbound_spis(&self) -> impl Iterator<Item = u32> + '_ {
        self.inbound.iter().map(|s| s.spi())
    }

    pub fn outbound_spi(&self) -> Option<u32> {
        self.outbound.as_ref().map(|s| s.spi())
    }

    /// Packets are queued waiting for IKE (an acquire is pending).
    pub fn is_acquiring(&self) -> bool {
        self.acquiring.is_some()
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= EVENT_LIMIT {
            self.events_lost += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn drop_packet(&mut self, r: DropReason) -> Verdict {
        self.drops[r as usize] += 1;
        Verdict::Drop(r)
    }

    fn take_buffer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    fn recycle(&mut self, v: Vec<u8>) {
        if self.spare.len() < 64 {
            self.spare.push(v);
        }
    }

    /// `tunnel destination` changed (or learned: `tunnel destination dynamic`), e.g. a new peer WAN
    /// address from SDP, or a NAT rebinding; `udp` replaces the encapsulation ports.
    pub fn set_destination(&mut self, addr: IpAddr, udp: Option<UdpPorts>) {
        self.cfg.destination = Some(addr);
        self.cfg.udp_encap = udp;
    }

    /// `tunnel source` changed (e.g. the WAN got a new DHCP address).
    pub fn set_source(&mut self, addr: IpAddr) {
        self.cfg.source = addr;
        if let IpAddr::V4(a) = addr
            && self.cfg.icmp_source.is_unspecified()
        {
            self.cfg.icmp_source = a;
        }
    }

    /// Installs the first SA pair; queued packets become transmittable ([`Self::poll_transmit`]).
    pub fn install_sa(&mut self, now: Instant, outbound: OutboundSa, inbound: InboundSa) {
        if self.outbound.is_none() {
            // A new session: the idle and keepalive timers start now.
            self.last_tx = Some(now);
            self.last_rx = Some(now);
        }
        self.outbound = Some(outbound);
        self.inbound.retain(|s| s.spi() != inbound.spi());
        self.inbound.push(inbound);
        self.acquiring = None;
        self.idle_fired = false;
        while let Some(p) = self.queue.pop_front() {
            self.pending.push_back(p);
        }
    }

    /// Takes the packets an SA install released from the acquire queue (and anything else waiting to
    /// be encapsulated), so a driver with an egress scheduler can offer them to it instead of letting
    /// [`Self::poll_transmit`] encapsulate them unshaped.
    pub fn take_pending(&mut self) -> Vec<Vec<u8>> {
        self.pending.drain(..).collect()
    }

    /// Rekey: the new outbound SA is used at once; the old inbound SA stays until
    /// [`Self::remove_inbound`] (IKE deletes it), so packets already in flight still decrypt.
    pub fn replace_sa(&mut self, now: Instant, outbound: OutboundSa, inbound: InboundSa) {
        self.install_sa(now, outbound, inbound);
    }

    /// Deletes one inbound SA (IKE DELETE or after rekey).
    pub fn remove_inbound(&mut self, spi: u32) -> bool {
        let before = self.inbound.len();
        self.inbound.retain(|s| s.spi() != spi);
        before != self.inbound.len()
    }

    /// Removes all SAs (session torn down); the next packet raises a new acquire.
    pub fn remove_sa(&mut self) {
        // Packets not yet encapsulated wait for the next SA like any other.
        while let Some(p) = self.pending.pop_back() {
            self.queue.push_front(p);
        }
        self.queue.truncate(self.cfg.queue_limit);
        self.outbound = None;
        self.inbound.clear();
        self.idle_fired = false;
        self.keepalive_due = false;
    }

    /// The acquire failed (IKE or the SIP call failed): drop the queue, allow a new acquire.
    pub fn acquire_failed(&mut self) -> usize {
        self.acquiring = None;
        let n = self.queue.len();
        self.drops[DropReason::AcquireFailed as usize] += n as u64;
        while let Some(v) = self.queue.pop_front() {
            self.recycle(v);
        }
        n
    }

    /// Bytes of ESP (SPI to ICV) one outer packet can carry within the path MTU.
    fn esp_room(&self) -> usize {
        let outer_ip = if self.cfg.source.is_ipv4() { 20 } else { 40 };
        let udp = if self.cfg.udp_encap.is_some() { 8 } else { 0 };
        usize::from(self.cfg.path_mtu).saturating_sub(outer_ip + udp)
    }

    /// Plaintext MTU for the installed transform (or the IOS default `esp-aes esp-sha-hmac` before
    /// any SA), per the seed's formula:
    /// `floor((path_mtu − outer IP − [UDP] − 8 − IV − ICV) / block) × block − 2`.
    pub fn plaintext_mtu(&self) -> u16 {
        let room = self.esp_room();
        let mtu = match &self.outbound {
            Some(sa) => sa.max_payload(room),
            None => {
                let (iv, icv, blk) = crate::crypto::transform_sizes(
                    Encr::AesCbc(AesKeyLen::Aes128),
                    Some(Integ::HmacSha1_96),
                );
                (room.saturating_sub(esp::HEADER_LEN + iv + icv) / blk * blk).saturating_sub(2)
            }
        };
        u16::try_from(mtu).unwrap_or(u16::MAX)
    }

    /// How an inner packet grows on the wire with the installed outbound SA (or, before any SA,
    /// the IOS default `esp-aes esp-sha-hmac`): outer IP header, UDP header when ESP is carried
    /// in UDP, ESP header, IV, padding to the cipher's block with the 2-byte trailer, and ICV. A
    /// QoS shaper on this tunnel is charged [`crate::qos::Encap::wire_len`] of each packet: the
    /// outer packet's layer-3 length.
    pub fn encap(&self) -> crate::qos::Encap {
        let outer_ip = if self.cfg.source.is_ipv4() { 20 } else { 40 };
        let udp = if self.cfg.udp_encap.is_some() { 8 } else { 0 };
        let (iv, icv, blk) = match &self.outbound {
            Some(sa) => (
                sa.cipher().iv_len(),
                sa.cipher().icv_len(),
                sa.cipher().block_len(),
            ),
            None => crate::crypto::transform_sizes(
                Encr::AesCbc(AesKeyLen::Aes128),
                Some(Integ::HmacSha1_96),
            ),
        };
        crate::qos::Encap {
            fixed: u16::try_from(outer_ip + udp + esp::HEADER_LEN + iv + icv).unwrap_or(u16::MAX),
            trailer: 2,
            align: u8::try_from(blk).unwrap_or(u8::MAX),
            wide_align: u8::try_from(crate::sa::PREFERRED_ALIGN.max(blk)).unwrap_or(u8::MAX),
            limit: self.cfg.path_mtu,
        }
    }

    /// The MTU packets routed into the tunnel are checked against.
    pub fn ip_mtu(&self) -> u16 {
        let p = self.plaintext_mtu();
        self.cfg.ip_mtu.map_or(p, |m| m.min(p))
    }

    /// A packet routed into the tunnel: `buf[pkt]` is an IP packet, with [`HEADROOM`] bytes before
    /// and [`TAILROOM`] bytes after it available in `buf`.
    pub fn send(&mut self, now: Instant, buf: &mut [u8], pkt: Range<usize>) -> Verdict {
        let v = self.send_inner(now, buf, pkt);
        self.after_traffic(now);
        v
    }

    fn send_inner(&mut self, now: Instant, buf: &mut [u8], mut pkt: Range<usize>) -> Verdict {
        let Some(bytes) = buf.get(pkt.clone()) else {
            return self.drop_packet(DropReason::BufferTooSmall);
        };
        let (is_v4, len) = match bytes.first().map(|b| b >> 4) {
            Some(4) => match ipv4::Packet::new_checked(bytes) {
                Ok(p) => (true, usize::from(p.total_len())),
                Err(_) => return self.drop_packet(DropReason::BadInnerPacket),
            },
            Some(6) if bytes.len() >= 40 => {
                let pl = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
                if 40 + pl > bytes.len() {
                    return self.drop_packet(DropReason::BadInnerPacket);
                }
                (false, 40 + pl)
            }
            _ => return self.drop_packet(DropReason::BadInnerPacket),
        };
        pkt.end = pkt.start + len;

        let (Some(dst), true) = (self.cfg.destination, self.outbound.is_some()) else {
            return self.enqueue(now, buf, pkt);
        };

        if let Some(mss) = self.cfg.adjust_mss
            && is_v4
            && clamp_tcp_mss(&mut buf[pkt.clone()], mss)
        {
            self.counters.mss_clamped += 1;
        }

        let mtu = usize::from(self.ip_mtu());
        let (inner_df, tos) = if is_v4 {
            let p = ipv4::Packet::new_unchecked(&buf[pkt.clone()]);
            (p.dont_frag(), p.tos())
        } else {
            let b = &buf[pkt.clone()];
            (true, (b[0] << 4) | (b[1] >> 4))
        };
        let mut outer_df = match self.cfg.df_bit {
            DfBit::Clear => false,
            DfBit::Set => true,
            DfBit::Copy => inner_df,
        };
        if len > mtu && is_v4 {
            // Seed 004, table 2: with df-bit set/copy a DF packet is dropped (we answer with ICMP
            // "fragmentation needed" so PMTUD works); otherwise fragment before or after encryption.
            if inner_df && self.cfg.df_bit != DfBit::Clear {
                return self.icmp_too_big(buf, pkt, mtu);
            }
            if self.cfg.prefragment {
                match self.prefragment(buf, pkt.clone(), mtu) {
                    Ok(first) => pkt = first,
                    Err(r) => return self.drop_packet(r),
                }
            } else {
                outer_df = false;
            }
        } else if len > mtu {
            // IPv6 inner: routers do not fragment it; let the outer header be fragmented.
            outer_df = false;
        }

        let next_header = if is_v4 {
            IpProtocol::IPV4
        } else {
            IpProtocol::IPV6
        };
        let room = self.esp_room();
        let Some(sa) = self.outbound.as_mut() else {
            return self.drop_packet(DropReason::SaExpired);
        };
        match sa.encapsulate_within(now, buf, pkt, next_header.0, room) {
            Ok(range) => {
                self.counters.encaps += 1;
                self.last_tx = Some(now);
                self.idle_fired = false;
                Verdict::ToNetwork(Transmit {
                    range,
                    src: self.cfg.source,
                    dst,
                    udp: self.cfg.udp_encap,
                    df: outer_df,
                    tos,
                })
            }
            Err(r) => {
                self.counters.send_errors += 1;
                self.drop_packet(r)
            }
        }
    }

    fn enqueue(&mut self, now: Instant, buf: &[u8], pkt: Range<usize>) -> Verdict {
        if self.acquiring.is_none() {
            self.acquiring = Some(now + self.cfg.acquire_timeout);
            self.counters.acquires += 1;
            self.push_event(Event::Acquire {
                tunnel: self.cfg.id,
            });
        }
        if self.queue.len() >= self.cfg.queue_limit {
            return self.drop_packet(DropReason::QueueFull);
        }
        let v = self.take_buffer(&buf[pkt]);
        self.queue.push_back(v);
        self.counters.queued += 1;
        Verdict::Queued
    }

    /// Splits the IPv4 packet `buf[pkt]` into fragments of (nearly) equal size that fit `mtu`.
    /// The first stays in place (returned range); the others go to the front of `pending`.
    fn prefragment(
        &mut self,
        buf: &mut [u8],
        pkt: Range<usize>,
        mtu: usize,
    ) -> Result<Range<usize>, DropReason> {
        let p = ipv4::Packet::new_unchecked(&buf[pkt.clone()]);
        let hl = p.header_len();
        let total = usize::from(p.total_len());
        let off0 = usize::from(p.frag_offset());
        let mf0 = p.more_frags();
        let payload = total - hl;
        // Options with the "copied" flag go into every fragment (RFC 791).
        let mut opts = [0u8; 40];
        let mut olen = 0;
        let hdr = &buf[pkt.start..pkt.start + hl];
        let mut i = 20;
        while i < hl {
            let t = hdr[i];
            if t == 0 {
                break;
            }
            if t == 1 {
                i += 1;
                continue;
            }
            let l = usize::from(*hdr.get(i + 1).unwrap_or(&0));
            if l < 2 || i + l > hl {
                break;
            }
            if t & 0x80 != 0 {
                opts[olen..olen + l].copy_from_slice(&hdr[i..i + l]);
                olen += l;
            }
            i += l;
        }
        let hl_rest = 20 + olen.div_ceil(4) * 4;
        let maxp = (mtu.saturating_sub(hl) / 8) * 8;
        if maxp == 0 {
            return Err(DropReason::TooBig);
        }
        let n = payload.div_ceil(maxp);
        let piece = payload.div_ceil(n).div_ceil(8) * 8;
        let mut base = [0u8; 20];
        base.copy_from_slice(&hdr[..20]);
        // Later fragments, built last to first and pushed to the front in order.
        let mut k = n;
        while k > 1 {
            k -= 1;
            let from = k * piece;
            let to = ((k + 1) * piece).min(payload);
            if from >= to {
                continue;
            }
            let data_start = pkt.start + hl + from;
            let mut v = self.spare.pop().unwrap_or_default();
            v.clear();
            v.extend_from_slice(&base);
            v.extend_from_slice(&opts[..olen]);
            v.resize(hl_rest, 0);
            v.extend_from_slice(&buf[data_start..pkt.start + hl + to]);
            let mut f = ipv4::Packet::new_unchecked(&mut v[..]);
            let len = u16::try_from(hl_rest + to - from).map_err(|_| DropReason::TooBig)?;
            f.set_total_len(len);
            let ihl = (hl_rest / 4) as u8;
            v[0] = 0x40 | ihl;
            let mut f = ipv4::Packet::new_unchecked(&mut v[..]);
            let off = u16::try_from((off0 * 8 + from) / 8).map_err(|_| DropReason::TooBig)?;
            f.set_frag(false, k + 1 < n || mf0, off);
            f.fill_checksum();
            self.pending.push_front(v);
            self.counters.fragments += 1;
        }
        let first_len = hl + piece.min(payload);
        let mut f = ipv4::Packet::new_unchecked(&mut buf[pkt.start..pkt.start + first_len]);
        f.set_total_len(first_len as u16);
        f.set_frag(false, n > 1 || mf0, off0 as u16);
        f.fill_checksum();
        self.counters.fragments += 1;
        Ok(pkt.start..pkt.start + first_len)
    }

    /// Rewrites `buf[pkt]` into an ICMP "destination unreachable, fragmentation needed" for its sender.
    fn icmp_too_big(&mut self, buf: &mut [u8], pkt: Range<usize>, mtu: usize) -> Verdict {
        //= https://www.rfc-editor.org/rfc/rfc1191#section-4
        //# the router MUST include the MTU of that next-hop network in the low-order 16 bits of
        //# the ICMP header field that is labelled "unused" in the ICMP specification
        self.drops[DropReason::TooBig as usize] += 1;
        let orig = ipv4::Packet::new_unchecked(&buf[pkt.clone()]);
        let hl = orig.header_len();
        let src = orig.src_addr();
        let quote = (hl + 8).min(pkt.len());
        let start = pkt.start;
        //= https://www.rfc-editor.org/rfc/rfc1812#section-4.3.2.7
        //# A router MUST NOT originate an ICMP error message in response to: an ICMP error
        //# message, a datagram that is not the first fragment, ... a broadcast or multicast
        let icmp_error = orig.protocol() == IpProtocol::ICMP
            && buf
                .get(pkt.start + hl)
                .is_some_and(|t| !matches!(t, 0 | 8 | 13 | 14));
        if orig.frag_offset() != 0
            || icmp_error
            || src.is_multicast()
            || src.is_broadcast()
            || src.is_unspecified()
            || start + 28 + quote > buf.len()
        {
            return Verdict::Drop(DropReason::TooBig);
        }
        self.counters.icmp_too_big += 1;
        // Quote the original header + 8 bytes after our new 28-byte IP+ICMP header.
        buf.copy_within(start..start + quote, start + 28);
        let total = 28 + quote;
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let out = &mut buf[start..start + total];
        out[..28].fill(0);
        out[0] = 0x45;
        let mut ip = ipv4::Packet::new_unchecked(&mut out[..]);
        ip.set_total_len(total as u16);
        ip.set_ident(self.ip_ident);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr(self.cfg.icmp_source);
        ip.set_dst_addr(src);
        ip.fill_checksum();
        let icmp = &mut out[20..];
        icmp[0] = 3;
        icmp[1] = 4;
        icmp[6..8].copy_from_slice(&(mtu as u16).to_be_bytes());
        let cs = ipv4::checksum(icmp);
        icmp[2..4].copy_from_slice(&cs.to_be_bytes());
        Verdict::ToTunnel(start..start + total)
    }

    /// A datagram from the peer. With UDP encapsulation `buf[data]` is the UDP payload (IKE must have
    /// been taken out already with [`classify_udp4500`]); otherwise it is the ESP packet.
    pub fn receive(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        data: Range<usize>,
        meta: RecvMeta,
    ) -> Verdict {
        let v = self.receive_inner(now, buf, data, meta);
        self.after_traffic(now);
        v
    }

    fn receive_inner(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        data: Range<usize>,
        meta: RecvMeta,
    ) -> Verdict {
        let Some(bytes) = buf.get(data.clone()) else {
            return self.drop_packet(DropReason::Truncated);
        };
        match classify_udp4500(bytes) {
            Udp4500::Esp => {}
            Udp4500::Keepalive => {
                self.counters.keepalives_received += 1;
                return Verdict::Consumed;
            }
            Udp4500::Ike(_) | Udp4500::Bad => {
                self.counters.recv_errors += 1;
                return self.drop_packet(DropReason::NotEsp);
            }
        }
        let Some(spi) = esp::peek_spi(bytes) else {
            return self.drop_packet(DropReason::Truncated);
        };
        let Some(sa) = self.inbound.iter_mut().find(|s| s.spi() == spi) else {
            self.counters.invalid_spi += 1;
            let due = self
                .last_invalid_spi_event
                .is_none_or(|t| now >= t + INVALID_SPI_EVENT_INTERVAL);
            if due {
                self.last_invalid_spi_event = Some(now);
                self.push_event(Event::InvalidSpi {
                    tunnel: self.cfg.id,
                    spi,
                    from: meta.from,
                });
            }
            return self.drop_packet(DropReason::InvalidSpi);
        };
        let d = match sa.decapsulate(now, buf, data) {
            Ok(d) => d,
            Err(r) => {
                self.counters.recv_errors += 1;
                match r {
                    DropReason::Replay | DropReason::ReplayTooOld => {
                        self.counters.replay_failures += 1
                    }
                    DropReason::Integrity => self.counters.auth_failures += 1,
                    _ => {}
                }
                return self.drop_packet(r);
            }
        };
        self.last_rx = Some(now);
        self.idle_fired = false;
        let mut range = d.range;
        match IpProtocol(d.next_header) {
            IpProtocol::NO_NEXT_HEADER => {
                self.counters.dummy_received += 1;
                return Verdict::Consumed;
            }
            IpProtocol::IPV4 => {
                let Ok(p) = ipv4::Packet::new_checked(&buf[range.clone()]) else {
                    self.counters.recv_errors += 1;
                    return self.drop_packet(DropReason::BadInnerPacket);
                };
                // Drop TFC padding after the inner packet.
                range.end = range.start + usize::from(p.total_len());
            }
            IpProtocol::IPV6 => {
                let b = &buf[range.clone()];
                if b.len() < 40 || b[0] >> 4 != 6 {
                    self.counters.recv_errors += 1;
                    return self.drop_packet(DropReason::BadInnerPacket);
                }
                let pl = usize::from(u16::from_be_bytes([b[4], b[5]]));
                if 40 + pl > b.len() {
                    self.counters.recv_errors += 1;
                    return self.drop_packet(DropReason::BadInnerPacket);
                }
                range.end = range.start + 40 + pl;
            }
            _ => {
                self.counters.recv_errors += 1;
                return self.drop_packet(DropReason::BadNextHeader);
            }
        }
        if let Err(r) = ecn_decapsulate(meta.tos & 0x03, &mut buf[range.clone()]) {
            return self.drop_packet(r);
        }
        if let Some(mss) = self.cfg.adjust_mss
            && clamp_tcp_mss(&mut buf[range.clone()], mss)
        {
            self.counters.mss_clamped += 1;
        }
        self.counters.decaps += 1;
        Verdict::ToTunnel(range)
    }

    /// Packets waiting for transmission (the flushed acquire queue, later fragments, NAT keepalives).
    /// Each call writes at most one packet into `buf` (which should be at least
    /// `HEADROOM + path MTU + TAILROOM` bytes long).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Verdict> {
        if self.keepalive_due {
            self.keepalive_due = false;
            if let (Some(dst), Some(udp), Some(b)) =
                (self.cfg.destination, self.cfg.udp_encap, buf.first_mut())
            {
                *b = NAT_KEEPALIVE[0];
                self.counters.keepalives_sent += 1;
                self.last_tx = Some(now);
                return Some(Verdict::ToNetwork(Transmit {
                    range: 0..1,
                    src: self.cfg.source,
                    dst,
                    udp: Some(udp),
                    df: false,
                    tos: 0,
                }));
            }
        }
        if self.outbound.is_none() || self.cfg.destination.is_none() {
            return None;
        }
        let p = self.pending.pop_front()?;
        let len = p.len();
        let v = if HEADROOM + len + TAILROOM > buf.len() {
            self.drop_packet(DropReason::BufferTooSmall)
        } else {
            buf[HEADROOM..HEADROOM + len].copy_from_slice(&p);
            self.send_inner(now, buf, HEADROOM..HEADROOM + len)
        };
        self.recycle(p);
        self.after_traffic(now);
        Some(v)
    }

    fn after_traffic(&mut self, now: Instant) {
        self.check_expiry(now);
    }

    fn check_expiry(&mut self, now: Instant) {
        let id = self.cfg.id;
        if let Some(sa) = self.outbound.as_mut() {
            let spi = sa.spi();
            match sa.poll_expiry(now) {
                Some(Expiry::Soft) => self.push_event(Event::Rekey {
                    tunnel: id,
                    spi,
                    inbound: false,
                }),
                Some(Expiry::Hard) => {
                    self.outbound = None;
                    self.push_event(Event::Expired {
                        tunnel: id,
                        spi,
                        inbound: false,
                    });
                }
                None => {}
            }
        }
        let mut i = 0;
        while i < self.inbound.len() {
            let sa = &mut self.inbound[i];
            let spi = sa.spi();
            match sa.poll_expiry(now) {
                Some(Expiry::Soft) => {
                    self.push_event(Event::Rekey {
                        tunnel: id,
                        spi,
                        inbound: true,
                    });
                    i += 1;
                }
                Some(Expiry::Hard) => {
                    self.inbound.remove(i);
                    self.push_event(Event::Expired {
                        tunnel: id,
                        spi,
                        inbound: true,
                    });
                }
                None => i += 1,
            }
        }
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.idle_fired {
            return None;
        }
        let sa = self.outbound.as_ref()?;
        let idle = sa.idle_timeout()?;
        let last = self.last_tx.max(self.last_rx)?;
        Some(last + idle)
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.cfg.nat_keepalive?;
        self.cfg.udp_encap?;
        self.outbound.as_ref()?;
        if self.keepalive_due {
            return None;
        }
        Some(self.last_tx? + interval)
    }

    /// Time passed: acquire timeout, lifetimes, idle timer, keepalives.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.acquiring
            && now >= deadline
        {
            let dropped = self.acquire_failed();
            self.push_event(Event::AcquireFailed {
                tunnel: self.cfg.id,
                dropped,
            });
        }
        self.check_expiry(now);
        if let Some(d) = self.idle_deadline()
            && now >= d
        {
            self.idle_fired = true;
            if let Some(spi) = self.outbound_spi() {
                self.push_event(Event::Idle {
                    tunnel: self.cfg.id,
                    outbound_spi: spi,
                });
            }
        }
        if let Some(d) = self.keepalive_deadline()
            && now >= d
        {
            self.keepalive_due = true;
        }
    }

    /// The next instant [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sa_deadlines = self
            .outbound
            .iter()
            .filter_map(|s| s.next_deadline())
            .chain(self.inbound.iter().filter_map(|s| s.next_deadline()));
        [
            self.acquiring,
            self.idle_deadline(),
            self.keepalive_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(sa_deadlines)
        .min()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events wait for [`Self::poll_event`] (a data-plane worker that sealed or opened packets tells the
    /// coordinator to drain them without draining them itself).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Events dropped because the queue was full (the coordinator fell behind).
    pub fn events_lost(&self) -> u64 {
        self.events_lost
    }

    pub fn snapshot(&self, now: Instant) -> TunnelSnapshot {
        let sa_snap = |spi: u32,
                       cipher: &crate::crypto::Cipher,
                       mode: Mode,
                       replay: Option<u32>,
                       rem: (Option<u64>, Option<Duration>),
                       counters: SaCounters| SaSnapshot {
            spi,
            encr: cipher.encr(),
            integ: cipher.integ(),
            mode,
            iv_size: cipher.iv_len(),
            replay_window: replay,
            remaining_kb: rem.0.map(|b| b / 1024),
            remaining_secs: rem.1.map(|d| d.as_secs()),
            counters,
        };
        TunnelSnapshot {
            id: self.cfg.id,
            source: self.cfg.source,
            destination: self.cfg.destination,
            udp_encap: self.cfg.udp_encap,
            state: if self.outbound.is_some() {
                TunnelState::Up
            } else if self.acquiring.is_some() {
                TunnelState::Acquiring
            } else {
                TunnelState::Idle
            },
            path_mtu: self.cfg.path_mtu,
            plaintext_mtu: self.plaintext_mtu(),
            ip_mtu: self.ip_mtu(),
            df_bit: self.cfg.df_bit,
            queue_len: self.queue.len(),
            outbound: self.outbound.as_ref().map(|s| {
                sa_snap(
                    s.spi(),
                    s.cipher(),
                    s.mode(),
                    None,
                    s.remaining(now),
                    s.counters(),
                )
            }),
            inbound: self
                .inbound
                .iter()
                .map(|s| {
                    let w = s.replay_window();
                    sa_snap(
                        s.spi(),
                        s.cipher(),
                        s.mode(),
                        w.enabled().then_some(w.size()),
                        s.remaining(now),
                        s.counters(),
                    )
                })
                .collect(),
            counters: self.counters,
            drops: self.drops,
        }
    }
}

/// RFC 6040 §4.2 decapsulation: combine outer ECN into the inner header.
fn ecn_decapsulate(outer: u8, inner: &mut [u8]) -> Result<(), DropReason> {
    const NOT_ECT: u8 = 0;
    const ECT1: u8 = 1;
    const ECT0: u8 = 2;
    const CE: u8 = 3;
    let v4 = inner.first().is_some_and(|b| b >> 4 == 4);
    let inner_ecn = if v4 {
        inner.get(1).map_or(0, |b| b & 3)
    } else {
        inner.get(1).map_or(0, |b| (b >> 4) & 3)
    };
    //= https://www.rfc-editor.org/rfc/rfc6040#section-4.2
    //# | Not-ECT | Not-ECT  |Not-ECT|  ECT(0)  |  ECT(1)  |     <drop>     |
    let new = match (inner_ecn, outer) {
        (NOT_ECT, CE) => return Err(DropReason::EcnDrop),
        (NOT_ECT, _) => NOT_ECT,
        (ECT0, ECT1) => ECT1,
        (ECT0 | ECT1, CE) => CE,
        (i, _) => i,
    };
    if new != inner_ecn {
        if v4 {
            let mut p = ipv4::Packet::new_unchecked(&mut *inner);
            p.set_ecn(new);
            p.fill_checksum();
        } else if let Some(b) = inner.get_mut(1) {
            *b = (*b & !0x30) | (new << 4);
        }
    }
    Ok(())
}

/// Fuzz body: arbitrary bytes into a tunnel's receive and send paths and into bare SAs.
pub(crate) fn fuzz_decapsulate(now: Instant, bytes: &[u8]) {
    static GK: [u8; 20] = [0x11; 20];
    static CK: [u8; 16] = [0x22; 16];
    static MK: [u8; 20] = [0x33; 20];
    let mk = |spi: u32, encr, integ, ek: &'static [u8], ik: &'static [u8]| crate::SaParams {
        spi,
        encr,
        integ,
        enc_key: ek,
        integ_key: ik,
        esn: spi.is_multiple_of(2),
        mode: Mode::Tunnel,
        replay_window: 64,
        lifetime: crate::Lifetime::unlimited(),
        idle_timeout: None,
    };
    let gcm = mk(0x100, Encr::AesGcm16(AesKeyLen::Aes128), None, &GK, &[]);
    let cbc = mk(
        0x201,
        Encr::AesCbc(AesKeyLen::Aes128),
        Some(Integ::HmacSha1_96),
        &CK,
        &MK,
    );
    let len = bytes.len();
    for p in [&gcm, &cbc] {
        if let Ok(mut sa) = InboundSa::new(now, p) {
            let _ = sa.decapsulate(now, &mut bytes.to_vec(), 0..len);
        }
    }
    let mut t = Tunnel::new(TunnelConfig::new(
        1,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
    ));
    if let (Ok(o), Ok(i)) = (OutboundSa::new(now, &gcm), InboundSa::new(now, &gcm)) {
        t.install_sa(now, o, i);
    }
    let meta = RecvMeta {
        from: SocketAddr::from(([192, 0, 2, 2], 4500)),
        tos: len as u8,
    };
    let _ = t.receive(now, &mut bytes.to_vec(), 0..len, meta);
    // The same bytes as an inner packet routed into the tunnel (MSS clamp, fragmentation, ICMP).
    t.cfg.adjust_mss = Some(1200);
    t.cfg.ip_mtu = Some(576);
    let mut out = vec![0u8; HEADROOM + len + TAILROOM];
    out[HEADROOM..HEADROOM + len].copy_from_slice(bytes);
    let _ = t.send(now, &mut out, HEADROOM..HEADROOM + len);
    let mut scratch = vec![0u8; HEADROOM + 1500 + TAILROOM];
    while t.poll_transmit(now, &mut scratch).is_some() {}
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
