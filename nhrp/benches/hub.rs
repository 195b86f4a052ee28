//! One hub, 1000 simulated spokes, in process:
//! registrations per second at the hub, hub memory per registered spoke, and
//! the CPU cost of one spoke-to-spoke resolution (request -> hub -> target ->
//! direct reply), all in virtual time.
//!
//! `cargo bench -p lifeline-nhrp --bench hub -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use criterion::{BatchSize, Criterion, Throughput};
use lifeline_nhrp::{AuthKey, Config, Nhc, NhrpNode, Nhs, Resolution};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SPOKES: u32 = 1000;
const HUB_TUN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HUB_NBMA: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);

fn tun(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 16, 0)) + i)
}

fn nbma(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 18, 0, 0)) + i)
}

fn hub(now: Instant) -> Nhs {
    let mut c = Config::new("Tunnel0", HUB_TUN, 16, HUB_NBMA);
    c.gre_key = Some(100_000);
    c.holdtime = Duration::from_secs(600);
    c.authentication = Some(AuthKey::new(b"donttell"));
    c.multicast_dynamic = true;
    c.max_send = (u32::MAX, Duration::from_secs(10));
    Nhs::new(c, now)
}

fn spoke(i: u32, now: Instant) -> Nhc {
    let mut c = Config::new("Tunnel0", tun(i), 16, nbma(i));
    c.gre_key = Some(100_000);
    c.holdtime = Duration::from_secs(300);
    c.authentication = Some(AuthKey::new(b"donttell"));
    c.static_maps.push((HUB_TUN, HUB_NBMA));
    c.nhs.push(HUB_TUN);
    // Virtual time stands still in the benchmark: lift the max-send quota.
    c.max_send = (u32::MAX, Duration::from_secs(10));
    c.first_request_id = i * 1000 + 1;
    Nhc::new(c, now)
}

/// Each spoke's first Registration Request, as bytes.
fn registrations(spokes: &mut [Nhc], now: Instant) -> Vec<(Ipv4Addr, Vec<u8>)> {
    spokes
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            s.handle_timeout(now);
            (nbma(i as u32), s.poll_transmit().unwrap().payload)
        })
        .collect()
}

fn register_all(h: &mut Nhs, regs: &[(Ipv4Addr, Vec<u8>)], now: Instant) {
    for (from, bytes) in regs {
        h.handle_input(now, *from, bytes);
        while let Some(t) = h.poll_transmit() {
            black_box(t);
        }
        while h.poll_event().is_some() {}
    }
}

fn memory_report(regs: &[(Ipv4Addr, Vec<u8>)], now: Instant) {
    let mut h = hub(now);
    let region = Region::new(GLOBAL);
    register_all(&mut h, regs, now);
    let s = region.change();
    // stats_alloc counts a realloc's new size in bytes_allocated and its old
    // size in bytes_deallocated, so the difference is the live heap.
    let net = s.bytes_allocated as i64 - s.bytes_deallocated as i64;
    eprintln!(
        "hub memory: {} spokes registered, {} bytes net heap ({} bytes/spoke; Entry is {} bytes), cache entries {}",
        SPOKES,
        net,
        net / i64::from(SPOKES),
        std::mem::size_of::<lifeline_nhrp::Entry>(),
        h.core().cache().len()
    );
    let entries: Vec<lifeline_nhrp::Entry> = h.core().cache().iter().cloned().collect();
    let region = Region::new(GLOBAL);
    let mut cache = lifeline_nhrp::Cache::new();
    for e in entries {
        cache.insert(e);
    }
    let s = region.change();
    let net = s.bytes_allocated as i64 - s.bytes_deallocated as i64;
    eprintln!(
        "  of which the cache alone: {} bytes/spoke",
        net / i64::from(SPOKES)
    );
    black_box(cache);
}

/// Delivers packets between the hub (index SPOKES) and spokes until quiet.
fn pump(h: &mut Nhs, spokes: &mut [Nhc], now: Instant) {
    loop {
        let mut moved = false;
        while let Some(t) = h.poll_transmit() {
            moved = true;
            let i = u32::from(t.nbma_dst) - u32::from(nbma(0));
            spokes[i as usize].handle_input(now, HUB_NBMA, &t.payload);
        }
        for i in 0..spokes.len() {
            while let Some(t) = spokes[i].poll_transmit() {
                moved = true;
                let from = nbma(i as u32);
                if t.nbma_dst == HUB_NBMA {
                    h.handle_input(now, from, &t.payload);
                } else {
                    let j = u32::from(t.nbma_dst) - u32::from(nbma(0));
                    spokes[j as usize].handle_input(now, from, &t.payload);
                }
            }
            while spokes[i].poll_event().is_some() {}
        }
        while h.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
}

fn main() {
    let now = Instant::now();
    let mut spokes: Vec<Nhc> = (0..SPOKES).map(|i| spoke(i, now)).collect();
    let regs = registrations(&mut spokes, now);
    memory_report(&regs, now);

    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("hub");
        g.throughput(Throughput::Elements(u64::from(SPOKES)));
        g.bench_function("register_1000_spokes", |b| {
            b.iter_batched(
                || hub(now),
                |mut h| register_all(&mut h, &regs, now),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    // A registered network: hub + 1000 spokes.
    let mut h = hub(now);
    register_all(&mut h, &regs, now);
    for s in spokes.iter_mut() {
        while s.poll_transmit().is_some() {}
    }
    let mut k = 1u32;
    c.bench_function("resolution_round_trip_1000_spokes", |b| {
        b.iter(|| {
            k = k % (SPOKES - 1) + 1;
            let r = spokes[0].resolve(now, tun(k));
            debug_assert_eq!(r, Resolution::Pending);
            pump(&mut h, &mut spokes, now);
            let got = spokes[0].resolve(now, tun(k));
            assert!(matches!(got, Resolution::Known { .. }), "{got:?}");
            spokes[0].core_mut().clear_dynamic(now);
            spokes[k as usize].core_mut().clear_dynamic(now);
            while spokes[0].poll_event().is_some() {}
            while spokes[k as usize].poll_event().is_some() {}
        })
    });
    c.final_summary();
}
