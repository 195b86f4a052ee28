//! Per-tunnel egress QoS (IOS MQC subset) applied to **cleartext** packets before encryption.
//!
//! Pieces, bottom up:
//! - [`Dscp`], [`Packet`]: the marking code point and the owned packet buffer that travels through
//!   the queues (the caller's `Vec<u8>` goes in and comes back out, so buffers are recycled).
//! - [`classify`]: `match any | protocol ip | dscp | precedence | access-group` over the inner IPv4
//!   (or IPv6) header, with a small 5-tuple [`Acl`] or a caller closure.
//! - [`spec`]: plain descriptions ([`PolicySpec`], [`ClassSpec`], [`ShapeSpec`], [`PoliceSpec`]) that
//!   map one-to-one onto the configuration model (`policy-map` / `class` / actions), including
//!   [`PolicySpec::vpn_sip`], the implicit `VPN-SIP-Tunnel<N>-Bandwidth` parent policy.
//! - [`meter`]: the shaper token bucket, the RFC 2697 policer and the IOS 5-minute rate estimator.
//! - [`sched`]: [`Scheduler`] (one attached policy: classification, policing, marking, per-class
//!   tail-drop queues, strict priority (LLQ) then CBWFQ by self-clocked fair queueing, parent shaper) and
//!   [`Egress`] (the per-tunnel attachment point: pass-through when nothing is attached).
//! - [`show`]: `show policy-map interface TunnelN` (IOS layout) and its `--json` twin.
//!
//! Driver obligations: for every inner packet leaving the tunnel, branch on
//! [`Egress::is_attached`] (not attached: encrypt at once; that branch is the whole cost of QoS on
//! an unshaped tunnel), otherwise call [`Egress::offer`]: on [`Offer::Send`] encrypt it at once,
//! on [`Offer::Queued`] call [`Egress::dequeue`] until `None` (and again when
//! [`Egress::poll_timeout`] expires), encrypting each packet it yields; recycle the buffers of
//! [`Offer::Dropped`]. On VPN-SIP session up call [`Egress::attach_vpn_sip`]; on session
//! end [`Egress::detach`] and drain the returned scheduler.
//!
//! What is absent: `bandwidth remaining`, `fair-queue`, WRED, `shape peak`, two-rate policers,
//! more than two levels of hierarchy, class-level shapers in a child policy, ingress policies.
pub mod classify;
pub mod meter;
pub mod sched;
pub mod show;
pub mod spec;

pub use classify::{Acl, AclEntry, Classifier, Match, PacketPredicate};
pub use meter::{Policer, RateEstimator, Shaper};
pub use sched::{
    BandwidthSnapshot, ClassSnapshot, Drop, DropCause, Egress, EgressError, Offer, PoliceSnapshot,
    PolicySnapshot, PrioritySnapshot, QueueSnapshot, Scheduler,
};
pub use spec::{
    ClassSpec, PoliceAction, PoliceSpec, PolicySpec, Queueing, Rate, ShapeSpec, SpecError,
};

use core::ops::Range;

/// Default `queue-limit` of a class (IOS: 64 packets).
pub const DEFAULT_QUEUE_LIMIT: u32 = 64;

/// How many bytes an inner packet occupies on the wire once encapsulated: what a shaper is charged
/// and what `bytes output` counts. `wire_len(len) = fixed + round_up(len + trailer, align)`.
///
/// For ESP (`crate::Tunnel::encap`): `fixed` = outer IP header + UDP header (NAT-T) + ESP header +
/// IV + ICV, `trailer` = 2 (pad length, next header), `align` = the cipher's block (16 for CBC, 4
/// for GCM), `wide_align` = the padding the data plane prefers (16, see
/// [`crate::sa::PREFERRED_ALIGN`]) while the outer packet stays within `limit` (the path MTU).
/// This is the outer packet's layer-3 length, exactly; IOS's `bytes output` also counts
/// the egress layer-2 header (seed 002 L3639: 126 bytes out for a 46-byte packet is 14 bytes of
/// Ethernet + 112 bytes of ESP in UDP with AES-CBC and HMAC-SHA1-96).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    pub fixed: u16,
    pub trailer: u8,
    /// A power of two (1 = no alignment); other values are rounded up to one.
    pub align: u8,
    /// The alignment used instead of `align` while `fixed + padded` stays within `limit`.
    pub wide_align: u8,
    /// The largest wire length the wider padding may produce (the path MTU).
    pub limit: u16,
}

impl Encap {
    /// No encapsulation: the inner length is charged.
    pub const NONE: Encap = Encap {
        fixed: 0,
        trailer: 0,
        align: 1,
        wide_align: 1,
        limit: u16::MAX,
    };

    /// A fixed number of bytes per packet.
    pub const fn fixed(bytes: u16) -> Encap {
        Encap {
            fixed: bytes,
            trailer: 0,
            align: 1,
            wide_align: 1,
            limit: u16::MAX,
        }
    }

    /// The wire length of an inner packet of `len` bytes.
    #[inline]
    pub fn wire_len(self, len: usize) -> usize {
        let round = |align: u8| {
            let a = usize::from(align.max(1)).next_power_of_two();
            (len + usize::from(self.trailer) + a - 1) & !(a - 1)
        };
        let fixed = usize::from(self.fixed);
        let wide = fixed + round(self.wide_align);
        if self.wide_align > self.align && wide <= usize::from(self.limit) {
            wide
        } else {
            fixed + round(self.align)
        }
    }
}

impl From<usize> for Encap {
    /// A fixed per-packet overhead (saturating at 65535 bytes).
    fn from(bytes: usize) -> Encap {
        Encap::fixed(u16::try_from(bytes).unwrap_or(u16::MAX))
    }
}

/// A DSCP code point (6 bits). The number space is open: every value 0..=63 is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dscp(pub u8);

impl Dscp {
    pub const CS0: Dscp = Dscp(0);
    pub const CS1: Dscp = Dscp(8);
    pub const AF11: Dscp = Dscp(10);
    pub const AF12: Dscp = Dscp(12);
    pub const AF13: Dscp = Dscp(14);
    pub const CS2: Dscp = Dscp(16);
    pub const AF21: Dscp = Dscp(18);
    pub const AF22: Dscp = Dscp(20);
    pub const AF23: Dscp = Dscp(22);
    pub const CS3: Dscp = Dscp(24);
    pub const AF31: Dscp = Dscp(26);
    pub const AF32: Dscp = Dscp(28);
    pub const AF33: Dscp = Dscp(30);
    pub const CS4: Dscp = Dscp(32);
    pub const AF41: Dscp = Dscp(34);
    pub const AF42: Dscp = Dscp(36);
    pub const AF43: Dscp = Dscp(38);
    pub const CS5: Dscp = Dscp(40);
    pub const EF: Dscp = Dscp(46);
    pub const CS6: Dscp = Dscp(48);
    pub const CS7: Dscp = Dscp(56);

    const NAMES: [(&'static str, Dscp); 22] = [
        ("default", Dscp(0)),
        ("cs1", Dscp::CS1),
        ("af11", Dscp::AF11),
        ("af12", Dscp::AF12),
        ("af13", Dscp::AF13),
        ("cs2", Dscp::CS2),
        ("af21", Dscp::AF21),
        ("af22", Dscp::AF22),
        ("af23", Dscp::AF23),
        ("cs3", Dscp::CS3),
        ("af31", Dscp::AF31),
        ("af32", Dscp::AF32),
        ("af33", Dscp::AF33),
        ("cs4", Dscp::CS4),
        ("af41", Dscp::AF41),
        ("af42", Dscp::AF42),
        ("af43", Dscp::AF43),
        ("cs5", Dscp::CS5),
        ("ef", Dscp::EF),
        ("cs6", Dscp::CS6),
        ("cs7", Dscp::CS7),
        ("cs0", Dscp(0)),
    ];

    /// Parses an IOS DSCP word (`cs4`, `ef`, `af41`, `default`) or a number `0..=63`.
    pub fn from_ios(word: &str) -> Option<Dscp> {
        let w = word.trim().to_ascii_lowercase();
        if let Ok(n) = w.parse::<u8>() {
            return (n < 64).then_some(Dscp(n));
        }
        Self::NAMES.iter().find(|(n, _)| *n == w).map(|(_, d)| *d)
    }

    /// The IOS word for this code point (`cs4`), or its number when it has no name.
    pub fn ios_name(self) -> String {
        match Self::NAMES.iter().find(|(_, d)| *d == self) {
            Some((n, _)) => (*n).to_string(),
            None => self.0.to_string(),
        }
    }

    /// IP precedence (the top 3 bits of the DSCP).
    pub fn precedence(self) -> u8 {
        self.0 >> 3
    }
}

/// One inner IP packet owned by the scheduler while it waits: the caller's buffer and the range of
/// the packet inside it (bytes before `range.start` are the caller's headroom, kept intact so the
/// tunnel can encrypt in place after dequeue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    buf: Vec<u8>,
    range: Range<usize>,
}

impl Packet {
    /// Wraps `buf[range]`. A range that does not fit in `buf` is clamped to it (never panics).
    #[inline]
    pub fn new(buf: Vec<u8>, range: Range<usize>) -> Self {
        let end = range.end.min(buf.len());
        let start = range.start.min(end);
        Packet {
            buf,
            range: start..end,
        }
    }

    /// The whole buffer is the packet.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        let len = buf.len();
        Packet { buf, range: 0..len }
    }

    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.range.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The inner packet bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(self.range.clone()).unwrap_or(&[])
    }

    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let r = self.range.clone();
        self.buf.get_mut(r).unwrap_or(&mut [])
    }

    /// The range of the packet inside [`Packet::buffer_mut`].
    #[inline]
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// The whole buffer (headroom included), e.g. for `Tunnel::send(now, buf, range)`.
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_parts(self) -> (Vec<u8>, Range<usize>) {
        (self.buf, self.range)
    }

    /// The DSCP of the inner IPv4/IPv6 header, if the packet has one.
    pub fn dscp(&self) -> Option<Dscp> {
        classify::header_dscp(self.bytes())
    }

    /// Rewrites the DSCP (keeping ECN), fixing the IPv4 header checksum incrementally (RFC 1624).
    /// Returns `false` (and changes nothing) when the packet is not IPv4/IPv6.
    pub fn set_dscp(&mut self, dscp: Dscp) -> bool {
        classify::set_header_dscp(self.bytes_mut(), dscp)
    }
}
