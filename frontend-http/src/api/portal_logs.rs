//! A portal's own logs: `GET …/mcp/portals/{id}/logs`, every audited call (`tools/call`,
//! `prompts/get`, `resources/read`) newest first with filters and cursor paging, and
//! `GET …/mcp/portals/{id}/analytics`, request and error counts and p50/p95 duration per server
//! per time bucket.
//!
//! Both read the call log ([`CallLog`]), a read model indexed by portal and time that follows
//! the event log about 50 ms behind it. Each row carries the 19 fields of the
//! `mcp_portal_logs` dataset under the dataset's names, so a row of this API and a record
//! pushed by Logpush read the same, plus what Portico adds: how the call ended (`Status`), the
//! policies that decided it and the time spent in the portal.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use portico_core::domain::call::AuditedMethod;
use portico_core::domain::ids::PortalId;
use portico_logpush::McpPortalLog;
use portico_projections::call_log::{
    BucketWidth, CallLog, CallLogError, CallQuery, CallRecord, MAX_BUCKETS, MAX_ROWS, ServerBucket,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit_logs::{decode_cursor, encode_cursor, invalid, parse_number, parse_time};
use super::envelope::envelope;
use super::error::ApiError;
use super::openapi::{ListErrors, Unavailable};
use super::{parse_id, rfc3339};
use crate::auth::ApiCaller;
use crate::state::{AppState, truncate};

/// The default page size.
pub const DEFAULT_PER_PAGE: u32 = 100;
/// The longest `server_id`, `user_email` or `tool` filter accepted.
const MAX_FILTER_LEN: usize = 512;

/// The query string of the logs. Every value arrives as text and is checked here, so that an
/// error names the parameter at fault.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PortalLogQuery {
    /// Only calls at or after this time: RFC 3339 (`2026-04-30T12:00:00Z`) or a date
    /// (`2026-04-30`, midnight UTC).
    #[param(value_type = Option<String>)]
    pub since: Option<String>,
    /// Only calls before this time: RFC 3339 or a date, as `since`.
    #[param(value_type = Option<String>)]
    pub until: Option<String>,
    /// Only calls that resolved to this server.
    pub server_id: Option<String>,
    /// Only calls of the person with this email address (case-insensitive).
    pub user_email: Option<String>,
    /// Only calls of this JSON-RPC method.
    #[param(value_type = Option<String>, pattern = "^(tools/call|prompts/get|resources/read)$")]
    pub method: Option<String>,
    /// Only calls that succeeded (`true`) or did not (`false`).
    #[param(value_type = Option<bool>)]
    pub success: Option<String>,
    /// Only calls of the tool with this name, as the client called it (`ToolCallName`).
    pub tool: Option<String>,
    /// Rows per page: 1 to 1000, 100 by default.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub per_page: Option<String>,
    /// Continue after the last row of an earlier answer: its `result_info.cursor`.
    pub cursor: Option<String>,
}

fn bounded(param: &str, value: Option<&String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_FILTER_LEN => {
            Err(invalid(param, format!("must be 1 to {MAX_FILTER_LEN} characters")))
        }
        other => Ok(other.cloned()),
    }
}

/// A `since`/`until` pair, each optional.
struct Range {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

fn time_range(since: Option<&str>, until: Option<&str>) -> Result<Range, ApiError> {
    let since = since.map(|v| parse_time("since", v)).transpose()?;
    let until = until.map(|v| parse_time("until", v)).transpose()?;
    if since.zip(until).is_some_and(|(s, u)| s >= u) {
        return Err(invalid("until", "must be later than `since`"));
    }
    Ok(Range { since, until })
}

impl PortalLogQuery {
    /// Checks every parameter: the call-log query (asking for one row more than a page, to
    /// know whether another page follows) and the page size.
    pub fn resolve(&self, portal_id: PortalId) -> Result<(CallQuery, u32), ApiError> {
        let Range { since, until } = time_range(self.since.as_deref(), self.until.as_deref())?;
        let method = match self.method.as_deref() {
            None => None,
            Some("tools/call") => Some(AuditedMethod::ToolsCall),
            Some("prompts/get") => Some(AuditedMethod::PromptsGet),
            Some("resources/read") => Some(AuditedMethod::ResourcesRead),
            Some(other) => {
                return Err(invalid(
                    "method",
                    format!(
                        "`{}` is not `tools/call`, `prompts/get` or `resources/read`",
                        truncate(other)
                    ),
                ));
            }
        };
        let success = match self.success.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(invalid(
                    "success",
                    format!("`{}` is not `true` or `false`", truncate(other)),
                ));
            }
        };
        let per_page = self
            .per_page
            .as_deref()
            .map(|v| parse_number("per_page", v, 1, MAX_ROWS as u32))
            .transpose()?
            .unwrap_or(DEFAULT_PER_PAGE);
        let query = CallQuery {
            since,
            until,
            server_id: bounded("server_id", self.server_id.as_ref())?,
            user_email: bounded("user_email", self.user_email.as_ref())?,
            method,
            success,
            tool: bounded("tool", self.tool.as_ref())?,
            before: self.cursor.as_deref().map(decode_cursor).transpose()?,
            limit: per_page as usize + 1,
            ..CallQuery::portal(portal_id)
        };
        Ok((query, per_page))
    }
}

/// One call through the portal: the `mcp_portal_logs` fields under their dataset names (a
/// field Portico has no value for is `null`: `ClientCountry`, `ColoCode` and `ServerAUD` in a
/// self-hosted deployment), then Portico's own.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PortalLog {
    pub client_country: Option<String>,
    #[serde(rename = "ClientIP")]
    pub client_ip: Option<String>,
    pub colo_code: Option<String>,
    /// When the call was recorded (RFC 3339, UTC).
    pub datetime: String,
    /// Extra information when the call failed (never a credential).
    pub error: Option<String>,
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: &'static str,
    #[serde(rename = "PortalAUD")]
    pub portal_aud: Option<String>,
    #[serde(rename = "PortalID")]
    pub portal_id: String,
    pub prompt_get_name: Option<String>,
    #[serde(rename = "ResourceReadURI")]
    pub resource_read_uri: Option<String>,
    #[serde(rename = "ServerAUD")]
    pub server_aud: Option<String>,
    #[serde(rename = "ServerID")]
    pub server_id: Option<String>,
    /// Time spent waiting on the upstream, in milliseconds.
    pub server_response_duration_ms: Option<i64>,
    #[serde(rename = "ServerURL")]
    pub server_url: Option<String>,
    #[serde(rename = "SessionID")]
    pub session_id: Option<String>,
    pub success: bool,
    pub tool_call_name: Option<String>,
    pub user_email: Option<String>,
    /// The person's id, or the service token's id.
    #[serde(rename = "UserID")]
    pub user_id: String,
    /// **Portico's addition**: the id of the event that recorded the call.
    #[serde(rename = "EventID")]
    pub event_id: String,
    /// **Portico's addition**: how the call ended: `ok`, `tool_error`, `denied`, `not_found`,
    /// `invalid`, `upstream_error`, `unavailable`, `timeout` or `cancelled`.
    pub status: &'static str,
    /// **Portico's addition**: the policies that decided the call (the permits when it was
    /// allowed, the forbid that denied it; empty for a default deny).
    #[serde(rename = "PolicyIDs")]
    pub policy_ids: Vec<String>,
    /// **Portico's addition**: time spent in the portal for the whole request, in milliseconds.
    pub duration_ms: u64,
}

impl PortalLog {
    /// The dataset's fields as Logpush writes them ([`McpPortalLog`]), then Portico's own.
    fn of(record: CallRecord) -> Self {
        let row = McpPortalLog::from_call(
            record.position,
            &record.event_id,
            record.recorded_at,
            &record.call,
        );
        let call = record.call;
        PortalLog {
            client_country: row.client_country,
            client_ip: row.client_ip,
            colo_code: row.colo_code,
            datetime: rfc3339(row.datetime),
            error: row.error,
            method: row.method.as_str(),
            portal_aud: row.portal_aud,
            portal_id: row.portal_id,
            prompt_get_name: row.prompt_get_name,
            resource_read_uri: row.resource_read_uri,
            server_aud: row.server_aud,
            server_id: row.server_id,
            server_response_duration_ms: row.server_response_duration_ms,
            server_url: row.server_url,
            session_id: row.session_id,
            success: row.success,
            tool_call_name: row.tool_call_name,
            user_email: row.user_email,
            user_id: row.user_id,
            event_id: record.event_id.to_string(),
            status: call.status.as_str(),
            policy_ids: call.policies,
            duration_ms: call.duration_ms,
        }
    }
}

/// Paging of a logs answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalLogResultInfo {
    /// Rows on this page.
    pub count: usize,
    pub per_page: u32,
    /// Pass as `cursor` to continue after this page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cursor: Option<String>,
}

envelope!(
    /// The answer carrying a page of a portal's logs.
    PortalLogList { result: Vec<PortalLog>, result_info: PortalLogResultInfo }
);

fn portal_of(state: &AppState, account: &str, id: &str) -> Result<PortalId, ApiError> {
    state.check_account(account)?;
    let id: PortalId = parse_id(id, "portal")?;
    if state.read(|m| m.portal(&id).is_none()) {
        return Err(ApiError::not_found(format!("portal `{id}` does not exist")));
    }
    Ok(id)
}

/// Runs `read` on the call log off the request's thread.
async fn read_calls<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&CallLog) -> Result<T, CallLogError> + Send + 'static,
) -> Result<T, ApiError> {
    let calls = Arc::clone(&state.app.calls);
    web::block(move || read(&calls))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::unavailable)
}

/// A portal's calls, newest first.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/logs",
    tag = "Portal logs",
    operation_id = "list_mcp_portal_logs",
    params(crate::api::openapi::AccountPath, ("id" = String, Path, description = "The portal's id"), PortalLogQuery),
    responses((status = 200, description = "A page of the portal's calls", body = PortalLogList), ListErrors, Unavailable),
)]
pub async fn logs(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    query: web::Query<PortalLogQuery>,
) -> Result<HttpResponse, ApiError> {
    // Any token may read the logs.
    let _ = caller;
    let (account, id) = path.into_inner();
    let portal = portal_of(&state, &account, &id)?;
    let (query, per_page) = query.resolve(portal)?;
    let mut rows = read_calls(&state, move |calls| calls.query(&query)).await?;
    let more = rows.len() > per_page as usize;
    rows.truncate(per_page as usize);
    let cursor = rows.last().filter(|_| more).map(|r| encode_cursor(r.position));
    let result: Vec<PortalLog> = rows.into_iter().map(PortalLog::of).collect();
    let info = PortalLogResultInfo { count: result.len(), per_page, cursor };
    Ok(PortalLogList::page(result, info))
}

/// The query string of the analytics.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The start of the period (inclusive): RFC 3339 or a date. Default: `until` minus 24 hours.
    #[param(value_type = Option<String>)]
    pub since: Option<String>,
    /// The end of the period (exclusive): RFC 3339 or a date. Default: now.
    #[param(value_type = Option<String>)]
    pub until: Option<String>,
    /// The width of a bucket: `1m`, `1h` (the default) or `1d`. A period covers at most 1,440
    /// buckets.
    #[param(value_type = Option<String>, pattern = "^(1m|1h|1d)$")]
    pub bucket: Option<String>,
}

/// The period and the figures of each server in each bucket with calls.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalAnalytics {
    pub since: String,
    pub until: String,
    /// `1m`, `1h` or `1d`.
    pub bucket: String,
    /// One entry per server and bucket with at least one call, oldest bucket first.
    pub series: Vec<ServerSeries>,
}

/// The calls to one server in one bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerSeries {
    /// The server the calls resolved to; `null` for calls whose name matched no server.
    pub server_id: Option<String>,
    /// The start of the bucket (RFC 3339, UTC).
    pub start: String,
    pub requests: u64,
    /// Calls that did not succeed.
    pub errors: u64,
    /// The median time spent in the portal, in milliseconds (nearest rank).
    pub p50_ms: u64,
    /// The 95th percentile, in milliseconds (nearest rank).
    pub p95_ms: u64,
}

impl ServerSeries {
    fn of(bucket: ServerBucket) -> Self {
        ServerSeries {
            server_id: bucket.server_id,
            start: rfc3339(bucket.start),
            requests: bucket.requests,
            errors: bucket.errors,
            p50_ms: bucket.p50_ms,
            p95_ms: bucket.p95_ms,
        }
    }
}

envelope!(
    /// The answer carrying a portal's analytics.
    PortalAnalyticsResult { result: PortalAnalytics }
);

/// The period and bucket width an analytics query asks for.
#[derive(Debug, Clone, Copy)]
pub struct AnalyticsPeriod {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub width: BucketWidth,
    /// The width as the query wrote it.
    pub name: &'static str,
}

impl AnalyticsQuery {
    /// The period and bucket width, checked: `until` after `since`, at most [`MAX_BUCKETS`]
    /// buckets.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<AnalyticsPeriod, ApiError> {
        let (width, name) = match self.bucket.as_deref() {
            None | Some("1h") => (BucketWidth::Hour, "1h"),
            Some("1m") => (BucketWidth::Minute, "1m"),
            Some("1d") => (BucketWidth::Day, "1d"),
            Some(other) => {
                return Err(invalid(
                    "bucket",
                    format!("`{}` is not `1m`, `1h` or `1d`", truncate(other)),
                ));
            }
        };
        let range = time_range(self.since.as_deref(), self.until.as_deref())?;
        let until = range.until.unwrap_or(now);
        let since = range.since.unwrap_or(until - TimeDelta::hours(24));
        if since >= until {
            return Err(invalid("since", "must be earlier than `until`"));
        }
        let span = until - since;
        let buckets = (span.num_microseconds().unwrap_or(i64::MAX) - 1)
            / width.delta().num_microseconds().unwrap_or(1)
            + 1;
        if buckets > MAX_BUCKETS {
            return Err(invalid(
                "bucket",
                format!(
                    "`{name}` buckets over this period are {buckets}; at most {MAX_BUCKETS} are \
                     allowed: shorten the period or use a wider bucket"
                ),
            ));
        }
        Ok(AnalyticsPeriod { since, until, width, name })
    }
}

/// A portal's request and error counts and p50/p95 duration per server per time bucket.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/access/ai-controls/mcp/portals/{id}/analytics",
    tag = "Portal logs",
    operation_id = "mcp_portal_analytics",
    params(crate::api::openapi::AccountPath, ("id" = String, Path, description = "The portal's id"), AnalyticsQuery),
    responses((status = 200, description = "The portal's figures per server and bucket", body = PortalAnalyticsResult), ListErrors, Unavailable),
)]
pub async fn analytics(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<(String, String)>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let _ = caller;
    let (account, id) = path.into_inner();
    let portal = portal_of(&state, &account, &id)?;
    let period = query.resolve(Utc::now())?;
    let buckets = read_calls(&state, move |calls| {
        calls.analytics(&portal, period.since, period.until, period.width)
    })
    .await?;
    Ok(PortalAnalyticsResult::ok(PortalAnalytics {
        since: rfc3339(period.since),
        until: rfc3339(period.until),
        bucket: period.name.to_owned(),
        series: buckets.into_iter().map(ServerSeries::of).collect(),
    }))
}
