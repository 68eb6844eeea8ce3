//! `/healthz` (the process is up) and `/readyz` (the log answers, takes the calls' audit events,
//! and the read models have caught up with it).

use actix_web::{HttpResponse, web};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::state::AppState;

/// How far behind the log the read models may be and still be ready.
const MAX_LAG: u64 = 1000;

/// What `/healthz` answers.
#[derive(Debug, Serialize)]
struct Alive {
    /// `ok`.
    status: &'static str,
}

/// What `/readyz` answers: `{"status": "ready" | "catching_up" | "unavailable", ...}`.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Readiness {
    /// `200`: the read models are at most [`MAX_LAG`] events behind the log.
    Ready { log_head: u64, projected: u64 },
    /// `503`: the read models are further behind.
    CatchingUp { log_head: u64, projected: u64 },
    /// `503`.
    Unavailable(Unavailable),
}

/// Why Portico is not ready.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Unavailable {
    /// The log does not answer.
    Log { reason: &'static str },
    /// The log refuses the calls' audit events (the cause, which may name storage details, is
    /// only logged, where the append failed).
    Audit { reason: &'static str, audit_failures: u64, failing_since: String, last_failure: String },
    /// The projections stopped.
    Projections { reason: String, log_head: u64, projected: u64 },
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = |why| HttpResponse::ServiceUnavailable().json(Readiness::Unavailable(why));
    let head = match state.app.log.head_position().await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "readiness: the event log does not answer");
            return unavailable(Unavailable::Log { reason: "the event log does not answer" });
        }
    };
    if let Some(failure) = state.app.gateway.audit_health().failing(Utc::now()) {
        return unavailable(Unavailable::Audit {
            reason: "the event log refuses the calls' audit events; calls are answered with an error",
            audit_failures: failure.count,
            failing_since: failure.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            last_failure: failure.last.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    let position = state.app.models.position();
    let lag = head.saturating_sub(position);
    if let Some(failure) = state.app.models.failure() {
        return unavailable(Unavailable::Projections {
            reason: format!("projections stopped: {failure}"),
            log_head: head,
            projected: position,
        });
    }
    if lag > MAX_LAG {
        return HttpResponse::ServiceUnavailable()
            .json(Readiness::CatchingUp { log_head: head, projected: position });
    }
    HttpResponse::Ok().json(Readiness::Ready { log_head: head, projected: position })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn wire(value: impl Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn every_state_has_its_status_and_fields() {
        assert_eq!(wire(Alive { status: "ok" }), json!({"status": "ok"}));
        assert_eq!(
            wire(Readiness::Ready { log_head: 7, projected: 7 }),
            json!({"status": "ready", "log_head": 7, "projected": 7})
        );
        assert_eq!(
            wire(Readiness::CatchingUp { log_head: 2000, projected: 7 }),
            json!({"status": "catching_up", "log_head": 2000, "projected": 7})
        );
        assert_eq!(
            wire(Readiness::Unavailable(Unavailable::Log { reason: "down" })),
            json!({"status": "unavailable", "reason": "down"})
        );
        let audit = Unavailable::Audit {
            reason: "refused",
            audit_failures: 2,
            failing_since: "2026-01-01T00:00:00Z".into(),
            last_failure: "2026-01-01T00:00:05Z".into(),
        };
        assert_eq!(
            wire(Readiness::Unavailable(audit)),
            json!({"status": "unavailable", "reason": "refused", "audit_failures": 2,
                   "failing_since": "2026-01-01T00:00:00Z", "last_failure": "2026-01-01T00:00:05Z"})
        );
        let stopped = Unavailable::Projections {
            reason: "projections stopped: x".into(),
            log_head: 9,
            projected: 3,
        };
        assert_eq!(
            wire(Readiness::Unavailable(stopped)),
            json!({"status": "unavailable", "reason": "projections stopped: x", "log_head": 9,
                   "projected": 3})
        );
    }
}
