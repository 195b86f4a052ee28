//! Wire formats, smoltcp style: a checked view over bytes plus a plain `Repr`.

pub mod esp;
pub mod ipv4;
pub mod udp_encap;

/// Why bytes could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A length field disagrees with the buffer.
    BadLength,
    /// A field holds a value the protocol forbids.
    BadValue(&'static str),
}

/// IP protocol numbers (open number space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: Self = Self(1);
    pub const IPV4: Self = Self(4);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const IPV6: Self = Self(41);
    pub const GRE: Self = Self(47);
    pub const ESP: Self = Self(50);
    /// "No next header": RFC 4303 §2.6 dummy packets.
    pub const NO_NEXT_HEADER: Self = Self(59);
}
