use super::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::Tv(AttributeType(t), v)),
        (0u16..0x8000, bytes(8)).prop_map(|(t, v)| Attribute::Tlv(AttributeType(t), v)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (any::<u8>(), any::<u16>(), vec(attribute(), 0..3)).prop_map(|(t, id, attributes)| Transform {
        transform_type: TransformType(t),
        id,
        attributes,
    })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), any::<u8>(), bytes(9), vec(transform(), 0..6)).prop_map(
        |(number, p, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(p),
            spi,
            transforms,
        },
    )
}

fn ts() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(ip_protocol, a, b, s, e)| {
                TrafficSelector::Ipv4 {
                    ip_protocol,
                    start_port: a,
                    end_port: b,
                    start: Ipv4Addr::from(s),
                    end: Ipv4Addr::from(e),
                }
            }),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u128>(),
            any::<u128>()
        )
            .prop_map(|(ip_protocol, a, b, s, e)| {
                TrafficSelector::Ipv6 {
                    ip_protocol,
                    start_port: a,
                    end_port: b,
                    start: Ipv6Addr::from(s),
                    end: Ipv6Addr::from(e),
                }
            }),
        (9u8..255, any::<u8>(), bytes(12)).prop_map(|(t, ip_protocol, body)| {
            TrafficSelector::Other {
                ts_type: TsType(t),
                ip_protocol,
                body,
            }
        }),
    ]
}

fn known_type(t: u8) -> bool {
    matches!(t, 33..=46 | 53)
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vec(proposal(), 1..4).prop_map(Payload::Sa),
        (any::<u16>(), bytes(64)).prop_map(|(g, data)| Payload::Ke(KeyExchange {
            group: DhId(g),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| Payload::IdI(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| Payload::IdR(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| Payload::Cert(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| Payload::CertReq(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| Payload::Auth(Authentication {
            method: AuthMethod(m),
            data
        })),
        bytes(64).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(24)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                notify_type: NotifyType(t),
                data,
            })
        }),
        (any::<u8>(), 1u8..9, 0usize..5).prop_map(|(p, size, n)| Payload::Delete(Delete {
            protocol: ProtocolId(p),
            spi_size: size,
            spis: (0..n).map(|i| vec![i as u8; size as usize]).collect(),
        })),
        bytes(32).prop_map(Payload::VendorId),
        vec(ts(), 0..4).prop_map(Payload::TsI),
        vec(ts(), 0..4).prop_map(Payload::TsR),
        (
            any::<u8>().prop_filter("unknown", |t| !known_type(*t) && *t != 0),
            any::<bool>(),
            bytes(32)
        )
            .prop_map(|(t, critical, body)| Payload::Unknown {
                payload_type: PayloadType(t),
                critical,
                body
            }),
    ]
}

fn header() -> impl Strategy<Value = HeaderRepr> {
    (
        any::<u64>(),
        any::<u64>(),
        0x20u8..0x30,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(i, r, version, x, flags, message_id)| HeaderRepr {
            initiator_spi: i,
            responder_spi: r,
            version,
            exchange_type: ExchangeType(x),
            flags,
            message_id,
        })
}

fn encrypted() -> impl Strategy<Value = Option<Payload>> {
    prop_oneof![
        Just(None),
        (any::<u8>(), bytes(80)).prop_map(|(f, data)| Some(Payload::Sk(Encrypted {
            first_inner: PayloadType(f),
            data
        }))),
        (any::<u8>(), 1u16..10, 0u16..10, bytes(80)).prop_map(|(f, n, extra, data)| Some(
            Payload::Skf(EncryptedFragment {
                first_inner: PayloadType(f),
                number: n,
                total: n + extra,
                data
            })
        )),
    ]
}

proptest! {
    #[test]
    fn every_payload_round_trips(h in header(), ps in vec(payload(), 0..8), sk in encrypted()) {
        let mut payloads = ps;
        payloads.extend(sk);
        let m = Message { header: h, payloads };
        let bytes = m.to_vec();
        prop_assert_eq!(bytes.len(), m.buffer_len());
        let back = Message::parse(&bytes).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn parse_never_panics_on_garbage(b in bytes(200)) {
        let _ = Message::parse(&b);
    }

    #[test]
    fn parse_never_panics_on_mutated_message(h in header(), ps in vec(payload(), 1..5), idx in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut b = Message { header: h, payloads: ps }.to_vec();
        let i = idx % b.len();
        b[i] = val;
        let _ = Message::parse(&b);
        let c = cut % b.len();
        let _ = Message::parse(&b[..c]);
    }
}

/// A hand-assembled IKE_SA_INIT request (SA with one IKE proposal, KE group 19 stub, Ni, one notify).
#[test]
fn parses_hand_built_ike_sa_init() {
    let mut b = vec![
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // SPIi
        0, 0, 0, 0, 0, 0, 0, 0, // SPIr
        33, 0x20, 34, 0x08, 0, 0, 0, 0, // SA, v2.0, IKE_SA_INIT, I flag, msgid 0
        0, 0, 0, 0, // length (patched)
        // SA payload: next KE, len 4+8+12+8+8+8 = 48
        34, 0, 0, 48, //
        0, 0, 0, 44, 1, 1, 0, 4, // last proposal, len 44, #1, IKE, spi 0, 4 transforms
        3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0, 128, // ENCR AES-CBC keylen 128
        3, 0, 0, 8, 2, 0, 0, 5, // PRF SHA2-256
        3, 0, 0, 8, 3, 0, 0, 12, // INTEG SHA2-256-128
        0, 0, 0, 8, 4, 0, 0, 19, // DH 19
        // KE: next Nonce
        40, 0, 0, 12, 0, 19, 0, 0, 1, 2, 3, 4, //
        // Nonce: next Notify
        41, 0, 0, 8, 9, 9, 9, 9, //
        // Notify IKEV2_FRAGMENTATION_SUPPORTED
        0, 0, 0, 8, 0, 0, 0x40, 0x2e,
    ];
    let len = b.len() as u32;
    b[24..28].copy_from_slice(&len.to_be_bytes());
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.header.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(m.header.is_initiator() && !m.header.is_response());
    assert_eq!(m.payloads.len(), 4);
    let Payload::Sa(ps) = &m.payloads[0] else {
        panic!()
    };
    assert_eq!(ps[0].transforms[0].key_length(), Some(128));
    assert_eq!(ps[0].transforms[3].id, DhId::ECP_256.0);
    assert!(
        m.notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
            .is_some()
    );
    assert_eq!(m.to_vec(), b, "re-emits byte for byte");
}

#[test]
fn rejects_trailing_bytes_and_bad_lengths() {
    let m = Message {
        header: HeaderRepr {
            initiator_spi: 1,
            responder_spi: 2,
            version: VERSION_2_0,
            exchange_type: ExchangeType::INFORMATIONAL,
            flags: FLAG_RESPONSE,
            message_id: 7,
        },
        payloads: vec![Payload::Nonce(vec![1, 2, 3])],
    };
    let mut b = m.to_vec();
    b.push(0);
    assert_eq!(Message::parse(&b), Err(Error::BadLength));
    b.pop();
    b[24..28].copy_from_slice(&1000u32.to_be_bytes());
    assert_eq!(Message::parse(&b), Err(Error::Truncated));
    let mut b = m.to_vec();
    b[30..32].copy_from_slice(&2u16.to_be_bytes()); // payload length below the generic header
    assert_eq!(Message::parse(&b), Err(Error::BadLength));
    let mut b = m.to_vec();
    b[17] = 0x30;
    assert_eq!(Message::parse(&b), Err(Error::BadValue("major version")));
}

#[test]
fn sk_payload_ends_the_chain_and_keeps_first_inner_type() {
    let m = Message {
        header: HeaderRepr {
            initiator_spi: 1,
            responder_spi: 2,
            version: VERSION_2_0,
            exchange_type: ExchangeType::IKE_AUTH,
            flags: FLAG_INITIATOR,
            message_id: 1,
        },
        payloads: vec![Payload::Sk(Encrypted {
            first_inner: PayloadType::IDI,
            data: vec![0xaa; 32],
        })],
    };
    let b = m.to_vec();
    assert_eq!(b[16], PayloadType::SK.0);
    assert_eq!(b[28], PayloadType::IDI.0);
    assert_eq!(Message::parse(&b).unwrap(), m);
}
