//! What one execution costs in each engine, without a portal around it: `return 1+1`, one call
//! through the bridge and ten under `Promise.all` (the bridge answers at once, so the figures
//! are the engine's own overhead). QuickJS always; workerd when `PORTICO_WORKERD` names its
//! binary (two processes, as `portico serve` runs it).
//!
//! This is a benchmark of the library alone, kept in its crate; `benches/load/codemode.sh`
//! measures executions through a portal.
//!
//! `cargo bench -p portico-codemode --bench sandbox`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use portico_codemode::normalize::normalize;
use portico_codemode::quickjs::QuickJs;
use portico_codemode::sandbox::{Bridge, Limits, Run, Sandbox, execute};
use portico_codemode::workerd::{self, Workerd, WorkerdConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Answers every call with its input.
struct Echo;

#[async_trait]
impl Bridge for Echo {
    async fn call(&self, _name: &str, input: Value) -> Result<Value, String> {
        Ok(input)
    }
}

const CASES: [(&str, &str); 3] = [
    ("return 1+1", "return 1+1"),
    ("one call", "async () => codemode.echo({text: 'hi'})"),
    (
        "ten calls",
        "async () => Promise.all(Array.from({length: 10}, (_, i) => codemode.echo({i})))",
    ),
];

fn engine(c: &mut Criterion, runtime: &tokio::runtime::Runtime, sandbox: &dyn Sandbox) {
    let mut group = c.benchmark_group(sandbox.engine().as_str());
    group.measurement_time(Duration::from_secs(5));
    for (name, code) in CASES {
        let code = normalize(code);
        group.bench_function(name, |b| {
            b.to_async(runtime).iter(|| async {
                let run = Run {
                    code: code.clone(),
                    bridge: Arc::new(Echo),
                    limits: Limits::default(),
                    cancel: CancellationToken::new(),
                };
                let execution = execute(sandbox, run).await;
                assert!(execution.outcome.is_ok(), "{:?}", execution.outcome);
            });
        });
    }
    group.finish();
}

fn engines(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    engine(c, &runtime, &QuickJs::new(32));
    match workerd::find_binary() {
        Some(binary) => {
            let pool = runtime.block_on(Workerd::start(WorkerdConfig::new(binary))).unwrap();
            engine(c, &runtime, &pool);
        }
        None => eprintln!("PORTICO_WORKERD is not set: workerd is not measured"),
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
