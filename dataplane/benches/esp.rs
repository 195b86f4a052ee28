//! ESP throughput on one core.
//!
//! `cargo bench -p lifeline-dataplane --bench esp -- --warm-up-time 1 --measurement-time 3`
//!
//! Groups (each at 64, 512 and 1400-byte inner packets, throughput in inner bytes):
//! - `raw_seal/ring-aes128gcm`, `raw_seal/rustcrypto-aes128gcm`: the AEAD alone, in place, 8-byte AAD,
//!   fresh nonce per packet: the reference the ESP path is compared to.
//! - `raw_open/ring-aes128gcm`: the AEAD open alone (plus the packet copy the decap bench also pays).
//! - `encap/*`: `OutboundSa::encapsulate` (header, padding, trailer, seal).
//! - `decap/*`: `InboundSa::decapsulate` (replay check, open, padding check) of a copied packet.
//! - `roundtrip/*`: encapsulate then decapsulate (replay window 64) in the same buffer.
//! - `tunnel_roundtrip/aes128gcm`: `Tunnel::send` + `Tunnel::receive` (IPv4 checks, MTU, ECN, demux).
// A benchmark binary may read the clock; the library never does.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lifeline_dataplane::crypto::AesKeyLen;
use lifeline_dataplane::{
    Encr, HEADROOM, InboundSa, Integ, Lifetime, Mode, OutboundSa, RecvMeta, SaParams, TAILROOM,
    Tunnel, TunnelConfig, Verdict,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const SIZES: [usize; 3] = [64, 512, 1400];
static GCM_KEY: [u8; 20] = [0x42; 20];
static CBC_KEY: [u8; 16] = [0x43; 16];
static MAC_KEY: [u8; 20] = [0x44; 20];

fn params(encr: Encr, window: u32) -> SaParams<'static> {
    let (enc_key, integ, integ_key): (&[u8], _, &[u8]) = match encr {
        Encr::AesGcm16(_) => (&GCM_KEY, None, &[]),
        Encr::AesCbc(_) => (&CBC_KEY, Some(Integ::HmacSha1_96), &MAC_KEY),
    };
    SaParams {
        spi: 0x1234_5678,
        encr,
        integ,
        enc_key,
        integ_key,
        esn: false,
        mode: Mode::Tunnel,
        replay_window: window,
        lifetime: Lifetime::unlimited(),
        idle_timeout: None,
    }
}

const TRANSFORMS: [(&str, Encr); 2] = [
    ("aes128gcm", Encr::AesGcm16(AesKeyLen::Aes128)),
    ("aes128cbc-sha1", Encr::AesCbc(AesKeyLen::Aes128)),
];

fn raw(c: &mut Criterion) {
    use ring::aead;
    let mut g = c.benchmark_group("raw_seal");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &[7; 16]).unwrap());
        let mut buf = vec![0u8; size];
        let mut n: u64 = 0;
        g.bench_with_input(BenchmarkId::new("ring-aes128gcm", size), &size, |b, _| {
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&n.to_be_bytes());
                let aad = [0u8; 8];
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(&aad),
                        &mut buf,
                    )
                    .unwrap();
                black_box(tag.as_ref()[0]);
            })
        });
        use aes_gcm::aead::{AeadInOut, KeyInit};
        let rc = aes_gcm::Aes128Gcm::new_from_slice(&[7; 16]).unwrap();
        g.bench_with_input(
            BenchmarkId::new("rustcrypto-aes128gcm", size),
            &size,
            |b, _| {
                b.iter(|| {
                    n += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&n.to_be_bytes());
                    let tag = rc
                        .encrypt_inout_detached(
                            &aes_gcm::Nonce::try_from(&nonce[..]).unwrap(),
                            &[0u8; 8],
                            buf.as_mut_slice().into(),
                        )
                        .unwrap();
                    black_box(tag[0]);
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("raw_open");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &[7; 16]).unwrap());
        let nonce = [1u8; 12];
        let mut sealed = vec![0u8; size];
        let tag = key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&[0u8; 8]),
                &mut sealed,
            )
            .unwrap();
        sealed.extend_from_slice(tag.as_ref());
        let mut work = sealed.clone();
        g.bench_with_input(BenchmarkId::new("ring-aes128gcm", size), &size, |b, _| {
            b.iter(|| {
                work.copy_from_slice(&sealed);
                let p = key
                    .open_in_place(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(&[0u8; 8]),
                        &mut work,
                    )
                    .unwrap();
                black_box(p.len());
            })
        });
    }
    g.finish();
}

fn esp(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("encap");
    for (name, encr) in TRANSFORMS {
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut out = OutboundSa::new(now, &params(encr, 64)).unwrap();
            let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    let r = out
                        .encapsulate(now, &mut buf, HEADROOM..HEADROOM + size, 4)
                        .unwrap();
                    black_box(r);
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("decap");
    for (name, encr) in TRANSFORMS {
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut out = OutboundSa::new(now, &params(encr, 0)).unwrap();
            // Replay window disabled so the same packet can be decapsulated repeatedly.
            let mut inb = InboundSa::new(now, &params(encr, 0)).unwrap();
            let mut sealed = vec![0u8; HEADROOM + size + TAILROOM];
            let r = out
                .encapsulate(now, &mut sealed, HEADROOM..HEADROOM + size, 4)
                .unwrap();
            let mut work = sealed.clone();
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    work[r.clone()].copy_from_slice(&sealed[r.clone()]);
                    black_box(inb.decapsulate(now, &mut work, r.clone()).unwrap());
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("roundtrip");
    for (name, encr) in TRANSFORMS {
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut out = OutboundSa::new(now, &params(encr, 64)).unwrap();
            let mut inb = InboundSa::new(now, &params(encr, 64)).unwrap();
            let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    let r = out
                        .encapsulate(now, &mut buf, HEADROOM..HEADROOM + size, 4)
                        .unwrap();
                    black_box(inb.decapsulate(now, &mut buf, r).unwrap());
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("tunnel_roundtrip");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let mut a = Tunnel::new(TunnelConfig::new(1, a_ip, Some(b_ip)));
        let mut bt = Tunnel::new(TunnelConfig::new(1, b_ip, Some(a_ip)));
        let p = params(Encr::AesGcm16(AesKeyLen::Aes128), 64);
        a.install_sa(
            now,
            OutboundSa::new(now, &p).unwrap(),
            InboundSa::new(now, &p).unwrap(),
        );
        bt.install_sa(
            now,
            OutboundSa::new(now, &p).unwrap(),
            InboundSa::new(now, &p).unwrap(),
        );
        let mut pkt = vec![0u8; size];
        pkt[0] = 0x45;
        pkt[2..4].copy_from_slice(&(size as u16).to_be_bytes());
        pkt[8] = 64;
        pkt[9] = 17;
        let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
        let meta = RecvMeta {
            from: SocketAddr::from(([192, 0, 2, 1], 4500)),
            tos: 0,
        };
        g.bench_with_input(BenchmarkId::new("aes128gcm", size), &size, |b, _| {
            b.iter(|| {
                buf[HEADROOM..HEADROOM + size].copy_from_slice(&pkt);
                let Verdict::ToNetwork(t) = a.send(now, &mut buf, HEADROOM..HEADROOM + size) else {
                    panic!("send")
                };
                let v = bt.receive(now, &mut buf, t.range, meta);
                assert!(matches!(v, Verdict::ToTunnel(_)));
                black_box(v);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, raw, esp);
criterion_main!(benches);
