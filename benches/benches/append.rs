//! Append throughput: N concurrent writers, one small event per append, `process` durability.
//! Each iteration is one append by every writer, so criterion's elements/s is events/s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: portico_benches::Allocator = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_benches::{BenchLog, metadata, small_event};
use portico_core::{Durability, ExpectedVersion};

const WRITERS: [u64; 3] = [1, 16, 64];

fn run(rt: &tokio::runtime::Runtime, bench: &BenchLog, writers: u64, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let log = Arc::clone(&bench.log);
            tasks.push(tokio::spawn(async move {
                let meta = metadata();
                let stream = format!("tool-calls-{w}");
                for i in 0..iters {
                    log.append(&stream, ExpectedVersion::Any, vec![small_event(i)], &meta)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut backends = vec![("sqlite", portico_benches::sqlite(Durability::Process))];
    if let Some(pg) = rt.block_on(portico_benches::postgres(Durability::Process)) {
        backends.push(("postgres", pg));
    }
    for (label, bench) in &backends {
        let mut group = c.benchmark_group(format!("append/{label}"));
        group.measurement_time(Duration::from_secs(8)).sample_size(10);
        for writers in WRITERS {
            group.throughput(Throughput::Elements(writers));
            group.bench_function(format!("{writers}_writers"), |b| {
                b.iter_custom(|iters| run(&rt, bench, writers, iters));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, append);
criterion_main!(benches);
