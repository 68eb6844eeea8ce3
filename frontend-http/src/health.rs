//! `/healthz` (the process is up) and `/readyz` (the log answers, takes the calls' audit events,
//! and the read models have caught up with it).

use actix_web::{HttpResponse, web};
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::state::AppState;

/// How far behind the log the read models may be and still be ready.
const MAX_LAG: u64 = 1000;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let head = match state.app.log.head_position().await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "readiness: the event log does not answer");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "reason": "the event log does not answer"}));
        }
    };
    if let Some(failure) = state.app.gateway.audit_health().failing(Utc::now()) {
        // The cause (which may name storage details) is only logged, where the append failed.
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "reason": "the event log refuses the calls' audit events; calls are answered with an error",
            "audit_failures": failure.count,
            "failing_since": failure.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            "last_failure": failure.last.to_rfc3339_opts(SecondsFormat::Secs, true),
        }));
    }
    let position = state.app.models.position();
    let lag = head.saturating_sub(position);
    if let Some(failure) = state.app.models.failure() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "reason": format!("projections stopped: {failure}"), "log_head": head, "projected": position}));
    }
    if lag > MAX_LAG {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "catching_up", "log_head": head, "projected": position}));
    }
    HttpResponse::Ok().json(json!({"status": "ready", "log_head": head, "projected": position}))
}
