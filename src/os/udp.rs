//! UDP sockets for IKE (500) and NAT-T/ESP-in-UDP (4500), and the raw socket for ESP (IP protocol 50).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage,
    recvmmsg, recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

/// Socket buffer size asked for the data sockets (the kernel caps it at `net.core.rmem_max` /
/// `wmem_max`). With the default (~208 KiB) a burst of ESP under an iperf3 stream overflowed the raw ESP
/// socket while the appliance task was busy: `tests/svti.rs`'s rekey test lost 17-60 pings that way, spread
/// evenly over the run, while the data plane counted no drop at all.
const DATA_SOCKET_BUFFER: usize = 4 << 20;

pub(crate) fn big_buffers(s: &Socket) {
    // As root (CAP_NET_ADMIN) SO_RCVBUFFORCE goes past `net.core.rmem_max` (212992 by default on most
    // systems); otherwise the kernel's cap applies. Best effort: a smaller buffer only drops sooner.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(s, DATA_SOCKET_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(DATA_SOCKET_BUFFER);
    }
    let _ = s.set_send_buffer_size(DATA_SOCKET_BUFFER);
}

/// At most this many datagrams go in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on the
/// oldest kernels that have UDP GSO).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// At most this many bytes in one GSO send (an IPv4 datagram's payload limit, minus the UDP header).
pub const GSO_MAX_BYTES: usize = 65_507;

/// A UDP socket bound to `addr`, with UDP GRO asked for (Linux >= 5.0; ignored where missing): a peer's
/// GSO burst then arrives as one buffer of equal segments, see [`recv_gro`]. (The outer TOS byte is not
/// read yet: ECN decapsulation sees 0.)
pub fn bind_udp(addr: SocketAddrV4) -> io::Result<Arc<UdpSocket>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    big_buffers(&s);
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(addr))?;
    let sock = UdpSocket::from_std(s.into())?;
    let _ = setsockopt(&sock, sockopt::UdpGroSegment, &true);
    Ok(Arc::new(sock))
}

/// What one receive returned: `len` bytes from `from`, made of datagrams of `segment` bytes each (the
/// last may be shorter). Without GRO `segment == len`.
pub struct Received {
    pub from: SocketAddr,
    pub len: usize,
    pub segment: usize,
}

/// Room for the UDP GRO control message (from `nix::cmsg_space!(i32)`, kept by the reader: allocating it
/// per receive would cost an allocation per datagram).
pub fn gro_cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(i32)
}

/// Receives the next datagram, or the next GRO batch of datagrams, into `buf`; `cmsg` is
/// [`gro_cmsg_buffer`]'s.
pub async fn recv_gro(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Received> {
    loop {
        sock.readable().await?;
        match sock.try_io(Interest::READABLE, || recv_gro_once(sock, buf, cmsg)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

fn recv_gro_once(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let len = msg.bytes;
    let mut segment = len;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::UdpGroSegments(s) = c
            && let Ok(s) = usize::try_from(s)
            && s > 0
        {
            segment = s;
        }
    }
    let from = msg
        .address
        .and_then(|a| a.as_sockaddr_in().copied())
        .map(SocketAddr::from)
        .ok_or_else(|| io::Error::other("datagram without an IPv4 source"))?;
    Ok(Received { from, len, segment })
}

/// Sends `buf` to `to` as datagrams of `segment` bytes each (the last may be shorter) in one UDP GSO
/// `sendmsg` (Linux >= 4.18). Errors such as EIO/EINVAL mean the path cannot segment: send one by one.
pub async fn send_gso(
    sock: &UdpSocket,
    buf: &[u8],
    segment: u16,
    to: SocketAddrV4,
) -> io::Result<()> {
    let addr = SockaddrIn::from(to);
    loop {
        sock.writable().await?;
        let r = sock.try_io(Interest::WRITABLE, || {
            sendmsg(
                sock.as_raw_fd(),
                &[IoSlice::new(buf)],
                &[ControlMessage::UdpGsoSegments(&segment)],
                MsgFlags::MSG_DONTWAIT,
                Some(&addr),
            )
            .map_err(io::Error::from)
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// The DHCP client's socket: UDP 0.0.0.0:68, broadcast allowed, bound to `device` (it has no address yet).
pub fn bind_dhcp(device: &str) -> io::Result<Arc<UdpSocket>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(device.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        68,
    )))?;
    Ok(Arc::new(UdpSocket::from_std(s.into())?))
}

/// A raw IPv4 socket for ESP (protocol 50). Reads return the IP header too.
pub struct RawEsp {
    fd: AsyncFd<Socket>,
}

impl RawEsp {
    pub fn open() -> io::Result<RawEsp> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(50)))?;
        big_buffers(&s);
        s.set_nonblocking(true)?;
        // `AsyncFd::new` is deprecated for types that may not own their descriptor; `socket2::Socket`
        // owns its fd for its whole life, which is the I/O-safety condition `register` asks for.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(RawEsp { fd })
    }

    /// One ESP packet to `dst` (the GRE protection path; the ESP of static VTIs leaves in batches).
    pub async fn send_to(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        let addr = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(dst, 0)));
        loop {
            let mut guard = self.fd.writable().await?;
            if let Ok(r) = guard.try_io(|s| s.get_ref().send_to(payload, &addr)) {
                return r;
            }
        }
    }

    /// The next ESP packets, up to [`RAW_BATCH`] in one `recvmmsg`; read them with
    /// [`RawRecvBatch::packet`]. Returns how many arrived (at least one).
    pub async fn recv_batch(&self, batch: &mut RawRecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| batch.recv(s.get_ref().as_raw_fd())) {
                Ok(Ok(0)) | Err(_) => continue,
                Ok(r) => return r,
            }
        }
    }

    /// Sends the packets of `batch` (equal TOS) with `sendmmsg`, then empties it.
    pub async fn send_batch(&self, batch: &mut RawSendBatch) {
        let tos = batch.tos;
        if tos != 0 {
            let _ = self.fd.get_ref().set_tos_v4(u32::from(tos));
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
        if tos != 0 {
            let _ = self.fd.get_ref().set_tos_v4(0);
        }
        batch.packets.clear();
    }
}

/// At most this many ESP packets per `recvmmsg` / `sendmmsg` on the raw ESP socket.
pub const RAW_BATCH: usize = 32;
/// Room per received packet: the kernel hands reassembled IP datagrams to a raw socket.
const RAW_RECV_ROOM: usize = 65536;

/// Buffers and headers for [`RawEsp::recv_batch`], allocated once per reader. Not `Send` (nix's
/// `MultiHeaders` holds raw pointers): its reader runs as a local task (`tokio::task::spawn_local`).
pub struct RawRecvBatch {
    bufs: Box<[u8]>,
    headers: MultiHeaders<SockaddrIn>,
    lens: [usize; RAW_BATCH],
}

impl Default for RawRecvBatch {
    fn default() -> Self {
        RawRecvBatch {
            bufs: vec![0u8; RAW_BATCH * RAW_RECV_ROOM].into_boxed_slice(),
            headers: MultiHeaders::preallocate(RAW_BATCH, None),
            lens: [0; RAW_BATCH],
        }
    }
}

impl RawRecvBatch {
    fn recv(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        let mut chunks = self.bufs.chunks_exact_mut(RAW_RECV_ROOM);
        let mut iovs: [[IoSliceMut<'_>; 1]; RAW_BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
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

    /// Packet `i` of the last receive: (source, outer TOS, the ESP bytes after the IP header); None
    /// for a runt.
    pub fn packet(&self, i: usize) -> Option<(Ipv4Addr, u8, &[u8])> {
        let len = *self.lens.get(i)?;
        let buf = self.bufs.get(i * RAW_RECV_ROOM..i * RAW_RECV_ROOM + len)?;
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        if len < 20 || len < ihl {
            return None;
        }
        let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        Some((from, buf[1], &buf[ihl..]))
    }
}

/// ESP packets waiting to leave by one `sendmmsg` on the raw socket ([`RawEsp::send_batch`]), all with
/// one TOS; the buffers are the node's pooled outputs.
pub struct RawSendBatch {
    pub tos: u8,
    pub packets: Vec<(Ipv4Addr, crate::pkt::PacketBuf)>,
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
