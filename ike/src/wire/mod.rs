//! IKEv2 wire format (RFC 7296 §3, RFC 7383 §2.5), smoltcp style.
//!
//! * [`Header`] is a zero-copy view over the fixed 28-byte IKE header (`new_checked` for untrusted bytes).
//! * [`Message`] is the owned representation of a whole message: header fields plus the payload chain.
//!   [`Message::parse`] is the fuzz entry point; it never panics and rejects trailing bytes.
//! * Number spaces are open newtypes (`ExchangeType(pub u8)` + constants): unknown values survive a
//!   parse/emit round trip.
//!
//! The encrypted payload (SK, SKF) is kept as opaque bytes here; `crate::sk` encrypts and decrypts it and
//! then uses [`parse_chain`] / [`emit_chain`] on the inner payloads.

mod numbers;
mod payload;
mod reader;

pub use numbers::*;
pub use payload::*;
pub use reader::Reader;

/// Wire error: small and `Copy`, keeps the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than a length field or fixed header requires.
    #[error("truncated")]
    Truncated,
    /// A length field is inconsistent (too small, or bytes left over).
    #[error("bad length")]
    BadLength,
    /// A field has a value this implementation cannot accept.
    #[error("bad value: {0}")]
    BadValue(&'static str),
}

/// Length of the fixed IKE header.
pub const HEADER_LEN: usize = 28;
/// Length of a generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

//= https://www.rfc-editor.org/rfc/rfc7296#section-3.1
//# Major Version (4 bits) - Indicates the major version of the IKE
//# protocol in use.  Implementations based on this version of IKE MUST
//# set the major version to 2.
/// IKEv2 version byte (major 2, minor 0).
pub const VERSION_2_0: u8 = 0x20;

/// Header flag: the sender is the original initiator of the IKE SA.
pub const FLAG_INITIATOR: u8 = 0x08;
/// Header flag: this message is a response.
pub const FLAG_RESPONSE: u8 = 0x20;
/// Header flag: the sender can speak a higher major version.
pub const FLAG_VERSION: u8 = 0x10;

/// Zero-copy view over the fixed IKE header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps without checks (accessors may panic on short buffers); use [`Header::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps and checks that the fixed header is present and the length field covers it and the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let h = Self { buffer };
        h.check_len()?;
        Ok(h)
    }

    /// Checks the header length and the `Length` field against the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = self.length() as usize;
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        if len < b.len() {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Initiator's SPI.
    pub fn initiator_spi(&self) -> u64 {
        u64::from_be_bytes(arr8(&self.b()[0..8]))
    }
    /// Responder's SPI.
    pub fn responder_spi(&self) -> u64 {
        u64::from_be_bytes(arr8(&self.b()[8..16]))
    }
    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.b()[16])
    }
    /// Version byte (major << 4 | minor).
    pub fn version(&self) -> u8 {
        self.b()[17]
    }
    /// Exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.b()[18])
    }
    /// Flags byte.
    pub fn flags(&self) -> u8 {
        self.b()[19]
    }
    /// Message ID.
    pub fn message_id(&self) -> u32 {
        u32::from_be_bytes(arr4(&self.b()[20..24]))
    }
    /// Total length of the message.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(arr4(&self.b()[24..28]))
    }
    /// Bytes after the header, up to `Length`.
    pub fn payload(&self) -> &[u8] {
        let len = (self.length() as usize).min(self.b().len());
        self.b().get(HEADER_LEN..len).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the initiator's SPI.
    pub fn set_initiator_spi(&mut self, v: u64) {
        self.m()[0..8].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the responder's SPI.
    pub fn set_responder_spi(&mut self, v: u64) {
        self.m()[8..16].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the first payload type.
    pub fn set_next_payload(&mut self, v: PayloadType) {
        self.m()[16] = v.0;
    }
    /// Sets the version byte.
    pub fn set_version(&mut self, v: u8) {
        self.m()[17] = v;
    }
    /// Sets the exchange type.
    pub fn set_exchange_type(&mut self, v: ExchangeType) {
        self.m()[18] = v.0;
    }
    /// Sets the flags.
    pub fn set_flags(&mut self, v: u8) {
        self.m()[19] = v;
    }
    /// Sets the message ID.
    pub fn set_message_id(&mut self, v: u32) {
        self.m()[20..24].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the length.
    pub fn set_length(&mut self, v: u32) {
        self.m()[24..28].copy_from_slice(&v.to_be_bytes());
    }
}

fn arr8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    a
}
fn arr4(s: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    a
}

/// The header fields of a message (everything but `Next Payload` and `Length`, which are derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// Initiator's SPI.
    pub initiator_spi: u64,
    /// Responder's SPI (zero in the first IKE_SA_INIT request).
    pub responder_spi: u64,
    /// Version byte, normally [`VERSION_2_0`].
    pub version: u8,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags (I, V, R).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
}

impl HeaderRepr {
    /// True when the R flag is set.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }
    /// True when the I flag is set.
    pub fn is_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }
    /// Writes the 28-byte header with the given next payload and total length.
    pub fn emit(&self, next: PayloadType, total_len: u32, out: &mut [u8]) {
        let mut h = Header::new_unchecked(out);
        h.set_initiator_spi(self.initiator_spi);
        h.set_responder_spi(self.responder_spi);
        h.set_next_payload(next);
        h.set_version(self.version);
        h.set_exchange_type(self.exchange_type);
        h.set_flags(self.flags);
        h.set_message_id(self.message_id);
        h.set_length(total_len);
    }
}

/// An IKE message: header plus the (outer) payload chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Header fields.
    pub header: HeaderRepr,
    /// Payloads in order. An SK/SKF payload, if present, is last.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses an IKE message (without the non-ESP marker). Never panics; rejects trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<Message, Error> {
        let h = Header::new_checked(bytes)?;
        //= https://www.rfc-editor.org/rfc/rfc7296#section-3.1
        //# Implementations MUST reject or ignore messages containing a version number greater than 2
        if h.version() >> 4 != 2 {
            return Err(Error::BadValue("major version"));
        }
        let header = HeaderRepr {
            initiator_spi: h.initiator_spi(),
            responder_spi: h.responder_spi(),
            version: h.version(),
            exchange_type: h.exchange_type(),
            flags: h.flags(),
            message_id: h.message_id(),
        };
        let payloads = parse_chain(h.next_payload(), h.payload())?;
        Ok(Message { header, payloads })
    }

    /// Number of bytes [`Message::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + chain_len(&self.payloads)
    }

    /// Emits into `out`, which must be exactly [`Message::buffer_len`] bytes.
    pub fn emit(&self, out: &mut [u8]) {
        let len = self.buffer_len();
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type);
        self.header.emit(first, len as u32, &mut out[..HEADER_LEN]);
        emit_chain(&self.payloads, &mut out[HEADER_LEN..len]);
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// First notify of the given type, if any.
    pub fn notify(&self, t: NotifyType) -> Option<&Notify> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == t => Some(n),
            _ => None,
        })
    }
}

/// Parses a payload chain starting with payload type `first`.
///
/// An SK or SKF payload ends the chain (its `Next Payload` names the first *inner* payload).
pub fn parse_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, Error> {
    let mut r = Reader::new(bytes);
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        if out.len() >= 256 {
            return Err(Error::BadValue("too many payloads"));
        }
        let np = PayloadType(r.u8()?);
        let flags = r.u8()?;
        let len = r.u16()? as usize;
        let body_len = len
            .checked_sub(GENERIC_HEADER_LEN)
            .ok_or(Error::BadLength)?;
        let body = r.take(body_len)?;
        let critical = flags & 0x80 != 0;
        let p = Payload::parse_body(next, np, critical, body)?;
        let is_sk = matches!(p, Payload::Sk(_) | Payload::Skf(_));
        out.push(p);
        if is_sk {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.14
            //# the Encrypted payload, if present in a message, MUST be the last payload in the message.
            next = PayloadType::NONE;
        } else {
            next = np;
        }
    }
    r.finish()?;
    Ok(out)
}

/// Total wire length of a payload chain.
pub fn chain_len(payloads: &[Payload]) -> usize {
    payloads
        .iter()
        .map(|p| GENERIC_HEADER_LEN + p.body_len())
        .sum()
}

/// Emits a payload chain into `out` (exactly [`chain_len`] bytes).
pub fn emit_chain(payloads: &[Payload], out: &mut [u8]) {
    let mut off = 0;
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Sk(sk) => sk.first_inner,
            Payload::Skf(f) => f.first_inner,
            _ => payloads
                .get(i + 1)
                .map_or(PayloadType::NONE, Payload::payload_type),
        };
        let len = GENERIC_HEADER_LEN + p.body_len();
        out[off] = next.0;
        out[off + 1] = if p.critical() { 0x80 } else { 0 };
        out[off + 2..off + 4].copy_from_slice(&(len as u16).to_be_bytes());
        p.emit_body(&mut out[off + GENERIC_HEADER_LEN..off + len]);
        off += len;
    }
}

/// Emits a chain into a new vector.
pub fn chain_to_vec(payloads: &[Payload]) -> Vec<u8> {
    let mut v = vec![0u8; chain_len(payloads)];
    emit_chain(payloads, &mut v);
    v
}

#[cfg(test)]
mod tests;
