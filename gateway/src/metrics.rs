//! The data plane's metrics, recorded through the `metrics` facade (see
//! `portico_core::metrics`).
//!
//! Labels hold only ids the admin configured (portal and server ids) and values from fixed sets
//! (methods, outcomes, statuses): never a user, a tool argument, a name a client sent, or a URL.

use std::time::Duration;

use metrics::{
    Counter, Histogram, Label, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use portico_core::domain::call::AuditedMethod;
use portico_core::domain::ids::{PortalId, ServerId};
use portico_core::metrics::{Kept, KeptBy};
use portico_projections::catalog::SyncStatus;

/// Audited MCP requests (`tools/call`, `prompts/get`, `resources/read`) by `portal`, `server`
/// (empty when the name matched no server), `method` and `outcome` (the audit event's status, or
/// `not_recorded` when the event could not be appended and the client got an error).
pub const MCP_REQUESTS: &str = "portico_mcp_requests_total";
/// Time spent waiting on the upstream for an audited request, by `portal`, `server`, `method`.
pub const MCP_UPSTREAM_DURATION: &str = "portico_mcp_upstream_duration_seconds";
/// Time from an audited request reaching its session's handler until its answer is ready (its
/// audit event appended), by `portal`, `server`, `method`: with the upstream's share above and
/// the log's append time, where a request's time inside Portico goes.
pub const MCP_REQUEST_DURATION: &str = "portico_mcp_request_duration_seconds";
/// MCP sessions open now.
pub const MCP_SESSIONS_OPEN: &str = "portico_mcp_sessions_open";
/// Requests of a session answered in place, without rmcp's session machinery (see
/// `session::direct`), by `answer` (`json`, or `event_stream` for a call with progress).
pub const MCP_ANSWERED_IN_PLACE: &str = "portico_mcp_answered_in_place_total";
/// Requests sent to upstreams for audited MCP requests, by `path`: `direct` (posted on the
/// upstream's session from the request's own task, see `transport::DirectRoute`) or `client`
/// (through rmcp's client: a progress token, a legacy SSE upstream, a 2026 session, or 64 other
/// requests in flight on the connection).
pub const MCP_UPSTREAM_REQUESTS: &str = "portico_mcp_upstream_requests_total";
/// Audit events that could not be appended (those calls were answered with an error), by
/// `portal`.
pub const AUDIT_APPEND_FAILURES: &str = "portico_audit_append_failures_total";
/// Capability syncs by `server` and `outcome` (`synced`, `unchanged`, `failed`, `not_recorded`).
pub const SERVER_SYNCS: &str = "portico_server_syncs_total";
/// Servers by sync `status` (`waiting`, `ready`, `error`), as the catalog shows them.
pub const SERVERS: &str = "portico_servers";

/// Registers the help text and unit of every metric above with the installed recorder.
pub fn describe() {
    describe_counter!(
        MCP_REQUESTS,
        Unit::Count,
        "Audited MCP requests through a portal, by portal, server, method and outcome."
    );
    describe_histogram!(
        MCP_UPSTREAM_DURATION,
        Unit::Seconds,
        "Time spent waiting on the upstream server for an audited MCP request."
    );
    describe_histogram!(
        MCP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from an audited MCP request reaching its session until its answer is ready (audit event appended)."
    );
    describe_gauge!(MCP_SESSIONS_OPEN, Unit::Count, "MCP sessions open now.");
    describe_counter!(
        MCP_ANSWERED_IN_PLACE,
        Unit::Count,
        "Requests of an MCP session answered in place (without rmcp's session machinery), by answer type."
    );
    describe_counter!(
        MCP_UPSTREAM_REQUESTS,
        Unit::Count,
        "Requests sent to upstream servers for audited MCP requests, by path (direct or through the MCP client)."
    );
    describe_counter!(
        AUDIT_APPEND_FAILURES,
        Unit::Count,
        "Audit events of calls that could not be appended to the log; those calls were answered with an error."
    );
    describe_counter!(
        SERVER_SYNCS,
        Unit::Count,
        "Capability syncs of upstream servers, by outcome."
    );
    describe_gauge!(SERVERS, Unit::Count, "Upstream servers by sync status.");
}

/// Records one audited request.
pub(crate) fn request(
    portal: &PortalId,
    server: Option<&ServerId>,
    method: AuditedMethod,
    outcome: &'static str,
    upstream: Option<Duration>,
    took: Duration,
) {
    static TOOK: KeptBy<Histogram> = KeptBy::new();
    static WAITED: KeptBy<Histogram> = KeptBy::new();
    static REQUESTS: KeptBy<Counter> = KeptBy::new();
    let (portal, server) = (portal.as_str(), server.map_or("", |id| id.as_str()));
    let method = method.as_str();
    let labels = || {
        vec![
            Label::new("portal", portal.to_owned()),
            Label::new("server", server.to_owned()),
            Label::new("method", method),
        ]
    };
    // Ids are slugs and the other values words: none of them holds a space.
    TOOK.get(format_args!("{portal} {server} {method}"), || {
        histogram!(MCP_REQUEST_DURATION, labels())
    })
    .record(took);
    if let Some(waited) = upstream {
        WAITED
            .get(format_args!("{portal} {server} {method}"), || {
                histogram!(MCP_UPSTREAM_DURATION, labels())
            })
            .record(waited);
    }
    REQUESTS
        .get(format_args!("{portal} {server} {method} {outcome}"), || {
            let mut labels = labels();
            labels.push(Label::new("outcome", outcome));
            counter!(MCP_REQUESTS, labels)
        })
        .increment(1);
}

/// Records a request sent to an upstream, directly or through rmcp's client.
pub(crate) fn upstream_request(direct: bool) {
    static DIRECT: Kept<Counter> = Kept::new();
    static CLIENT: Kept<Counter> = Kept::new();
    let (kept, path) = if direct { (&DIRECT, "direct") } else { (&CLIENT, "client") };
    kept.get(|| counter!(MCP_UPSTREAM_REQUESTS, "path" => path)).increment(1);
}

/// Records a request answered in place.
pub(crate) fn answered_in_place(event_stream: bool) {
    static EVENT_STREAM: Kept<Counter> = Kept::new();
    static JSON: Kept<Counter> = Kept::new();
    let (kept, answer) =
        if event_stream { (&EVENT_STREAM, "event_stream") } else { (&JSON, "json") };
    kept.get(|| counter!(MCP_ANSWERED_IN_PLACE, "answer" => answer)).increment(1);
}

/// Records an audit event that could not be appended.
pub(crate) fn audit_failed(portal: &PortalId) {
    counter!(AUDIT_APPEND_FAILURES, "portal" => portal.to_string()).increment(1);
}

/// Records a sync's outcome.
pub(crate) fn synced(server: &ServerId, outcome: &'static str) {
    counter!(SERVER_SYNCS, "server" => server.to_string(), "outcome" => outcome).increment(1);
}

/// Publishes how many servers have each sync status.
pub(crate) fn servers_by_status(statuses: impl Iterator<Item = SyncStatus>) {
    let (mut waiting, mut ready, mut error) = (0u32, 0u32, 0u32);
    for status in statuses {
        match status {
            SyncStatus::Waiting => waiting += 1,
            SyncStatus::Ready => ready += 1,
            SyncStatus::Error => error += 1,
        }
    }
    for (status, count) in
        [(SyncStatus::Waiting, waiting), (SyncStatus::Ready, ready), (SyncStatus::Error, error)]
    {
        gauge!(SERVERS, "status" => status.as_str()).set(f64::from(count));
    }
}

/// Counts one open session for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenSession(());

impl OpenSession {
    pub(crate) fn open() -> Self {
        gauge!(MCP_SESSIONS_OPEN).increment(1.0);
        OpenSession(())
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        gauge!(MCP_SESSIONS_OPEN).decrement(1.0);
    }
}
