//! ICMPv4 echo request / echo reply (RFC 792), in smoltcp's view + representation shape.
//!
//! The appliance builds the bytes with [`EchoRepr::emit`] and sends them through a raw or ping socket bound
//! to the SLA operation's source interface; replies come back through [`EchoRepr::parse`]. Note that a Linux
//! ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`) rewrites the identifier with the socket's local port and
//! fills in the checksum itself, which is why [`crate::sla`] also matches replies on a token in the data.

/// Wire-level error: the reason is kept, and nothing here panics on peer bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the 8-byte echo header.
    Truncated,
    /// The Internet checksum does not verify.
    BadChecksum,
    /// Not an echo message (type other than 0 or 8) or a non-zero code.
    BadValue(&'static str),
    /// The output buffer is too small for [`EchoRepr::buffer_len`].
    BufferTooSmall,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated ICMP echo"),
            Error::BadChecksum => f.write_str("bad ICMP checksum"),
            Error::BadValue(what) => write!(f, "bad ICMP value: {what}"),
            Error::BufferTooSmall => f.write_str("buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

/// ICMP message type; the number space is open (unknown types survive [`Packet`] access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub u8);

impl MessageType {
    //= https://www.rfc-editor.org/rfc/rfc792
    //# Type
    //#   8 for echo message;
    //#   0 for echo reply message.
    pub const ECHO_REPLY: MessageType = MessageType(0);
    pub const ECHO_REQUEST: MessageType = MessageType(8);
}

/// Header length of an echo message: type, code, checksum, identifier, sequence number.
pub const HEADER_LEN: usize = 8;

/// A read view over (possibly untrusted) ICMP echo bytes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps bytes after checking that the header fits.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 8-byte header is present.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.byte(i), self.byte(i + 1)])
    }

    pub fn msg_type(&self) -> MessageType {
        MessageType(self.byte(0))
    }
    pub fn msg_code(&self) -> u8 {
        self.byte(1)
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(2)
    }
    pub fn ident(&self) -> u16 {
        self.u16_at(4)
    }
    pub fn seq_no(&self) -> u16 {
        self.u16_at(6)
    }
    /// Echo data after the header (empty when truncated).
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True when the Internet checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum(self.buffer.as_ref()) == 0
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// RFC 1071 Internet checksum (one's complement of the one's complement sum) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    //= https://www.rfc-editor.org/rfc/rfc792
    //# The checksum is the 16-bit ones's complement of the one's
    //# complement sum of the ICMP message starting with the ICMP Type.
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether an echo message is a request or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoKind {
    Request,
    Reply,
}

/// High-level representation of an echo request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoRepr<'a> {
    pub kind: EchoKind,
    pub ident: u16,
    pub seq_no: u16,
    pub data: &'a [u8],
}

impl<'a> EchoRepr<'a> {
    /// Parses an echo request or reply, verifying its checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &'a Packet<&'a T>) -> Result<Self, Error> {
        packet.check_len()?;
        let kind = match packet.msg_type() {
            MessageType::ECHO_REQUEST => EchoKind::Request,
            MessageType::ECHO_REPLY => EchoKind::Reply,
            _ => return Err(Error::BadValue("type")),
        };
        //# Code
        //#   0
        if packet.msg_code() != 0 {
            return Err(Error::BadValue("code"));
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data = packet.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[]);
        Ok(EchoRepr {
            kind,
            ident: packet.ident(),
            seq_no: packet.seq_no(),
            data,
        })
    }

    /// Parses bytes directly (convenience for [`Packet::new_checked`] + [`EchoRepr::parse`]).
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let kind = match MessageType(bytes[0]) {
            MessageType::ECHO_REQUEST => EchoKind::Request,
            MessageType::ECHO_REPLY => EchoKind::Reply,
            _ => return Err(Error::BadValue("type")),
        };
        if bytes[1] != 0 {
            return Err(Error::BadValue("code"));
        }
        if checksum(bytes) != 0 {
            return Err(Error::BadChecksum);
        }
        Ok(EchoRepr {
            kind,
            ident: u16::from_be_bytes([bytes[4], bytes[5]]),
            seq_no: u16::from_be_bytes([bytes[6], bytes[7]]),
            data: &bytes[HEADER_LEN..],
        })
    }

    /// Bytes needed by [`EchoRepr::emit`].
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the message (checksum included) into the front of `buf`; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        out[0] = match self.kind {
            EchoKind::Request => MessageType::ECHO_REQUEST.0,
            EchoKind::Reply => MessageType::ECHO_REPLY.0,
        };
        out[1] = 0;
        out[2] = 0;
        out[3] = 0;
        out[4..6].copy_from_slice(&self.ident.to_be_bytes());
        out[6..8].copy_from_slice(&self.seq_no.to_be_bytes());
        out[HEADER_LEN..].copy_from_slice(self.data);
        //# For computing the checksum, the checksum field should be zero.
        let c = checksum(out);
        out[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }

    /// Emits into a fresh vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        // The buffer has exactly `buffer_len` bytes, so emit cannot fail.
        let _ = self.emit(&mut v);
        v
    }

    /// The reply a peer would send to this request (same identifier, sequence number and data).
    pub fn reply(&self) -> EchoRepr<'a> {
        EchoRepr {
            kind: EchoKind::Reply,
            ..*self
        }
    }
}

/// Writes an echo header (checksum included) in front of data already placed at `buf[HEADER_LEN..]`;
/// saves a copy when the caller builds the data in the final buffer.
pub fn emit_header_in_place(
    buf: &mut [u8],
    kind: EchoKind,
    ident: u16,
    seq_no: u16,
) -> Result<(), Error> {
    let hdr = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
    hdr[0] = match kind {
        EchoKind::Request => MessageType::ECHO_REQUEST.0,
        EchoKind::Reply => MessageType::ECHO_REPLY.0,
    };
    hdr[1] = 0;
    hdr[2..4].copy_from_slice(&[0, 0]);
    hdr[4..6].copy_from_slice(&ident.to_be_bytes());
    hdr[6..8].copy_from_slice(&seq_no.to_be_bytes());
    let c = checksum(buf);
    buf[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An echo request as sent by iputils ping: ident 0x1234, seq 1, data "abcd".
    const REQUEST: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    fn with_checksum(mut b: [u8; 12]) -> [u8; 12] {
        b[2] = 0;
        b[3] = 0;
        let c = checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        //= https://www.rfc-editor.org/rfc/rfc1071#section-3
        //# bytes 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2 -> checksum 220d
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn parse_request_reads_fields() {
        let b = with_checksum(REQUEST);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MessageType::ECHO_REQUEST);
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.seq_no(), 1);
        assert_eq!(p.data(), b"abcd");
        let r = EchoRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            EchoRepr {
                kind: EchoKind::Request,
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
    }

    #[test]
    fn emit_matches_bytes_and_round_trips() {
        let r = EchoRepr {
            kind: EchoKind::Request,
            ident: 0x1234,
            seq_no: 1,
            data: b"abcd",
        };
        assert_eq!(r.to_vec(), with_checksum(REQUEST).to_vec());
        let v = r.reply().to_vec();
        let back = EchoRepr::parse_bytes(&v).unwrap();
        assert_eq!(back, r.reply());
    }

    #[test]
    fn parse_rejects_truncated_bad_checksum_and_other_types() {
        assert_eq!(EchoRepr::parse_bytes(&[8, 0, 0]), Err(Error::Truncated));
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]).err(),
            Some(Error::Truncated)
        );
        let mut b = with_checksum(REQUEST);
        b[9] ^= 1;
        assert_eq!(EchoRepr::parse_bytes(&b), Err(Error::BadChecksum));
        let mut u = REQUEST;
        u[0] = 3; // destination unreachable
        assert_eq!(
            EchoRepr::parse_bytes(&with_checksum(u)),
            Err(Error::BadValue("type"))
        );
        let mut c = REQUEST;
        c[1] = 1;
        assert_eq!(
            EchoRepr::parse_bytes(&with_checksum(c)),
            Err(Error::BadValue("code"))
        );
    }

    #[test]
    fn header_in_place_equals_emit() {
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"abcd");
        emit_header_in_place(&mut b, EchoKind::Request, 0x1234, 1).unwrap();
        assert_eq!(b, with_checksum(REQUEST));
        assert_eq!(
            emit_header_in_place(&mut [0u8; 7], EchoKind::Reply, 1, 1),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn emit_rejects_small_buffer() {
        let r = EchoRepr {
            kind: EchoKind::Request,
            ident: 1,
            seq_no: 1,
            data: b"abcd",
        };
        assert_eq!(r.emit(&mut [0u8; 11]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn parse_never_panics_on_any_short_input() {
        for len in 0..16 {
            for fill in [0u8, 0xff, 8] {
                let v = vec![fill; len];
                let _ = EchoRepr::parse_bytes(&v);
                if let Ok(p) = Packet::new_checked(&v[..]) {
                    let _ = EchoRepr::parse(&p);
                }
            }
        }
    }
}
