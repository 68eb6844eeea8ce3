//! Replay rate of the projections: a fresh runner folds 1,000,000 events from position 0 into
//! the server catalog and the portal views (read from the log, decoded, upcast where needed,
//! applied). Each iteration is one full replay, so elements/s is events/s.
//!
//! The history: 1,000 servers with tool overrides, 100 portals of 20 servers each, then
//! updates until 1,000,000 events: 55% server updates (new overrides, re-merged into every
//! portal naming the server), 35% credential rotations, 10% portal updates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: portico_benches::Allocator = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_benches::{BenchLog, metadata};
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::portal::{
    CodeMode, PortalAdded, PortalServer, PortalSettings, PortalUpdated,
};
use portico_core::domain::server::{
    AuthType, CredentialKind, ServerAdded, ServerCredentialSet, ServerSettings, ServerUpdated,
};
use portico_core::{Durability, Event, ExpectedVersion, NewEvent};
use portico_projections::{NoCheckpoints, ProjectionRunner, ReadModels, RunnerOptions};

const EVENTS: u64 = 1_000_000;
const SERVERS: u64 = 1_000;
const PORTALS: u64 = 100;
const SERVERS_PER_PORTAL: u64 = 20;

fn server_id(n: u64) -> ServerId {
    ServerId::parse(format!("server-{n}")).unwrap()
}

fn server_settings(n: u64, revision: u64) -> ServerSettings {
    ServerSettings {
        name: format!("Server {n} rev {revision}"),
        description: Some("An upstream MCP server".into()),
        updated_tools: (0..3)
            .map(|t| CapabilityOverride {
                name: format!("tool{t}"),
                alias: Some(format!("t{t}r{}", revision % 5)),
                description: None,
                enabled: Some(revision.is_multiple_of(2)),
            })
            .collect(),
        ..ServerSettings::default()
    }
}

fn portal_settings(p: u64, revision: u64) -> PortalSettings {
    PortalSettings {
        name: format!("Portal {p} rev {revision}"),
        hostname: format!("p{p}.example.com"),
        description: None,
        code_mode: CodeMode::OptIn,
        secure_web_gateway: false,
        servers: (0..SERVERS_PER_PORTAL)
            .map(|i| PortalServer {
                server_id: server_id((p * 7 + i * 13 + revision) % SERVERS),
                default_disabled: i % 4 == 0,
                on_behalf: true,
                updated_tools: Vec::new(),
                updated_prompts: Vec::new(),
            })
            .collect(),
    }
}

/// Fills a log with the history described at the top.
fn populate(rt: &tokio::runtime::Runtime, bench: &BenchLog) {
    rt.block_on(async {
        let log = &bench.log;
        let meta = metadata();
        let mut written = 0u64;
        let mut batch: Vec<(String, Event)> = Vec::new();
        for n in 0..SERVERS {
            batch.push((
                format!("server-{n}"),
                Event::ServerAdded(ServerAdded {
                    server_id: server_id(n),
                    hostname: format!("https://upstream{n}.example.com/mcp"),
                    auth_type: AuthType::Bearer,
                    settings: server_settings(n, 0),
                }),
            ));
        }
        for p in 0..PORTALS {
            batch.push((
                format!("portal-{p}"),
                Event::PortalAdded(PortalAdded {
                    portal_id: PortalId::parse(format!("portal-{p}")).unwrap(),
                    settings: portal_settings(p, 0),
                }),
            ));
        }
        let mut i = 0u64;
        while written + batch.len() as u64 + 1 < EVENTS {
            let n = (i * 7919) % SERVERS;
            let event = match i % 20 {
                0 | 1 => {
                    let p = i % PORTALS;
                    (
                        format!("portal-{p}"),
                        Event::PortalUpdated(PortalUpdated {
                            portal_id: PortalId::parse(format!("portal-{p}")).unwrap(),
                            settings: portal_settings(p, i),
                        }),
                    )
                }
                2..=8 => (
                    format!("server-{n}"),
                    Event::ServerCredentialSet(ServerCredentialSet {
                        server_id: server_id(n),
                        credential: CredentialKind::AuthCredentials,
                        version: u32::try_from(i).unwrap(),
                    }),
                ),
                _ => (
                    format!("server-{n}"),
                    Event::ServerUpdated(ServerUpdated {
                        server_id: server_id(n),
                        settings: server_settings(n, i),
                    }),
                ),
            };
            batch.push(event);
            i += 1;
            if batch.len() >= 5_000 {
                written += flush(log, &mut batch, &meta).await;
            }
        }
        written += flush(log, &mut batch, &meta).await;
        assert!(written >= EVENTS - 1);
    });
}

/// Appends a batch concurrently, one event per append, so the log's group commit takes many
/// at once (the order within a batch does not matter to the benchmark).
async fn flush(
    log: &Arc<dyn portico_core::EventLog>,
    batch: &mut Vec<(String, Event)>,
    meta: &portico_core::EventMetadata,
) -> u64 {
    let tasks: Vec<_> = batch
        .drain(..)
        .map(|(stream, event)| {
            let (log, meta) = (Arc::clone(log), meta.clone());
            tokio::spawn(async move {
                log.append(&stream, ExpectedVersion::Any, vec![NewEvent::new(event)], &meta)
                    .await
                    .unwrap();
            })
        })
        .collect();
    let n = tasks.len() as u64;
    for t in tasks {
        t.await.unwrap();
    }
    n
}

fn replay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut backends = vec![("sqlite", portico_benches::sqlite(Durability::Process))];
    if let Some(pg) = rt.block_on(portico_benches::postgres(Durability::Process)) {
        backends.push(("postgres", pg));
    }
    for (label, bench) in &backends {
        let started = Instant::now();
        populate(&rt, bench);
        eprintln!("{label}: wrote {EVENTS} events in {:?}", started.elapsed());
        let mut group = c.benchmark_group(format!("replay/{label}"));
        group.sample_size(10).measurement_time(Duration::from_secs(20));
        group.throughput(Throughput::Elements(EVENTS));
        group.bench_function("read_models_1m_events", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let log = Arc::clone(&bench.log);
                    let start = Instant::now();
                    let runner: ProjectionRunner<ReadModels> = rt
                        .block_on(ProjectionRunner::start(
                            log,
                            Arc::new(NoCheckpoints),
                            RunnerOptions::default(),
                        ))
                        .unwrap();
                    total += start.elapsed();
                    assert!(runner.position() >= EVENTS - 1);
                    assert_eq!(runner.read().portals.len() as u64, PORTALS);
                    drop(runner);
                }
                total
            });
        });
        // The two halves on their own: reading and decoding, and folding decoded events.
        group.bench_function("read_and_decode_only", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let n = rt.block_on(async {
                        let mut sub =
                            portico_core::log::Subscription::new(Arc::clone(&bench.log), 0)
                                .with_batch(4096);
                        let mut n = 0u64;
                        loop {
                            let batch = sub.next_batch().await.unwrap();
                            if batch.is_empty() {
                                break n;
                            }
                            n += batch.len() as u64;
                        }
                    });
                    total += start.elapsed();
                    assert!(n >= EVENTS - 1);
                }
                total
            });
        });
        let events = rt.block_on(bench.log.read_all(0, EVENTS as usize)).unwrap();
        group.bench_function("fold_only", |b| {
            b.iter(|| {
                let mut models = ReadModels::default();
                for e in &events {
                    portico_projections::Projection::apply(&mut models, e);
                }
                models.portals.len()
            });
        });
        group.finish();
    }
}

criterion_group!(benches, replay);
criterion_main!(benches);
