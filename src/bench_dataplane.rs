//! `lifeline bench dataplane`: aggregate ESP seal+open throughput of the data-plane worker code over
//! several tunnels, with 1, 2, ... threads (build with --release).
//!
//! Each tunnel is a pair of [`SharedTunnel`]s keyed with each other (AES-256-GCM, static keys, replay
//! window 64). Thread k of N owns the tunnels with `idx % N == k`, as `run --dataplane-threads N` assigns
//! them, and loops: seal a batch of 32 inner packets on the tunnel's near end with
//! [`Engine::seal`] (one lock per batch), stage each ESP packet in a pooled buffer as a worker does, open
//! them on the far end with [`Engine::open`] (one lock per batch), stage the opened packets. No sockets:
//! this measures the crypto, the per-batch locking and the buffer pool, which is what the threads split.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dataplane::crypto::AesKeyLen;
use dataplane::{
    Encr, InboundSa, Lifetime, Mode, OutboundSa, RecvMeta, SaParams, Tunnel, TunnelConfig,
};

use crate::fastpath::{Engine, SharedTunnel};
use crate::workers::{BATCH, Staged, stage};

static KEY: [u8; 36] = [0x42; 36];

fn params(spi: u32) -> SaParams<'static> {
    SaParams {
        spi,
        encr: Encr::AesGcm16(AesKeyLen::Aes256),
        integ: None,
        enc_key: &KEY,
        integ_key: &[],
        esn: false,
        mode: Mode::Tunnel,
        replay_window: 64,
        lifetime: Lifetime::unlimited(),
        idle_timeout: None,
    }
}

/// Tunnel `i`'s two ends, keyed with each other.
fn pair(i: usize, now: Instant) -> anyhow::Result<(SharedTunnel, SharedTunnel)> {
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let id = u32::try_from(i)?;
    let mut a = Tunnel::new(TunnelConfig::new(id, a_ip, Some(b_ip)));
    let mut b = Tunnel::new(TunnelConfig::new(id, b_ip, Some(a_ip)));
    let (ab, ba) = (params(0x1000 + id), params(0x2000 + id));
    let err = |e| anyhow::anyhow!("SA refused: {e:?}");
    let a_out = OutboundSa::new(now, &ab).map_err(err)?;
    let b_in = InboundSa::new(now, &ab).map_err(err)?;
    let b_out = OutboundSa::new(now, &ba).map_err(err)?;
    let a_in = InboundSa::new(now, &ba).map_err(err)?;
    a.install_sa(now, a_out, a_in);
    b.install_sa(now, b_out, b_in);
    Ok((SharedTunnel::new(a), SharedTunnel::new(b)))
}

/// An IPv4/UDP packet of `len` bytes with a valid header checksum.
fn packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(28)];
    let len = p.len();
    p[0] = 0x45;
    p[2..4].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 1]);
    p[16..20].copy_from_slice(&[10, 2, 0, 1]);
    let mut s: u32 = p[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    p[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    p
}

/// CPU time (user + system) of the calling thread, from `/proc/thread-self/stat` (clock ticks of 10 ms).
fn thread_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3); utime and stime
    // are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One measurement: `threads` threads over `tunnels` tunnel pairs for `time`; (packets through, seconds,
/// CPU seconds the threads used).
fn measure(
    tunnels: usize,
    threads: usize,
    size: usize,
    time: Duration,
) -> anyhow::Result<(u64, f64, f64)> {
    let now = Instant::now();
    let pairs: Vec<(SharedTunnel, SharedTunnel)> = (0..tunnels)
        .map(|i| pair(i, now))
        .collect::<anyhow::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let cpu_ms = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for k in 0..threads {
        let mine: Vec<(SharedTunnel, SharedTunnel)> = pairs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % threads == k)
            .map(|(_, p)| p.clone())
            .collect();
        let (stop, total, barrier) = (stop.clone(), total.clone(), barrier.clone());
        let cpu_ms = cpu_ms.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("ll-dp-{k}"))
                .spawn(move || {
                    let inner = packet(size);
                    let mut engine = Engine::default();
                    let mut esp: Vec<Staged> = Vec::with_capacity(2 * BATCH);
                    let mut plain: Vec<Staged> = Vec::with_capacity(2 * BATCH);
                    let meta = RecvMeta {
                        from: std::net::SocketAddr::from(([192, 0, 2, 1], 0)),
                        tos: 0,
                    };
                    let mut done = 0u64;
                    barrier.wait();
                    let cpu0 = thread_cpu();
                    while !stop.load(Ordering::Relaxed) {
                        for (a, b) in &mine {
                            let t = Instant::now();
                            engine.seal(t, a, std::iter::repeat_n(&inner[..], BATCH), &mut |o| {
                                stage(&mut esp, o)
                            });
                            let r = engine.open(
                                t,
                                b,
                                esp.iter().filter_map(|s| match s {
                                    Staged::Raw { bytes, .. } => Some((&bytes[..], meta)),
                                    _ => None,
                                }),
                                &mut |o| stage(&mut plain, o),
                            );
                            done += r.done as u64;
                            esp.clear();
                            plain.clear();
                        }
                    }
                    total.fetch_add(done, Ordering::Relaxed);
                    let used = thread_cpu().saturating_sub(cpu0);
                    cpu_ms.fetch_add(used.as_millis() as u64, Ordering::Relaxed);
                })?,
        );
    }
    barrier.wait();
    let t0 = Instant::now();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Ok((
        total.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
        cpu_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    ))
}

pub fn run(
    tunnels: usize,
    threads: &[usize],
    sizes: &[usize],
    seconds: f64,
) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(tunnels > 0, "--tunnels must be at least 1");
    anyhow::ensure!(
        threads.iter().all(|&n| n > 0),
        "--threads counts must be at least 1"
    );
    println!(
        "lifeline bench dataplane: {tunnels} tunnels, AES-256-GCM, seal + open per packet, batches of {BATCH}, {} cores available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "(cores used = the threads' CPU time / wall time: other load on the machine caps it; per core = \
         packets/s / cores used)"
    );
    println!(
        "{:>6} {:>8} {:>12} {:>10} {:>9} {:>11} {:>15}",
        "bytes", "threads", "packets/s", "Gbit/s", "speedup", "cores used", "packets/s/core"
    );
    for &size in sizes {
        let mut base = None;
        for &n in threads {
            let (pkts, secs, cpu) = measure(tunnels, n, size, Duration::from_secs_f64(seconds))?;
            let cores = cpu / secs;
            let pps = pkts as f64 / secs;
            let base = *base.get_or_insert(pps);
            println!(
                "{:>6} {:>8} {:>12.0} {:>10.2} {:>8.2}x {:>11.2} {:>15.0}",
                size,
                n,
                pps,
                pps * size as f64 * 8.0 / 1e9,
                pps / base,
                cores,
                if cores > 0.0 { pps / cores } else { 0.0 }
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
