//! UDP sockets for IKE (500) and NAT-T/ESP-in-UDP (4500), and the raw socket for ESP (IP protocol 50).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrStorage, recvmsg, sendmsg,
    setsockopt, sockopt,
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

/// Receives the next datagram, or the next GRO batch of datagrams, into `buf`.
pub async fn recv_gro(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        sock.readable().await?;
        match sock.try_io(Interest::READABLE, || recv_gro_once(sock, buf)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

fn recv_gro_once(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(i32);
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
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

    pub async fn send_to(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        let addr = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(dst, 0)));
        loop {
            let mut guard = self.fd.writable().await?;
            if let Ok(r) = guard.try_io(|s| s.get_ref().send_to(payload, &addr)) {
                return r;
            }
        }
    }

    /// [`RawEsp::send_to`] with IP TOS `tos` (set for this packet only when it is not 0).
    pub async fn send_to_tos(&self, payload: &[u8], dst: Ipv4Addr, tos: u8) -> io::Result<usize> {
        if tos == 0 {
            return self.send_to(payload, dst).await;
        }
        let _ = self.fd.get_ref().set_tos_v4(u32::from(tos));
        let r = self.send_to(payload, dst).await;
        let _ = self.fd.get_ref().set_tos_v4(0);
        r
    }

    /// One ESP packet: (source, TOS, range of the ESP bytes in `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Ipv4Addr, u8, std::ops::Range<usize>)> {
        use std::io::Read;
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    let ihl = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                    if n < 20 || n < ihl {
                        continue;
                    }
                    let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                    return Ok((from, buf[1], ihl..n));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
