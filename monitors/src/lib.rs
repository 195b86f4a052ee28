//! Lifeline monitors: the sans-io cores behind IOS failover.
//!
//! - [`icmp`]: ICMP echo request/reply codec (RFC 792), smoltcp style.
//! - [`sla`]: IP SLA `icmp-echo` operations and their scheduler ([`sla::SlaEngine`]).
//! - [`track`]: track objects (`track N ip sla M reachability|state`, `track N interface IF line-protocol`)
//!   with `delay up/down` hysteresis ([`track::Tracker`]).
//! - [`rib`]: static routes with administrative distance, tracking and `permanent`, the per-prefix best-route
//!   decision ([`rib::Rib`]) and an in-memory longest-prefix-match table for simulation ([`rib::Fib`]).
//! - [`show`]: `show ip sla statistics|summary`, `show track`, `show ip route static`, `show vpn-sip sip dhcp`
//!   text in IOS format.
//! - [`dhcp`]: DHCPv4 client core (RFC 2131) on `dhcproto`, with options 120 (RFC 3361) and 125 (RFC 3925)
//!   decoded into typed values.
//!
//! Nothing here does I/O or reads the clock: `now: Instant` is always an argument, and the appliance turns
//! probes into packets on a socket bound to the source interface and route events into rtnetlink calls.
//!
//! Absent: other IP SLA operation types (udp-jitter, http, ...), `track list` boolean objects, SLA
//! `ageout`/`recurring`/wall-clock `start-time hh:mm`, route `tag`, dynamic routing protocols, VRFs, IPv6,
//! DHCPDECLINE/INIT-REBOOT/DHCPINFORM.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod dhcp;
pub mod icmp;
pub mod rib;
pub mod show;
pub mod sla;
pub mod track;

use core::fmt;

/// `ip sla N` operation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlaId(pub u32);

/// `track N` object number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

impl fmt::Display for SlaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The one clock read of the test suite: an arbitrary origin for virtual time.
#[cfg(test)]
pub(crate) fn test_t0() -> std::time::Instant {
    #[allow(clippy::disallowed_methods)]
    std::time::Instant::now()
}
