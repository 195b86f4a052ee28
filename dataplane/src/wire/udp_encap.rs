//! RFC 3948 demultiplexing of UDP port 4500 payloads (IKE, ESP, NAT keepalive).

/// What a UDP payload received on the NAT-T port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// An IKE message: the 4-byte non-ESP marker has been stripped.
    Ike(&'a [u8]),
    /// An ESP packet (starts with a non-zero SPI); the whole payload is the ESP packet.
    Esp,
    /// A NAT-keepalive packet (a single 0xFF byte).
    Keepalive,
    /// Neither: too short for ESP, or a marker with nothing after it.
    Bad,
}

/// The non-ESP marker that prefixes IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The NAT-keepalive payload.
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// Classifies a UDP payload received on port 4500.
pub fn classify_udp4500(payload: &[u8]) -> Udp4500<'_> {
    //= https://www.rfc-editor.org/rfc/rfc3948#section-2.3
    //# The sender SHOULD use a one-octet long payload with the value 0xFF.
    //# The receiver SHOULD ignore a received NAT-keepalive packet.
    if payload == NAT_KEEPALIVE {
        return Udp4500::Keepalive;
    }
    //= https://www.rfc-editor.org/rfc/rfc3948#section-2.2
    //# The Non-ESP Marker is 4 bytes of zero aligning with the SPI field of an
    //# ESP packet.
    match payload {
        [0, 0, 0, 0, rest @ ..] if !rest.is_empty() => Udp4500::Ike(rest),
        [0, 0, 0, 0, ..] => Udp4500::Bad,
        //= https://www.rfc-editor.org/rfc/rfc3948#section-2.1
        //# the UDP header is followed by an ESP header: the SPI and the sequence number
        p if p.len() >= 8 => Udp4500::Esp,
        _ => Udp4500::Bad,
    }
}

/// Writes the non-ESP marker and an IKE message into `out`; returns the length written.
pub fn emit_ike(ike: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = ike.len() + NON_ESP_MARKER.len();
    let dst = out.get_mut(..len)?;
    dst[..4].copy_from_slice(&NON_ESP_MARKER);
    dst[4..].copy_from_slice(ike);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_prefixed_payload_is_ike() {
        let p = [0, 0, 0, 0, 0x11, 0x22];
        assert_eq!(classify_udp4500(&p), Udp4500::Ike(&[0x11, 0x22]));
    }

    #[test]
    fn single_ff_is_keepalive() {
        assert_eq!(classify_udp4500(&[0xff]), Udp4500::Keepalive);
    }

    #[test]
    fn nonzero_spi_is_esp() {
        assert_eq!(classify_udp4500(&[0, 0, 1, 0, 0, 0, 0, 1]), Udp4500::Esp);
    }

    #[test]
    fn short_or_empty_marker_is_bad() {
        assert_eq!(classify_udp4500(&[]), Udp4500::Bad);
        assert_eq!(classify_udp4500(&[1, 2, 3]), Udp4500::Bad);
        assert_eq!(classify_udp4500(&[0, 0, 0, 0]), Udp4500::Bad);
    }

    #[test]
    fn emit_ike_prefixes_marker() {
        let mut out = [9u8; 8];
        assert_eq!(emit_ike(&[1, 2], &mut out), Some(6));
        assert_eq!(&out[..6], &[0, 0, 0, 0, 1, 2]);
        assert_eq!(emit_ike(&[1; 8], &mut out), None);
    }
}
