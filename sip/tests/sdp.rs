//! RFC 6193 SDP: the seed sample, parse/emit round trips, negotiation and the 488 cases, and a
//! differential check against `sdp-rs`.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use lifeline_sip::sdp::*;
use proptest::prelude::*;

/// Seed chapter 4 (seed-vpnsip.md §7.1), verbatim, with its session-level lines elided as `...`.
const SEED_OFFER: &str = "offer SDP\n...\nm=application 50001 udp ike-esp-udpencap\nc=IN IP4 10.6.6.49\n\
a=ike-setup:active\na=fingerprint:SHA-1 \\\nb=AS:512\n4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\n...\n";
const SEED_ANSWER: &str = "answer SDP\n...\nm=application 50002 udp ike-esp-udpencap\nc=IN IP4 10.6.6.50\n\
a=ike-setup:passive\na=fingerprint:SHA-1 \\\nb=AS:512\nD2:9F:6F:1E:CD:D3:09:E8:70:65:1A:51:7C:9D:30:4F:21:E4:4A:8E\n";

/// Undo the three documented garblings (seed-vpnsip.md §7.2): the RFC `\` line continuation, the
/// `b=AS` line the PDF interleaved into it, and the elided session lines (`...`, the caption).
fn degarble(seed: &str) -> String {
    let mut out = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    let mut pending: Option<String> = None;
    for line in seed.lines() {
        if line == "..." || line.ends_with(" SDP") {
            continue;
        }
        if let Some(p) = line.strip_suffix(" \\") {
            pending = Some(p.to_owned());
            continue;
        }
        if let Some(p) = &pending
            && line.contains(':')
            && !line.contains('=')
        {
            out.push_str(&format!("{p} {line}\r\n"));
            pending = None;
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[test]
fn seed_sample_offer_and_answer_parse() {
    let offer = IkeSdp::parse(&degarble(SEED_OFFER)).unwrap();
    assert_eq!(offer.addr, Ipv4Addr::new(10, 6, 6, 49));
    assert_eq!(offer.port, 50001);
    assert_eq!(offer.transport, IkeTransport::UdpEncap);
    assert_eq!(offer.setup, Setup::Active);
    assert_eq!(offer.bandwidth_kbps, 512);
    assert_eq!(offer.fingerprint.hash, HashFunc::Sha1);
    assert_eq!(
        offer.fingerprint.hex(),
        "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"
    );
    let answer = IkeSdp::parse(&degarble(SEED_ANSWER)).unwrap();
    assert_eq!(answer.port, 50002);
    assert_eq!(answer.setup, Setup::Passive);
    let n = negotiate(&offer, &answer).unwrap();
    assert_eq!(n.initiator, IkeInitiator::Offerer);
    assert_eq!(n.bandwidth_kbps, 512);
}

#[test]
fn seed_sample_verbatim_is_rejected_not_misread() {
    // The garbled text is not SDP: it must fail cleanly, not yield a half-parsed session.
    assert!(IkeSdp::parse(SEED_OFFER).is_err());
}

fn sample(setup: Setup, bw: u32) -> IkeSdp {
    IkeSdp {
        addr: Ipv4Addr::new(192, 0, 2, 10),
        port: 50001,
        transport: IkeTransport::UdpEncap,
        setup,
        fingerprint: Fingerprint::new(HashFunc::Sha1, (1..=20).collect()),
        bandwidth_kbps: bw,
    }
}

#[test]
fn emitted_sdp_has_the_rfc6193_lines() {
    let s = sample(Setup::Active, 64).to_sdp(42, 1);
    assert_eq!(
        s,
        "v=0\r\no=- 42 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=application 50001 udp ike-esp-udpencap\r\nb=AS:64\r\na=ike-setup:active\r\n\
         a=fingerprint:SHA-1 01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14\r\n"
    );
}

#[test]
fn session_level_bandwidth_and_lf_line_ends_are_accepted() {
    let s = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nb=AS:256\nt=0 0\n\
             m=application 4500 udp ike-esp\na=ike-setup:actpass\n\
             a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\n";
    let p = IkeSdp::parse(s).unwrap();
    assert_eq!(p.bandwidth_kbps, 256);
    assert_eq!(p.transport, IkeTransport::Esp);
    assert_eq!(p.setup, Setup::ActPass);
    assert_eq!(p.fingerprint.hash, HashFunc::Sha256);
}

#[test]
fn media_level_bandwidth_wins_over_session_level() {
    let s = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nb=AS:512\r\nt=0 0\r\nm=application 50001 udp ike-esp-udpencap\r\n\
             c=IN IP4 10.0.0.2\r\nb=AS:256\r\na=ike-setup:active\r\na=fingerprint:SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\r\n";
    let p = IkeSdp::parse(s).unwrap();
    assert_eq!(p.bandwidth_kbps, 256);
    assert_eq!(p.addr, Ipv4Addr::new(10, 0, 0, 2));
}

fn without(line_prefix: &str) -> String {
    sample(Setup::Active, 64)
        .to_sdp(1, 1)
        .split("\r\n")
        .filter(|l| !l.starts_with(line_prefix))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn missing_bandwidth_is_rejected_with_488() {
    let e = IkeSdp::parse(&without("b=")).unwrap_err();
    assert_eq!(e, SdpError::MissingBandwidth);
    assert_eq!(e.status(), 488);
    assert!(e.to_string().contains("b=AS"));
}

#[test]
fn missing_fingerprint_is_rejected_with_488() {
    let e = IkeSdp::parse(&without("a=fingerprint")).unwrap_err();
    assert_eq!(e, SdpError::MissingFingerprint);
    assert_eq!(e.status(), 488);
}

#[test]
fn missing_connection_and_setup_are_rejected() {
    let s = without("c=");
    assert_eq!(IkeSdp::parse(&s), Err(SdpError::MissingConnection));
    assert_eq!(
        IkeSdp::parse(&without("a=ike-setup")),
        Err(SdpError::MissingSetup)
    );
}

#[test]
fn wrong_transport_is_rejected_with_488() {
    let s = sample(Setup::Active, 64)
        .to_sdp(1, 1)
        .replace("udp ike-esp-udpencap", "RTP/AVP 0");
    let e = IkeSdp::parse(&s).unwrap_err();
    assert_eq!(e, SdpError::WrongTransport);
    assert_eq!(e.status(), 488);
    let tcp = sample(Setup::Active, 64)
        .to_sdp(1, 1)
        .replace("udp ike", "tcp ike");
    assert_eq!(IkeSdp::parse(&tcp), Err(SdpError::WrongTransport));
    let audio = sample(Setup::Active, 64).to_sdp(1, 1).replace(
        "m=application 50001 udp ike-esp-udpencap",
        "m=audio 4000 RTP/AVP 0",
    );
    assert_eq!(IkeSdp::parse(&audio), Err(SdpError::NoIkeMedia));
}

#[test]
fn bad_fingerprints_are_rejected() {
    let base = sample(Setup::Active, 64).to_sdp(1, 1);
    let short = base.replace(":13:14\r\n", ":13\r\n");
    assert!(matches!(
        IkeSdp::parse(&short),
        Err(SdpError::BadFingerprint(_))
    ));
    let md2 = base.replace("SHA-1 ", "md2 ");
    assert!(matches!(
        IkeSdp::parse(&md2),
        Err(SdpError::BadFingerprint(_))
    ));
    let nothex = base.replace(":0A:", ":ZZ:");
    assert!(matches!(
        IkeSdp::parse(&nothex),
        Err(SdpError::BadFingerprint(_))
    ));
}

#[test]
fn ipv6_connection_is_refused() {
    let s = sample(Setup::Active, 64)
        .to_sdp(1, 1)
        .replace("c=IN IP4 192.0.2.10", "c=IN IP6 2001:db8::1");
    assert_eq!(IkeSdp::parse(&s), Err(SdpError::NotIpv4));
}

#[test]
fn bandwidth_is_the_minimum_of_offer_and_answer() {
    let n = negotiate(&sample(Setup::Active, 1000), &sample(Setup::Passive, 64)).unwrap();
    assert_eq!(n.bandwidth_kbps, 64);
    let n = negotiate(&sample(Setup::Active, 128), &sample(Setup::Passive, 512)).unwrap();
    assert_eq!(n.bandwidth_kbps, 128);
}

#[test]
fn roles_resolve_as_rfc6193_says() {
    use Setup::*;
    let ok = [
        (Active, Passive, IkeInitiator::Offerer),
        (Passive, Active, IkeInitiator::Answerer),
        (ActPass, Passive, IkeInitiator::Offerer),
        (ActPass, Active, IkeInitiator::Answerer),
    ];
    for (o, a, who) in ok {
        assert_eq!(
            negotiate(&sample(o, 64), &sample(a, 64)).unwrap().initiator,
            who
        );
    }
    for (o, a) in [
        (Active, Active),
        (Passive, Passive),
        (Active, ActPass),
        (ActPass, ActPass),
    ] {
        let e = negotiate(&sample(o, 64), &sample(a, 64)).unwrap_err();
        assert!(matches!(e, Rejection::RoleConflict { .. }));
        assert_eq!(e.status(), 488);
    }
}

#[test]
fn transport_mismatch_is_rejected() {
    let mut a = sample(Setup::Passive, 64);
    a.transport = IkeTransport::Esp;
    let e = negotiate(&sample(Setup::Active, 64), &a).unwrap_err();
    assert!(matches!(e, Rejection::TransportMismatch { .. }));
    assert_eq!(e.status(), 488);
}

#[test]
fn answer_for_takes_the_complementary_role_and_refuses_plain_esp() {
    let fp = Fingerprint::new(HashFunc::Sha256, vec![7; 32]);
    let (ans, n) = answer_for(
        &sample(Setup::ActPass, 512),
        Ipv4Addr::new(10, 0, 0, 9),
        50002,
        fp.clone(),
        64,
        true,
    )
    .unwrap();
    assert_eq!(ans.setup, Setup::Passive);
    assert_eq!(n.initiator, IkeInitiator::Offerer);
    assert_eq!(n.bandwidth_kbps, 64);
    let mut esp = sample(Setup::Active, 512);
    esp.transport = IkeTransport::Esp;
    let e = answer_for(&esp, Ipv4Addr::LOCALHOST, 1, fp, 64, true).unwrap_err();
    assert_eq!(e, Rejection::TransportRefused(IkeTransport::Esp));
}

fn arb_sdp() -> impl Strategy<Value = IkeSdp> {
    (
        any::<u32>(),
        1u16..,
        prop::bool::ANY,
        0usize..3,
        prop::sample::select(vec![
            HashFunc::Sha1,
            HashFunc::Sha256,
            HashFunc::Sha512,
            HashFunc::Md5,
        ]),
        any::<[u8; 64]>(),
        1u32..,
        prop::bool::ANY,
    )
        .prop_map(|(a, port, encap, role, hash, fp, bw, psk)| IkeSdp {
            addr: Ipv4Addr::from(a),
            port,
            transport: if encap {
                IkeTransport::UdpEncap
            } else {
                IkeTransport::Esp
            },
            setup: [Setup::Active, Setup::Passive, Setup::ActPass][role],
            fingerprint: Fingerprint {
                hash,
                bytes: fp[..hash.digest_len()].to_vec(),
                psk,
            },
            bandwidth_kbps: bw,
        })
}

proptest! {
    #[test]
    fn parse_emit_round_trips(sdp in arb_sdp(), sid in any::<u64>(), ver in any::<u64>()) {
        prop_assert_eq!(IkeSdp::parse(&sdp.to_sdp(sid, ver)).unwrap(), sdp);
    }

    #[test]
    fn parser_never_panics(s in "[a-z=0-9 :.\\-\r\n/A-F]{0,300}") {
        let _ = IkeSdp::parse(&s);
    }

    /// Differential test: sdp-rs (the oracle) reads our output the same way.
    #[test]
    fn sdp_rs_oracle_agrees(sdp in arb_sdp()) {
        use sdp_rs::SessionDescription;
        use sdp_rs::lines::{attribute::Attribute, bandwidth::Bwtype, media::ProtoType};
        let text = sdp.to_sdp(1, 2);
        let o = SessionDescription::try_from(text.clone()).unwrap();
        prop_assert_eq!(o.media_descriptions.len(), 1);
        let m = &o.media_descriptions[0];
        prop_assert_eq!(m.media.port, sdp.port);
        prop_assert_eq!(&m.media.proto, &ProtoType::Udp);
        prop_assert_eq!(m.media.fmt.as_str(), sdp.transport.token());
        prop_assert_eq!(m.bandwidths.len(), 1);
        prop_assert_eq!(&m.bandwidths[0].bwtype, &Bwtype::As);
        prop_assert_eq!(m.bandwidths[0].bandwidth, sdp.bandwidth_kbps);
        let setup = Attribute::Other("ike-setup".into(), Some(sdp.setup.token().into()));
        prop_assert!(m.attributes.contains(&setup));
        // sdp-rs re-serialises byte-identically
        prop_assert_eq!(o.to_string(), text);
    }
}
