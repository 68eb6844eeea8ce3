//! `GET /metrics`: every metric of the process in the Prometheus text format, and the HTTP
//! request metrics this crate records itself.
//!
//! The lower crates record through the `metrics` facade; this module installs the one
//! process-wide recorder (a Prometheus registry, rendered on request: no listener of its own)
//! the first time an app is built, so that the many apps a test process builds share it, and
//! each app keeps a [`Metrics`] handle in its app data.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use portico_core::metrics::KeptBy;

use crate::state::AppState;

/// HTTP requests answered, by `method`, `route` (the route's pattern, such as
/// `/client/v4/accounts/{account_id}/access/ai-controls/mcp/servers/{server_id}`; `unmatched`
/// for a request no route took) and `status`.
pub const HTTP_REQUESTS: &str = "portico_http_requests_total";
/// Time to answer an HTTP request (until the response head), by `method` and `route`.
pub const HTTP_REQUEST_DURATION: &str = "portico_http_request_duration_seconds";

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How often histogram samples are folded into their buckets between scrapes (so they do not
/// pile up when nobody scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Bucket bounds of every `_seconds` histogram: 100 µs to 60 s.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];
/// Bucket bounds of the group-commit size histograms (appends and events per commit).
const BATCH_BUCKETS: [f64; 12] =
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 2048.0, 16384.0];

/// The process's metrics registry, shared by every app of the process.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The process's registry, installed as the `metrics` recorder on first use.
    pub fn global() -> Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(install).clone()
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn install() -> Metrics {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            portico_core::metrics::exporter_installed();
            describe();
            let upkeep = handle.clone();
            let spawned =
                std::thread::Builder::new().name("portico-metrics".into()).spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "the metrics upkeep thread could not start");
            }
        }
        // Only this module installs a recorder; if something else got there first, `/metrics`
        // shows an empty registry rather than failing the app.
        Err(error) => tracing::warn!(%error, "another metrics recorder is installed"),
    }
    Metrics { handle }
}

/// The registry's settings: every latency and batch-size histogram is a Prometheus histogram
/// (with buckets), not a summary, so that instances can be aggregated.
fn builder() -> PrometheusBuilder {
    let with_buckets = || -> Result<PrometheusBuilder, BuildError> {
        let mut builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)?;
        for name in
            [portico_core::metrics::LOG_COMMIT_APPENDS, portico_core::metrics::LOG_COMMIT_EVENTS]
        {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), &BATCH_BUCKETS)?;
        }
        Ok(builder)
    };
    with_buckets().unwrap_or_else(|error| {
        tracing::warn!(%error, "histogram buckets rejected; histograms are rendered as summaries");
        PrometheusBuilder::new()
    })
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (until the response head), by method and route pattern."
    );
    portico_core::metrics::describe();
    portico_projections::metrics::describe();
    portico_gateway::metrics::describe();
}

/// `GET /metrics`.
pub async fn render(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    state.app.observe_metrics();
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(metrics.render())
}

/// Records one answered request. `route` is the pattern of the route that took it (never the
/// path, whose ids and search terms would make the label set unbounded).
pub fn record_request(method: &Method, route: Option<&str>, status: u16, started: Instant) {
    static DURATION: KeptBy<Histogram> = KeptBy::new();
    static REQUESTS: KeptBy<Counter> = KeptBy::new();
    let method = method_label(method);
    let route = route.unwrap_or("unmatched");
    // The method is a word and a route pattern has no space (actix's patterns are paths).
    DURATION
        .get(
            format_args!("{method} {route}"),
            || histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route.to_owned()),
        )
        .record(started.elapsed());
    REQUESTS
        .get(format_args!("{method} {route} {status}"), || {
            let (route, status) = (route.to_owned(), status.to_string());
            counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        })
        .increment(1);
}

/// The method as a label: any method beyond the standard ones is `other`, so that a client
/// cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
