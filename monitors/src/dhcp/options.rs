//! Typed decoding of DHCP option 120 (SIP servers, RFC 3361) and option 125 (vendor-identifying
//! vendor-specific information, RFC 3925). `dhcproto` hands both over as raw bytes (already re-joined
//! when split per RFC 3396).

use std::net::Ipv4Addr;

/// Option codes decoded here.
pub const OPTION_SIP_SERVERS: u8 = 120;
pub const OPTION_VI_VENDOR_SPECIFIC: u8 = 125;

/// Wire-level error (the reason is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadLength,
    BadValue(&'static str),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated option"),
            Error::BadLength => f.write_str("bad option length"),
            Error::BadValue(w) => write!(f, "bad option value: {w}"),
        }
    }
}

impl std::error::Error for Error {}

/// Option 120 contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipServers {
    /// Encoding 0: fully qualified domain names, in order of preference.
    Domains(Vec<String>),
    /// Encoding 1: IPv4 addresses, in order of preference.
    Addrs(Vec<Ipv4Addr>),
}

impl SipServers {
    /// Decodes the option data (after code and length).
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        let (&enc, rest) = data.split_first().ok_or(Error::Truncated)?;
        match enc {
            //= https://www.rfc-editor.org/rfc/rfc3361#section-3.1
            //# The encoding byte (enc) is set to 0 and is followed by a list of domain names
            //# ... encoded as specified in Section 3.1 of RFC 1035 [3].
            //# ... the domain name list MAY be compressed per Section 4.1.4 of RFC 1035.
            0 => {
                if rest.is_empty() {
                    return Err(Error::BadLength);
                }
                let mut names = Vec::new();
                let mut pos = 0;
                while pos < rest.len() {
                    let (name, next) = read_name(rest, pos)?;
                    names.push(name);
                    pos = next;
                }
                Ok(SipServers::Domains(names))
            }
            //= https://www.rfc-editor.org/rfc/rfc3361#section-3.2
            //# The encoding byte (enc) is set to 1 and is followed by a list of IPv4
            //# addresses ... The minimum length for this encoding is 5.
            1 => {
                if rest.is_empty() || rest.len() % 4 != 0 {
                    return Err(Error::BadLength);
                }
                Ok(SipServers::Addrs(
                    rest.chunks_exact(4)
                        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                        .collect(),
                ))
            }
            _ => Err(Error::BadValue("option 120 encoding")),
        }
    }

    /// Encodes the option data (names without compression), for tests and a server side.
    pub fn emit(&self) -> Vec<u8> {
        match self {
            SipServers::Addrs(a) => {
                let mut v = vec![1];
                a.iter().for_each(|x| v.extend_from_slice(&x.octets()));
                v
            }
            SipServers::Domains(d) => {
                let mut v = vec![0];
                for name in d {
                    for label in name
                        .trim_end_matches('.')
                        .split('.')
                        .filter(|l| !l.is_empty())
                    {
                        let l = &label.as_bytes()[..label.len().min(63)];
                        v.push(l.len() as u8);
                        v.extend_from_slice(l);
                    }
                    v.push(0);
                }
                v
            }
        }
    }
}

/// Reads an RFC 1035 name at `pos` in `buf` (pointers are offsets into `buf`). Returns the dotted name
/// and the position after the name in the original sequence.
fn read_name(buf: &[u8], mut pos: usize) -> Result<(String, usize), Error> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *buf.get(pos).ok_or(Error::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                pos += 1;
                if len == 0 {
                    break;
                }
                let label = buf
                    .get(pos..pos + usize::from(len))
                    .ok_or(Error::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                if !label.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(Error::BadValue("label characters"));
                }
                name.extend(label.iter().map(|&b| char::from(b)));
                if name.len() > 253 {
                    return Err(Error::BadValue("name too long"));
                }
                pos += usize::from(len);
            }
            0xc0 => {
                //= https://www.rfc-editor.org/rfc/rfc1035#section-4.1.4
                //# the first two bits are ones. ... The OFFSET field specifies an offset from
                //# the start of the message
                // (for option 120: from the first byte after the encoding byte)
                let lo = *buf.get(pos + 1).ok_or(Error::Truncated)?;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                if jumps > 16 {
                    return Err(Error::BadValue("compression loop"));
                }
                pos = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
            }
            _ => return Err(Error::BadValue("label type")),
        }
    }
    if name.is_empty() {
        return Err(Error::BadValue("empty name"));
    }
    Ok((name, end.unwrap_or(pos)))
}

/// One enterprise block of option 125.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorInfo {
    /// IANA enterprise number (9 = Cisco).
    pub enterprise: u32,
    /// (code, data) in wire order (servers do not keep configuration order: dnsmasq reverses it).
    pub suboptions: Vec<(u8, Vec<u8>)>,
}

impl VendorInfo {
    /// Decodes the whole option 125 data: one or more enterprise blocks.
    pub fn parse_all(data: &[u8]) -> Result<Vec<VendorInfo>, Error> {
        //= https://www.rfc-editor.org/rfc/rfc3925#section-4
        //# enterprise-number1 (4 octets) | data-len1 (1 octet) | option-data1 ...
        //# option-data: code (1) | len (1) | data
        let mut out = Vec::new();
        let mut rest = data;
        if rest.is_empty() {
            return Err(Error::Truncated);
        }
        while !rest.is_empty() {
            let hdr = rest.get(..5).ok_or(Error::Truncated)?;
            let enterprise = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let dlen = usize::from(hdr[4]);
            let mut sub = rest.get(5..5 + dlen).ok_or(Error::Truncated)?;
            rest = rest.get(5 + dlen..).unwrap_or(&[]);
            let mut suboptions = Vec::new();
            while !sub.is_empty() {
                let [code, len, ..] = *sub else {
                    return Err(Error::Truncated);
                };
                let body = sub.get(2..2 + usize::from(len)).ok_or(Error::BadLength)?;
                suboptions.push((code, body.to_vec()));
                sub = sub.get(2 + usize::from(len)..).unwrap_or(&[]);
            }
            out.push(VendorInfo {
                enterprise,
                suboptions,
            });
        }
        Ok(out)
    }

    /// First sub-option with this code.
    pub fn suboption(&self, code: u8) -> Option<&[u8]> {
        self.suboptions
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    /// Encodes one enterprise block (for tests and a server side); sub-options over 255 bytes are cut.
    pub fn emit(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (c, d) in &self.suboptions {
            let d = &d[..d.len().min(255)];
            body.push(*c);
            body.push(d.len() as u8);
            body.extend_from_slice(d);
        }
        body.truncate(255);
        let mut v = self.enterprise.to_be_bytes().to_vec();
        v.push(body.len() as u8);
        v.extend_from_slice(&body);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Bytes captured from dnsmasq 2.90 (testbed/dhcp/README.md), option data after code and length.
    const OPT120_ENC1: &str = "01 c633640a c633640b";
    const OPT120_ENC0: &str = "00 03736970 086c6966656c696e65 0474657374 00 0473697032 c004";
    const OPT125: &str =
        "00000009 1e 0204c633640a 01167369703a3139382e35312e3130302e31303a35303630";

    #[test]
    fn option120_encoding1_gives_addresses() {
        assert_eq!(
            SipServers::parse(&hex(OPT120_ENC1)).unwrap(),
            SipServers::Addrs(vec![
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(198, 51, 100, 11)
            ])
        );
    }

    #[test]
    fn option120_encoding0_follows_compression_pointers() {
        assert_eq!(
            SipServers::parse(&hex(OPT120_ENC0)).unwrap(),
            SipServers::Domains(vec![
                "sip.lifeline.test".into(),
                "sip2.lifeline.test".into()
            ])
        );
    }

    #[test]
    fn option120_round_trips_through_emit() {
        for s in [
            SipServers::Domains(vec!["example.com".into(), "sip.example.net".into()]),
            SipServers::Addrs(vec![Ipv4Addr::new(192, 0, 2, 1)]),
        ] {
            assert_eq!(SipServers::parse(&s.emit()).unwrap(), s);
        }
    }

    #[test]
    fn option120_rejects_bad_input() {
        assert_eq!(SipServers::parse(&[]), Err(Error::Truncated));
        assert_eq!(SipServers::parse(&[1]), Err(Error::BadLength));
        assert_eq!(SipServers::parse(&[1, 1, 2, 3]), Err(Error::BadLength));
        assert_eq!(
            SipServers::parse(&[2, 1, 2, 3, 4]),
            Err(Error::BadValue("option 120 encoding"))
        );
        assert_eq!(SipServers::parse(&[0, 3, b'a']), Err(Error::Truncated));
        // A pointer to itself loops.
        assert_eq!(
            SipServers::parse(&[0, 0xc0, 0x00]),
            Err(Error::BadValue("compression loop"))
        );
        assert_eq!(
            SipServers::parse(&[0, 0x80, 0x00]),
            Err(Error::BadValue("label type"))
        );
        assert_eq!(
            SipServers::parse(&[0, 0]),
            Err(Error::BadValue("empty name"))
        );
    }

    #[test]
    fn option125_decodes_enterprise_and_suboptions_in_wire_order() {
        let v = VendorInfo::parse_all(&hex(OPT125)).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].enterprise, 9);
        assert_eq!(
            v[0].suboptions.iter().map(|s| s.0).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(v[0].suboption(1), Some(&b"sip:198.51.100.10:5060"[..]));
        assert_eq!(v[0].suboption(2), Some(&[198, 51, 100, 10][..]));
    }

    #[test]
    fn option125_handles_several_enterprises_and_round_trips() {
        let a = VendorInfo {
            enterprise: 9,
            suboptions: vec![(1, b"x".to_vec())],
        };
        let b = VendorInfo {
            enterprise: 3561,
            suboptions: vec![],
        };
        let mut bytes = a.emit();
        bytes.extend(b.emit());
        assert_eq!(VendorInfo::parse_all(&bytes).unwrap(), vec![a, b]);
    }

    #[test]
    fn option125_rejects_truncation() {
        let full = hex(OPT125);
        for cut in 0..full.len() {
            assert!(VendorInfo::parse_all(&full[..cut]).is_err(), "cut at {cut}");
        }
        // data-len claims more sub-option bytes than the block holds
        assert_eq!(
            VendorInfo::parse_all(&[0, 0, 0, 9, 3, 1, 5, 0]),
            Err(Error::BadLength)
        );
    }

    #[test]
    fn decoders_never_panic_on_short_garbage() {
        for len in 0..12 {
            for fill in [0u8, 1, 0xc0, 0xff, 0x3f] {
                let v = vec![fill; len];
                let _ = SipServers::parse(&v);
                let _ = VendorInfo::parse_all(&v);
            }
        }
    }
}
