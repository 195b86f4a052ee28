//! ICMP echo sockets for IP SLA probes.
//!
//! A raw ICMP socket (root) bound to the probe's source device with `SO_BINDTODEVICE`, so probes keep
//! leaving through the primary WAN after the routes moved to the backup tunnel (otherwise fallback would
//! never be detected). The echo bytes themselves come from `monitors`' codec; this driver only moves them.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

pub struct IcmpSocket {
    fd: AsyncFd<Socket>,
}

impl IcmpSocket {
    /// A raw ICMP socket, optionally bound to a device and a source address, with a ToS byte.
    pub fn open(device: Option<&str>, source: Option<Ipv4Addr>, tos: u8) -> io::Result<IcmpSocket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        s.set_nonblocking(true)?;
        if let Some(dev) = device {
            s.bind_device(Some(dev.as_bytes()))?;
        }
        if let Some(src) = source {
            s.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?;
        }
        if tos != 0 {
            s.set_tos_v4(u32::from(tos))?;
        }
        // `AsyncFd::new` is deprecated for types that may not own their descriptor; `socket2::Socket` owns
        // its fd for its whole life, which is exactly the I/O-safety condition `register` asks for.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(IcmpSocket { fd })
    }

    pub async fn send_to(&self, icmp: &[u8], dest: Ipv4Addr) -> io::Result<usize> {
        let addr = SockAddr::from(SocketAddrV4::new(dest, 0));
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().send_to(icmp, &addr)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive one ICMP message: returns the sender and the range of the ICMP bytes within `buf` (raw
    /// sockets deliver the IP header too; the sender is read from it).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(Ipv4Addr, std::ops::Range<usize>)> {
        use std::io::Read;
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    let ihl = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                    if n < 20 || n < ihl {
                        continue; // not an IPv4 packet we can read: counted as noise by the caller
                    }
                    let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                    return Ok((from, ihl..n));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
