//! OS drivers: the only code that talks to the kernel (netlink routes, ICMP sockets; TUN and UDP later).
//! Everything here is a thin, safe wrapper; protocol decisions live in the library crates.

#![allow(dead_code)] // wired by the monitors driver (next commit)

pub mod icmp;
pub mod route;
