//! Lifeline data plane: ESP (RFC 4303) over UDP (RFC 3948) or raw, anti-replay, SVTI tunnel logic, PAT.
//!
//! The crate is **sans-io**: it never touches sockets, threads or the clock. Callers hand in packet
//! buffers (with [`HEADROOM`] bytes free before and [`TAILROOM`] bytes free after the payload) and
//! `now: Instant`; they get back a [`Verdict`] saying where the (rewritten) bytes go.
//!
//! Layers, bottom up:
//! - [`wire`]: ESP header view, a minimal IPv4 view, the RFC 3948 UDP port-4500 demultiplexer.
//! - [`crypto`]: the ESP transforms (AES-GCM-16 through `ring`; AES-CBC + HMAC-SHA1/SHA2 through
//!   RustCrypto).
//! - [`replay`]: the RFC 4303 §3.4.3 sliding window as an RFC 6479-style bitmap, with ESN inference.
//! - [`sa`]: [`OutboundSa`] / [`InboundSa`] built from [`SaParams`] (what IKE negotiated), lifetimes and
//!   per-SA counters, [`SaDb`] (inbound SPI to tunnel).
//! - [`tunnel`]: one static VTI: acquire queue, DF handling, pre-fragmentation, MSS clamp, ECN, rekey.
//! - [`pat`]: the programmatic PAT table of VPN-SIP (`show ip nat translations`).
//! - [`show`]: renderers for `show crypto ipsec sa` / `show interfaces TunnelN` fragments.
//!
//! Driver obligations (the appliance): call [`Tunnel::poll_transmit`] after every `send`,
//! `install_sa` and `handle_timeout` until it returns `None` (flushed acquire queue, later
//! pre-fragments, NAT keepalives); strip the outer IP header of raw ESP (protocol 50) before
//! `receive`; pass the outer TOS byte (`IP_RECVTOS`) in [`RecvMeta`]; set the outer DF bit and TOS
//! from [`Transmit`]; demultiplex IKE off port 4500 with [`classify_udp4500`] first; feed
//! [`Tunnel::poll_event`] to IKE/SIP and sleep until [`Tunnel::poll_timeout`].
//!
//! What is absent: AH, IPComp, 3DES/DES/MD5 transforms, IPv6 outer headers, pre-fragmentation of
//! IPv6 inner packets, TFC padding on transmit, and everything OS-facing (sockets, TUN), which lives
//! in the appliance.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod crypto;
pub mod pat;
pub mod qos;
pub mod replay;
pub mod sa;
pub mod show;
pub mod tunnel;
pub mod wire;

pub use crypto::{Encr, Integ};
pub use pat::{PatEntry, PatTable, render_ip_nat_translations};
pub use replay::ReplayWindow;
pub use sa::{
    DropReason, Expiry, InboundSa, Lifetime, Mode, OutboundSa, PREFERRED_ALIGN, SaCounters, SaDb,
    SaError, SaParams, UnknownSpi,
};
pub use tunnel::{
    DfBit, Event, RecvMeta, Transmit, Tunnel, TunnelConfig, TunnelSnapshot, UdpPorts, Verdict,
};
pub use wire::udp_encap::{Udp4500, classify_udp4500};

/// Bytes a caller must leave free in front of an inner packet handed to `encapsulate`/`send`:
/// the ESP header (8) plus the largest IV (16), rounded up.
pub const HEADROOM: usize = 32;
/// Bytes a caller must leave free after an inner packet: the largest padding (15), pad length and
/// next header (2) and the largest ICV (32), rounded up.
pub const TAILROOM: usize = 64;

/// Entry point for the decapsulation fuzz target (`fuzz/fuzz_targets/esp_decap.rs` in the workspace):
/// feeds arbitrary bytes as one inbound ESP packet into an AES-GCM SA and into an AES-CBC+HMAC SA, and
/// through a tunnel's receive and send paths. Must never panic. `now` comes from the fuzz target
/// (this crate never reads the clock).
pub fn decapsulate_fuzz_entry(now: std::time::Instant, bytes: &[u8]) {
    tunnel::fuzz_decapsulate(now, bytes);
}

/// Tests need one real `Instant` as the origin of virtual time; every later time is an offset.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_origin() -> std::time::Instant {
    std::time::Instant::now()
}
