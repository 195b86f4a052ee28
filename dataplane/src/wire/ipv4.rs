//! The parts of IPv4 (RFC 791) the tunnel needs: DF/ECN/fragment fields, header checksum, and TCP
//! MSS clamping. Only what the data plane touches; this is not a general IPv4 stack.

use super::{IpProtocol, WireError};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps bytes, checking version, header length and total length against the buffer.
    /// Bytes after `total_len` (link padding, TFC padding) are allowed.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 4 {
            return Err(WireError::BadValue("ip version"));
        }
        let hl = p.header_len();
        if hl < MIN_HEADER_LEN || b.len() < hl {
            return Err(WireError::BadLength);
        }
        let tl = usize::from(p.total_len());
        if tl < hl || tl > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, at: usize) -> u16 {
        match self.b().get(at..at + 2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    fn byte(&self, at: usize) -> u8 {
        self.b().get(at).copied().unwrap_or(0)
    }

    pub fn version(&self) -> u8 {
        self.byte(0) >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.byte(0) & 0x0f) * 4
    }

    /// The whole type-of-service byte (DSCP + ECN).
    pub fn tos(&self) -> u8 {
        self.byte(1)
    }

    /// The ECN codepoint (low two bits of the TOS byte).
    pub fn ecn(&self) -> u8 {
        self.byte(1) & 0x03
    }

    pub fn total_len(&self) -> u16 {
        self.u16_at(2)
    }

    pub fn ident(&self) -> u16 {
        self.u16_at(4)
    }

    pub fn dont_frag(&self) -> bool {
        self.u16_at(6) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.u16_at(6) & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        self.u16_at(6) & OFFSET_MASK
    }

    pub fn ttl(&self) -> u8 {
        self.byte(8)
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.byte(9))
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        match b.get(12..16) {
            Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        match b.get(16..20) {
            Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        match self.b().get(..hl) {
            Some(h) => checksum(h) == 0,
            None => false,
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, at: usize, v: u16) {
        if let Some(d) = self.buffer.as_mut().get_mut(at..at + 2) {
            d.copy_from_slice(&v.to_be_bytes());
        }
    }

    fn set_byte(&mut self, at: usize, v: u8) {
        if let Some(d) = self.buffer.as_mut().get_mut(at) {
            *d = v;
        }
    }

    pub fn set_tos(&mut self, tos: u8) {
        self.set_byte(1, tos);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = (self.tos() & !0x03) | (ecn & 0x03);
        self.set_tos(tos);
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.set_u16(2, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        self.set_u16(4, id);
    }

    /// Sets DF, MF and the fragment offset (8-byte units).
    pub fn set_frag(&mut self, df: bool, mf: bool, offset: u16) {
        let mut v = offset & OFFSET_MASK;
        if df {
            v |= FLAG_DF;
        }
        if mf {
            v |= FLAG_MF;
        }
        self.set_u16(6, v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.set_byte(8, ttl);
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.set_byte(9, p.0);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(12..16) {
            d.copy_from_slice(&a.octets());
        }
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(16..20) {
            d.copy_from_slice(&a.octets());
        }
    }

    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_u16(10, 0);
        let hl = self.header_len();
        let sum = self.buffer.as_ref().get(..hl).map(checksum).unwrap_or(0);
        self.set_u16(10, sum);
    }
}

/// The Internet checksum (RFC 1071) of `data`, complemented, ready to store.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data, 0))
}

/// One's-complement sum of 16-bit big-endian words (odd trailing byte padded with zero).
pub fn sum_words(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let &[a, b] = c {
            acc = acc.wrapping_add(u32::from(u16::from_be_bytes([a, b])));
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// Folds carries into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Incrementally updates a checksum field `old_sum` when a 16-bit word changes from `old` to `new`.
//= https://www.rfc-editor.org/rfc/rfc1624#section-3
//# HC' = ~(~HC + ~m + m')
pub fn update_checksum(old_sum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!old_sum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// If `packet` is an unfragmented IPv4 TCP SYN whose MSS option exceeds `max_mss`, lowers the option to
/// `max_mss` and fixes the TCP checksum incrementally (`ip tcp adjust-mss`). Returns whether the packet
/// was changed. Malformed packets are left untouched.
pub fn clamp_tcp_mss(packet: &mut [u8], max_mss: u16) -> bool {
    let Ok(ip) = Packet::new_checked(&*packet) else {
        return false;
    };
    if ip.protocol() != IpProtocol::TCP || ip.frag_offset() != 0 {
        return false;
    }
    let hl = ip.header_len();
    let tl = usize::from(ip.total_len());
    let Some(tcp) = packet.get_mut(hl..tl) else {
        return false;
    };
    if tcp.len() < 20 {
        return false;
    }
    const SYN: u8 = 0x02;
    if tcp[13] & SYN == 0 {
        return false;
    }
    let data_off = usize::from(tcp[12] >> 4) * 4;
    if data_off < 20 || data_off > tcp.len() {
        return false;
    }
    let mut i = 20;
    while i < data_off {
        let kind = tcp[i];
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&len) = tcp.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > data_off {
                    break;
                }
                if kind == 2 && len == 4 {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= max_mss {
                        return false;
                    }
                    tcp[i + 2..i + 4].copy_from_slice(&max_mss.to_be_bytes());
                    // The option sits at an even or odd offset; the checksum covers 16-bit words
                    // aligned to the TCP header start, so update per aligned word.
                    let csum = u16::from_be_bytes([tcp[16], tcp[17]]);
                    let new_csum = if i % 2 == 0 {
                        update_checksum(csum, old, max_mss)
                    } else {
                        let [oh, ol] = old.to_be_bytes();
                        let [nh, nl] = max_mss.to_be_bytes();
                        let w1o = u16::from_be_bytes([tcp[i + 1], oh]);
                        let w1n = u16::from_be_bytes([tcp[i + 1], nh]);
                        let next = tcp.get(i + 4).copied().unwrap_or(0);
                        let w2o = u16::from_be_bytes([ol, next]);
                        let w2n = u16::from_be_bytes([nl, next]);
                        update_checksum(update_checksum(csum, w1o, w1n), w2o, w2n)
                    };
                    tcp[16..18].copy_from_slice(&new_csum.to_be_bytes());
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TCP SYN 10.0.0.1:40000 -> 10.0.0.2:80 with MSS 1460, checksums valid.
    pub(crate) fn syn_packet(mss: u16) -> Vec<u8> {
        let mut p = vec![0u8; 44];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&44u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let mut ip = Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&1u32.to_be_bytes());
        t[12] = 6 << 4;
        t[13] = 0x02;
        t[14..16].copy_from_slice(&65535u16.to_be_bytes());
        t[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
        let cs = tcp_checksum(&p);
        p[36..38].copy_from_slice(&cs.to_be_bytes());
        p
    }

    pub(crate) fn tcp_checksum(p: &[u8]) -> u16 {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
        let mut seg = p[20..].to_vec();
        seg[16] = 0;
        seg[17] = 0;
        !fold(sum_words(&seg, sum_words(&pseudo, 0)))
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3 example words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn fill_checksum_verifies() {
        let p = syn_packet(1460);
        let ip = Packet::new_checked(&p[..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(ip.dont_frag());
        assert_eq!(ip.protocol(), IpProtocol::TCP);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn mss_clamp_lowers_mss_and_keeps_checksum_valid() {
        let mut p = syn_packet(1460);
        assert!(clamp_tcp_mss(&mut p, 1360));
        assert_eq!(&p[40..44], &[2, 4, 0x05, 0x50]);
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
    }

    #[test]
    fn mss_clamp_leaves_smaller_mss_alone() {
        let mut p = syn_packet(1200);
        let before = p.clone();
        assert!(!clamp_tcp_mss(&mut p, 1360));
        assert_eq!(p, before);
    }

    #[test]
    fn mss_clamp_at_odd_offset_keeps_checksum_valid() {
        let mut p = syn_packet(1460);
        // Rewrite options as NOP, MSS, NOP, NOP, NOP (MSS at odd offset 21), data offset 8 words.
        p[2..4].copy_from_slice(&52u16.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        let t = &mut p[20..];
        t[12] = 8 << 4;
        t[20..32].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 1, 1, 1, 1, 0]);
        Packet::new_unchecked(&mut p[..]).fill_checksum();
        let cs = tcp_checksum(&p);
        p[36..38].copy_from_slice(&cs.to_be_bytes());
        assert!(clamp_tcp_mss(&mut p, 1360));
        assert_eq!(&p[41..45], &[2, 4, 0x05, 0x50]);
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
    }

    #[test]
    fn malformed_lengths_are_rejected() {
        let mut p = syn_packet(1460);
        p[2..4].copy_from_slice(&400u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&p[..]).unwrap_err(),
            WireError::BadLength
        );
        assert!(!clamp_tcp_mss(&mut p, 1000));
        p[0] = 0x65;
        assert!(Packet::new_checked(&p[..]).is_err());
    }
}
