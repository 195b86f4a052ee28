//! NHRP packets: RFC 2332 plus the Cisco additions DMVPN uses.
//!
//! ```text
//! fixed header (20)  ar$afn ar$pro.type ar$pro.snap ar$hopcnt ar$pktsz ar$chksum
//!                    ar$extoff ar$op.version ar$op.type ar$shtl ar$sstl
//! mandatory part     src/dst proto len, 6 bytes that depend on the type
//!                    (flags+request id | unused+error code+offset | traffic code),
//!                    src NBMA, src NBMA subaddress, src proto, dst proto,
//!                    then CIEs (types 1-6) or the offending packet (types 7, 8)
//! extensions         C|u|type(14) length value ... End(0x8000, 0)
//! ```
//! Number spaces (packet types, codes, extension types) are open: unknown
//! values survive parse and emit.

use super::{Reader, WireError, checksum};
use std::net::Ipv4Addr;

/// Length of the fixed header.
pub const FIXED_HEADER_LEN: usize = 20;
/// Longest address this implementation keeps (NSAP is 20 bytes).
pub const MAX_ADDR_LEN: usize = 20;
const CIE_FIXED_LEN: usize = 12;

/// `ar$afn`: address family of the NBMA addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Afn(pub u16);

impl Afn {
    pub const IPV4: Self = Self(1);
    pub const IPV6: Self = Self(2);
}

/// `ar$op.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpType(pub u8);

impl OpType {
    pub const RESOLUTION_REQUEST: Self = Self(1);
    pub const RESOLUTION_REPLY: Self = Self(2);
    pub const REGISTRATION_REQUEST: Self = Self(3);
    pub const REGISTRATION_REPLY: Self = Self(4);
    pub const PURGE_REQUEST: Self = Self(5);
    pub const PURGE_REPLY: Self = Self(6);
    pub const ERROR_INDICATION: Self = Self(7);
    /// Cisco "redirect" (not in RFC 2332).
    pub const TRAFFIC_INDICATION: Self = Self(8);

    /// Types whose mandatory part carries flags, a request ID and CIEs.
    pub const fn has_cies(self) -> bool {
        matches!(self.0, 1..=6)
    }
}

/// CIE code (RFC 2332 §5.2.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u8);

impl Code {
    pub const SUCCESS: Self = Self(0);
    pub const ADMINISTRATIVELY_PROHIBITED: Self = Self(4);
    pub const INSUFFICIENT_RESOURCES: Self = Self(5);
    pub const NO_BINDING: Self = Self(12);
    pub const BINDING_NOT_UNIQUE: Self = Self(13);
    pub const ALREADY_REGISTERED: Self = Self(14);
}

/// Error Indication code (RFC 2332 §5.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const UNRECOGNIZED_EXTENSION: Self = Self(1);
    pub const LOOP_DETECTED: Self = Self(3);
    pub const PROTOCOL_ADDRESS_UNREACHABLE: Self = Self(6);
    pub const PROTOCOL_ERROR: Self = Self(7);
    pub const SDU_SIZE_EXCEEDED: Self = Self(8);
    pub const INVALID_EXTENSION: Self = Self(9);
    pub const INVALID_RESOLUTION_REPLY: Self = Self(10);
    pub const AUTHENTICATION_FAILURE: Self = Self(11);
    pub const HOP_COUNT_EXCEEDED: Self = Self(15);
}

/// Extension type (14 bits; the C bit is kept apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtensionType(pub u16);

impl ExtensionType {
    pub const END: Self = Self(0);
    pub const RESPONDER_ADDRESS: Self = Self(3);
    pub const FORWARD_TRANSIT: Self = Self(4);
    pub const REVERSE_TRANSIT: Self = Self(5);
    pub const AUTHENTICATION: Self = Self(7);
    pub const VENDOR_PRIVATE: Self = Self(8);
    /// Cisco NAT address extension (a CIE list).
    pub const NAT_ADDRESS: Self = Self(9);
}

/// Mandatory-part flag bits. Their meaning depends on the packet type.
pub mod flags {
    /// Resolution: the requester is a router.
    pub const Q: u16 = 0x8000;
    /// Resolution: authoritative.
    pub const A: u16 = 0x4000;
    /// Resolution: destination association is stable.
    pub const D: u16 = 0x2000;
    /// Resolution: uniqueness.
    pub const U_RESOLUTION: u16 = 0x1000;
    /// Resolution: source binding is stable.
    pub const S: u16 = 0x0800;
    /// Registration: unique registration.
    pub const U_REGISTRATION: u16 = 0x8000;
    /// Purge: no reply expected.
    pub const N: u16 = 0x8000;
    /// Cisco: the sender understands the NAT extension.
    pub const NAT: u16 = 0x0002;
}

/// An address of up to [`MAX_ADDR_LEN`] bytes (NBMA, subaddress or protocol).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    len: u8,
    bytes: [u8; MAX_ADDR_LEN],
}

impl Default for Addr {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl core::fmt::Debug for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.to_ipv4() {
            Some(a) => write!(f, "{a}"),
            None if self.is_empty() => f.write_str("-"),
            None => write!(f, "{:02x?}", self.as_bytes()),
        }
    }
}

impl Addr {
    /// The zero-length address.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MAX_ADDR_LEN],
    };

    /// An address from bytes (at most [`MAX_ADDR_LEN`]).
    pub fn new(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_ADDR_LEN {
            return Err(WireError::BadValue("address longer than 20 bytes"));
        }
        let mut a = Self::EMPTY;
        a.bytes[..bytes.len()].copy_from_slice(bytes);
        a.len = bytes.len() as u8;
        Ok(a)
    }

    /// A 4-byte IPv4 address.
    pub fn ipv4(ip: Ipv4Addr) -> Self {
        let mut a = Self::EMPTY;
        a.bytes[..4].copy_from_slice(&ip.octets());
        a.len = 4;
        a
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for the zero-length address.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The IPv4 address if the length is 4.
    pub fn to_ipv4(&self) -> Option<Ipv4Addr> {
        match self.as_bytes() {
            [a, b, c, d] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => None,
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Self {
        Self::ipv4(ip)
    }
}

/// NBMA type/length octet: bit 0x40 selects E.164, which DMVPN never uses.
fn nbma_len(tl: u8) -> Result<usize, WireError> {
    if tl & 0xC0 != 0 {
        return Err(WireError::BadValue("E.164 or reserved NBMA address type"));
    }
    Ok(usize::from(tl & 0x3F))
}

fn read_addr(r: &mut Reader<'_>, len: usize) -> Result<Addr, WireError> {
    Addr::new(r.take(len)?)
}

/// Client Information Entry (RFC 2332 §5.2.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cie {
    pub code: Code,
    /// 0xFF in unique registrations; the covering prefix in Phase 3 replies.
    pub prefix_len: u8,
    pub mtu: u16,
    /// Seconds.
    pub holding_time: u16,
    pub preference: u8,
    pub nbma: Addr,
    pub nbma_sub: Addr,
    pub proto: Addr,
}

impl Default for Code {
    fn default() -> Self {
        Self::SUCCESS
    }
}

impl Cie {
    fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let code = Code(r.u8()?);
        let prefix_len = r.u8()?;
        let _unused = r.u16()?;
        let mtu = r.u16()?;
        let holding_time = r.u16()?;
        let nbma_tl = nbma_len(r.u8()?)?;
        let sub_tl = nbma_len(r.u8()?)?;
        let proto_len = usize::from(r.u8()?);
        let preference = r.u8()?;
        Ok(Self {
            code,
            prefix_len,
            mtu,
            holding_time,
            preference,
            nbma: read_addr(r, nbma_tl)?,
            nbma_sub: read_addr(r, sub_tl)?,
            proto: read_addr(r, proto_len)?,
        })
    }

    fn parse_list(bytes: &[u8]) -> Result<Vec<Self>, WireError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(Self::parse(&mut r)?);
        }
        Ok(out)
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        CIE_FIXED_LEN + self.nbma.len() + self.nbma_sub.len() + self.proto.len()
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.code.0);
        out.push(self.prefix_len);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.mtu.to_be_bytes());
        out.extend_from_slice(&self.holding_time.to_be_bytes());
        out.push(self.nbma.len() as u8);
        out.push(self.nbma_sub.len() as u8);
        out.push(self.proto.len() as u8);
        out.push(self.preference);
        out.extend_from_slice(self.nbma.as_bytes());
        out.extend_from_slice(self.nbma_sub.as_bytes());
        out.extend_from_slice(self.proto.as_bytes());
    }
}

/// The six type-specific bytes after the protocol lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Types 1-6 (and unknown types): flags and request ID.
    Common { flags: u16, request_id: u32 },
    /// Type 7: unused(2), error code, error offset.
    Error { code: ErrorCode, offset: u16 },
    /// Type 8 (Cisco): traffic code and four unused bytes.
    Traffic { code: u16, reserved: u32 },
}

impl Header {
    /// Flags (0 for indications).
    pub fn flags(&self) -> u16 {
        match self {
            Self::Common { flags, .. } => *flags,
            _ => 0,
        }
    }

    /// Request ID (0 for indications).
    pub fn request_id(&self) -> u32 {
        match self {
            Self::Common { request_id, .. } => *request_id,
            _ => 0,
        }
    }
}

/// One extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The C bit: a receiver that does not understand it must refuse the packet.
    pub compulsory: bool,
    pub body: ExtensionBody,
}

/// An extension's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionBody {
    ResponderAddress(Vec<Cie>),
    ForwardTransit(Vec<Cie>),
    ReverseTransit(Vec<Cie>),
    /// Cisco form: a 4-byte type (1 = clear text) and the secret.
    Authentication {
        auth_type: u32,
        data: Vec<u8>,
    },
    VendorPrivate {
        oui: [u8; 3],
        data: Vec<u8>,
    },
    /// Cisco NAT address extension.
    NatAddress(Vec<Cie>),
    Unknown {
        ty: ExtensionType,
        data: Vec<u8>,
    },
}

impl ExtensionBody {
    /// The extension's type number.
    pub fn ty(&self) -> ExtensionType {
        match self {
            Self::ResponderAddress(_) => ExtensionType::RESPONDER_ADDRESS,
            Self::ForwardTransit(_) => ExtensionType::FORWARD_TRANSIT,
            Self::ReverseTransit(_) => ExtensionType::REVERSE_TRANSIT,
            Self::Authentication { .. } => ExtensionType::AUTHENTICATION,
            Self::VendorPrivate { .. } => ExtensionType::VENDOR_PRIVATE,
            Self::NatAddress(_) => ExtensionType::NAT_ADDRESS,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    fn parse(ty: ExtensionType, value: &[u8]) -> Result<Self, WireError> {
        Ok(match ty {
            ExtensionType::RESPONDER_ADDRESS => Self::ResponderAddress(Cie::parse_list(value)?),
            ExtensionType::FORWARD_TRANSIT => Self::ForwardTransit(Cie::parse_list(value)?),
            ExtensionType::REVERSE_TRANSIT => Self::ReverseTransit(Cie::parse_list(value)?),
            ExtensionType::NAT_ADDRESS => Self::NatAddress(Cie::parse_list(value)?),
            ExtensionType::AUTHENTICATION => {
                let mut r = Reader::new(value);
                let auth_type = r.u32().map_err(|_| WireError::BadLength)?;
                Self::Authentication {
                    auth_type,
                    data: r.rest().to_vec(),
                }
            }
            ExtensionType::VENDOR_PRIVATE => {
                let mut r = Reader::new(value);
                let o = r.take(3).map_err(|_| WireError::BadLength)?;
                Self::VendorPrivate {
                    oui: [o[0], o[1], o[2]],
                    data: r.rest().to_vec(),
                }
            }
            ty => Self::Unknown {
                ty,
                data: value.to_vec(),
            },
        })
    }

    fn value_len(&self) -> usize {
        match self {
            Self::ResponderAddress(c)
            | Self::ForwardTransit(c)
            | Self::ReverseTransit(c)
            | Self::NatAddress(c) => c.iter().map(Cie::buffer_len).sum(),
            Self::Authentication { data, .. } => 4 + data.len(),
            Self::VendorPrivate { data, .. } => 3 + data.len(),
            Self::Unknown { data, .. } => data.len(),
        }
    }

    fn emit_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::ResponderAddress(c)
            | Self::ForwardTransit(c)
            | Self::ReverseTransit(c)
            | Self::NatAddress(c) => c.iter().for_each(|c| c.emit(out)),
            Self::Authentication { auth_type, data } => {
                out.extend_from_slice(&auth_type.to_be_bytes());
                out.extend_from_slice(data);
            }
            Self::VendorPrivate { oui, data } => {
                out.extend_from_slice(oui);
                out.extend_from_slice(data);
            }
            Self::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }
}

const EXT_C: u16 = 0x8000;
const EXT_TYPE_MASK: u16 = 0x3FFF;

/// A view over the fixed header of an NHRP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps untrusted bytes: the fixed header fits, `ar$pktsz` equals the
    /// buffer length and `ar$extoff` lies inside the packet.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < FIXED_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let size = usize::from(p.packet_size());
        if size < FIXED_HEADER_LEN || size > len {
            return Err(WireError::BadLength);
        }
        if size != len {
            return Err(WireError::BadLength);
        }
        let ext = usize::from(p.extension_offset());
        if ext != 0 && !(FIXED_HEADER_LEN..=size).contains(&ext) {
            return Err(WireError::BadLength);
        }
        Ok(p)
    }

    fn u16_at(&self, off: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[off], b[off + 1]])
    }

    pub fn afn(&self) -> Afn {
        Afn(self.u16_at(0))
    }
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(2)
    }
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[9]
    }
    pub fn packet_size(&self) -> u16 {
        self.u16_at(10)
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(12)
    }
    pub fn extension_offset(&self) -> u16 {
        self.u16_at(14)
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[16]
    }
    pub fn op_type(&self) -> OpType {
        OpType(self.buffer.as_ref()[17])
    }

    /// RFC 1071 checksum over the whole packet verifies.
    //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.0.1
    //# The checksum is calculated over the entire NHRP packet
    pub fn verify_checksum(&self) -> bool {
        checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a> Packet<&'a [u8]> {
    /// Fuzzing entry point: untrusted bytes to a [`Repr`].
    pub fn parse(bytes: &'a [u8]) -> Result<Repr, WireError> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }
}

/// The meaning of an NHRP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    pub afn: Afn,
    /// `ar$pro.type`: 0x0800 for an IPv4 overlay.
    pub protocol_type: u16,
    pub snap: [u8; 5],
    pub hop_count: u8,
    pub op: OpType,
    pub header: Header,
    pub src_nbma: Addr,
    pub src_nbma_sub: Addr,
    pub src_proto: Addr,
    pub dst_proto: Addr,
    /// Client Information Entries (types 1-6).
    pub cies: Vec<Cie>,
    /// Types 7 and 8 (and unknown types): the rest of the mandatory part.
    pub payload: Vec<u8>,
    /// Extensions without the End marker.
    pub extensions: Vec<Extension>,
}

impl Repr {
    /// A packet of the given type for an IPv4 NBMA and IPv4 overlay.
    pub fn ipv4(
        op: OpType,
        header: Header,
        src_nbma: Ipv4Addr,
        src_proto: Ipv4Addr,
        dst_proto: Ipv4Addr,
    ) -> Self {
        Self {
            afn: Afn::IPV4,
            protocol_type: 0x0800,
            snap: [0; 5],
            hop_count: 255,
            op,
            header,
            src_nbma: src_nbma.into(),
            src_nbma_sub: Addr::EMPTY,
            src_proto: src_proto.into(),
            dst_proto: dst_proto.into(),
            cies: Vec::new(),
            payload: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, WireError> {
        let bytes = packet.buffer.as_ref();
        let size = usize::from(packet.packet_size());
        let bytes = bytes.get(..size).ok_or(WireError::BadLength)?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        //= https://www.rfc-editor.org/rfc/rfc2332#section-5.2.0.1
        //# ar$op.version ... 0x01 - NHRP as defined in this document.
        if packet.version() != 1 {
            return Err(WireError::BadValue("NHRP version"));
        }
        let ext_off = usize::from(packet.extension_offset());
        let mand_end = if ext_off == 0 { size } else { ext_off };
        let mand = bytes
            .get(FIXED_HEADER_LEN..mand_end)
            .ok_or(WireError::BadLength)?;
        let op = packet.op_type();
        let shtl = nbma_len(bytes[18])?;
        let sstl = nbma_len(bytes[19])?;

        let mut r = Reader::new(mand);
        let src_len = usize::from(r.u8()?);
        let dst_len = usize::from(r.u8()?);
        let header = match op {
            OpType::ERROR_INDICATION => {
                let _unused = r.u16()?;
                Header::Error {
                    code: ErrorCode(r.u16()?),
                    offset: r.u16()?,
                }
            }
            OpType::TRAFFIC_INDICATION => Header::Traffic {
                code: r.u16()?,
                reserved: r.u32()?,
            },
            _ => Header::Common {
                flags: r.u16()?,
                request_id: r.u32()?,
            },
        };
        let src_nbma = read_addr(&mut r, shtl)?;
        let src_nbma_sub = read_addr(&mut r, sstl)?;
        let src_proto = read_addr(&mut r, src_len)?;
        let dst_proto = read_addr(&mut r, dst_len)?;
        let (cies, payload) = if op.has_cies() {
            (Cie::parse_list(r.rest())?, Vec::new())
        } else {
            (Vec::new(), r.rest().to_vec())
        };

        let mut extensions = Vec::new();
        if ext_off != 0 {
            let mut r = Reader::new(bytes.get(ext_off..).ok_or(WireError::BadLength)?);
            while !r.is_empty() {
                let word = r.u16()?;
                let len = usize::from(r.u16()?);
                let value = r.take(len)?;
                let ty = ExtensionType(word & EXT_TYPE_MASK);
                if ty == ExtensionType::END {
                    //= https://www.rfc-editor.org/rfc/rfc2332#section-5.3.0
                    //# the End Of Extensions extension ... MUST be the last
                    if len != 0 || !r.is_empty() {
                        return Err(WireError::BadLength);
                    }
                    break;
                }
                extensions.push(Extension {
                    compulsory: word & EXT_C != 0,
                    body: ExtensionBody::parse(ty, value)?,
                });
            }
        }

        Ok(Self {
            afn: packet.afn(),
            protocol_type: packet.protocol_type(),
            snap: [bytes[4], bytes[5], bytes[6], bytes[7], bytes[8]],
            hop_count: packet.hop_count(),
            op,
            header,
            src_nbma,
            src_nbma_sub,
            src_proto,
            dst_proto,
            cies,
            payload,
            extensions,
        })
    }

    fn mandatory_len(&self) -> usize {
        2 + 6
            + self.src_nbma.len()
            + self.src_nbma_sub.len()
            + self.src_proto.len()
            + self.dst_proto.len()
            + self.cies.iter().map(Cie::buffer_len).sum::<usize>()
            + self.payload.len()
    }

    fn extensions_len(&self) -> usize {
        if self.extensions.is_empty() {
            return 0;
        }
        self.extensions
            .iter()
            .map(|e| 4 + e.body.value_len())
            .sum::<usize>()
            + 4
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        FIXED_HEADER_LEN + self.mandatory_len() + self.extensions_len()
    }

    /// Encodes with `ar$pktsz`, `ar$extoff` and the checksum filled in.
    ///
    /// Fails if the packet exceeds 65535 bytes or an address is too long for
    /// its length field (cannot happen for [`Addr`]).
    pub fn emit(&self) -> Result<Vec<u8>, WireError> {
        let total = self.buffer_len();
        let size = u16::try_from(total).map_err(|_| WireError::BadLength)?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.afn.0.to_be_bytes());
        out.extend_from_slice(&self.protocol_type.to_be_bytes());
        out.extend_from_slice(&self.snap);
        out.push(self.hop_count);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // checksum
        let ext_off = if self.extensions.is_empty() {
            0
        } else {
            (FIXED_HEADER_LEN + self.mandatory_len()) as u16
        };
        out.extend_from_slice(&ext_off.to_be_bytes());
        out.push(1);
        out.push(self.op.0);
        out.push(self.src_nbma.len() as u8);
        out.push(self.src_nbma_sub.len() as u8);
        out.push(self.src_proto.len() as u8);
        out.push(self.dst_proto.len() as u8);
        match self.header {
            Header::Common { flags, request_id } => {
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&request_id.to_be_bytes());
            }
            Header::Error { code, offset } => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&code.0.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Header::Traffic { code, reserved } => {
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(&reserved.to_be_bytes());
            }
        }
        out.extend_from_slice(self.src_nbma.as_bytes());
        out.extend_from_slice(self.src_nbma_sub.as_bytes());
        out.extend_from_slice(self.src_proto.as_bytes());
        out.extend_from_slice(self.dst_proto.as_bytes());
        self.cies.iter().for_each(|c| c.emit(&mut out));
        out.extend_from_slice(&self.payload);
        for e in &self.extensions {
            let len = u16::try_from(e.body.value_len()).map_err(|_| WireError::BadLength)?;
            let word = (e.body.ty().0 & EXT_TYPE_MASK) | if e.compulsory { EXT_C } else { 0 };
            out.extend_from_slice(&word.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            e.body.emit_value(&mut out);
        }
        if !self.extensions.is_empty() {
            out.extend_from_slice(&EXT_C.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        let c = checksum(&out);
        out[12..14].copy_from_slice(&c.to_be_bytes());
        Ok(out)
    }

    /// Flags of types 1-6 (0 otherwise).
    pub fn flags(&self) -> u16 {
        self.header.flags()
    }

    /// Request ID of types 1-6 (0 otherwise).
    pub fn request_id(&self) -> u32 {
        self.header.request_id()
    }

    /// The first extension of a type.
    pub fn extension(&self, ty: ExtensionType) -> Option<&ExtensionBody> {
        self.extensions
            .iter()
            .map(|e| &e.body)
            .find(|b| b.ty() == ty)
    }

    /// Mutable access to the first extension of a type.
    pub fn extension_mut(&mut self, ty: ExtensionType) -> Option<&mut ExtensionBody> {
        self.extensions
            .iter_mut()
            .map(|e| &mut e.body)
            .find(|b| b.ty() == ty)
    }

    /// CIEs of the Cisco NAT extension (empty if absent).
    pub fn nat_cies(&self) -> &[Cie] {
        match self.extension(ExtensionType::NAT_ADDRESS) {
            Some(ExtensionBody::NatAddress(c)) => c,
            _ => &[],
        }
    }

    /// Secret of a clear-text authentication extension.
    pub fn auth_secret(&self) -> Option<&[u8]> {
        match self.extension(ExtensionType::AUTHENTICATION) {
            Some(ExtensionBody::Authentication { data, .. }) => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
