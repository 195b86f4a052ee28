//! ISAKMP wire format (RFC 2408 §3, IPsec DOI RFC 2407 §4, NAT-T RFC 3947 §3).
//!
//! * [`Header`] is a zero-copy view over the fixed 28-byte ISAKMP header (`new_checked` for untrusted
//!   bytes).
//! * [`Message`] is the owned form of a whole message: header fields plus either the payload chain or,
//!   when the E flag is set, the ciphertext. [`Message::parse`] is the fuzz entry point: it never panics.
//! * [`parse_chain`] / [`emit_chain`] work on a payload chain alone (the plaintext of an encrypted
//!   message; trailing padding after the last payload is allowed there and only there).
//! * Number spaces are open newtypes (`ExchangeType(pub u8)` + constants): unknown values survive a
//!   parse/emit round trip; unknown payload types are kept as raw bytes.

use crate::wire::{Error, Reader};

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The registry name, if this value is known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($c)),)* _ => None }
            }
        }
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

open_enum!(
    /// Exchange type (RFC 2408 §3.1, RFC 2409 §5).
    ExchangeType(u8) {
        /// Base.
        BASE = 1,
        /// Identity protection (main mode).
        IDENTITY_PROTECTION = 2,
        /// Authentication only.
        AUTH_ONLY = 3,
        /// Aggressive mode.
        AGGRESSIVE = 4,
        /// Informational.
        INFORMATIONAL = 5,
        /// Quick mode (RFC 2409 §5.5).
        QUICK_MODE = 32,
        /// New group mode.
        NEW_GROUP_MODE = 33,
    }
);

open_enum!(
    /// Payload type (RFC 2408 §3.1, RFC 3947 §3).
    PayloadType(u8) {
        /// No next payload.
        NONE = 0,
        /// Security Association.
        SA = 1,
        /// Proposal (only inside SA).
        PROPOSAL = 2,
        /// Transform (only inside a proposal).
        TRANSFORM = 3,
        /// Key Exchange.
        KE = 4,
        /// Identification.
        ID = 5,
        /// Certificate.
        CERT = 6,
        /// Certificate Request.
        CR = 7,
        /// Hash.
        HASH = 8,
        /// Signature.
        SIG = 9,
        /// Nonce.
        NONCE = 10,
        /// Notification.
        N = 11,
        /// Delete.
        D = 12,
        /// Vendor ID.
        VID = 13,
        /// NAT-Discovery (RFC 3947).
        NAT_D = 20,
        /// NAT Original Address (RFC 3947).
        NAT_OA = 21,
    }
);

open_enum!(
    /// Protocol ID (RFC 2407 §4.4.1).
    ProtocolId(u8) {
        /// ISAKMP.
        ISAKMP = 1,
        /// AH.
        AH = 2,
        /// ESP.
        ESP = 3,
        /// IPCOMP.
        IPCOMP = 4,
    }
);

open_enum!(
    /// Notify message type (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
    NotifyType(u16) {
        /// INVALID-PAYLOAD-TYPE.
        INVALID_PAYLOAD_TYPE = 1,
        /// DOI-NOT-SUPPORTED.
        DOI_NOT_SUPPORTED = 2,
        /// INVALID-COOKIE.
        INVALID_COOKIE = 4,
        /// INVALID-EXCHANGE-TYPE.
        INVALID_EXCHANGE_TYPE = 7,
        /// INVALID-FLAGS.
        INVALID_FLAGS = 8,
        /// INVALID-MESSAGE-ID.
        INVALID_MESSAGE_ID = 9,
        /// INVALID-SPI.
        INVALID_SPI = 11,
        /// ATTRIBUTES-NOT-SUPPORTED.
        ATTRIBUTES_NOT_SUPPORTED = 13,
        /// NO-PROPOSAL-CHOSEN.
        NO_PROPOSAL_CHOSEN = 14,
        /// PAYLOAD-MALFORMED.
        PAYLOAD_MALFORMED = 16,
        /// INVALID-KEY-INFORMATION.
        INVALID_KEY_INFORMATION = 17,
        /// INVALID-ID-INFORMATION.
        INVALID_ID_INFORMATION = 18,
        /// AUTHENTICATION-FAILED.
        AUTHENTICATION_FAILED = 24,
        /// INVALID-SIGNATURE.
        INVALID_SIGNATURE = 25,
        /// INVALID-HASH-INFORMATION.
        INVALID_HASH_INFORMATION = 23,
        /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
        RESPONDER_LIFETIME = 24576,
        /// REPLAY-STATUS.
        REPLAY_STATUS = 24577,
        /// INITIAL-CONTACT.
        INITIAL_CONTACT = 24578,
        /// R-U-THERE (RFC 3706).
        R_U_THERE = 36136,
        /// R-U-THERE-ACK (RFC 3706).
        R_U_THERE_ACK = 36137,
    }
);

impl NotifyType {
    // See https://www.rfc-editor.org/rfc/rfc2408#section-3.14.1
    // (paraphrase) Notify Messages - Error Types ... 1 - 8191 ... Notify Messages - Status Types ... 16384 - 24575
    /// True for error types (1..=16383).
    pub fn is_error(self) -> bool {
        (1..16384).contains(&self.0)
    }
}

open_enum!(
    /// Identification type (RFC 2407 §4.6.2.1).
    IdType(u8) {
        /// ID_IPV4_ADDR.
        IPV4_ADDR = 1,
        /// ID_FQDN.
        FQDN = 2,
        /// ID_USER_FQDN.
        USER_FQDN = 3,
        /// ID_IPV4_ADDR_SUBNET.
        IPV4_ADDR_SUBNET = 4,
        /// ID_IPV6_ADDR.
        IPV6_ADDR = 5,
        /// ID_IPV6_ADDR_SUBNET.
        IPV6_ADDR_SUBNET = 6,
        /// ID_IPV4_ADDR_RANGE.
        IPV4_ADDR_RANGE = 7,
        /// ID_IPV6_ADDR_RANGE.
        IPV6_ADDR_RANGE = 8,
        /// ID_DER_ASN1_DN.
        DER_ASN1_DN = 9,
        /// ID_DER_ASN1_GN.
        DER_ASN1_GN = 10,
        /// ID_KEY_ID.
        KEY_ID = 11,
    }
);

/// ISAKMP version byte (major 1, minor 0).
pub const VERSION_1_0: u8 = 0x10;
/// Header flag E: the payloads are encrypted.
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// Header flag C: commit.
pub const FLAG_COMMIT: u8 = 0x02;
/// Header flag A: authentication only.
pub const FLAG_AUTH_ONLY: u8 = 0x04;
/// Length of the fixed ISAKMP header.
pub const HEADER_LEN: usize = 28;
/// IPsec DOI (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;

fn arr8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    a
}

/// Zero-copy view over the fixed ISAKMP header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps and checks that the header is present and the `Length` field equals the buffer length.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let h = Self { buffer };
        let b = h.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = h.length() as usize;
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        if len < b.len() {
            return Err(Error::BadLength);
        }
        Ok(h)
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Initiator cookie.
    pub fn cookie_i(&self) -> u64 {
        u64::from_be_bytes(arr8(&self.b()[0..8]))
    }
    /// Responder cookie.
    pub fn cookie_r(&self) -> u64 {
        u64::from_be_bytes(arr8(&self.b()[8..16]))
    }
    /// First payload type.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.b()[16])
    }
    /// Version byte.
    pub fn version(&self) -> u8 {
        self.b()[17]
    }
    /// Exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.b()[18])
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.b()[19]
    }
    /// Message ID.
    pub fn message_id(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[20], b[21], b[22], b[23]])
    }
    /// Length of the whole message.
    pub fn length(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[24], b[25], b[26], b[27]])
    }
    /// Bytes after the header.
    pub fn body(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
}

/// One data attribute (RFC 2408 §3.3): basic (AF=1, 16-bit value) or variable length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// TV form.
    Basic(u16, u16),
    /// TLV form.
    Variable(u16, Vec<u8>),
}

impl Attribute {
    /// Attribute type (without the AF bit).
    pub fn kind(&self) -> u16 {
        match self {
            Attribute::Basic(t, _) | Attribute::Variable(t, _) => *t & 0x7fff,
        }
    }
    /// Value as an integer (basic, or variable up to 8 bytes, big-endian).
    pub fn value(&self) -> Option<u64> {
        match self {
            Attribute::Basic(_, v) => Some(u64::from(*v)),
            Attribute::Variable(_, v) if v.len() <= 8 => {
                Some(v.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
            }
            Attribute::Variable(..) => None,
        }
    }
    /// An attribute for an integer value: basic when it fits 16 bits, else variable (4 bytes or more).
    pub fn int(kind: u16, v: u64) -> Self {
        match u16::try_from(v) {
            Ok(s) => Attribute::Basic(kind & 0x7fff, s),
            Err(_) => {
                let b = v.to_be_bytes();
                let skip = if v <= u64::from(u32::MAX) { 4 } else { 0 };
                Attribute::Variable(kind & 0x7fff, b[skip..].to_vec())
            }
        }
    }
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let t = r.u16()?;
        if t & 0x8000 != 0 {
            Ok(Attribute::Basic(t & 0x7fff, r.u16()?))
        } else {
            let n = r.u16()? as usize;
            Ok(Attribute::Variable(t, r.take(n)?.to_vec()))
        }
    }
    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Attribute::Basic(t, v) => {
                out.extend_from_slice(&((t & 0x7fff) | 0x8000).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            Attribute::Variable(t, v) => {
                out.extend_from_slice(&(t & 0x7fff).to_be_bytes());
                out.extend_from_slice(&(v.len().min(0xffff) as u16).to_be_bytes());
                out.extend_from_slice(&v[..v.len().min(0xffff)]);
            }
        }
    }
}

/// One transform (RFC 2408 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform number.
    pub number: u8,
    /// Transform ID (KEY_IKE = 1 in phase 1; ESP_AES = 12 ... in phase 2).
    pub id: u8,
    /// SA attributes.
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// The first attribute of `kind`, as an integer.
    pub fn attr(&self, kind: u16) -> Option<u64> {
        self.attributes
            .iter()
            .find(|a| a.kind() == kind)
            .and_then(Attribute::value)
    }
}

/// One proposal (RFC 2408 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number.
    pub number: u8,
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI (empty in phase 1, 4 bytes for ESP).
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// SA payload (RFC 2408 §3.4) with the IPsec DOI situation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    /// DOI.
    pub doi: u32,
    /// Situation (IPsec DOI: 4 bytes).
    pub situation: u32,
    /// Proposals.
    pub proposals: Vec<Proposal>,
}

/// Identification payload (RFC 2407 §4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// ID type.
    pub id_type: IdType,
    /// IP protocol (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: Vec<u8>,
}

/// Notification payload (RFC 2408 §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// DOI.
    pub doi: u32,
    /// Protocol.
    pub protocol: ProtocolId,
    /// Type.
    pub kind: NotifyType,
    /// SPI (16 bytes = the two cookies for ISAKMP).
    pub spi: Vec<u8>,
    /// Notification data.
    pub data: Vec<u8>,
}

/// Delete payload (RFC 2408 §3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    /// DOI.
    pub doi: u32,
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI size.
    pub spi_size: u8,
    /// SPIs, each `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

/// NAT original address (RFC 3947 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatOaPayload {
    /// ID type (IPV4_ADDR or IPV6_ADDR).
    pub id_type: IdType,
    /// Address bytes.
    pub addr: Vec<u8>,
}

/// One payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// SA.
    Sa(SaPayload),
    /// KE data.
    Ke(Vec<u8>),
    /// ID.
    Id(IdPayload),
    /// CERT: encoding, data.
    Cert(u8, Vec<u8>),
    /// CR: certificate type, CA.
    CertReq(u8, Vec<u8>),
    /// HASH data.
    Hash(Vec<u8>),
    /// SIG data.
    Sig(Vec<u8>),
    /// NONCE data.
    Nonce(Vec<u8>),
    /// N.
    Notify(NotifyPayload),
    /// D.
    Delete(DeletePayload),
    /// VID.
    VendorId(Vec<u8>),
    /// NAT-D hash.
    NatD(Vec<u8>),
    /// NAT-OA.
    NatOa(NatOaPayload),
    /// Unknown type, kept raw.
    Unknown(PayloadType, Vec<u8>),
}

impl Payload {
    /// Payload type.
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::Id(_) => PayloadType::ID,
            Payload::Cert(..) => PayloadType::CERT,
            Payload::CertReq(..) => PayloadType::CR,
            Payload::Hash(_) => PayloadType::HASH,
            Payload::Sig(_) => PayloadType::SIG,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::N,
            Payload::Delete(_) => PayloadType::D,
            Payload::VendorId(_) => PayloadType::VID,
            Payload::NatD(_) => PayloadType::NAT_D,
            Payload::NatOa(_) => PayloadType::NAT_OA,
            Payload::Unknown(t, _) => *t,
        }
    }

    /// Parses a payload body (without the generic header).
    pub fn parse_body(kind: PayloadType, body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(body);
        let p = match kind {
            PayloadType::SA => Payload::Sa(parse_sa(&mut r)?),
            PayloadType::KE => Payload::Ke(r.rest().to_vec()),
            PayloadType::ID => Payload::Id(IdPayload {
                id_type: IdType(r.u8()?),
                protocol: r.u8()?,
                port: r.u16()?,
                data: r.rest().to_vec(),
            }),
            PayloadType::CERT => Payload::Cert(r.u8()?, r.rest().to_vec()),
            PayloadType::CR => Payload::CertReq(r.u8()?, r.rest().to_vec()),
            PayloadType::HASH => Payload::Hash(r.rest().to_vec()),
            PayloadType::SIG => Payload::Sig(r.rest().to_vec()),
            PayloadType::NONCE => Payload::Nonce(r.rest().to_vec()),
            PayloadType::N => {
                let doi = r.u32()?;
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()? as usize;
                let kind = NotifyType(r.u16()?);
                let spi = r.take(spi_size)?.to_vec();
                Payload::Notify(NotifyPayload {
                    doi,
                    protocol,
                    kind,
                    spi,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::D => {
                let doi = r.u32()?;
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()?;
                let n = r.u16()?;
                let mut spis = Vec::new();
                for _ in 0..n {
                    spis.push(r.take(spi_size as usize)?.to_vec());
                }
                Payload::Delete(DeletePayload {
                    doi,
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VID => Payload::VendorId(r.rest().to_vec()),
            PayloadType::NAT_D => Payload::NatD(r.rest().to_vec()),
            PayloadType::NAT_OA => {
                let id_type = IdType(r.u8()?);
                r.take(3)?;
                Payload::NatOa(NatOaPayload {
                    id_type,
                    addr: r.rest().to_vec(),
                })
            }
            t => Payload::Unknown(t, r.rest().to_vec()),
        };
        r.finish()?;
        Ok(p)
    }

    /// Emits the payload body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(sa) => emit_sa(sa, out),
            Payload::Ke(d)
            | Payload::Hash(d)
            | Payload::Sig(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD(d)
            | Payload::Unknown(_, d) => out.extend_from_slice(d),
            Payload::Id(id) => {
                out.push(id.id_type.0);
                out.push(id.protocol);
                out.extend_from_slice(&id.port.to_be_bytes());
                out.extend_from_slice(&id.data);
            }
            Payload::Cert(e, d) | Payload::CertReq(e, d) => {
                out.push(*e);
                out.extend_from_slice(d);
            }
            Payload::Notify(n) => {
                out.extend_from_slice(&n.doi.to_be_bytes());
                out.push(n.protocol.0);
                out.push(n.spi.len().min(255) as u8);
                out.extend_from_slice(&n.kind.0.to_be_bytes());
                out.extend_from_slice(&n.spi[..n.spi.len().min(255)]);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out.extend_from_slice(&d.doi.to_be_bytes());
                out.push(d.protocol.0);
                out.push(d.spi_size);
                out.extend_from_slice(&(d.spis.len().min(0xffff) as u16).to_be_bytes());
                for s in d.spis.iter().take(0xffff) {
                    let mut s = s.clone();
                    s.resize(d.spi_size as usize, 0);
                    out.extend_from_slice(&s);
                }
            }
            Payload::NatOa(n) => {
                out.push(n.id_type.0);
                out.extend_from_slice(&[0, 0, 0]);
                out.extend_from_slice(&n.addr);
            }
        }
    }

    /// The body bytes as emitted (what RFC 2409 calls `SAi_b`, `IDii_b`, `Ni_b`).
    pub fn body(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.emit_body(&mut v);
        v
    }
}

fn parse_generic<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), Error> {
    let next = r.u8()?;
    let _reserved = r.u8()?;
    let len = r.u16()? as usize;
    if len < 4 {
        return Err(Error::BadLength);
    }
    Ok((next, r.take(len - 4)?))
}

fn emit_generic(out: &mut Vec<u8>, next: u8, body: &[u8]) {
    out.push(next);
    out.push(0);
    out.extend_from_slice(&((body.len() + 4).min(0xffff) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn parse_sa(r: &mut Reader<'_>) -> Result<SaPayload, Error> {
    let doi = r.u32()?;
    if doi != DOI_IPSEC {
        return Err(Error::BadValue("DOI"));
    }
    // See https://www.rfc-editor.org/rfc/rfc2407#section-4.6.1
    // (paraphrase) Situation (4 octets) - bitmask used to determine further processing.
    let situation = r.u32()?;
    let mut proposals = Vec::new();
    let mut next = if r.remaining() == 0 {
        0
    } else {
        PayloadType::PROPOSAL.0
    };
    while next != 0 {
        if next != PayloadType::PROPOSAL.0 {
            return Err(Error::BadValue("payload in SA"));
        }
        let (n, body) = parse_generic(r)?;
        next = n;
        let mut p = Reader::new(body);
        let number = p.u8()?;
        let protocol = ProtocolId(p.u8()?);
        let spi_size = p.u8()? as usize;
        let count = p.u8()?;
        let spi = p.take(spi_size)?.to_vec();
        let mut transforms = Vec::new();
        for i in 0..count {
            let (tn, tbody) = parse_generic(&mut p)?;
            let last = i + 1 == count;
            if (last && tn != 0) || (!last && tn != PayloadType::TRANSFORM.0) {
                return Err(Error::BadValue("transform chain"));
            }
            let mut t = Reader::new(tbody);
            let number = t.u8()?;
            let id = t.u8()?;
            t.take(2)?;
            let mut attributes = Vec::new();
            while t.remaining() > 0 {
                attributes.push(Attribute::parse(&mut t)?);
            }
            transforms.push(Transform {
                number,
                id,
                attributes,
            });
        }
        p.finish()?;
        proposals.push(Proposal {
            number,
            protocol,
            spi,
            transforms,
        });
    }
    Ok(SaPayload {
        doi,
        situation,
        proposals,
    })
}

fn emit_sa(sa: &SaPayload, out: &mut Vec<u8>) {
    out.extend_from_slice(&sa.doi.to_be_bytes());
    out.extend_from_slice(&sa.situation.to_be_bytes());
    for (i, p) in sa.proposals.iter().enumerate() {
        let mut pb = vec![
            p.number,
            p.protocol.0,
            p.spi.len().min(255) as u8,
            p.transforms.len().min(255) as u8,
        ];
        pb.extend_from_slice(&p.spi[..p.spi.len().min(255)]);
        let nt = p.transforms.len().min(255);
        for (j, t) in p.transforms.iter().take(nt).enumerate() {
            let mut tb = vec![t.number, t.id, 0, 0];
            for a in &t.attributes {
                a.emit(&mut tb);
            }
            let next = if j + 1 == nt {
                0
            } else {
                PayloadType::TRANSFORM.0
            };
            emit_generic(&mut pb, next, &tb);
        }
        let next = if i + 1 == sa.proposals.len() {
            0
        } else {
            PayloadType::PROPOSAL.0
        };
        emit_generic(out, next, &pb);
    }
}

/// Parses a payload chain starting with `first`. With `allow_padding`, bytes after the last payload are
/// ignored (the block padding of an encrypted message, RFC 2409 §5.3); otherwise they are an error.
pub fn parse_chain(
    first: PayloadType,
    bytes: &[u8],
    allow_padding: bool,
) -> Result<Vec<Payload>, Error> {
    let mut r = Reader::new(bytes);
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        if matches!(next, PayloadType::PROPOSAL | PayloadType::TRANSFORM) {
            return Err(Error::BadValue("proposal outside SA"));
        }
        let (n, body) = parse_generic(&mut r)?;
        out.push(Payload::parse_body(next, body)?);
        next = PayloadType(n);
    }
    if !allow_padding {
        r.finish()?;
    }
    Ok(out)
}

/// Emits a payload chain; returns the first payload type.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> PayloadType {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(0, |q| q.kind().0);
        emit_generic(out, next, &p.body());
    }
    payloads.first().map_or(PayloadType::NONE, Payload::kind)
}

/// Body of a message: the payloads, or the ciphertext of an encrypted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Plaintext payloads.
    Plain(Vec<Payload>),
    /// Ciphertext (E flag set) and the first payload type from the header.
    Encrypted(PayloadType, Vec<u8>),
}

/// A whole ISAKMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Initiator cookie.
    pub cookie_i: u64,
    /// Responder cookie.
    pub cookie_r: u64,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags (the E bit is derived from `body`).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
    /// Body.
    pub body: Body,
}

impl Message {
    /// Parses a datagram (never panics; rejects a version other than 1.x and bytes after `Length`).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let h = Header::new_checked(bytes)?;
        if h.version() >> 4 != 1 {
            return Err(Error::BadValue("version"));
        }
        let body = if h.flags() & FLAG_ENCRYPTION != 0 {
            Body::Encrypted(h.next_payload(), h.body().to_vec())
        } else {
            Body::Plain(parse_chain(h.next_payload(), h.body(), false)?)
        };
        Ok(Message {
            cookie_i: h.cookie_i(),
            cookie_r: h.cookie_r(),
            exchange: h.exchange_type(),
            flags: h.flags() & !FLAG_ENCRYPTION,
            message_id: h.message_id(),
            body,
        })
    }

    /// Serialises.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.extend_from_slice(&self.cookie_i.to_be_bytes());
        out.extend_from_slice(&self.cookie_r.to_be_bytes());
        out.push(0);
        out.push(VERSION_1_0);
        out.push(self.exchange.0);
        out.push(self.flags & !FLAG_ENCRYPTION);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let first = match &self.body {
            Body::Plain(p) => emit_chain(p, &mut out),
            Body::Encrypted(first, c) => {
                out[19] |= FLAG_ENCRYPTION;
                out.extend_from_slice(c);
                *first
            }
        };
        out[16] = first.0;
        let len = out.len() as u32;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// Length of [`Message::emit`]'s output.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Plain(p) => p.iter().map(|p| 4 + p.body().len()).sum(),
                Body::Encrypted(_, c) => c.len(),
            }
    }

    /// The plaintext payloads (empty for an encrypted message).
    pub fn payloads(&self) -> &[Payload] {
        match &self.body {
            Body::Plain(p) => p,
            Body::Encrypted(..) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn attribute() -> impl Strategy<Value = Attribute> {
        prop_oneof![
            (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::Basic(t, v)),
            (0u16..0x8000, bytes(12)).prop_map(|(t, v)| Attribute::Variable(t, v)),
        ]
    }

    fn sa() -> impl Strategy<Value = SaPayload> {
        let transform = (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(attribute(), 0..5),
        )
            .prop_map(|(number, id, attributes)| Transform {
                number,
                id,
                attributes,
            });
        let proposal = (
            any::<u8>(),
            any::<u8>(),
            bytes(8),
            proptest::collection::vec(transform, 0..4),
        )
            .prop_map(|(number, p, spi, transforms)| Proposal {
                number,
                protocol: ProtocolId(p),
                spi,
                transforms,
            });
        (any::<u32>(), proptest::collection::vec(proposal, 0..3)).prop_map(
            |(situation, proposals)| SaPayload {
                doi: DOI_IPSEC,
                situation,
                proposals,
            },
        )
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            sa().prop_map(Payload::Sa),
            bytes(64).prop_map(Payload::Ke),
            (any::<u8>(), any::<u8>(), any::<u16>(), bytes(16)).prop_map(|(t, p, port, data)| {
                Payload::Id(IdPayload {
                    id_type: IdType(t),
                    protocol: p,
                    port,
                    data,
                })
            }),
            (any::<u8>(), bytes(32)).prop_map(|(e, d)| Payload::Cert(e, d)),
            (any::<u8>(), bytes(32)).prop_map(|(e, d)| Payload::CertReq(e, d)),
            bytes(32).prop_map(Payload::Hash),
            bytes(32).prop_map(Payload::Sig),
            bytes(32).prop_map(Payload::Nonce),
            (any::<u32>(), any::<u8>(), any::<u16>(), bytes(16), bytes(8)).prop_map(
                |(doi, p, k, spi, data)| Payload::Notify(NotifyPayload {
                    doi,
                    protocol: ProtocolId(p),
                    kind: NotifyType(k),
                    spi,
                    data
                })
            ),
            (any::<u32>(), any::<u8>(), 0u8..17, 0usize..4).prop_map(|(doi, p, size, n)| {
                Payload::Delete(DeletePayload {
                    doi,
                    protocol: ProtocolId(p),
                    spi_size: size,
                    spis: (0..n).map(|i| vec![i as u8; size as usize]).collect(),
                })
            }),
            bytes(20).prop_map(Payload::VendorId),
            bytes(20).prop_map(Payload::NatD),
            (any::<u8>(), bytes(16)).prop_map(|(t, addr)| Payload::NatOa(NatOaPayload {
                id_type: IdType(t),
                addr
            })),
            (22u8..=255, bytes(16)).prop_map(|(t, d)| Payload::Unknown(PayloadType(t), d)),
        ]
    }

    proptest! {
        #[test]
        fn every_payload_round_trips(ps in proptest::collection::vec(payload(), 0..6),
                                     ci in any::<u64>(), cr in any::<u64>(), x in any::<u8>(),
                                     mid in any::<u32>()) {
            let m = Message {
                cookie_i: ci,
                cookie_r: cr,
                exchange: ExchangeType(x),
                flags: 0,
                message_id: mid,
                body: Body::Plain(ps),
            };
            let b = m.emit();
            prop_assert_eq!(b.len(), m.buffer_len());
            prop_assert_eq!(Message::parse(&b).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(b in bytes(300)) {
            let _ = Message::parse(&b);
            let _ = parse_chain(PayloadType::SA, &b, true);
        }

        #[test]
        fn parse_of_mutated_message_never_panics(ps in proptest::collection::vec(payload(), 1..4),
                                                 pos in any::<usize>(), v in any::<u8>()) {
            let m = Message { cookie_i: 1, cookie_r: 2, exchange: ExchangeType::IDENTITY_PROTECTION,
                flags: 0, message_id: 0, body: Body::Plain(ps) };
            let mut b = m.emit();
            let i = pos % b.len();
            b[i] = v;
            let _ = Message::parse(&b);
        }
    }

    #[test]
    fn encrypted_body_is_opaque_and_sets_e_flag() {
        let m = Message {
            cookie_i: 7,
            cookie_r: 9,
            exchange: ExchangeType::QUICK_MODE,
            flags: 0,
            message_id: 0x1234,
            body: Body::Encrypted(PayloadType::HASH, vec![0xaa; 32]),
        };
        let b = m.emit();
        assert_eq!(b[19], FLAG_ENCRYPTION);
        assert_eq!(b[16], PayloadType::HASH.0);
        assert_eq!(Message::parse(&b).unwrap(), m);
    }

    #[test]
    fn ikev2_version_is_rejected() {
        let mut b = Message {
            cookie_i: 7,
            cookie_r: 0,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            body: Body::Plain(vec![]),
        }
        .emit();
        b[17] = 0x20;
        assert_eq!(Message::parse(&b), Err(Error::BadValue("version")));
    }

    #[test]
    fn long_lifetime_uses_variable_attribute() {
        let a = Attribute::int(12, 86400);
        assert_eq!(a, Attribute::Variable(12, vec![0, 1, 0x51, 0x80]));
        assert_eq!(a.value(), Some(86400));
        assert_eq!(Attribute::int(12, 3600), Attribute::Basic(12, 3600));
    }
}
