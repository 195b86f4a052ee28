use super::*;
use crate::wire::gre;
use proptest::prelude::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A Registration Request as a spoke sends it (seed-dmvpn §4.8.1).
pub(crate) fn registration_request() -> Repr {
    let mut r = Repr::ipv4(
        OpType::REGISTRATION_REQUEST,
        Header::Common {
            flags: flags::U_REGISTRATION | flags::NAT,
            request_id: 42,
        },
        ip("192.168.1.1"),
        ip("10.0.0.2"),
        ip("10.0.0.1"),
    );
    r.hop_count = 1;
    r.cies.push(Cie {
        prefix_len: 0xFF,
        mtu: 1400,
        holding_time: 300,
        ..Cie::default()
    });
    r.extensions = vec![
        Extension {
            compulsory: true,
            body: ExtensionBody::ResponderAddress(vec![]),
        },
        Extension {
            compulsory: true,
            body: ExtensionBody::ForwardTransit(vec![]),
        },
        Extension {
            compulsory: true,
            body: ExtensionBody::ReverseTransit(vec![]),
        },
        Extension {
            compulsory: true,
            body: ExtensionBody::Authentication {
                auth_type: 1,
                data: b"donttell".to_vec(),
            },
        },
        Extension {
            compulsory: false,
            body: ExtensionBody::NatAddress(vec![Cie {
                prefix_len: 32,
                nbma: ip("192.168.1.3").into(),
                proto: ip("10.0.0.1").into(),
                ..Cie::default()
            }]),
        },
    ];
    r
}

#[test]
fn registration_request_layout_matches_rfc2332() {
    let bytes = registration_request().emit().unwrap();
    // Fixed header.
    assert_eq!(&bytes[0..9], &[0, 1, 8, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[9], 1, "hop count");
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[10], bytes[11]])),
        bytes.len()
    );
    assert_eq!(
        u16::from_be_bytes([bytes[14], bytes[15]]),
        20 + 8 + 12 + 12,
        "extoff"
    );
    assert_eq!(&bytes[16..20], &[1, 3, 4, 0], "version, type, shtl, sstl");
    // Mandatory part: lengths, flags U|NAT, request id, addresses.
    assert_eq!(&bytes[20..28], &[4, 4, 0x80, 0x02, 0, 0, 0, 42]);
    assert_eq!(&bytes[28..40], &[192, 168, 1, 1, 10, 0, 0, 2, 10, 0, 0, 1]);
    // CIE: code 0, prefix 0xFF, MTU 1400, holding time 300, no addresses.
    assert_eq!(
        &bytes[40..52],
        &[0, 0xFF, 0, 0, 0x05, 0x78, 0x01, 0x2C, 0, 0, 0, 0]
    );
    // First extension: Responder Address, compulsory, empty.
    assert_eq!(&bytes[52..56], &[0x80, 0x03, 0, 0]);
    // Ends with End of Extensions.
    assert_eq!(&bytes[bytes.len() - 4..], &[0x80, 0, 0, 0]);
    assert_eq!(checksum(&bytes), 0);
}

#[test]
fn registration_request_round_trips() {
    let r = registration_request();
    let bytes = r.emit().unwrap();
    assert_eq!(bytes.len(), r.buffer_len());
    let parsed = Packet::parse(&bytes).unwrap();
    assert_eq!(parsed, r);
    assert_eq!(parsed.auth_secret(), Some(&b"donttell"[..]));
    assert_eq!(parsed.nat_cies()[0].nbma.to_ipv4(), Some(ip("192.168.1.3")));
}

#[test]
fn traffic_indication_carries_the_packet() {
    let mut r = Repr::ipv4(
        OpType::TRAFFIC_INDICATION,
        Header::Traffic {
            code: 0,
            reserved: 0,
        },
        ip("192.168.1.3"),
        ip("10.0.0.1"),
        ip("192.168.11.1"),
    );
    r.payload = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 168, 11, 1, 192, 168, 12, 1,
    ];
    let bytes = r.emit().unwrap();
    // Two lengths, then six bytes of traffic code and unused.
    assert_eq!(&bytes[20..28], &[4, 4, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Packet::parse(&bytes).unwrap(), r);
}

#[test]
fn error_indication_layout() {
    let mut r = Repr::ipv4(
        OpType::ERROR_INDICATION,
        Header::Error {
            code: ErrorCode::AUTHENTICATION_FAILURE,
            offset: 0,
        },
        ip("192.168.1.3"),
        ip("10.0.0.1"),
        ip("10.0.0.2"),
    );
    r.payload = registration_request().emit().unwrap();
    let bytes = r.emit().unwrap();
    assert_eq!(&bytes[20..28], &[4, 4, 0, 0, 0, 11, 0, 0]);
    let back = Packet::parse(&bytes).unwrap();
    assert_eq!(back, r);
    // The errored packet is itself parseable.
    assert_eq!(
        Packet::parse(&back.payload).unwrap(),
        registration_request()
    );
}

#[test]
fn rejects_bad_checksum() {
    let mut bytes = registration_request().emit().unwrap();
    bytes[30] ^= 0x40;
    assert_eq!(Packet::parse(&bytes), Err(WireError::BadChecksum));
}

#[test]
fn rejects_size_mismatch_and_truncation() {
    let bytes = registration_request().emit().unwrap();
    assert_eq!(Packet::parse(&bytes[..19]), Err(WireError::Truncated));
    assert_eq!(
        Packet::parse(&bytes[..bytes.len() - 1]),
        Err(WireError::BadLength)
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Packet::parse(&longer), Err(WireError::BadLength));
}

/// Rewrites a field and fixes the checksum so that deeper checks run.
fn patched(mut bytes: Vec<u8>, at: usize, val: &[u8]) -> Vec<u8> {
    bytes[at..at + val.len()].copy_from_slice(val);
    bytes[12] = 0;
    bytes[13] = 0;
    let c = checksum(&bytes);
    bytes[12..14].copy_from_slice(&c.to_be_bytes());
    bytes
}

#[test]
fn rejects_wrong_version_and_e164() {
    let bytes = registration_request().emit().unwrap();
    assert!(matches!(
        Packet::parse(&patched(bytes.clone(), 16, &[2])),
        Err(WireError::BadValue(_))
    ));
    assert!(matches!(
        Packet::parse(&patched(bytes, 18, &[0x44])),
        Err(WireError::BadValue(_))
    ));
}

#[test]
fn rejects_extension_offset_outside_packet() {
    let bytes = registration_request().emit().unwrap();
    let len = bytes.len() as u16 + 1;
    assert_eq!(
        Packet::parse(&patched(bytes, 14, &len.to_be_bytes())),
        Err(WireError::BadLength)
    );
}

#[test]
fn rejects_bytes_after_end_extension() {
    let mut r = Repr::ipv4(
        OpType::PURGE_REPLY,
        Header::Common {
            flags: 0,
            request_id: 1,
        },
        ip("1.1.1.1"),
        ip("2.2.2.2"),
        ip("3.3.3.3"),
    );
    r.extensions.push(Extension {
        compulsory: false,
        body: ExtensionBody::VendorPrivate {
            oui: [0, 0, 0x0c],
            data: vec![1, 2, 3],
        },
    });
    let mut bytes = r.emit().unwrap();
    // Move the End marker before the vendor extension's last bytes.
    let n = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    let size = (n + 4) as u16;
    let bytes = patched(bytes, 10, &size.to_be_bytes());
    assert_eq!(Packet::parse(&bytes), Err(WireError::BadLength));
}

#[test]
fn unknown_types_and_extensions_survive() {
    let mut r = Repr::ipv4(
        OpType(42),
        Header::Common {
            flags: 0x1234,
            request_id: 7,
        },
        ip("1.1.1.1"),
        ip("2.2.2.2"),
        ip("3.3.3.3"),
    );
    r.payload = vec![9, 9, 9];
    r.extensions.push(Extension {
        compulsory: true,
        body: ExtensionBody::Unknown {
            ty: ExtensionType(0x1ABC),
            data: vec![5; 5],
        },
    });
    assert_eq!(Packet::parse(&r.emit().unwrap()).unwrap(), r);
}

fn arb_addr() -> impl Strategy<Value = Addr> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_ADDR_LEN).prop_map(|v| Addr::new(&v).unwrap())
}

fn arb_nbma() -> impl Strategy<Value = Addr> {
    proptest::collection::vec(any::<u8>(), 0..=MAX_ADDR_LEN).prop_map(|v| Addr::new(&v).unwrap())
}

fn arb_cie() -> impl Strategy<Value = Cie> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        arb_nbma(),
        arb_nbma(),
        arb_addr(),
    )
        .prop_map(
            |(code, prefix_len, mtu, holding_time, preference, nbma, nbma_sub, proto)| Cie {
                code: Code(code),
                prefix_len,
                mtu,
                holding_time,
                preference,
                nbma,
                nbma_sub,
                proto,
            },
        )
}

fn arb_ext() -> impl Strategy<Value = Extension> {
    let cies = || proptest::collection::vec(arb_cie(), 0..3);
    let data = || proptest::collection::vec(any::<u8>(), 0..12);
    let body = prop_oneof![
        cies().prop_map(ExtensionBody::ResponderAddress),
        cies().prop_map(ExtensionBody::ForwardTransit),
        cies().prop_map(ExtensionBody::ReverseTransit),
        cies().prop_map(ExtensionBody::NatAddress),
        (any::<u32>(), data())
            .prop_map(|(auth_type, data)| ExtensionBody::Authentication { auth_type, data }),
        (any::<[u8; 3]>(), data())
            .prop_map(|(oui, data)| ExtensionBody::VendorPrivate { oui, data }),
        ((10u16..0x3FFF), data()).prop_map(|(ty, data)| ExtensionBody::Unknown {
            ty: ExtensionType(ty),
            data
        }),
    ];
    (any::<bool>(), body).prop_map(|(compulsory, body)| Extension { compulsory, body })
}

fn arb_repr() -> impl Strategy<Value = Repr> {
    (
        1u8..=10,
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
        any::<u8>(),
        (arb_nbma(), arb_nbma(), arb_addr(), arb_addr()),
        proptest::collection::vec(arb_cie(), 0..4),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(arb_ext(), 0..5),
        (any::<u16>(), any::<u16>(), any::<[u8; 5]>()),
    )
        .prop_map(
            |(op, a, b, c, hop, (sn, ss, sp, dp), cies, payload, extensions, (afn, pro, snap))| {
                let op = OpType(op);
                let header = match op {
                    OpType::ERROR_INDICATION => Header::Error {
                        code: ErrorCode(a),
                        offset: c,
                    },
                    OpType::TRAFFIC_INDICATION => Header::Traffic {
                        code: a,
                        reserved: b,
                    },
                    _ => Header::Common {
                        flags: a,
                        request_id: b,
                    },
                };
                let (cies, payload) = if op.has_cies() {
                    (cies, Vec::new())
                } else {
                    (Vec::new(), payload)
                };
                Repr {
                    afn: Afn(afn),
                    protocol_type: pro,
                    snap,
                    hop_count: hop,
                    op,
                    header,
                    src_nbma: sn,
                    src_nbma_sub: ss,
                    src_proto: sp,
                    dst_proto: dp,
                    cies,
                    payload,
                    extensions,
                }
            },
        )
}

proptest! {
    #[test]
    fn round_trip(r in arb_repr()) {
        let bytes = r.emit().unwrap();
        prop_assert_eq!(bytes.len(), r.buffer_len());
        prop_assert_eq!(Packet::parse(&bytes).unwrap(), r);
    }

    #[test]
    fn parse_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = Packet::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_packets(r in arb_repr(), at in any::<prop::sample::Index>(), val in any::<u8>()) {
        let bytes = r.emit().unwrap();
        let i = at.index(bytes.len());
        let mut b = bytes.clone();
        b[i] = val;
        if i != 12 && i != 13 {
            b[12] = 0;
            b[13] = 0;
            let c = checksum(&b);
            b[12..14].copy_from_slice(&c.to_be_bytes());
        }
        let _ = Packet::parse(&b);
    }
}

/// Writes a pcap (LINKTYPE_RAW) with IPv4/GRE(key)/NHRP and asks tshark.
#[test]
fn tshark_decodes_registration_request() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("tshark not installed: skipping");
        return;
    }
    let nhrp = registration_request().emit().unwrap();
    let gre = gre::Repr {
        protocol: gre::ProtocolType::NHRP,
        key: Some(100_000),
        seq: None,
        checksum: false,
    }
    .encapsulate(&nhrp);
    let total = 20 + gre.len();
    let mut ipv4 = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        255,
        47,
        0,
        0,
    ];
    ipv4.extend_from_slice(&[192, 168, 1, 1, 192, 168, 1, 3]);
    let c = checksum(&ipv4);
    ipv4[10..12].copy_from_slice(&c.to_be_bytes());
    ipv4.extend_from_slice(&gre);
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&(ipv4.len() as u32).to_le_bytes());
    pcap.extend_from_slice(&(ipv4.len() as u32).to_le_bytes());
    pcap.extend_from_slice(&ipv4);
    let path = std::env::temp_dir().join(format!("lifeline-nhrp-{}.pcap", std::process::id()));
    std::fs::write(&path, &pcap).unwrap();
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .arg("-V")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("Next Hop Resolution Protocol (NHRP Registration Request)"),
        "{text}"
    );
    assert!(text.contains("Key: 0x000186a0"), "GRE key");
    assert!(text.contains("Source NBMA Address: 192.168.1.1"));
    assert!(text.contains("Source Protocol Address: 10.0.0.2"));
    assert!(text.contains("Destination Protocol Address: 10.0.0.1"));
    assert!(text.contains("Holding Time (s): 300"));
    assert!(text.contains("Cisco NAT Supported"));
    assert!(text.contains("NAT Address Extension"));
    assert!(!text.to_lowercase().contains("malformed"), "{text}");
    assert!(!text.contains("[incorrect"), "checksum: {text}");
}
