//! Payload representations (RFC 7296 §3.3-§3.14, RFC 7383 §2.5).

use super::numbers::*;
use super::{Error, Reader};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One payload of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// SA: proposals.
    Sa(Vec<Proposal>),
    /// KE.
    Ke(KeyExchange),
    /// IDi.
    IdI(Identification),
    /// IDr.
    IdR(Identification),
    /// CERT.
    Cert(Certificate),
    /// CERTREQ.
    CertReq(Certificate),
    /// AUTH.
    Auth(Authentication),
    /// Ni, Nr.
    Nonce(Vec<u8>),
    /// N.
    Notify(Notify),
    /// D.
    Delete(Delete),
    /// V.
    VendorId(Vec<u8>),
    /// TSi.
    TsI(Vec<TrafficSelector>),
    /// TSr.
    TsR(Vec<TrafficSelector>),
    /// SK: encrypted body (IV, ciphertext, ICV) and the first inner payload type.
    Sk(Encrypted),
    /// SKF: one fragment.
    Skf(EncryptedFragment),
    /// Anything else, kept verbatim.
    Unknown {
        /// Payload type.
        payload_type: PayloadType,
        /// Critical bit as received.
        critical: bool,
        /// Body.
        body: Vec<u8>,
    },
}

/// A proposal substructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number (1, 2, ...).
    pub number: u8,
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI (empty for the first IKE_SA_INIT, 4 bytes for ESP, 8 for an IKE rekey).
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// A transform substructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Type.
    pub transform_type: TransformType,
    /// Transform ID within the type.
    pub id: u16,
    /// Attributes (Key Length).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, id: u16) -> Self {
        Self {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }
    /// A transform with a Key Length attribute.
    pub fn with_key_len(transform_type: TransformType, id: u16, bits: u16) -> Self {
        Self {
            transform_type,
            id,
            attributes: vec![Attribute::Tv(AttributeType::KEY_LENGTH, bits)],
        }
    }
    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv(AttributeType::KEY_LENGTH, v) => Some(*v),
            _ => None,
        })
    }
}

/// A transform attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// Type/Value (AF=1).
    Tv(AttributeType, u16),
    /// Type/Length/Value (AF=0).
    Tlv(AttributeType, Vec<u8>),
}

/// KE payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExchange {
    /// DH group.
    pub group: DhId,
    /// Public value.
    pub data: Vec<u8>,
}

/// IDi/IDr payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    /// ID type.
    pub id_type: IdType,
    /// Identification data.
    pub data: Vec<u8>,
}

/// CERT and CERTREQ payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Encoding.
    pub encoding: CertEncoding,
    /// Data (certificate, or concatenated SHA-1 hashes of CA keys for CERTREQ).
    pub data: Vec<u8>,
}

/// AUTH payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// Method.
    pub method: AuthMethod,
    /// Authentication data.
    pub data: Vec<u8>,
}

/// Notify payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol ID (0 when not about an SA).
    pub protocol: ProtocolId,
    /// SPI (may be empty).
    pub spi: Vec<u8>,
    /// Type.
    pub notify_type: NotifyType,
    /// Data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify without SPI.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Self {
            protocol: ProtocolId(0),
            spi: Vec::new(),
            notify_type,
            data,
        }
    }
}

/// Delete payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// SPI size.
    pub spi_size: u8,
    /// SPIs, each `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

/// A traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    Ipv4 {
        /// IP protocol (0 = any).
        ip_protocol: u8,
        /// Start port.
        start_port: u16,
        /// End port.
        end_port: u16,
        /// Start address.
        start: Ipv4Addr,
        /// End address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    Ipv6 {
        /// IP protocol (0 = any).
        ip_protocol: u8,
        /// Start port.
        start_port: u16,
        /// End port.
        end_port: u16,
        /// Start address.
        start: Ipv6Addr,
        /// End address.
        end: Ipv6Addr,
    },
    /// Unknown type, kept verbatim.
    Other {
        /// Type.
        ts_type: TsType,
        /// IP protocol byte.
        ip_protocol: u8,
        /// Bytes after the 4-byte selector header.
        body: Vec<u8>,
    },
}

impl TrafficSelector {
    /// 0.0.0.0-255.255.255.255, any protocol, any port.
    pub const IPV4_ANY: TrafficSelector = TrafficSelector::Ipv4 {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start: Ipv4Addr::UNSPECIFIED,
        end: Ipv4Addr::BROADCAST,
    };
    /// A single host for one IP protocol (e.g. 47 = GRE).
    pub fn ipv4_host(addr: Ipv4Addr, ip_protocol: u8) -> Self {
        TrafficSelector::Ipv4 {
            ip_protocol,
            start_port: 0,
            end_port: 65535,
            start: addr,
            end: addr,
        }
    }
    fn body_len(&self) -> usize {
        match self {
            TrafficSelector::Ipv4 { .. } => 12,
            TrafficSelector::Ipv6 { .. } => 36,
            TrafficSelector::Other { body, .. } => body.len(),
        }
    }
}

/// SK payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// Type of the first payload inside.
    pub first_inner: PayloadType,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

/// SKF payload (RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// Type of the first inner payload (only in fragment 1, else 0).
    pub first_inner: PayloadType,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total fragments.
    pub total: u16,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

fn put_u16(out: &mut [u8], v: u16) {
    out[..2].copy_from_slice(&v.to_be_bytes());
}

impl Payload {
    /// Payload type for the chain.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Skf(_) => PayloadType::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    pub(crate) fn critical(&self) -> bool {
        matches!(self, Payload::Unknown { critical: true, .. })
    }

    /// Parses the body of a payload of type `t` (generic header already consumed).
    pub fn parse_body(
        t: PayloadType,
        next: PayloadType,
        critical: bool,
        body: &[u8],
    ) -> Result<Payload, Error> {
        let mut r = Reader::new(body);
        let p = match t {
            PayloadType::SA => Payload::Sa(parse_proposals(&mut r)?),
            PayloadType::KE => {
                let group = DhId(r.u16()?);
                r.u16()?;
                Payload::Ke(KeyExchange {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::IDI | PayloadType::IDR => {
                let id_type = IdType(r.u8()?);
                r.take(3)?;
                let id = Identification {
                    id_type,
                    data: r.rest().to_vec(),
                };
                if t == PayloadType::IDI {
                    Payload::IdI(id)
                } else {
                    Payload::IdR(id)
                }
            }
            PayloadType::CERT | PayloadType::CERTREQ => {
                let c = Certificate {
                    encoding: CertEncoding(r.u8()?),
                    data: r.rest().to_vec(),
                };
                if t == PayloadType::CERT {
                    Payload::Cert(c)
                } else {
                    Payload::CertReq(c)
                }
            }
            PayloadType::AUTH => {
                let method = AuthMethod(r.u8()?);
                r.take(3)?;
                Payload::Auth(Authentication {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::NONCE => Payload::Nonce(r.rest().to_vec()),
            PayloadType::NOTIFY => {
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()? as usize;
                let notify_type = NotifyType(r.u16()?);
                let spi = r.take(spi_size)?.to_vec();
                Payload::Notify(Notify {
                    protocol,
                    spi,
                    notify_type,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::DELETE => {
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()?;
                let n = r.u16()? as usize;
                if n > 0 && spi_size == 0 {
                    return Err(Error::BadValue("delete with zero SPI size"));
                }
                if n.saturating_mul(spi_size as usize) != r.remaining() {
                    return Err(Error::BadLength);
                }
                let mut spis = Vec::with_capacity(n);
                for _ in 0..n {
                    spis.push(r.take(spi_size as usize)?.to_vec());
                }
                Payload::Delete(Delete {
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VENDOR_ID => Payload::VendorId(r.rest().to_vec()),
            PayloadType::TSI | PayloadType::TSR => {
                let n = r.u8()? as usize;
                r.take(3)?;
                let mut v = Vec::with_capacity(n.min(16));
                for _ in 0..n {
                    v.push(parse_ts(&mut r)?);
                }
                if t == PayloadType::TSI {
                    Payload::TsI(v)
                } else {
                    Payload::TsR(v)
                }
            }
            PayloadType::SK => Payload::Sk(Encrypted {
                first_inner: next,
                data: r.rest().to_vec(),
            }),
            PayloadType::SKF => {
                let number = r.u16()?;
                let total = r.u16()?;
                //= https://www.rfc-editor.org/rfc/rfc7383#section-2.5
                //# Fragment Number (2 octets, unsigned integer) - current fragment number, starting from 1.
                if number == 0 || total == 0 || number > total {
                    return Err(Error::BadValue("fragment number"));
                }
                Payload::Skf(EncryptedFragment {
                    first_inner: next,
                    number,
                    total,
                    data: r.rest().to_vec(),
                })
            }
            _ => Payload::Unknown {
                payload_type: t,
                critical,
                body: r.rest().to_vec(),
            },
        };
        r.finish()?;
        Ok(p)
    }

    /// Length of the body (without the 4-byte generic header).
    pub fn body_len(&self) -> usize {
        match self {
            Payload::Sa(ps) => ps.iter().map(proposal_len).sum(),
            Payload::Ke(k) => 4 + k.data.len(),
            Payload::IdI(i) | Payload::IdR(i) => 4 + i.data.len(),
            Payload::Cert(c) | Payload::CertReq(c) => 1 + c.data.len(),
            Payload::Auth(a) => 4 + a.data.len(),
            Payload::Nonce(n) | Payload::VendorId(n) => n.len(),
            Payload::Notify(n) => 4 + n.spi.len() + n.data.len(),
            Payload::Delete(d) => 4 + d.spis.iter().map(Vec::len).sum::<usize>(),
            Payload::TsI(t) | Payload::TsR(t) => {
                4 + t.iter().map(|s| 4 + s.body_len()).sum::<usize>()
            }
            Payload::Sk(s) => s.data.len(),
            Payload::Skf(f) => 4 + f.data.len(),
            Payload::Unknown { body, .. } => body.len(),
        }
    }

    /// Emits the body into `out` (exactly [`Payload::body_len`] bytes).
    pub fn emit_body(&self, out: &mut [u8]) {
        match self {
            Payload::Sa(ps) => {
                let mut off = 0;
                for (i, p) in ps.iter().enumerate() {
                    let len = proposal_len(p);
                    emit_proposal(p, i + 1 == ps.len(), &mut out[off..off + len]);
                    off += len;
                }
            }
            Payload::Ke(k) => {
                put_u16(out, k.group.0);
                put_u16(&mut out[2..], 0);
                out[4..].copy_from_slice(&k.data);
            }
            Payload::IdI(i) | Payload::IdR(i) => {
                out[0] = i.id_type.0;
                out[1..4].fill(0);
                out[4..].copy_from_slice(&i.data);
            }
            Payload::Cert(c) | Payload::CertReq(c) => {
                out[0] = c.encoding.0;
                out[1..].copy_from_slice(&c.data);
            }
            Payload::Auth(a) => {
                out[0] = a.method.0;
                out[1..4].fill(0);
                out[4..].copy_from_slice(&a.data);
            }
            Payload::Nonce(n) | Payload::VendorId(n) => out.copy_from_slice(n),
            Payload::Notify(n) => {
                out[0] = n.protocol.0;
                out[1] = n.spi.len() as u8;
                put_u16(&mut out[2..], n.notify_type.0);
                let s = 4 + n.spi.len();
                out[4..s].copy_from_slice(&n.spi);
                out[s..].copy_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out[0] = d.protocol.0;
                out[1] = d.spi_size;
                put_u16(&mut out[2..], d.spis.len() as u16);
                let mut off = 4;
                for s in &d.spis {
                    out[off..off + s.len()].copy_from_slice(s);
                    off += s.len();
                }
            }
            Payload::TsI(t) | Payload::TsR(t) => {
                out[0] = t.len() as u8;
                out[1..4].fill(0);
                let mut off = 4;
                for s in t {
                    let len = 4 + s.body_len();
                    emit_ts(s, &mut out[off..off + len]);
                    off += len;
                }
            }
            Payload::Sk(s) => out.copy_from_slice(&s.data),
            Payload::Skf(f) => {
                put_u16(out, f.number);
                put_u16(&mut out[2..], f.total);
                out[4..].copy_from_slice(&f.data);
            }
            Payload::Unknown { body, .. } => out.copy_from_slice(body),
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc7296#section-3.3.1
//# 0 (last) or 2 (more) - Specifies whether this is the last Proposal Substructure in the SA.
fn parse_proposals(r: &mut Reader<'_>) -> Result<Vec<Proposal>, Error> {
    let mut v = Vec::new();
    loop {
        let last = r.u8()?;
        r.u8()?;
        let len = r.u16()? as usize;
        let body = r.take(len.checked_sub(4).ok_or(Error::BadLength)?)?;
        let mut pr = Reader::new(body);
        let number = pr.u8()?;
        let protocol = ProtocolId(pr.u8()?);
        let spi_size = pr.u8()? as usize;
        let n = pr.u8()?;
        let spi = pr.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(n as usize);
        for i in 0..n {
            let tlast = pr.u8()?;
            if (tlast == 0) != (i + 1 == n) || (tlast != 0 && tlast != 3) {
                return Err(Error::BadValue("transform last marker"));
            }
            pr.u8()?;
            let tlen = pr.u16()? as usize;
            let tb = pr.take(tlen.checked_sub(4).ok_or(Error::BadLength)?)?;
            let mut tr = Reader::new(tb);
            let transform_type = TransformType(tr.u8()?);
            tr.u8()?;
            let id = tr.u16()?;
            let mut attributes = Vec::new();
            while tr.remaining() > 0 {
                let at = tr.u16()?;
                if at & 0x8000 != 0 {
                    attributes.push(Attribute::Tv(AttributeType(at & 0x7fff), tr.u16()?));
                } else {
                    let l = tr.u16()? as usize;
                    attributes.push(Attribute::Tlv(AttributeType(at), tr.take(l)?.to_vec()));
                }
            }
            transforms.push(Transform {
                transform_type,
                id,
                attributes,
            });
        }
        pr.finish()?;
        v.push(Proposal {
            number,
            protocol,
            spi,
            transforms,
        });
        match last {
            0 => break,
            2 => {}
            _ => return Err(Error::BadValue("proposal last marker")),
        }
        if v.len() > 64 {
            return Err(Error::BadValue("too many proposals"));
        }
    }
    Ok(v)
}

fn attr_len(a: &Attribute) -> usize {
    match a {
        Attribute::Tv(..) => 4,
        Attribute::Tlv(_, v) => 4 + v.len(),
    }
}

fn transform_len(t: &Transform) -> usize {
    8 + t.attributes.iter().map(attr_len).sum::<usize>()
}

fn proposal_len(p: &Proposal) -> usize {
    8 + p.spi.len() + p.transforms.iter().map(transform_len).sum::<usize>()
}

fn emit_proposal(p: &Proposal, last: bool, out: &mut [u8]) {
    out[0] = if last { 0 } else { 2 };
    out[1] = 0;
    put_u16(&mut out[2..], proposal_len(p) as u16);
    out[4] = p.number;
    out[5] = p.protocol.0;
    out[6] = p.spi.len() as u8;
    out[7] = p.transforms.len() as u8;
    let mut off = 8 + p.spi.len();
    out[8..off].copy_from_slice(&p.spi);
    for (i, t) in p.transforms.iter().enumerate() {
        let tl = transform_len(t);
        let o = &mut out[off..off + tl];
        o[0] = if i + 1 == p.transforms.len() { 0 } else { 3 };
        o[1] = 0;
        put_u16(&mut o[2..], tl as u16);
        o[4] = t.transform_type.0;
        o[5] = 0;
        put_u16(&mut o[6..], t.id);
        let mut ao = 8;
        for a in &t.attributes {
            match a {
                Attribute::Tv(ty, v) => {
                    put_u16(&mut o[ao..], 0x8000 | ty.0);
                    put_u16(&mut o[ao + 2..], *v);
                }
                Attribute::Tlv(ty, v) => {
                    put_u16(&mut o[ao..], ty.0 & 0x7fff);
                    put_u16(&mut o[ao + 2..], v.len() as u16);
                    o[ao + 4..ao + 4 + v.len()].copy_from_slice(v);
                }
            }
            ao += attr_len(a);
        }
        off += tl;
    }
}

fn parse_ts(r: &mut Reader<'_>) -> Result<TrafficSelector, Error> {
    let ts_type = TsType(r.u8()?);
    let ip_protocol = r.u8()?;
    let len = r.u16()? as usize;
    let body = r.take(len.checked_sub(4).ok_or(Error::BadLength)?)?;
    let mut b = Reader::new(body);
    let ts = match ts_type {
        TsType::TS_IPV4_ADDR_RANGE => {
            let start_port = b.u16()?;
            let end_port = b.u16()?;
            let start = Ipv4Addr::from(b.u32()?);
            let end = Ipv4Addr::from(b.u32()?);
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            }
        }
        TsType::TS_IPV6_ADDR_RANGE => {
            let start_port = b.u16()?;
            let end_port = b.u16()?;
            let mut s = [0u8; 16];
            s.copy_from_slice(b.take(16)?);
            let mut e = [0u8; 16];
            e.copy_from_slice(b.take(16)?);
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start: s.into(),
                end: e.into(),
            }
        }
        _ => TrafficSelector::Other {
            ts_type,
            ip_protocol,
            body: b.rest().to_vec(),
        },
    };
    b.finish()?;
    Ok(ts)
}

fn emit_ts(ts: &TrafficSelector, out: &mut [u8]) {
    let len = out.len() as u16;
    match ts {
        TrafficSelector::Ipv4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => {
            out[0] = TsType::TS_IPV4_ADDR_RANGE.0;
            out[1] = *ip_protocol;
            put_u16(&mut out[2..], len);
            put_u16(&mut out[4..], *start_port);
            put_u16(&mut out[6..], *end_port);
            out[8..12].copy_from_slice(&start.octets());
            out[12..16].copy_from_slice(&end.octets());
        }
        TrafficSelector::Ipv6 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => {
            out[0] = TsType::TS_IPV6_ADDR_RANGE.0;
            out[1] = *ip_protocol;
            put_u16(&mut out[2..], len);
            put_u16(&mut out[4..], *start_port);
            put_u16(&mut out[6..], *end_port);
            out[8..24].copy_from_slice(&start.octets());
            out[24..40].copy_from_slice(&end.octets());
        }
        TrafficSelector::Other {
            ts_type,
            ip_protocol,
            body,
        } => {
            out[0] = ts_type.0;
            out[1] = *ip_protocol;
            put_u16(&mut out[2..], len);
            out[4..].copy_from_slice(body);
        }
    }
}
