//! The per-packet path allocates nothing: with SAs installed, `Tunnel::send` + `Tunnel::receive`
//! (and the bare `OutboundSa::encapsulate` / `InboundSa::decapsulate`) are run under a counting
//! global allocator. Runs without the libtest harness so no other thread allocates meanwhile.
// A test binary may read the clock; the library never does.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use lifeline_dataplane::crypto::AesKeyLen;
use lifeline_dataplane::tunnel::DfBit;
use lifeline_dataplane::{
    Encr, HEADROOM, InboundSa, Integ, Lifetime, Mode, OutboundSa, RecvMeta, SaParams, TAILROOM,
    Tunnel, TunnelConfig, UdpPorts, Verdict,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

static GCM_KEY: [u8; 20] = [0x42; 20];
static CBC_KEY: [u8; 32] = [0x43; 32];
static MAC_KEY: [u8; 32] = [0x44; 32];

fn params(spi: u32, encr: Encr) -> SaParams<'static> {
    let (enc_key, integ, integ_key): (&[u8], _, &[u8]) = match encr {
        Encr::AesGcm16(_) => (&GCM_KEY, None, &[]),
        Encr::AesCbc(_) => (&CBC_KEY, Some(Integ::HmacSha256_128), &MAC_KEY),
    };
    SaParams {
        spi,
        encr,
        integ,
        enc_key,
        integ_key,
        esn: true,
        mode: Mode::Tunnel,
        replay_window: 1024,
        lifetime: Lifetime::from_ios(4_608_000, 3600),
        idle_timeout: Some(Duration::from_secs(300)),
    }
}

fn packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0; // DF clear: oversize packets are pre-fragmented
    p[8] = 64;
    p[9] = 17;
    p
}

fn run(encr: Encr) {
    let now = Instant::now();
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mut ca = TunnelConfig::new(1, a_ip, Some(b_ip));
    ca.udp_encap = Some(UdpPorts {
        local: 4500,
        remote: 4500,
    });
    ca.df_bit = DfBit::Copy;
    ca.adjust_mss = Some(1360);
    let mut cb = ca.clone();
    cb.source = b_ip;
    cb.destination = Some(a_ip);
    let mut a = Tunnel::new(ca);
    let mut b = Tunnel::new(cb);
    a.install_sa(
        now,
        OutboundSa::new(now, &params(1, encr)).unwrap(),
        InboundSa::new(now, &params(2, encr)).unwrap(),
    );
    b.install_sa(
        now,
        OutboundSa::new(now, &params(2, encr)).unwrap(),
        InboundSa::new(now, &params(1, encr)).unwrap(),
    );
    let meta = RecvMeta {
        from: SocketAddr::from(([192, 0, 2, 1], 4500)),
        tos: 0,
    };
    let mut buf = vec![0u8; HEADROOM + 3000 + TAILROOM];
    let mut scratch = vec![0u8; HEADROOM + 1500 + TAILROOM];
    let sizes = [64usize, 512, 1400, 2800];
    let pkts: Vec<Vec<u8>> = sizes.iter().map(|&n| packet(n)).collect();
    let mut round = |t: Instant| {
        for p in &pkts {
            buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
            let mut v = a.send(t, &mut buf, HEADROOM..HEADROOM + p.len());
            let mut first = true;
            loop {
                let Verdict::ToNetwork(tx) = v else {
                    panic!("{v:?}")
                };
                let target = if first { &mut buf } else { &mut scratch };
                first = false;
                let r = b.receive(t, target, tx.range, meta);
                assert!(matches!(r, Verdict::ToTunnel(_)), "{r:?}");
                match a.poll_transmit(t, &mut scratch) {
                    Some(next) => v = next,
                    None => break,
                }
            }
        }
    };
    // Warm-up: fragment buffers enter the pool, queues reach their working capacity.
    for i in 0..8 {
        round(now + Duration::from_millis(i));
    }
    let reg = Region::new(GLOBAL);
    for i in 0..1000 {
        round(now + Duration::from_millis(100 + i));
    }
    let stats = reg.change();
    assert_eq!(stats.allocations, 0, "{encr:?}: {stats:?}");
    assert_eq!(stats.reallocations, 0, "{encr:?}: {stats:?}");
    println!(
        "{encr:?}: 4000 packets (incl. pre-fragmented 2800-byte ones) sent and received, {stats:?}"
    );
}

fn main() {
    // The counter works: one allocation is seen.
    let reg = Region::new(GLOBAL);
    let b = std::hint::black_box(Box::new([0u8; 64]));
    assert_eq!(reg.change().allocations, 1);
    drop(b);
    run(Encr::AesGcm16(AesKeyLen::Aes128));
    run(Encr::AesCbc(AesKeyLen::Aes256));
    println!("no_alloc: ok");
}
