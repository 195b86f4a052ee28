//! Parse + validate + render throughput over every seed fixture.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn fixtures() -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut all = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    files.sort();
    for f in files {
        all.push_str(&std::fs::read_to_string(f).unwrap());
        all.push_str("\nend\n");
    }
    all
}

fn bench(c: &mut Criterion) {
    let text = fixtures();
    let mut g = c.benchmark_group("config");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_all_fixtures", |b| {
        b.iter(|| lifeline_config::parse(std::hint::black_box(&text)))
    });
    let parsed = lifeline_config::parse(&text);
    g.bench_function("render_all_fixtures", |b| {
        b.iter(|| lifeline_config::render(std::hint::black_box(&parsed.config)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
