//! GRE over a raw IPv4 socket of protocol 47: the appliance's GRE needs no kernel GRE module.
//!
//! One socket per tunnel source address, bound to it: the kernel hands it every GRE datagram addressed to
//! that address (with the IP header, which gives the outer source), and sends from it with that source.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

/// IP protocol number of GRE.
pub const IPPROTO_GRE: i32 = 47;

pub struct RawGre {
    fd: AsyncFd<Socket>,
    pub local: Ipv4Addr,
}

impl RawGre {
    pub fn open(local: Ipv4Addr) -> io::Result<RawGre> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))?;
        super::udp::big_buffers(&s);
        // Binding a raw socket selects the datagrams addressed to `local` and fixes the source we send from.
        s.bind(&SockAddr::from(SocketAddr::V4(SocketAddrV4::new(local, 0))))?;
        s.set_nonblocking(true)?;
        // `socket2::Socket` owns its fd for its whole life, the I/O-safety condition `register` asks for.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(RawGre { fd, local })
    }

    /// Send one GRE packet (header and payload) to `dst`.
    pub async fn send_to(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        let addr = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(dst, 0)));
        loop {
            let mut guard = self.fd.writable().await?;
            if let Ok(r) = guard.try_io(|s| s.get_ref().send_to(payload, &addr)) {
                return r;
            }
        }
    }

    /// One GRE datagram: (outer source, outer destination, range of the GRE bytes in `buf`).
    pub async fn recv(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)> {
        use std::io::Read;
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    let ihl = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                    if n < 20 || ihl < 20 || n < ihl {
                        continue;
                    }
                    let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                    let to = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
                    return Ok((from, to, ihl..n));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
