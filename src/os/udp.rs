//! UDP sockets for IKE (500) and NAT-T/ESP-in-UDP (4500), and the raw socket for ESP (IP protocol 50).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

/// Socket buffer size asked for the data sockets (the kernel caps it at `net.core.rmem_max` /
/// `wmem_max`). With the default (~208 KiB) a burst of ESP under an iperf3 stream overflowed the raw ESP
/// socket while the appliance task was busy: `tests/svti.rs`'s rekey test lost 17-60 pings that way, spread
/// evenly over the run, while the data plane counted no drop at all.
const DATA_SOCKET_BUFFER: usize = 4 << 20;

fn big_buffers(s: &Socket) {
    // As root (CAP_NET_ADMIN) SO_RCVBUFFORCE goes past `net.core.rmem_max` (212992 by default on most
    // systems); otherwise the kernel's cap applies. Best effort: a smaller buffer only drops sooner.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(s, DATA_SOCKET_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(DATA_SOCKET_BUFFER);
    }
    let _ = s.set_send_buffer_size(DATA_SOCKET_BUFFER);
}

/// A UDP socket bound to `addr`. (The outer TOS byte is not read yet: ECN decapsulation sees 0.)
pub fn bind_udp(addr: SocketAddrV4) -> io::Result<Arc<UdpSocket>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    big_buffers(&s);
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(Arc::new(UdpSocket::from_std(s.into())?))
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
