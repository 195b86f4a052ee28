//! ESP header (RFC 4303 §2).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Sequence Number                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Payload Data* (variable)                   |
//! ~   (IV, ciphertext, padding, pad length, next header)          ~
//! |                 Integrity Check Value-ICV   (variable)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::WireError;

/// Length of the SPI + sequence number header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ESP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps bytes, checking that the fixed header is present and the SPI is not reserved.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        //= https://www.rfc-editor.org/rfc/rfc4303#section-2.1
        //# The SPI value of zero (0) is reserved for local, implementation-
        //# specific use and MUST NOT be sent on the wire.
        if packet.spi() == 0 {
            return Err(WireError::BadValue("spi 0"));
        }
        Ok(packet)
    }

    /// Checks that the fixed header fits.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 0)
    }

    /// Low 32 bits of the sequence number (the only bits on the wire).
    pub fn sequence_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }

    /// Everything after the fixed header (IV, ciphertext, ICV).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        write_u32(self.buffer.as_mut(), 0, spi);
    }

    /// Sets the low 32 bits of the sequence number.
    pub fn set_sequence_number(&mut self, seq: u32) {
        write_u32(self.buffer.as_mut(), 4, seq);
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn write_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = b.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

/// The cleartext part of an ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub spi: u32,
    pub sequence_number: u32,
}

impl Repr {
    /// Reads the header fields of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        Ok(Self {
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// Header length on the wire.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header fields.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
    }
}

/// Reads the SPI of an ESP packet, if there is one (the first step of inbound SA lookup).
pub fn peek_spi(bytes: &[u8]) -> Option<u32> {
    Packet::new_checked(bytes).ok().map(|p| p.spi())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 12] = [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 7, 0xaa, 0xbb, 0xcc, 0xdd];

    #[test]
    fn parse_reads_spi_and_sequence() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                spi: 0x1234_5678,
                sequence_number: 7
            }
        );
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn emit_round_trips() {
        let r = Repr {
            spi: 0xA97E_DEE7,
            sequence_number: u32::MAX,
        };
        let mut buf = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(),
            r
        );
        assert_eq!(r.buffer_len(), 8);
    }

    #[test]
    fn truncated_header_is_rejected() {
        assert_eq!(
            Packet::new_checked(&BYTES[..7]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn spi_zero_is_rejected() {
        let b = [0u8, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadValue("spi 0")
        );
        assert_eq!(peek_spi(&b), None);
    }
}
