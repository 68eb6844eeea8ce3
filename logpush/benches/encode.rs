//! Encoding one batch of 1,000,000 `mcp_portal_logs` records (the largest `max_upload_records`
//! allows) as Parquet, NDJSON.gz and CSV.gz, with every field selected: rows per second, and
//! the size of each object (printed once before the measurements).
//!
//! The records look like a busy portal's: 40 servers with 25 tools each, 2,000 users with a
//! few sessions each, one call in twenty failed, one in fifty a prompt or resource read.
//!
//! This is a benchmark of the library alone, kept in its crate: `portico-benches` links the
//! whole application, which this measurement does not need.
//!
//! `cargo bench -p portico-logpush --bench encode`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use portico_core::domain::call::AuditedMethod;
use portico_logpush::{Encoder, McpPortalLog, OutputOptions};

const ROWS: usize = 1_000_000;

/// A deterministic stream of pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn records() -> Vec<McpPortalLog> {
    let mut rng = Rng(7);
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let mut nanos = 0i64;
    (0..ROWS)
        .map(|i| {
            // About 3,000 calls a second, as a busy portal would see.
            nanos += 1 + rng.below(600_000) as i64;
            let server = rng.below(40);
            let user = rng.below(2_000);
            let failed = rng.below(20) == 0;
            let kind = rng.below(100);
            let method = match kind {
                0 => AuditedMethod::PromptsGet,
                1 => AuditedMethod::ResourcesRead,
                _ => AuditedMethod::ToolsCall,
            };
            let server_id = format!("server-{server}");
            McpPortalLog {
                position: i as u64 + 1,
                client_country: None,
                client_ip: Some(format!("10.{}.{}.{}", user / 256 % 256, user % 256, 1 + user % 7)),
                colo_code: None,
                datetime: start + chrono::Duration::nanoseconds(nanos),
                error: failed.then(|| "upstream timed out after 30000 ms".to_owned()),
                method,
                portal_aud: Some(
                    "b4f1e2d3c4b5a6978899aabbccddeeff00112233445566778899aabbccddeeff".into(),
                ),
                portal_id: "engineering".into(),
                prompt_get_name: (kind == 0).then(|| format!("{server_id}_review")),
                resource_read_uri: (kind == 1)
                    .then(|| format!("file:///srv/{server_id}/docs/{}.md", rng.below(10_000))),
                server_aud: None,
                server_id: Some(server_id.clone()),
                server_response_duration_ms: (!failed).then(|| rng.below(2_000) as i64),
                server_url: Some(format!("https://{server_id}.mcp.example.com/mcp")),
                session_id: Some(format!("{:032x}", user * 8 + rng.below(4))),
                success: !failed,
                tool_call_name: (kind > 1).then(|| format!("{server_id}_tool_{}", rng.below(25))),
                user_email: Some(format!("user{user}@example.com")),
                user_id: format!("3c1f0a9e-{user:04}-4000-8000-00000000{user:04}"),
                event_id: format!("0190a3c4-{:04x}-7000-8000-{:012x}", i % 65_536, i),
                status: if failed { "timeout" } else { "ok" },
                policy_ids: format!(r#"["allow-{server_id}"]"#),
                duration_ms: 1 + rng.below(2_100) as i64,
            }
        })
        .collect()
}

fn encoder(output_type: &str) -> Encoder {
    let options: OutputOptions =
        serde_json::from_value(serde_json::json!({"output_type": output_type})).unwrap();
    Encoder::new(options.validate().unwrap(), 1)
}

fn encode(c: &mut Criterion) {
    let records = records();
    for output_type in ["parquet", "ndjson", "csv"] {
        let object = encoder(output_type).encode(&records).unwrap();
        println!(
            "{output_type}: {ROWS} rows -> {} bytes ({:.1} bytes/row) as {}",
            object.body.len(),
            object.body.len() as f64 / ROWS as f64,
            object.extension
        );
    }
    let mut group = c.benchmark_group("encode_1m_rows");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(ROWS as u64));
    for output_type in ["parquet", "ndjson", "csv"] {
        let encoder = encoder(output_type);
        group.bench_function(output_type, |b| {
            b.iter(|| black_box(encoder.encode(black_box(&records)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
