//! NHRP (RFC 2332) and GRE (RFC 2784/2890) for DMVPN, sans-io.
//!
//! - [`wire`]: GRE and NHRP packet formats (smoltcp-style views and `Repr`s).
//! - [`demux`]: which tunnel interface an incoming GRE packet belongs to.
//! - [`cache`]: the NHRP cache.
//! - [`Nhc`] (spoke) and [`Nhs`] (hub): state machines over one shared
//!   engine ([`node::Core`]), driven with `handle_input(now, nbma_from, nhrp)`,
//!   `handle_timeout(now)`, `poll_transmit()`, `poll_timeout()`, `poll_event()`.
//! - [`show`]: `show ip nhrp [brief]`, `show dmvpn [detail]`, `show ip nhrp traffic`.
//!
//! Absent: IPv6 overlay or NBMA, the NHRP group vendor extension (per-tunnel
//! QoS), `ip nhrp nhs` priority/cluster/fallback, multi-hop NHS hierarchies
//! (requests are forwarded, and a Resolution Reply routed through a node is
//! relayed toward its requester, but no reverse transit records are kept),
//! purge retransmission, the legacy NAT proxy mode, IKE/ESP (the
//! appliance brings SAs up on [`Event::Resolved`] / [`Event::PeerRegistered`]).
//! No I/O, no clock reads, no randomness (the first request ID is configured).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cache;
pub mod config;
pub mod demux;
pub mod node;
pub mod show;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod testutil;

pub use cache::{Cache, Entry, EntryFlags, EntryType, Prefix};
pub use config::{AuthKey, Config};
pub use node::{Core, Drops, Event, Resolution, Transmit};
pub use show::Snapshot;

use std::net::Ipv4Addr;
use std::time::Instant;

/// The sans-io surface both roles share (lets a driver own either).
pub trait NhrpNode {
    /// An NHRP packet from `nbma_from` (outer source, post-NAT).
    fn handle_input(&mut self, now: Instant, nbma_from: Ipv4Addr, nhrp: &[u8]);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Next packet to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Next event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Plain data for `show`.
    fn snapshot(&self) -> Snapshot;
    /// The engine.
    fn core(&self) -> &Core;
    /// The engine, mutable.
    fn core_mut(&mut self) -> &mut Core;
}

macro_rules! role {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(Core);

        impl $name {
            /// A node at `now` (static maps enter the cache; registration starts at once).
            pub fn new(cfg: Config, now: Instant) -> Self {
                Self(Core::new(cfg, now))
            }
        }

        impl NhrpNode for $name {
            fn handle_input(&mut self, now: Instant, nbma_from: Ipv4Addr, nhrp: &[u8]) {
                self.0.handle_input(now, nbma_from, nhrp)
            }
            fn handle_timeout(&mut self, now: Instant) {
                self.0.handle_timeout(now)
            }
            fn poll_transmit(&mut self) -> Option<Transmit> {
                self.0.poll_transmit()
            }
            fn poll_timeout(&self) -> Option<Instant> {
                self.0.poll_timeout()
            }
            fn poll_event(&mut self) -> Option<Event> {
                self.0.poll_event()
            }
            fn snapshot(&self) -> Snapshot {
                self.0.snapshot()
            }
            fn core(&self) -> &Core {
                &self.0
            }
            fn core_mut(&mut self) -> &mut Core {
                &mut self.0
            }
        }
    };
}

role!(
    /// Next Hop Client (spoke): registers with its NHSes (`ip nhrp nhs`),
    /// resolves destinations through them, acts on redirects (`ip nhrp shortcut`)
    /// and answers resolution requests for its own addresses.
    Nhc
);

role!(
    /// Next Hop Server (hub): accepts registrations, forwards resolution
    /// requests to the owner, sends traffic indications (`ip nhrp redirect`)
    /// and purges requesters when a registration goes away.
    Nhs
);

impl Nhc {
    /// See [`Core::resolve`].
    pub fn resolve(&mut self, now: Instant, dst: Ipv4Addr) -> Resolution {
        self.0.resolve(now, dst)
    }
}

impl Nhs {
    /// See [`Core::handle_hairpin`].
    pub fn handle_hairpin(&mut self, now: Instant, from_nbma: Ipv4Addr, packet: &[u8]) {
        self.0.handle_hairpin(now, from_nbma, packet)
    }

    /// See [`Core::add_route`].
    pub fn add_route(&mut self, prefix: Prefix, nexthop: Ipv4Addr) {
        self.0.add_route(prefix, nexthop)
    }

    /// See [`Core::multicast_targets`].
    pub fn multicast_targets(&self) -> Vec<Ipv4Addr> {
        self.0.multicast_targets()
    }
}
