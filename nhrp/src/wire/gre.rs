//! GRE header: RFC 2784, with the RFC 2890 key and sequence number extensions.
//!
//! ```text
//! |C| |K|S| Reserved0 | Ver |  Protocol Type  |
//! | Checksum (if C)         | Reserved1 (if C)|
//! |            Key (if K)                     |
//! |      Sequence Number (if S)               |
//! ```

use super::{WireError, checksum};

/// EtherType carried in the GRE protocol field (open number space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolType(pub u16);

impl ProtocolType {
    /// An IPv4 packet (the overlay data path).
    pub const IPV4: Self = Self(0x0800);
    /// An IPv6 packet.
    pub const IPV6: Self = Self(0x86DD);
    /// NHRP rides in the same keyed GRE as data (Cisco and FRR use 0x2001).
    pub const NHRP: Self = Self(0x2001);
    /// MPLS unicast (2547oDMVPN).
    pub const MPLS: Self = Self(0x8847);
}

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
//= https://www.rfc-editor.org/rfc/rfc2784#section-2.3
//# A receiver MUST discard a packet where any of bits 1-5 are non-zero,
//# unless that receiver implements RFC 1701.
// Bits 2 and 3 are K and S since RFC 2890, which leaves bits 1, 4 and 5.
const FORBIDDEN: u16 = 0x4000 | 0x0800 | 0x0400;
const VERSION_MASK: u16 = 0x0007;

/// A read/write view of a GRE header followed by its payload.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them (accessors may panic on short input).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps untrusted bytes: checks that the header the flags announce fits.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed part and every optional field are present.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 4 || b.len() < self.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }

    /// C bit: checksum and Reserved1 present.
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    /// K bit: key present (RFC 2890).
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    /// S bit: sequence number present (RFC 2890).
    pub fn seq_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// The Ver field (must be 0).
    pub fn version(&self) -> u8 {
        (self.flags() & VERSION_MASK) as u8
    }

    /// The protocol type of the payload.
    pub fn protocol_type(&self) -> ProtocolType {
        let b = self.buffer.as_ref();
        ProtocolType(u16::from_be_bytes([b[2], b[3]]))
    }

    /// Length of the header with its optional fields, from the flags alone.
    pub fn header_len(&self) -> usize {
        let b = self.buffer.as_ref();
        if b.len() < 2 {
            return 4;
        }
        4 + 4
            * (usize::from(self.checksum_present())
                + usize::from(self.key_present())
                + usize::from(self.seq_present()))
    }

    fn word_at(&self, offset: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[offset], b[offset + 1], b[offset + 2], b[offset + 3]])
    }

    /// The key, if present.
    pub fn key(&self) -> Option<u32> {
        self.key_present()
            .then(|| self.word_at(4 + 4 * usize::from(self.checksum_present())))
    }

    /// The sequence number, if present.
    pub fn seq(&self) -> Option<u32> {
        self.seq_present().then(|| {
            self.word_at(
                4 + 4 * (usize::from(self.checksum_present()) + usize::from(self.key_present())),
            )
        })
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(self.header_len()..).unwrap_or(&[])
    }

    /// Verifies the checksum (true when there is none).
    //= https://www.rfc-editor.org/rfc/rfc2784#section-2.5
    //# the 16 bit one's complement of the one's complement sum of all 16 bit
    //# words in the GRE header and the payload packet.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Mutable payload after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over header and payload (if C is set).
    pub fn fill_checksum(&mut self) {
        if !self.checksum_present() {
            return;
        }
        let b = self.buffer.as_mut();
        b[4] = 0;
        b[5] = 0;
        let c = checksum(b);
        b[4..6].copy_from_slice(&c.to_be_bytes());
    }
}

/// The meaning of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub protocol: ProtocolType,
    /// RFC 2890 key: the `tunnel key` number verbatim.
    pub key: Option<u32>,
    /// RFC 2890 sequence number.
    pub seq: Option<u32>,
    /// Send (or a checksum was received and verified).
    pub checksum: bool,
}

impl Repr {
    /// Parses and validates a header (version, forbidden bits, checksum).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(WireError::BadValue("GRE version"));
        }
        if packet.flags() & FORBIDDEN != 0 {
            return Err(WireError::BadValue("GRE RFC 1701 routing bits"));
        }
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Self {
            protocol: packet.protocol_type(),
            key: packet.key(),
            seq: packet.seq(),
            checksum: packet.checksum_present(),
        })
    }

    /// Header length this representation emits.
    pub const fn buffer_len(&self) -> usize {
        4 + 4 * (self.checksum as usize + self.key.is_some() as usize + self.seq.is_some() as usize)
    }

    /// Writes the header (checksum zero: call [`Packet::fill_checksum`] after
    /// the payload is in place).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut flags = 0u16;
        if self.checksum {
            flags |= FLAG_C;
        }
        if self.key.is_some() {
            flags |= FLAG_K;
        }
        if self.seq.is_some() {
            flags |= FLAG_S;
        }
        let b = packet.buffer.as_mut();
        b[0..2].copy_from_slice(&flags.to_be_bytes());
        b[2..4].copy_from_slice(&self.protocol.0.to_be_bytes());
        let mut off = 4;
        if self.checksum {
            b[off..off + 4].fill(0);
            off += 4;
        }
        if let Some(k) = self.key {
            b[off..off + 4].copy_from_slice(&k.to_be_bytes());
            off += 4;
        }
        if let Some(s) = self.seq {
            b[off..off + 4].copy_from_slice(&s.to_be_bytes());
        }
    }

    /// Header plus payload in a new buffer, checksum filled.
    pub fn encapsulate(&self, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len() + payload.len()];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        self.emit(&mut p);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum();
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // seed-dmvpn §4.2: `tunnel key 100000`, NHRP payload.
    const KEYED_NHRP: [u8; 8] = [0x20, 0x00, 0x20, 0x01, 0x00, 0x01, 0x86, 0xA0];

    #[test]
    fn parses_keyed_nhrp_header_from_digest() {
        let p = Packet::new_checked(&KEYED_NHRP[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.protocol, ProtocolType::NHRP);
        assert_eq!(r.key, Some(100_000));
        assert_eq!(r.seq, None);
        assert!(!r.checksum);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn emits_keyed_ipv4_header_as_ios() {
        let r = Repr {
            protocol: ProtocolType::IPV4,
            key: Some(100_000),
            seq: None,
            checksum: false,
        };
        assert_eq!(
            r.encapsulate(&[]),
            [0x20, 0x00, 0x08, 0x00, 0x00, 0x01, 0x86, 0xA0]
        );
        let plain = Repr { key: None, ..r };
        assert_eq!(plain.encapsulate(&[]), [0x00, 0x00, 0x08, 0x00]);
    }

    #[test]
    fn rejects_truncated_key() {
        assert_eq!(
            Packet::new_checked(&KEYED_NHRP[..6]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[0u8; 3][..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn rejects_version_and_routing_bits() {
        let v1 = [0x00, 0x01, 0x08, 0x00];
        assert!(matches!(
            Repr::parse(&Packet::new_unchecked(&v1[..])),
            Err(WireError::BadValue(_))
        ));
        let routing = [0x40, 0x00, 0x08, 0x00];
        assert!(matches!(
            Repr::parse(&Packet::new_unchecked(&routing[..])),
            Err(WireError::BadValue(_))
        ));
    }

    #[test]
    fn checksum_is_verified() {
        let r = Repr {
            protocol: ProtocolType::IPV4,
            key: Some(7),
            seq: Some(9),
            checksum: true,
        };
        let mut bytes = r.encapsulate(b"hello gre");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            r
        );
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap_err(),
            WireError::BadChecksum
        );
    }

    proptest! {
        #[test]
        fn round_trip(proto in any::<u16>(), key in any::<Option<u32>>(), seq in any::<Option<u32>>(),
                      csum in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = Repr { protocol: ProtocolType(proto), key, seq, checksum: csum };
            let bytes = r.encapsulate(&payload);
            let p = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p);
                let _ = p.payload();
            }
        }
    }
}
