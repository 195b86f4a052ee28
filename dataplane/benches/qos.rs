//! QoS cost on one core.
//!
//! `cargo bench -p lifeline-dataplane --bench qos -- --warm-up-time 1 --measurement-time 3`
//!
//! Groups (64, 512 and 1400-byte inner packets, throughput in inner bytes):
//! - `unshaped_tunnel/direct`: `Tunnel::send` (AES-128-GCM) of a copied packet: a tunnel with no
//!   QoS code in its path.
//! - `unshaped_tunnel/egress_branch`: the recommended driver fast path with the scheduler compiled
//!   in but no policy attached: one `Egress::is_attached()` branch, then `Tunnel::send`.
//!   Acceptance: within 2% of `direct`.
//! - `unshaped_tunnel/egress_passthrough`: the same through `Egress::offer` (the buffer moves into
//!   a `Packet` and back through `Offer::Send`): about 10 ns more per packet, so drivers should
//!   branch on `is_attached()` first.
//! - `shaped/vpn_sip`: `enqueue` + `dequeue` through `VPN-SIP-Tunnel1-Bandwidth` (CS4 marking,
//!   shaper), virtual time advancing at the shaped rate so every packet leaves: the per-packet cost
//!   of the shaped path without encryption.
//! - `shaped/vpn_sip_cbwfq_llq`: the same with a child policy (priority class + two bandwidth
//!   classes + class-default, DSCP classification, a policer), traffic spread over the classes.
//!
//! Before criterion runs, `passthrough_ratio` prints a contention-robust comparison of `direct`
//! and `egress_passthrough`: it alternates batches of the two and keeps the fastest batch of each
//! (other load on the machine only ever adds time), which is what the 2% criterion is judged on;
//! criterion's separate runs drift by more than that on a shared 2-core machine.
//!
//! Measured 2026-11-23 on the 2-vCPU build machine (load average ~4-8 from parallel builds; the
//! best-batch tables filter that out; criterion's own figures drifted by 10-40% between runs),
//! ns per packet:
//!
//! | inner size | direct | is_attached() branch | difference | offer() pass-through | difference |
//! |---|---|---|---|---|---|
//! | 64   | 149.2 | 149.1 | -0.1% | 157.4 | +5.5% |
//! | 512  | 217.5 | 217.6 | +0.0% | 223.5 | +2.8% |
//! | 1400 | 298.5 | 300.2 | +0.5% | 303.1 | +1.5% |
//!
//! | inner size | shaped: vpn_sip | shaped: vpn_sip + CBWFQ/LLQ child | Tunnel::send (AES-128-GCM) |
//! |---|---|---|---|
//! | 64   | 40.9 | 58.2 | 149.0 |
//! | 512  | 46.9 | 63.1 | 197.4 |
//! | 1400 | 60.1 | 75.1 | 298.8 |
// A benchmark binary may read the clock; the library never does.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use lifeline_dataplane::crypto::AesKeyLen;
use lifeline_dataplane::qos::{
    ClassSpec, Classifier, Dscp, Egress, Match, Offer, Packet, PoliceSpec, PolicySpec, Queueing,
    Rate, Scheduler,
};
use lifeline_dataplane::{
    Encr, HEADROOM, InboundSa, Lifetime, Mode, OutboundSa, SaParams, TAILROOM, Tunnel, TunnelConfig,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [64, 512, 1400];
static GCM_KEY: [u8; 20] = [0x42; 20];

fn params() -> SaParams<'static> {
    SaParams {
        spi: 0x1234_5678,
        encr: Encr::AesGcm16(AesKeyLen::Aes128),
        integ: None,
        enc_key: &GCM_KEY,
        integ_key: &[],
        esn: false,
        mode: Mode::Tunnel,
        replay_window: 64,
        lifetime: Lifetime::unlimited(),
        idle_timeout: None,
    }
}

fn inner(size: usize, dscp: u8) -> Vec<u8> {
    let mut pkt = vec![0u8; size];
    pkt[0] = 0x45;
    pkt[1] = dscp << 2;
    pkt[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 17;
    pkt
}

fn unshaped(c: &mut Criterion) {
    let mut g = c.benchmark_group("unshaped_tunnel");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut rig = Rig::new(size);
        g.bench_with_input(BenchmarkId::new("direct", size), &size, |b, _| {
            b.iter(|| rig.direct())
        });
        g.bench_with_input(BenchmarkId::new("egress_branch", size), &size, |b, _| {
            b.iter(|| rig.checked())
        });
        g.bench_with_input(
            BenchmarkId::new("egress_passthrough", size),
            &size,
            |b, _| b.iter(|| rig.via_egress()),
        );
    }
    g.finish();
}

fn child_policy() -> PolicySpec {
    let cls = |name: &str, d: Dscp, q: Queueing| {
        let mut c = ClassSpec::new(
            name,
            Classifier {
                match_any: false,
                matches: vec![Match::ProtocolIp, Match::Dscp(vec![d])],
            },
        );
        c.queueing = q;
        c
    };
    let mut voice = cls(
        "VOICE",
        Dscp::EF,
        Queueing::Priority {
            rate: Some(Rate::Percent(20)),
            burst_bytes: None,
        },
    );
    voice.police = Some(PoliceSpec::cir(u64::MAX / 4));
    PolicySpec {
        name: "CHILD".into(),
        classes: vec![
            voice,
            cls("VIDEO", Dscp::AF41, Queueing::Bandwidth(Rate::Percent(40))),
            cls("DATA", Dscp::AF21, Queueing::Bandwidth(Rate::Percent(20))),
        ],
    }
}

fn shaped(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("shaped");
    for (name, child) in [
        ("vpn_sip", None),
        ("vpn_sip_cbwfq_llq", Some(child_policy())),
    ] {
        for size in SIZES {
            g.throughput(Throughput::Elements(1));
            let spec = PolicySpec::vpn_sip(1, 1000, child.clone());
            let mut s = Scheduler::new(&spec, None).unwrap();
            let dscps = [Dscp::EF, Dscp::AF41, Dscp::AF21, Dscp::CS0];
            let pkts: Vec<Vec<u8>> = dscps.iter().map(|d| inner(size, d.0)).collect();
            // One packet time at 1 Mbit/s: the shaper lets every packet through.
            let step = Duration::from_nanos(size as u64 * 8 * 1000);
            let mut now = t0;
            let mut i = 0usize;
            let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
            let range = HEADROOM..HEADROOM + size;
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    buf[range.clone()].copy_from_slice(&pkts[i % 4]);
                    now += step;
                    s.enqueue(now, Packet::new(std::mem::take(&mut buf), range.clone()))
                        .unwrap();
                    let p = s.dequeue(now).unwrap();
                    black_box(p.bytes()[1]);
                    buf = p.into_parts().0;
                })
            });
        }
    }
    g.finish();
}

struct Rig {
    tunnel: Tunnel,
    egress: Egress,
    pkt: Vec<u8>,
    buf: Vec<u8>,
    now: Instant,
}

impl Rig {
    fn new(size: usize) -> Self {
        let now = Instant::now();
        let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let mut tunnel = Tunnel::new(TunnelConfig::new(1, a_ip, Some(b_ip)));
        let p = params();
        tunnel.install_sa(
            now,
            OutboundSa::new(now, &p).unwrap(),
            InboundSa::new(now, &p).unwrap(),
        );
        Rig {
            tunnel,
            egress: Egress::new(),
            pkt: inner(size, 0),
            buf: vec![0u8; HEADROOM + size + TAILROOM],
            now,
        }
    }

    #[inline(never)]
    fn direct(&mut self) {
        let range = HEADROOM..HEADROOM + self.pkt.len();
        self.buf[range.clone()].copy_from_slice(&self.pkt);
        let v = self.tunnel.send(self.now, &mut self.buf, range);
        black_box(v);
    }

    /// The recommended driver fast path: one branch on `Egress::is_attached`.
    #[inline(never)]
    fn checked(&mut self) {
        if self.egress.is_attached() {
            self.via_egress();
        } else {
            let range = HEADROOM..HEADROOM + self.pkt.len();
            self.buf[range.clone()].copy_from_slice(&self.pkt);
            let v = self.tunnel.send(self.now, &mut self.buf, range);
            black_box(v);
        }
    }

    #[inline(never)]
    fn via_egress(&mut self) {
        let range = HEADROOM..HEADROOM + self.pkt.len();
        self.buf[range.clone()].copy_from_slice(&self.pkt);
        let p = Packet::new(std::mem::take(&mut self.buf), range);
        if let Offer::Send(mut p) = self.egress.offer(self.now, p) {
            let r = p.range();
            let v = self.tunnel.send(self.now, p.buffer_mut(), r);
            black_box(v);
            self.buf = p.into_parts().0;
        }
    }
}

fn passthrough_ratio() {
    const BATCH: u32 = 512;
    const ROUNDS: u32 = 400;
    println!("passthrough_ratio: best batch of {ROUNDS} alternating rounds, ns per packet");
    println!(
        "| inner size | direct | is_attached() branch | difference | offer() pass-through | difference |"
    );
    println!("|---|---|---|---|---|---|");
    for size in SIZES {
        let mut rig = Rig::new(size);
        let (mut best_d, mut best_c, mut best_e) = (f64::MAX, f64::MAX, f64::MAX);
        for round in 0..ROUNDS {
            let time = |f: &mut dyn FnMut()| {
                let t = Instant::now();
                for _ in 0..BATCH {
                    f();
                }
                t.elapsed().as_nanos() as f64 / f64::from(BATCH)
            };
            // Alternate which runs first so neither always gets the warmer cache.
            if round % 2 == 0 {
                best_d = best_d.min(time(&mut || rig.direct()));
                best_c = best_c.min(time(&mut || rig.checked()));
                best_e = best_e.min(time(&mut || rig.via_egress()));
            } else {
                best_e = best_e.min(time(&mut || rig.via_egress()));
                best_c = best_c.min(time(&mut || rig.checked()));
                best_d = best_d.min(time(&mut || rig.direct()));
            }
        }
        println!(
            "| {size} | {best_d:.1} | {best_c:.1} | {:+.1}% | {best_e:.1} | {:+.1}% |",
            (best_c / best_d - 1.0) * 100.0,
            (best_e / best_d - 1.0) * 100.0
        );
    }
}

/// Best-batch ns per packet of enqueue + dequeue on the shaped path (the copy of the inner packet
/// into the buffer included, as in the criterion group), next to the encryption it precedes.
fn shaped_cost() {
    const BATCH: u32 = 512;
    const ROUNDS: u32 = 300;
    println!("shaped_cost: best batch of {ROUNDS} rounds, ns per packet (enqueue + dequeue)");
    println!("| inner size | vpn_sip | vpn_sip + CBWFQ/LLQ child | Tunnel::send (AES-128-GCM) |");
    println!("|---|---|---|---|");
    for size in SIZES {
        let mut best = [f64::MAX; 3];
        let mut rig = Rig::new(size);
        let mut scheds: Vec<Scheduler> = [None, Some(child_policy())]
            .into_iter()
            .map(|c| Scheduler::new(&PolicySpec::vpn_sip(1, 1000, c), None).unwrap())
            .collect();
        let dscps = [Dscp::EF, Dscp::AF41, Dscp::AF21, Dscp::CS0];
        let pkts: Vec<Vec<u8>> = dscps.iter().map(|d| inner(size, d.0)).collect();
        let step = Duration::from_nanos(size as u64 * 8 * 1000);
        let mut now = Instant::now();
        let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
        let range = HEADROOM..HEADROOM + size;
        let mut i = 0usize;
        for _ in 0..ROUNDS {
            for (k, s) in scheds.iter_mut().enumerate() {
                let t = Instant::now();
                for _ in 0..BATCH {
                    i = i.wrapping_add(1);
                    buf[range.clone()].copy_from_slice(&pkts[i % 4]);
                    now += step;
                    s.enqueue(now, Packet::new(std::mem::take(&mut buf), range.clone()))
                        .unwrap();
                    let p = s.dequeue(now).unwrap();
                    black_box(p.bytes()[1]);
                    buf = p.into_parts().0;
                }
                best[k] = best[k].min(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
            }
            let t = Instant::now();
            for _ in 0..BATCH {
                rig.direct();
            }
            best[2] = best[2].min(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
        println!(
            "| {size} | {:.1} | {:.1} | {:.1} |",
            best[0], best[1], best[2]
        );
    }
}

criterion_group!(benches, unshaped, shaped);

fn main() {
    passthrough_ratio();
    shaped_cost();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
