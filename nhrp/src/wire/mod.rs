//! Wire formats, smoltcp style: a checked view over bytes plus a plain `Repr`.
//!
//! - [`gre`]: RFC 2784 GRE with the RFC 2890 key and sequence number.
//! - [`nhrp`]: RFC 2332 NHRP with the Cisco extensions DMVPN uses (NAT flag and
//!   NAT address extension, traffic indication, clear-text authentication).

pub mod gre;
pub mod nhrp;

/// Why bytes could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A length field disagrees with the buffer, or bytes are left over.
    BadLength,
    /// The checksum does not verify.
    BadChecksum,
    /// A field holds a value the protocol forbids.
    BadValue(&'static str),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated"),
            Self::BadLength => f.write_str("bad length"),
            Self::BadChecksum => f.write_str("bad checksum"),
            Self::BadValue(what) => write!(f, "bad value: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Bounds-checked big-endian reader over untrusted bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let all = self.buf;
        self.buf = &[];
        all
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// RFC 1071 Internet checksum (one's complement of the one's-complement sum).
//= https://www.rfc-editor.org/rfc/rfc1071#section-1
//# Adjacent octets to be checksummed are paired to form 16-bit integers, and
//# the 1's complement sum of these 16-bit integers is formed.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
