use super::*;
use crate::SaParams;
use crate::sa::Lifetime;

const A: Ipv4Addr = Ipv4Addr::new(10, 6, 6, 50);
const B: Ipv4Addr = Ipv4Addr::new(10, 6, 6, 49);
const GCM_KEY: [u8; 20] = [0x5a; 20];

fn params(spi: u32) -> SaParams<'static> {
    SaParams {
        spi,
        encr: Encr::AesGcm16(AesKeyLen::Aes128),
        integ: None,
        enc_key: &GCM_KEY,
        integ_key: &[],
        esn: true,
        mode: Mode::Tunnel,
        replay_window: 64,
        lifetime: Lifetime::unlimited(),
        idle_timeout: None,
    }
}

fn tunnel(local: Ipv4Addr, remote: Ipv4Addr) -> Tunnel {
    let mut c = TunnelConfig::new(1, IpAddr::V4(local), Some(IpAddr::V4(remote)));
    c.udp_encap = Some(UdpPorts {
        local: 50001,
        remote: 50002,
    });
    Tunnel::new(c)
}

/// Installs mirrored SAs: a→b uses SPI `ab`, b→a uses `ba`.
fn connect(
    now: Instant,
    a: &mut Tunnel,
    b: &mut Tunnel,
    ab: u32,
    ba: u32,
    p: impl Fn(u32) -> SaParams<'static>,
) {
    a.install_sa(
        now,
        OutboundSa::new(now, &p(ab)).unwrap(),
        InboundSa::new(now, &p(ba)).unwrap(),
    );
    b.install_sa(
        now,
        OutboundSa::new(now, &p(ba)).unwrap(),
        InboundSa::new(now, &p(ab)).unwrap(),
    );
}

/// An IPv4/UDP packet 10.1.1.1 -> 10.2.2.2 with `payload` bytes of data.
fn udp_packet(payload: usize, df: bool, tos: u8) -> Vec<u8> {
    let total = 28 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = if df { 0x40 } else { 0 };
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 1, 1]);
    p[16..20].copy_from_slice(&[10, 2, 2, 2]);
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&2000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    p
}

fn framed(pkt: &[u8]) -> (Vec<u8>, Range<usize>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    (buf, HEADROOM..HEADROOM + pkt.len())
}

fn meta() -> RecvMeta {
    RecvMeta {
        from: SocketAddr::from((A, 50001)),
        tos: 0,
    }
}

/// Sends through `a`, delivers through `b`; returns what `b` writes to its TUN.
fn carry(now: Instant, a: &mut Tunnel, b: &mut Tunnel, pkt: &[u8]) -> Vec<u8> {
    let (mut buf, r) = framed(pkt);
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!("not sent")
    };
    match b.receive(now, &mut buf, t.range, meta()) {
        Verdict::ToTunnel(r) => buf[r].to_vec(),
        v => panic!("{v:?}"),
    }
}

#[test]
fn packet_without_sa_raises_one_acquire_and_is_delivered_after_install() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    let p1 = udp_packet(100, false, 0);
    let p2 = udp_packet(200, false, 0);
    let (mut buf, r) = framed(&p1);
    assert_eq!(a.send(now, &mut buf, r), Verdict::Queued);
    let (mut buf, r) = framed(&p2);
    assert_eq!(a.send(now, &mut buf, r), Verdict::Queued);
    assert_eq!(a.poll_event(), Some(Event::Acquire { tunnel: 1 }));
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.snapshot(now).state, TunnelState::Acquiring);
    let mut out = vec![0u8; 2048];
    assert_eq!(a.poll_transmit(now, &mut out), None);

    let later = now + Duration::from_secs(2);
    connect(later, &mut a, &mut b, 0x1000, 0x2000, params);
    let mut delivered = Vec::new();
    while let Some(v) = a.poll_transmit(later, &mut out) {
        let Verdict::ToNetwork(t) = v else {
            panic!("{v:?}")
        };
        assert_eq!(t.dst, IpAddr::V4(B));
        assert_eq!(
            t.udp,
            Some(UdpPorts {
                local: 50001,
                remote: 50002
            })
        );
        match b.receive(later, &mut out, t.range, meta()) {
            Verdict::ToTunnel(r) => delivered.push(out[r].to_vec()),
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(delivered, vec![p1, p2]);
    let s = a.snapshot(later);
    assert_eq!(s.counters.queued, 2);
    assert_eq!(s.counters.acquires, 1);
    assert_eq!(s.state, TunnelState::Up);
    assert_eq!(b.snapshot(later).counters.decaps, 2);
}

#[test]
fn full_acquire_queue_drops_and_counts() {
    let now = crate::test_origin();
    let mut cfg = TunnelConfig::new(3, IpAddr::V4(A), Some(IpAddr::V4(B)));
    cfg.queue_limit = 2;
    let mut a = Tunnel::new(cfg);
    for i in 0..3 {
        let (mut buf, r) = framed(&udp_packet(10, false, 0));
        let v = a.send(now, &mut buf, r);
        assert_eq!(
            v,
            if i < 2 {
                Verdict::Queued
            } else {
                Verdict::Drop(DropReason::QueueFull)
            }
        );
    }
    assert_eq!(a.snapshot(now).drops[DropReason::QueueFull as usize], 1);
    assert_eq!(a.snapshot(now).queue_len, 2);
}

#[test]
fn acquire_timeout_drops_queue_and_rearms() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let (mut buf, r) = framed(&udp_packet(10, false, 0));
    a.send(now, &mut buf, r);
    assert_eq!(a.poll_event(), Some(Event::Acquire { tunnel: 1 }));
    let deadline = a.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    a.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(a.poll_event(), None);
    a.handle_timeout(deadline);
    assert_eq!(
        a.poll_event(),
        Some(Event::AcquireFailed {
            tunnel: 1,
            dropped: 1
        })
    );
    assert_eq!(
        a.snapshot(deadline).drops[DropReason::AcquireFailed as usize],
        1
    );
    let (mut buf, r) = framed(&udp_packet(10, false, 0));
    assert_eq!(a.send(deadline, &mut buf, r), Verdict::Queued);
    assert_eq!(a.poll_event(), Some(Event::Acquire { tunnel: 1 }));
}

#[test]
fn round_trip_with_cbc_sha1_and_raw_esp() {
    let now = crate::test_origin();
    let mut a = Tunnel::new(TunnelConfig::new(1, IpAddr::V4(A), Some(IpAddr::V4(B))));
    let mut b = Tunnel::new(TunnelConfig::new(1, IpAddr::V4(B), Some(IpAddr::V4(A))));
    static CK: [u8; 32] = [7; 32];
    static MK: [u8; 20] = [9; 20];
    let p = |spi| SaParams {
        spi,
        encr: Encr::AesCbc(AesKeyLen::Aes256),
        integ: Some(Integ::HmacSha1_96),
        enc_key: &CK,
        integ_key: &MK,
        esn: false,
        mode: Mode::Tunnel,
        replay_window: 1024,
        lifetime: Lifetime::from_ios(4_608_000, 3600),
        idle_timeout: None,
    };
    connect(now, &mut a, &mut b, 0x4776_A36B, 0xA97E_DEE7, p);
    for len in [0, 1, 500, 1300] {
        let pkt = udp_packet(len, true, 0);
        assert_eq!(carry(now, &mut a, &mut b, &pkt), pkt);
        assert_eq!(carry(now, &mut b, &mut a, &pkt), pkt);
    }
    let (mut buf, r) = framed(&udp_packet(64, false, 0));
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!()
    };
    assert_eq!(t.udp, None);
    // A replayed copy is dropped by the window.
    let copy = buf.clone();
    assert!(matches!(
        b.receive(now, &mut buf, t.range.clone(), meta()),
        Verdict::ToTunnel(_)
    ));
    let mut again = copy;
    assert_eq!(
        b.receive(now, &mut again, t.range, meta()),
        Verdict::Drop(DropReason::Replay)
    );
    assert_eq!(b.snapshot(now).counters.replay_failures, 1);
}

#[test]
fn plaintext_mtu_matches_seed_samples() {
    let now = crate::test_origin();
    // Seed Ch3: AES-CBC + SHA1-96 over IPv4, path MTU 1500: plaintext mtu 1438.
    let mut a = Tunnel::new(TunnelConfig::new(0, IpAddr::V4(A), Some(IpAddr::V4(B))));
    assert_eq!(a.plaintext_mtu(), 1438);
    static CK: [u8; 16] = [7; 16];
    static MK: [u8; 20] = [9; 20];
    let cbc = SaParams {
        encr: Encr::AesCbc(AesKeyLen::Aes128),
        integ: Some(Integ::HmacSha1_96),
        enc_key: &CK,
        integ_key: &MK,
        ..params(5)
    };
    a.install_sa(
        now,
        OutboundSa::new(now, &cbc).unwrap(),
        InboundSa::new(now, &cbc).unwrap(),
    );
    assert_eq!(a.plaintext_mtu(), 1438);
    // AES-GCM: (1500 - 20 - 8 - 8 - 16) = 1448 -> 1446; with UDP encapsulation 1438.
    a.install_sa(
        now,
        OutboundSa::new(now, &params(6)).unwrap(),
        InboundSa::new(now, &params(6)).unwrap(),
    );
    assert_eq!(a.plaintext_mtu(), 1446);
    a.set_destination(
        IpAddr::V4(B),
        Some(UdpPorts {
            local: 4500,
            remote: 4500,
        }),
    );
    assert_eq!(a.plaintext_mtu(), 1438);
    a.cfg.ip_mtu = Some(1400);
    assert_eq!(a.ip_mtu(), 1400);
    let s = a.snapshot(now);
    assert_eq!((s.path_mtu, s.plaintext_mtu, s.ip_mtu), (1500, 1438, 1400));
}

fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut sorted: Vec<&Vec<u8>> = frags.iter().collect();
    sorted.sort_by_key(|f| ipv4::Packet::new_unchecked(&f[..]).frag_offset());
    for f in &sorted {
        let p = ipv4::Packet::new_checked(&f[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(usize::from(p.frag_offset()) * 8, data.len());
        data.extend_from_slice(&f[p.header_len()..usize::from(p.total_len())]);
    }
    let last = ipv4::Packet::new_unchecked(&sorted.last().unwrap()[..]);
    assert!(!last.more_frags());
    data
}

#[test]
fn oversize_packet_is_prefragmented_into_equal_pieces_before_encryption() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    a.cfg.df_bit = DfBit::Clear;
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let mtu = usize::from(a.ip_mtu());
    let pkt = udp_packet(1472, true, 0); // 1500 bytes, over the tunnel MTU
    let (mut buf, r) = framed(&pkt);
    let mut frags = Vec::new();
    let mut outer_lens = Vec::new();
    let mut v = a.send(now, &mut buf, r);
    let mut scratch = vec![0u8; 2048];
    loop {
        let Verdict::ToNetwork(t) = v else {
            panic!("{v:?}")
        };
        assert!(!t.df, "df-bit clear");
        outer_lens.push(t.range.len());
        let target = if frags.is_empty() {
            &mut buf
        } else {
            &mut scratch
        };
        let Verdict::ToTunnel(r) = b.receive(now, target, t.range, meta()) else {
            panic!()
        };
        let f = target[r].to_vec();
        assert!(f.len() <= mtu);
        frags.push(f);
        match a.poll_transmit(now, &mut scratch) {
            Some(next) => v = next,
            None => break,
        }
    }
    assert_eq!(frags.len(), 2);
    // Equal units: both fragments carry the same amount of data (±8).
    let d0 = frags[0].len() - 20;
    let d1 = frags[1].len() - 20;
    assert!(d0.abs_diff(d1) <= 8, "{d0} {d1}");
    assert_eq!(reassemble(&frags), pkt[20..].to_vec());
    assert_eq!(a.snapshot(now).counters.fragments, 2);
}

#[test]
fn df_packet_over_mtu_gets_icmp_fragmentation_needed_with_df_copy() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    a.cfg.icmp_source = Ipv4Addr::new(172, 16, 0, 1);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let mtu = a.ip_mtu();
    let pkt = udp_packet(1472, true, 0);
    let (mut buf, r) = framed(&pkt);
    let Verdict::ToTunnel(r) = a.send(now, &mut buf, r) else {
        panic!()
    };
    let icmp = &buf[r];
    let ip = ipv4::Packet::new_checked(icmp).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 1, 1));
    assert_eq!(ip.src_addr(), Ipv4Addr::new(172, 16, 0, 1));
    let body = &icmp[20..];
    assert_eq!((body[0], body[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([body[6], body[7]]), mtu);
    assert_eq!(ipv4::checksum(body), 0);
    assert_eq!(&body[8..36], &pkt[..28]);
    assert_eq!(a.snapshot(now).counters.icmp_too_big, 1);
    // Without DF the same size is fragmented instead.
    let (mut buf, r) = framed(&udp_packet(1472, false, 0));
    assert!(matches!(a.send(now, &mut buf, r), Verdict::ToNetwork(_)));
}

#[test]
fn without_prefragmentation_outer_header_may_fragment() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    a.cfg.prefragment = false;
    a.cfg.df_bit = DfBit::Clear;
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let pkt = udp_packet(1472, true, 0);
    let (mut buf, r) = framed(&pkt);
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!()
    };
    assert!(!t.df);
    assert!(t.range.len() > 1500 - 28);
    let Verdict::ToTunnel(r) = b.receive(now, &mut buf, t.range, meta()) else {
        panic!()
    };
    assert_eq!(&buf[r], &pkt[..]);
}

#[test]
fn outer_df_follows_df_bit_mode() {
    let now = crate::test_origin();
    for (mode, inner_df, want) in [
        (DfBit::Copy, true, true),
        (DfBit::Copy, false, false),
        (DfBit::Set, false, true),
        (DfBit::Clear, true, false),
    ] {
        let mut a = tunnel(A, B);
        let mut b = tunnel(B, A);
        a.cfg.df_bit = mode;
        connect(now, &mut a, &mut b, 0x11, 0x22, params);
        let (mut buf, r) = framed(&udp_packet(100, inner_df, 0xb8));
        let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
            panic!()
        };
        assert_eq!(t.df, want, "{mode:?} {inner_df}");
        assert_eq!(t.tos, 0xb8, "DSCP EF copied to the outer header");
    }
}

#[test]
fn tcp_mss_is_clamped_in_both_directions() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    a.cfg.adjust_mss = Some(1360);
    b.cfg.adjust_mss = Some(1300);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let syn = crate::wire::ipv4::tests::syn_packet(1460);
    let got = carry(now, &mut a, &mut b, &syn);
    // Clamped to 1360 by the sender, then to 1300 by the receiver.
    assert_eq!(&got[40..44], &[2, 4, 0x05, 0x14]);
    assert_eq!(
        u16::from_be_bytes([got[36], got[37]]),
        crate::wire::ipv4::tests::tcp_checksum(&got)
    );
    assert_eq!(a.snapshot(now).counters.mss_clamped, 1);
    assert_eq!(b.snapshot(now).counters.mss_clamped, 1);
}

#[test]
fn ecn_decapsulation_follows_rfc6040() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    // inner ECT(0), outer CE -> inner CE.
    let (mut buf, r) = framed(&udp_packet(50, false, 0x02));
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!()
    };
    assert_eq!(t.tos & 3, 2, "ECN copied out (normal mode)");
    let m = RecvMeta {
        tos: 0x03,
        ..meta()
    };
    let Verdict::ToTunnel(r) = b.receive(now, &mut buf, t.range, m) else {
        panic!()
    };
    let p = ipv4::Packet::new_checked(&buf[r]).unwrap();
    assert_eq!(p.ecn(), 3);
    assert!(p.verify_checksum());
    // inner Not-ECT, outer CE -> drop.
    let (mut buf, r) = framed(&udp_packet(50, false, 0));
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!()
    };
    assert_eq!(
        b.receive(now, &mut buf, t.range, m),
        Verdict::Drop(DropReason::EcnDrop)
    );
}

#[test]
fn unknown_spi_is_counted_and_reported_once_per_second() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let mut junk = vec![0u8; 64];
    junk[..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
    for _ in 0..3 {
        assert_eq!(
            b.receive(now, &mut junk.clone(), 0..64, meta()),
            Verdict::Drop(DropReason::InvalidSpi)
        );
    }
    let from = meta().from;
    assert_eq!(
        b.poll_event(),
        Some(Event::InvalidSpi {
            tunnel: 1,
            spi: 0xdead_beef,
            from
        })
    );
    assert_eq!(b.poll_event(), None);
    b.receive(now + Duration::from_secs(1), &mut junk, 0..64, meta());
    assert!(matches!(b.poll_event(), Some(Event::InvalidSpi { .. })));
    assert_eq!(b.snapshot(now).counters.invalid_spi, 4);
}

#[test]
fn keepalive_and_ike_on_the_esp_path() {
    let now = crate::test_origin();
    let mut b = tunnel(B, A);
    let mut ka = vec![0xffu8];
    assert_eq!(b.receive(now, &mut ka, 0..1, meta()), Verdict::Consumed);
    let mut ike = vec![0u8, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        b.receive(now, &mut ike, 0..8, meta()),
        Verdict::Drop(DropReason::NotEsp)
    );
}

#[test]
fn rekey_keeps_old_inbound_sa_until_deleted() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    // A packet sealed under the old SA, still in flight.
    let pkt = udp_packet(80, false, 0);
    let (mut old_buf, r) = framed(&pkt);
    let Verdict::ToNetwork(old) = a.send(now, &mut old_buf, r) else {
        panic!()
    };
    // Rekey both sides: a->b 0x33, b->a 0x44.
    let t1 = now + Duration::from_secs(10);
    a.replace_sa(
        t1,
        OutboundSa::new(t1, &params(0x33)).unwrap(),
        InboundSa::new(t1, &params(0x44)).unwrap(),
    );
    b.replace_sa(
        t1,
        OutboundSa::new(t1, &params(0x44)).unwrap(),
        InboundSa::new(t1, &params(0x33)).unwrap(),
    );
    assert_eq!(a.outbound_spi(), Some(0x33));
    assert_eq!(carry(t1, &mut a, &mut b, &pkt), pkt);
    let Verdict::ToTunnel(r) = b.receive(t1, &mut old_buf, old.range.clone(), meta()) else {
        panic!()
    };
    assert_eq!(&old_buf[r], &pkt[..]);
    assert_eq!(b.inbound_spis().collect::<Vec<_>>(), vec![0x11, 0x33]);
    assert!(b.remove_inbound(0x11));
    let (mut buf, r) = framed(&pkt);
    a.outbound = Some(OutboundSa::new(t1, &params(0x11)).unwrap());
    let Verdict::ToNetwork(t) = a.send(t1, &mut buf, r) else {
        panic!()
    };
    assert_eq!(
        b.receive(t1, &mut buf, t.range, meta()),
        Verdict::Drop(DropReason::InvalidSpi)
    );
}

#[test]
fn idle_timer_raises_one_idle_event_and_traffic_rearms_it() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    let p = |spi| SaParams {
        idle_timeout: Some(Duration::from_secs(60)),
        ..params(spi)
    };
    connect(now, &mut a, &mut b, 0x11, 0x22, p);
    let t = now + Duration::from_secs(30);
    carry(t, &mut a, &mut b, &udp_packet(10, false, 0));
    assert_eq!(a.poll_timeout(), Some(t + Duration::from_secs(60)));
    a.handle_timeout(t + Duration::from_secs(59));
    assert_eq!(a.poll_event(), None);
    a.handle_timeout(t + Duration::from_secs(60));
    assert_eq!(
        a.poll_event(),
        Some(Event::Idle {
            tunnel: 1,
            outbound_spi: 0x11
        })
    );
    a.handle_timeout(t + Duration::from_secs(120));
    assert_eq!(a.poll_event(), None, "fires once");
    assert_eq!(a.poll_timeout(), None);
    // Received traffic counts as activity too.
    let t2 = t + Duration::from_secs(200);
    carry(t2, &mut b, &mut a, &udp_packet(10, false, 0));
    assert_eq!(a.poll_timeout(), Some(t2 + Duration::from_secs(60)));
}

#[test]
fn lifetimes_raise_rekey_then_expire_and_next_packet_reacquires() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    let p = |spi| SaParams {
        lifetime: Lifetime {
            soft_bytes: None,
            hard_bytes: None,
            soft_time: Some(Duration::from_secs(108)),
            hard_time: Some(Duration::from_secs(120)),
        },
        ..params(spi)
    };
    connect(now, &mut a, &mut b, 0x11, 0x22, p);
    assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(108)));
    a.handle_timeout(now + Duration::from_secs(108));
    let mut ev: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    ev.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        ev,
        vec![
            Event::Rekey {
                tunnel: 1,
                spi: 0x11,
                inbound: false
            },
            Event::Rekey {
                tunnel: 1,
                spi: 0x22,
                inbound: true
            },
        ]
    );
    let s = a.snapshot(now + Duration::from_secs(110));
    assert_eq!(s.outbound.as_ref().unwrap().remaining_secs, Some(10));
    a.handle_timeout(now + Duration::from_secs(120));
    assert_eq!(
        a.poll_event(),
        Some(Event::Expired {
            tunnel: 1,
            spi: 0x11,
            inbound: false
        })
    );
    assert_eq!(
        a.poll_event(),
        Some(Event::Expired {
            tunnel: 1,
            spi: 0x22,
            inbound: true
        })
    );
    let (mut buf, r) = framed(&udp_packet(10, false, 0));
    assert_eq!(
        a.send(now + Duration::from_secs(121), &mut buf, r),
        Verdict::Queued
    );
    assert_eq!(a.poll_event(), Some(Event::Acquire { tunnel: 1 }));
}

#[test]
fn byte_lifetime_soft_limit_raises_rekey_on_traffic() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    let p = |spi| SaParams {
        lifetime: Lifetime {
            soft_bytes: Some(1000),
            hard_bytes: Some(1_000_000),
            soft_time: None,
            hard_time: None,
        },
        ..params(spi)
    };
    connect(now, &mut a, &mut b, 0x11, 0x22, p);
    for _ in 0..3 {
        carry(now, &mut a, &mut b, &udp_packet(400, false, 0));
    }
    assert_eq!(
        a.poll_event(),
        Some(Event::Rekey {
            tunnel: 1,
            spi: 0x11,
            inbound: false
        })
    );
    assert_eq!(
        b.poll_event(),
        Some(Event::Rekey {
            tunnel: 1,
            spi: 0x11,
            inbound: true
        })
    );
}

#[test]
fn nat_keepalive_sent_after_quiet_interval() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    a.cfg.nat_keepalive = Some(Duration::from_secs(20));
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(20)));
    a.handle_timeout(now + Duration::from_secs(20));
    let mut out = [0u8; 64];
    let Some(Verdict::ToNetwork(t)) = a.poll_transmit(now + Duration::from_secs(20), &mut out)
    else {
        panic!()
    };
    assert_eq!(&out[t.range], &[0xff]);
    assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(40)));
}

#[test]
fn destination_and_source_change_at_run_time() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let c = Ipv4Addr::new(203, 0, 113, 9);
    a.set_destination(
        IpAddr::V4(c),
        Some(UdpPorts {
            local: 4500,
            remote: 61000,
        }),
    );
    a.set_source(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    let (mut buf, r) = framed(&udp_packet(10, false, 0));
    let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
        panic!()
    };
    assert_eq!(t.dst, IpAddr::V4(c));
    assert_eq!(t.src, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(
        t.udp,
        Some(UdpPorts {
            local: 4500,
            remote: 61000
        })
    );
}

#[test]
fn dynamic_destination_queues_until_known() {
    let now = crate::test_origin();
    let mut a = Tunnel::new(TunnelConfig::new(7, IpAddr::V4(A), None));
    let (mut buf, r) = framed(&udp_packet(10, false, 0));
    assert_eq!(a.send(now, &mut buf, r), Verdict::Queued);
    assert_eq!(a.poll_event(), Some(Event::Acquire { tunnel: 7 }));
    a.set_destination(
        IpAddr::V4(B),
        Some(UdpPorts {
            local: 50001,
            remote: 50002,
        }),
    );
    a.install_sa(
        now,
        OutboundSa::new(now, &params(1)).unwrap(),
        InboundSa::new(now, &params(2)).unwrap(),
    );
    let mut out = vec![0u8; 2048];
    assert!(matches!(
        a.poll_transmit(now, &mut out),
        Some(Verdict::ToNetwork(_))
    ));
}

#[test]
fn malformed_inner_packets_are_dropped() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    for bad in [vec![], vec![0x45, 0, 0], vec![0x60; 10], vec![0x12; 40]] {
        let (mut buf, r) = framed(&bad);
        assert_eq!(
            a.send(now, &mut buf, r),
            Verdict::Drop(DropReason::BadInnerPacket)
        );
    }
}

#[test]
fn fuzz_entry_survives_assorted_inputs() {
    let now = crate::test_origin();
    let mut inputs: Vec<Vec<u8>> =
        vec![vec![], vec![0xff], vec![0; 8], vec![0, 0, 1, 0, 0, 0, 0, 1]];
    inputs.push(udp_packet(1472, false, 0));
    inputs.push(crate::wire::ipv4::tests::syn_packet(1460));
    let mut x: u32 = 1;
    for len in 0..300 {
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        inputs.push(v);
    }
    for mut i in inputs {
        crate::decapsulate_fuzz_entry(now, &i);
        if i.len() > 8 {
            i[..4].copy_from_slice(&0x100u32.to_be_bytes());
            crate::decapsulate_fuzz_entry(now, &i);
            i[0] = 0x45;
            crate::decapsulate_fuzz_entry(now, &i);
        }
    }
}

#[test]
fn ipv6_inner_packets_round_trip() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let mut p = vec![0u8; 40 + 16];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&16u16.to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8] = 0x20;
    p[24] = 0x20;
    assert_eq!(carry(now, &mut a, &mut b, &p), p);
}

#[test]
fn new_session_restarts_idle_timer() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    let p = |spi| SaParams {
        idle_timeout: Some(Duration::from_secs(60)),
        ..params(spi)
    };
    carry_after_connect(now, &mut a, &mut b, p);
    a.remove_sa();
    let t = now + Duration::from_secs(3600);
    a.install_sa(
        t,
        OutboundSa::new(t, &p(0x51)).unwrap(),
        InboundSa::new(t, &p(0x52)).unwrap(),
    );
    assert_eq!(a.poll_timeout(), Some(t + Duration::from_secs(60)));
}

fn carry_after_connect(
    now: Instant,
    a: &mut Tunnel,
    b: &mut Tunnel,
    p: impl Fn(u32) -> SaParams<'static>,
) {
    connect(now, a, b, 0x11, 0x22, p);
    carry(now, a, b, &udp_packet(10, false, 0));
}

#[test]
fn no_icmp_error_about_an_icmp_error() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    connect(now, &mut a, &mut b, 0x11, 0x22, params);
    let mut pkt = udp_packet(1472, true, 0);
    pkt[9] = 1; // ICMP
    pkt[20] = 3; // destination unreachable
    ipv4::Packet::new_unchecked(&mut pkt[..]).fill_checksum();
    let (mut buf, r) = framed(&pkt);
    assert_eq!(a.send(now, &mut buf, r), Verdict::Drop(DropReason::TooBig));
    assert_eq!(a.snapshot(now).counters.icmp_too_big, 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever the size and tunnel MTU, pre-fragmented packets arrive as fragments that fit the
        /// MTU and reassemble to the original payload.
        #[test]
        fn prefragmentation_reassembles(payload in 0usize..4000, ip_mtu in 68u16..1500, df in any::<bool>()) {
            let now = crate::test_origin();
            let mut a = tunnel(A, B);
            let mut b = tunnel(B, A);
            a.cfg.df_bit = DfBit::Clear;
            a.cfg.ip_mtu = Some(ip_mtu);
            connect(now, &mut a, &mut b, 0x11, 0x22, params);
            let pkt = udp_packet(payload, df, 0);
            let (mut buf, r) = framed(&pkt);
            let mut v = a.send(now, &mut buf, r);
            let mut frags = Vec::new();
            let mut scratch = vec![0u8; HEADROOM + 1500 + TAILROOM];
            let mut first = true;
            loop {
                let Verdict::ToNetwork(t) = v else { panic!("{v:?}") };
                let target = if first { &mut buf } else { &mut scratch };
                first = false;
                let Verdict::ToTunnel(r) = b.receive(now, target, t.range, meta()) else { panic!() };
                prop_assert!(r.len() <= usize::from(ip_mtu).max(pkt.len().min(28)));
                frags.push(target[r].to_vec());
                match a.poll_transmit(now, &mut scratch) {
                    Some(next) => v = next,
                    None => break,
                }
            }
            if frags.len() == 1 {
                prop_assert_eq!(&frags[0], &pkt);
            } else {
                prop_assert_eq!(reassemble(&frags), pkt[20..].to_vec());
            }
        }
    }
}

/// The QoS charge of a packet is exactly the outer packet's layer-3 length: outer IPv4 (20) + UDP
/// (8, NAT-T) + the ESP bytes the tunnel emits, for GCM (padded to 16 bytes, or to 4 next to the path
/// MTU) and CBC (16), and the
/// seed's sample: a 46-byte packet is 112 bytes of ESP in UDP with AES-CBC + HMAC-SHA1-96.
#[test]
fn encap_wire_len_is_the_outer_packet_length() {
    let now = crate::test_origin();
    let mut a = tunnel(A, B);
    let mut b = tunnel(B, A);
    // Before any SA: the IOS default transform (AES-CBC, HMAC-SHA1-96), in UDP.
    assert_eq!(a.encap().wire_len(46), 112);
    connect(now, &mut a, &mut b, 0x100, 0x200, params);
    let mtu = usize::from(a.ip_mtu());
    // UDP payload lengths (the inner packet is 28 bytes more), up to the tunnel's IP MTU.
    for len in [
        0usize,
        1,
        2,
        46,
        500,
        mtu - 28 - 14,
        mtu - 28 - 13,
        mtu - 29,
        mtu - 28,
    ] {
        let (mut buf, r) = framed(&udp_packet(len, false, 0));
        let inner = r.len();
        let Verdict::ToNetwork(t) = a.send(now, &mut buf, r) else {
            panic!("len {len}")
        };
        assert_eq!(
            a.encap().wire_len(inner),
            20 + 8 + t.range.len(),
            "GCM {len}"
        );
    }
    static CK: [u8; 16] = [7; 16];
    static MK: [u8; 20] = [9; 20];
    let p = |spi| SaParams {
        spi,
        encr: Encr::AesCbc(AesKeyLen::Aes128),
        integ: Some(Integ::HmacSha1_96),
        enc_key: &CK,
        integ_key: &MK,
        esn: false,
        mode: Mode::Tunnel,
        replay_window: 64,
        lifetime: Lifetime::unlimited(),
        idle_timeout: None,
    };
    let mut c = Tunnel::new(TunnelConfig::new(2, IpAddr::V4(A), Some(IpAddr::V4(B))));
    let mut d = Tunnel::new(TunnelConfig::new(2, IpAddr::V4(B), Some(IpAddr::V4(A))));
    connect(now, &mut c, &mut d, 0x300, 0x400, p);
    for len in [0usize, 18, 100, 1000] {
        let (mut buf, r) = framed(&udp_packet(len, false, 0));
        let inner = r.len();
        let Verdict::ToNetwork(t) = c.send(now, &mut buf, r) else {
            panic!("len {len}")
        };
        assert_eq!(c.encap().wire_len(inner), 20 + t.range.len(), "CBC {len}");
    }
    assert_eq!(c.encap().wire_len(46), 20 + 8 + 16 + 48 + 12);
}
