//! OS drivers: the only code that talks to the kernel (netlink routes, ICMP sockets; TUN and UDP later).
//! Everything here is a thin, safe wrapper; protocol decisions live in the library crates.

pub mod icmp;
pub mod link;
pub mod raw_ip;
pub mod route;
pub mod sip_transport;
pub mod tun;
pub mod udp;
