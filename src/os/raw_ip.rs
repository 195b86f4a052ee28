//! Raw IPv4 sockets of one IP protocol: ESP (50) for raw ESP, GRE (47) for the appliance's GRE (no kernel
//! GRE or ESP module needed). Reads return the IP header too (it gives the outer source, destination and
//! TOS); sends give the payload only and the kernel writes the IP header.
//!
//! Both directions are batched: up to [`RAW_BATCH`] packets per `recvmmsg` ([`RawIp::recv_batch`], straight
//! into pooled [`PacketBuf`]s) and per `sendmmsg` ([`RawIp::send_batch`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::pkt::{self, PacketBuf};

/// IP protocol number of GRE.
pub const IPPROTO_GRE: i32 = 47;
/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;

/// A raw IPv4 socket of one protocol, optionally bound to a local address (GRE: one socket per tunnel
/// source, which selects the datagrams addressed to it and fixes the source we send from).
pub struct RawIp {
    fd: AsyncFd<Socket>,
    /// The bound address (`UNSPECIFIED` when not bound).
    pub local: Ipv4Addr,
}

impl RawIp {
    pub fn open(protocol: i32, local: Option<Ipv4Addr>) -> io::Result<RawIp> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))?;
        super::udp::big_buffers(&s);
        if let Some(a) = local {
            s.bind(&SockAddr::from(SocketAddr::V4(SocketAddrV4::new(a, 0))))?;
        }
        s.set_nonblocking(true)?;
        // `AsyncFd::new` is deprecated for types that may not own their descriptor; `socket2::Socket`
        // owns its fd for its whole life, which is the I/O-safety condition `register` asks for.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(RawIp {
            fd,
            local: local.unwrap_or(Ipv4Addr::UNSPECIFIED),
        })
    }

    /// The same socket on another descriptor (`dup`), for a data-plane worker to register with its own
    /// runtime ([`RawIp::from_socket`]). Every raw protocol-50 socket gets a copy of each ESP packet, so
    /// the workers share the one ESP socket instead of opening their own.
    pub fn try_clone_socket(&self) -> io::Result<Socket> {
        self.fd.get_ref().try_clone()
    }

    /// Wraps a descriptor of an [`RawIp::open`]ed socket for the current runtime, registered for
    /// `interest` only: with data-plane workers, each descriptor is either read or written, and a
    /// registration for the other direction would wake its thread for every packet that arrives or
    /// leaves (a reader or sender on another thread, an idle node loop) - `scripts/bench-throughput` raw
    /// ESP: 583 Mbit/s at 141 % CPU with every descriptor registered both ways, against 823 inline.
    pub fn from_socket(s: Socket, local: Ipv4Addr, interest: Interest) -> io::Result<RawIp> {
        s.set_nonblocking(true)?;
        // Deprecated for types that may not own their descriptor; `socket2::Socket` owns its fd (see
        // `open`).
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(s, interest)?;
        Ok(RawIp { fd, local })
    }

    /// This descriptor again, registered for writing only (see [`RawIp::from_socket`]).
    pub fn send_only(self) -> io::Result<RawIp> {
        let local = self.local;
        Self::from_socket(self.fd.into_inner(), local, Interest::WRITABLE)
    }

    /// The next packets, up to [`RAW_BATCH`] in one `recvmmsg`; take them with [`RawRecvBatch::take`].
    /// Returns how many arrived (at least one).
    pub async fn recv_batch(&self, batch: &mut RawRecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| batch.recv(s.get_ref().as_raw_fd())) {
                Ok(Ok(0)) | Err(_) => continue,
                Ok(r) => return r,
            }
        }
    }

    /// Sends the packets of `batch` (equal TOS) with `sendmmsg`, then empties it. Marked packets (TOS not
    /// 0) go one `sendmsg` each with an `IP_TOS` control message instead: the node loop and the data-plane
    /// workers (`crate::workers`) send on this socket at once, and a socket-wide TOS would mark the
    /// others' packets too.
    pub async fn send_batch(&self, batch: &mut RawSendBatch) {
        let tos = batch.tos;
        if tos != 0 {
            for (dst, p) in batch.packets.drain(..) {
                let _ = self.send_marked(&p, dst, tos).await;
            }
            return;
        }
        let mut from = 0;
        while from < batch.packets.len() {
            let Ok(mut guard) = self.fd.writable().await else {
                break;
            };
            match guard.try_io(|s| batch.send(s.get_ref(), from)) {
                Ok(Ok(n)) => from += n.max(1),
                // A packet the kernel refuses (no route, EMSGSIZE) is dropped, as a single send's would be.
                Ok(Err(_)) => from += 1,
                Err(_would_block) => continue,
            }
        }
        batch.packets.clear();
    }

    async fn send_marked(&self, payload: &[u8], dst: Ipv4Addr, tos: u8) -> io::Result<usize> {
        let addr = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        loop {
            let mut guard = self.fd.writable().await?;
            let r = guard.try_io(|s| {
                nix::sys::socket::sendmsg(
                    s.get_ref().as_raw_fd(),
                    &[IoSlice::new(payload)],
                    &[nix::sys::socket::ControlMessage::Ipv4Tos(&tos)],
                    MsgFlags::MSG_DONTWAIT,
                    Some(&addr),
                )
                .map_err(io::Error::from)
            });
            if let Ok(r) = r {
                return r;
            }
        }
    }
}

/// At most this many packets per `recvmmsg` / `sendmmsg` on a raw socket.
pub const RAW_BATCH: usize = 32;
/// Room per received packet: the kernel hands reassembled IP datagrams to a raw socket.
const RAW_RECV_ROOM: usize = 65536;
/// Room kept in front of a received packet (after its IP header is dropped, that header's room adds to
/// it): enough for a hub to put a GRE header back on in place.
const RECV_HEADROOM: usize = pkt::GRE_HEADROOM;
/// Bytes of a packet that fit its pooled block; the rest of a larger one lands in the overflow buffer.
const SLOT: usize = pkt::SMALL - RECV_HEADROOM;

/// One received packet: outer source, destination and TOS, and the payload after the IP header.
pub struct RawPacket {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    pub tos: u8,
    pub bytes: PacketBuf,
}

/// Buffers and headers for [`RawIp::recv_batch`], allocated once per reader. Each packet is read into
/// a pooled block (one per slot, taken by [`RawRecvBatch::take`] and replaced by the next receive from the
/// pool), continuing into a per-slot overflow buffer when it is larger (a reassembled datagram). Not
/// `Send` (nix's `MultiHeaders` holds raw pointers): its reader runs as a local task
/// (`tokio::task::spawn_local`).
pub struct RawRecvBatch {
    slots: Vec<Option<PacketBuf>>,
    overflow: Box<[u8]>,
    headers: MultiHeaders<SockaddrIn>,
    lens: [usize; RAW_BATCH],
}

impl Default for RawRecvBatch {
    fn default() -> Self {
        RawRecvBatch {
            slots: (0..RAW_BATCH).map(|_| None).collect(),
            overflow: vec![0u8; RAW_BATCH * (RAW_RECV_ROOM - SLOT)].into_boxed_slice(),
            headers: MultiHeaders::preallocate(RAW_BATCH, None),
            lens: [0; RAW_BATCH],
        }
    }
}

impl RawRecvBatch {
    fn recv(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        for s in &mut self.slots {
            if s.is_none() {
                *s = Some(PacketBuf::with_headroom(RECV_HEADROOM, SLOT));
            }
        }
        let mut overflow = self.overflow.chunks_exact_mut(RAW_RECV_ROOM - SLOT);
        let mut slots = self.slots.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 2]; RAW_BATCH] = std::array::from_fn(|_| {
            let block = match slots.next() {
                Some(Some(b)) => b.space_mut(),
                _ => Default::default(),
            };
            let end = block.len().min(SLOT);
            [
                IoSliceMut::new(&mut block[..end]),
                IoSliceMut::new(overflow.next().unwrap_or_default()),
            ]
        });
        let got = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut n = 0;
        for (len, m) in self.lens.iter_mut().zip(got) {
            *len = m.bytes;
            n += 1;
        }
        Ok(n)
    }

    /// Packet `i` of the last receive (taken out: a second call gives `None`); `None` for a runt too.
    pub fn take(&mut self, i: usize) -> Option<RawPacket> {
        let len = *self.lens.get(i)?;
        let mut b = self.slots.get_mut(i)?.take()?;
        if len > SLOT {
            // A packet larger than a block: one large pooled buffer with both parts.
            let rest = self
                .overflow
                .get(i * (RAW_RECV_ROOM - SLOT)..i * (RAW_RECV_ROOM - SLOT) + (len - SLOT))?;
            let mut big = PacketBuf::with_headroom(RECV_HEADROOM, len);
            big.space_mut()[..SLOT].copy_from_slice(b.space_mut().get(..SLOT)?);
            big.space_mut()[SLOT..len].copy_from_slice(rest);
            b = big;
        }
        b.set_len(len);
        let ihl = usize::from(b.first()? & 0x0f) * 4;
        if len < 20 || ihl < 20 || len < ihl {
            return None;
        }
        let from = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
        let to = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
        let tos = b[1];
        b.advance(ihl);
        Some(RawPacket {
            from,
            to,
            tos,
            bytes: b,
        })
    }
}

/// Packets waiting to leave by one `sendmmsg` on a raw socket ([`RawIp::send_batch`]), all with one TOS;
/// the buffers are the node's pooled outputs.
pub struct RawSendBatch {
    pub tos: u8,
    pub packets: Vec<(Ipv4Addr, PacketBuf)>,
}

impl Default for RawSendBatch {
    fn default() -> Self {
        RawSendBatch {
            tos: 0,
            packets: Vec::with_capacity(RAW_BATCH),
        }
    }
}

impl RawSendBatch {
    /// Room for one more packet with this TOS.
    pub fn accepts(&self, tos: u8) -> bool {
        self.packets.is_empty() || (self.tos == tos && self.packets.len() < RAW_BATCH)
    }

    /// `sendmmsg` of the packets from index `from` on; how many the kernel took.
    fn send(&mut self, sock: &Socket, from: usize) -> io::Result<usize> {
        use rustix::net::addr::SocketAddrArg;
        use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
        let rest = self.packets.get(from..).unwrap_or_default();
        let n = rest.len().min(RAW_BATCH);
        let addrs: [SocketAddrAny; RAW_BATCH] = std::array::from_fn(|i| {
            let dst = rest.get(i).map_or(Ipv4Addr::UNSPECIFIED, |(d, _)| *d);
            SocketAddrV4::new(dst, 0).as_any()
        });
        let iovs: [[IoSlice<'_>; 1]; RAW_BATCH] = std::array::from_fn(|i| {
            [IoSlice::new(
                rest.get(i).map(|(_, b)| &b[..]).unwrap_or_default(),
            )]
        });
        let mut control: [SendAncillaryBuffer<'_, '_, '_>; RAW_BATCH] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut parts = addrs.iter().zip(iovs.iter()).zip(control.iter_mut());
        let mut msgs: [MMsgHdr<'_>; RAW_BATCH] = std::array::from_fn(|_| {
            // Three arrays of RAW_BATCH elements: the zip yields exactly RAW_BATCH items.
            let ((a, v), c) = parts.next().expect("equal lengths");
            MMsgHdr::new_with_addr(a, v, c)
        });
        Ok(rustix::net::sendmmsg(
            sock,
            &mut msgs[..n],
            SendFlags::DONTWAIT,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IP protocol 253 (RFC 3692: for experimentation), so no other raw socket of the host's tunnels or
    /// tests sees these packets.
    const EXPERIMENT: i32 = 253;

    /// Over loopback (root only; skipped otherwise): one `sendmmsg` of packets of 1, 1400, 5000 (more than a
    /// pooled block: it continues into the slot's overflow) and 60 000 bytes, read back by `recvmmsg` with
    /// their source, destination and bytes intact, the IP header dropped and headroom kept in front.
    #[test]
    fn batches_go_out_and_come_back_whole_including_packets_larger_than_a_block() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let lo = Ipv4Addr::LOCALHOST;
            let (rx, tx) = match (
                RawIp::open(EXPERIMENT, Some(lo)),
                RawIp::open(EXPERIMENT, Some(lo)),
            ) {
                (Ok(rx), Ok(tx)) => (rx, tx),
                (Err(e), _) | (_, Err(e)) => {
                    assert!(
                        std::env::var_os("LIFELINE_REQUIRE_NETNS").is_none(),
                        "raw sockets: {e}"
                    );
                    eprintln!("skipped: no raw sockets ({e})");
                    return;
                }
            };
            let sizes = [1usize, 1400, 5000, 60_000];
            let payload = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
            let mut out = RawSendBatch::default();
            for n in sizes {
                out.packets.push((lo, PacketBuf::copy_from(&payload(n))));
            }
            tx.send_batch(&mut out).await;
            assert!(out.packets.is_empty());
            // The sending socket is bound to the same address and protocol: it reads them too. Read from
            // `rx` until all four are in (one `recvmmsg` may return fewer).
            let mut batch = RawRecvBatch::default();
            let mut got = Vec::new();
            while got.len() < sizes.len() {
                let n = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    rx.recv_batch(&mut batch),
                )
                .await
                .expect("packets within 5 s")
                .unwrap();
                for i in 0..n {
                    let p = batch.take(i).expect("a whole packet");
                    assert!(batch.take(i).is_none(), "taken once");
                    assert_eq!((p.from, p.to), (lo, lo));
                    assert!(p.bytes.headroom() >= RECV_HEADROOM + 20);
                    got.push(p.bytes.to_vec());
                }
            }
            for (n, bytes) in sizes.iter().zip(&got) {
                assert_eq!(bytes.len(), *n);
                assert!(bytes == &payload(*n), "{n}-byte packet changed");
            }
        });
    }
}
