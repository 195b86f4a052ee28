//! UDP sockets for IKE (500) and NAT-T/ESP-in-UDP (4500) (raw ESP and GRE: [`super::raw_ip`]).

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
/// `sendmsg` (Linux >= 4.18), or as one datagram when `segment` is `None`. Errors such as EIO/EINVAL mean
/// the path cannot segment: send one by one. A nonzero `tos` marks the datagrams through an `IP_TOS`
/// control message, not the socket option: the node loop and the data-plane workers send on the same
/// socket at once (`crate::workers`), and a socket-wide TOS would mark each other's datagrams.
pub async fn send_gso(
    sock: &UdpSocket,
    buf: &[u8],
    segment: Option<u16>,
    to: SocketAddrV4,
    tos: u8,
) -> io::Result<()> {
    let addr = SockaddrIn::from(to);
    let seg = segment.unwrap_or(0);
    let both = [
        ControlMessage::UdpGsoSegments(&seg),
        ControlMessage::Ipv4Tos(&tos),
    ];
    let cmsgs = match (segment.is_some(), tos != 0) {
        (true, true) => &both[..],
        (true, false) => &both[..1],
        (false, true) => &both[1..],
        (false, false) => &both[..0],
    };
    loop {
        sock.writable().await?;
        let r = sock.try_io(Interest::WRITABLE, || {
            sendmsg(
                sock.as_raw_fd(),
                &[IoSlice::new(buf)],
                cmsgs,
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
