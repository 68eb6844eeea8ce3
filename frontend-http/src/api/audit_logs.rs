//! `GET /accounts/{account_id}/audit_logs`: the admin changes in Cloudflare's audit-log shape
//! (version 1 of its audit-log API), newest first, with time bounds, filters, page numbers and
//! an opaque cursor.
//!
//! The entries come from the [`AuditTrail`](portico_projections::AuditTrail) read model; the
//! values before and after a change are folded on read from the resource's stream, up to the
//! entry's version. Events hold no secret, so neither do these values.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use portico_core::wire::WireEnum;
use portico_core::{Actor, Position, RecordedEvent};
use portico_projections::{AuditAction, AuditEntry, ResourceType, resource_values};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{ResultInfo, envelope};
use super::error::{ApiError, Code};
use super::openapi::{AccountPath, ListErrors, Unavailable};
use super::rfc3339;
use crate::auth::ApiCaller;
use crate::state::{AppState, truncate};

/// The default page size.
pub const DEFAULT_PER_PAGE: u32 = 100;
/// The largest page size.
pub const MAX_PER_PAGE: u32 = 1000;
/// The longest `actor.email` filter accepted.
const MAX_EMAIL_LEN: usize = 320;
/// The longest cursor accepted (a `u64` in base64 is 27 characters).
const MAX_CURSOR_LEN: usize = 32;

/// The query string. Every value arrives as text and is checked here, so that an error names
/// the parameter at fault.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only the entry with this id.
    #[param(value_type = Option<String>, format = Uuid)]
    pub id: Option<String>,
    /// Only entries of this action.
    #[serde(rename = "action.type")]
    #[param(value_type = Option<crate::api::openapi::AuditActionType>)]
    pub action_type: Option<String>,
    /// Only changes made by the user with this email address (case-insensitive).
    #[serde(rename = "actor.email")]
    pub actor_email: Option<String>,
    /// Only entries about resources of this type.
    #[serde(rename = "resource.type")]
    #[param(value_type = Option<crate::api::openapi::AuditResourceType>)]
    pub resource_type: Option<String>,
    /// Only entries about the resource with this id.
    #[serde(rename = "resource.id")]
    pub resource_id: Option<String>,
    /// Only entries at or after this time: RFC 3339 (`2025-04-30T12:00:00Z`; without an offset,
    /// UTC) or a date (`2025-04-30`, midnight UTC).
    #[param(value_type = Option<String>)]
    pub since: Option<String>,
    /// Only entries before this time: RFC 3339 or a date, as `since`.
    #[param(value_type = Option<String>)]
    pub before: Option<String>,
    /// Order by time: `desc` (newest first, the default) or `asc`.
    #[param(value_type = Option<Direction>)]
    pub direction: Option<String>,
    /// Leave out changes made by users (keep API tokens, service tokens and Portico itself).
    #[param(value_type = Option<bool>)]
    pub hide_user_logs: Option<String>,
    /// Page number, from 1. Not combined with `cursor`.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    /// Entries per page: 1 to 1000, 100 by default.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub per_page: Option<String>,
    /// Continue after the last entry of an earlier answer: its `result_info.cursor`.
    pub cursor: Option<String>,
}

/// Chronological order of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Desc,
    Asc,
}

/// The query after its checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub id: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub actor_email: Option<String>,
    pub resource_type: Option<ResourceType>,
    pub resource_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub hide_user_logs: bool,
    pub direction: Direction,
    pub page: u32,
    pub per_page: u32,
    /// Only entries after this position in `direction`.
    pub after: Option<Position>,
}

pub(crate) fn invalid(param: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidQuery, format!("invalid `{param}`: {message}"))
}

/// The value of `param` whose wire name is `value`, or an error that lists them all.
fn one_of<T: WireEnum>(param: &str, value: &str) -> Result<T, ApiError> {
    T::from_wire(value).ok_or_else(|| {
        let names: Vec<String> = T::ALL.iter().map(|v| format!("`{}`", v.as_str())).collect();
        invalid(param, format!("`{}` is not one of {}", truncate(value), names.join(", ")))
    })
}

pub(crate) fn parse_time(param: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    // What Python's `datetime.isoformat()` writes for a naive time (the SDKs send it as is).
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(invalid(
        param,
        format!(
            "`{}` is neither an RFC 3339 time (`2025-04-30T12:00:00Z`) nor a date (`2025-04-30`)",
            truncate(value)
        ),
    ))
}

pub(crate) fn parse_number(param: &str, value: &str, min: u32, max: u32) -> Result<u32, ApiError> {
    value.parse::<u32>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        invalid(param, format!("`{}` is not an integer between {min} and {max}", truncate(value)))
    })
}

/// The cursor that continues after the entry at `position`.
pub fn encode_cursor(position: Position) -> String {
    URL_SAFE_NO_PAD.encode(position.to_string())
}

pub(crate) fn decode_cursor(value: &str) -> Result<Position, ApiError> {
    let bad = || invalid("cursor", "not a cursor of this API; pass `result_info.cursor` as is");
    if value.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

impl AuditLogQuery {
    /// Checks every parameter.
    pub fn resolve(&self) -> Result<AuditFilter, ApiError> {
        let id = self
            .id
            .as_deref()
            .map(|v| Uuid::parse_str(v).map_err(|_| invalid("id", "not an audit log id (a UUID)")))
            .transpose()?;
        let action = self
            .action_type
            .as_deref()
            .map(|v| one_of::<AuditAction>("action.type", v))
            .transpose()?;
        let resource_type = self
            .resource_type
            .as_deref()
            .map(|v| one_of::<ResourceType>("resource.type", v))
            .transpose()?;
        let actor_email = match self.actor_email.as_deref() {
            Some(email) if email.is_empty() || email.len() > MAX_EMAIL_LEN => {
                return Err(invalid(
                    "actor.email",
                    format!("must be 1 to {MAX_EMAIL_LEN} characters"),
                ));
            }
            other => other.map(str::to_owned),
        };
        let resource_id = match self.resource_id.as_deref() {
            Some(id) if id.is_empty() || id.len() > portico_core::log::MAX_STREAM_ID_LEN => {
                return Err(invalid(
                    "resource.id",
                    format!("must be 1 to {} characters", portico_core::log::MAX_STREAM_ID_LEN),
                ));
            }
            other => other.map(str::to_owned),
        };
        let direction = match self.direction.as_deref() {
            None | Some("desc") => Direction::Desc,
            Some("asc") => Direction::Asc,
            Some(other) => {
                return Err(invalid(
                    "direction",
                    format!("`{}` is not `asc` or `desc`", truncate(other)),
                ));
            }
        };
        let hide_user_logs = match self.hide_user_logs.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    "hide_user_logs",
                    format!("`{}` is not `true` or `false`", truncate(other)),
                ));
            }
        };
        let page =
            self.page.as_deref().map(|v| parse_number("page", v, 1, u32::MAX)).transpose()?;
        let per_page = self
            .per_page
            .as_deref()
            .map(|v| parse_number("per_page", v, 1, MAX_PER_PAGE))
            .transpose()?
            .unwrap_or(DEFAULT_PER_PAGE);
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        if after.is_some() && page.is_some_and(|p| p != 1) {
            return Err(invalid(
                "cursor",
                "`cursor` and `page` cannot be combined; a cursor already says where to continue",
            ));
        }
        Ok(AuditFilter {
            id,
            action,
            actor_email,
            resource_type,
            resource_id,
            since: self.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
            before: self.before.as_deref().map(|v| parse_time("before", v)).transpose()?,
            hide_user_logs,
            direction,
            page: page.unwrap_or(1),
            per_page,
            after,
        })
    }
}

impl AuditFilter {
    /// Whether `entry` passes every filter (the cursor and paging aside).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.id.is_none_or(|id| entry.id == id)
            && self.action.is_none_or(|a| entry.action == a)
            && self.resource_type.is_none_or(|t| entry.resource_type == t)
            && self.resource_id.as_deref().is_none_or(|id| entry.resource_id == id)
            && self.since.is_none_or(|t| entry.when >= t)
            && self.before.is_none_or(|t| entry.when < t)
            && !(self.hide_user_logs && matches!(entry.actor, Actor::User { .. }))
            && self.actor_email.as_deref().is_none_or(|wanted| {
                matches!(&entry.actor, Actor::User { email, .. } if email.eq_ignore_ascii_case(wanted))
            })
    }

    /// The page of `entries` (oldest first, as the trail keeps them) this filter selects, and
    /// the number of entries matching it (after the cursor, if any).
    pub fn select(&self, entries: &[AuditEntry]) -> (Vec<AuditEntry>, usize) {
        // INVARIANT: the trail is in position order, so the cursor is a split point.
        let remaining = match (self.after, self.direction) {
            (None, _) => entries,
            (Some(p), Direction::Asc) => {
                entries.get(entries.partition_point(|e| e.position <= p)..).unwrap_or_default()
            }
            (Some(p), Direction::Desc) => {
                entries.get(..entries.partition_point(|e| e.position < p)).unwrap_or_default()
            }
        };
        let ordered: Box<dyn Iterator<Item = &AuditEntry>> = match self.direction {
            Direction::Asc => Box::new(remaining.iter()),
            Direction::Desc => Box::new(remaining.iter().rev()),
        };
        let skip = (self.page as usize - 1).saturating_mul(self.per_page as usize);
        let mut total = 0;
        let mut page = Vec::new();
        for entry in ordered.filter(|e| self.matches(e)) {
            if total >= skip && page.len() < self.per_page as usize {
                page.push(entry.clone());
            }
            total += 1;
        }
        (page, total)
    }
}

/// Paging of an audit-log answer: Cloudflare's `result_info`, plus the cursor of the next page
/// when there is one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogResultInfo {
    #[serde(flatten)]
    pub paging: ResultInfo,
    /// Pass as `cursor` to continue after this page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cursor: Option<String>,
}

envelope!(
    /// The answer carrying a page of audit logs.
    AuditLogList { result: Vec<AuditLog>, result_info: AuditLogResultInfo }
);

/// One admin change, in Cloudflare's audit-log shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLog {
    /// The entry's id (the id of the event that recorded the change).
    #[schema(format = Uuid)]
    pub id: String,
    pub action: AuditLogAction,
    pub actor: AuditLogActor,
    /// Where the change came from: `API` (an API token), `CLI` (the `portico` command) or
    /// `system` (Portico itself).
    pub interface: &'static str,
    pub metadata: AuditLogMetadata,
    /// The resource after the change, as a JSON text; absent after a delete.
    #[serde(rename = "newValue", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub new_value: Option<String>,
    /// The resource after the change; absent after a delete.
    #[serde(rename = "newValueJson", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub new_value_json: Option<Value>,
    /// The resource before the change, as a JSON text; absent for a creation.
    #[serde(rename = "oldValue", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub old_value: Option<String>,
    /// The resource before the change; absent for a creation.
    #[serde(rename = "oldValueJson", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub old_value_json: Option<Value>,
    pub owner: AuditLogOwner,
    pub resource: AuditLogResource,
    /// When the change was committed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub when: String,
}

/// What was done.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogAction {
    #[serde(rename = "type")]
    #[schema(value_type = crate::api::openapi::AuditActionType)]
    pub kind: AuditAction,
    /// Whether it succeeded: always `true` (only committed changes are recorded).
    pub result: bool,
}

/// Who did it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogActor {
    /// A user's id, an API token's id, a service token's id (not its client id), or the Portico
    /// component.
    pub id: String,
    /// The user's email address (users only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// The API token's name (API tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: ActorType,
}

/// The kinds of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    ApiToken,
    ServiceToken,
    System,
}

/// Where the change sits in Portico's event log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogMetadata {
    /// The event that recorded the change (`ServerUpdated`, ...).
    pub event_type: &'static str,
    /// The event's global position in the log.
    pub position: u64,
    /// The resource's stream.
    pub stream_id: String,
    /// The event's version within the stream.
    pub stream_version: u64,
    /// Ties together the events of one request.
    #[schema(format = Uuid)]
    pub correlation_id: String,
}

/// The account the change belongs to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogOwner {
    pub id: String,
}

/// The resource that changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogResource {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::api::openapi::AuditResourceType)]
    pub kind: ResourceType,
}

fn actor(actor: &Actor) -> (AuditLogActor, &'static str) {
    let shown = |id: &str, email: Option<&str>, name: Option<&str>, kind| AuditLogActor {
        id: id.to_owned(),
        email: email.map(str::to_owned),
        name: name.map(str::to_owned),
        kind,
    };
    match actor {
        Actor::User { id, email } => (shown(id, Some(email), None, ActorType::User), "API"),
        Actor::ApiToken { id, name } => (shown(id, None, Some(name), ActorType::ApiToken), "API"),
        Actor::ServiceToken { id } => (shown(id, None, None, ActorType::ServiceToken), "API"),
        Actor::System { component } => {
            let interface = if component == "cli" { "CLI" } else { "system" };
            (shown(component, None, None, ActorType::System), interface)
        }
    }
}

/// Shows `entry`, given the events of its stream from version 1 up to at least its version.
fn audit_log(
    entry: &AuditEntry,
    account_id: &str,
    stream: &[RecordedEvent],
) -> Result<AuditLog, ApiError> {
    let upto = usize::try_from(entry.stream_version).unwrap_or(usize::MAX);
    let events = stream.get(..upto).ok_or_else(|| {
        ApiError::internal(format!(
            "stream `{}` has {} events but the audit trail names version {}",
            entry.stream_id,
            stream.len(),
            entry.stream_version
        ))
    })?;
    let recorded = events.last().filter(|e| e.event_id == entry.id).ok_or_else(|| {
        ApiError::internal(format!(
            "event {} is not at version {} of stream `{}`",
            entry.id, entry.stream_version, entry.stream_id
        ))
    })?;
    let (old, new) = resource_values(events.iter().map(|e| &e.event), &entry.resource_id);
    let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let (actor, interface) = actor(&entry.actor);
    Ok(AuditLog {
        id: entry.id.to_string(),
        action: AuditLogAction { kind: entry.action, result: true },
        actor,
        interface,
        metadata: AuditLogMetadata {
            event_type: recorded.event.event_type(),
            position: entry.position,
            stream_id: entry.stream_id.clone(),
            stream_version: entry.stream_version,
            correlation_id: recorded.correlation_id.0.to_string(),
        },
        new_value: text(&new),
        old_value: text(&old),
        new_value_json: new,
        old_value_json: old,
        owner: AuditLogOwner { id: account_id.to_owned() },
        resource: AuditLogResource { id: entry.resource_id.clone(), kind: entry.resource_type },
        when: rfc3339(entry.when),
    })
}

/// Lists admin changes.
#[utoipa::path(
    get,
    path = "/accounts/{account_id}/audit_logs",
    tag = "Audit logs",
    operation_id = "list_audit_logs",
    params(AccountPath, AuditLogQuery),
    responses((status = 200, description = "A page of admin changes", body = AuditLogList), ListErrors, Unavailable),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    path: web::Path<String>,
    query: web::Query<AuditLogQuery>,
) -> Result<HttpResponse, ApiError> {
    // Any token may read the audit trail.
    let _ = caller;
    state.check_account(&path)?;
    let filter = query.resolve()?;
    let (entries, total) = state.read(|m| filter.select(m.audit.entries()));

    // Each stream is read once, up to the newest version the page needs.
    let mut upto: HashMap<&str, u64> = HashMap::new();
    for entry in &entries {
        let version = upto.entry(entry.stream_id.as_str()).or_default();
        *version = (*version).max(entry.stream_version);
    }
    let mut streams: HashMap<&str, Vec<RecordedEvent>> = HashMap::with_capacity(upto.len());
    for (stream, version) in upto {
        let limit = usize::try_from(version).unwrap_or(usize::MAX);
        streams.insert(stream, state.app.log.read_stream(stream, 1, limit).await?);
    }
    let account_id = state.account_id.as_str();
    let items = entries
        .iter()
        .map(|entry| {
            let stream = streams.get(entry.stream_id.as_str()).map_or(&[][..], Vec::as_slice);
            audit_log(entry, account_id, stream)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let shown = (filter.page as usize - 1)
        .saturating_mul(filter.per_page as usize)
        .saturating_add(items.len());
    let cursor = entries.last().filter(|_| shown < total).map(|e| encode_cursor(e.position));
    let info = AuditLogResultInfo {
        paging: ResultInfo {
            page: filter.page,
            per_page: filter.per_page,
            count: items.len(),
            total_count: total,
            total_pages: total.div_ceil(filter.per_page as usize),
        },
        cursor,
    };
    Ok(AuditLogList::page(items, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<AuditFilter, ApiError> {
        let text: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace('+', "%2B")))
            .collect();
        let query = web::Query::<AuditLogQuery>::from_query(&text.join("&"))
            .map_err(|e| invalid("query", e))?;
        query.resolve()
    }

    #[test]
    fn actor_types_are_the_kinds_the_log_records() {
        let actors = [
            Actor::User { id: "u1".into(), email: "a@example.com".into() },
            Actor::ApiToken { id: "tok".into(), name: "admin".into() },
            Actor::ServiceToken { id: "0190a3c2-token-id".into() },
            Actor::system("bootstrap"),
        ];
        for recorded in actors {
            let (shown, _) = actor(&recorded);
            let stored = serde_json::to_value(&recorded).ok().unwrap_or_default();
            let kind = serde_json::to_value(shown.kind).ok().unwrap_or_default();
            assert_eq!(kind, stored["kind"], "{recorded:?}");
            let id = stored.get("id").or_else(|| stored.get("component"));
            assert_eq!(Some(&Value::String(shown.id)), id, "{recorded:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for position in [0, 1, 42, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(position)).ok(), Some(position));
        }
        for bad in ["", "!!", "bm90IGEgbnVtYmVy", "LTE", &"A".repeat(40)] {
            let err = decode_cursor(bad).err().map(|e| e.message).unwrap_or_default();
            assert!(err.contains("`cursor`"), "{bad}: {err}");
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let defaults = query(&[]).ok().unwrap_or_default();
        assert_eq!(defaults.per_page, DEFAULT_PER_PAGE);
        assert_eq!(defaults.page, 1);
        assert_eq!(defaults.direction, Direction::Desc);

        let day = query(&[("since", "2025-04-30")]).ok().and_then(|f| f.since);
        assert_eq!(day.map(rfc3339).as_deref(), Some("2025-04-30T00:00:00.000000Z"));
        let time = query(&[("before", "2025-04-30T12:00:00+02:00")]).ok().and_then(|f| f.before);
        assert_eq!(time.map(rfc3339).as_deref(), Some("2025-04-30T10:00:00.000000Z"));
        let naive = query(&[("since", "2025-04-30T12:00:00.25")]).ok().and_then(|f| f.since);
        assert_eq!(naive.map(rfc3339).as_deref(), Some("2025-04-30T12:00:00.250000Z"));

        for (param, value) in [
            ("per_page", "0"),
            ("per_page", "5000"),
            ("per_page", "ten"),
            ("page", "0"),
            ("since", "yesterday"),
            ("before", "2025-13-01"),
            ("direction", "up"),
            ("action.type", "explode"),
            ("resource.type", "zone"),
            ("id", "42"),
            ("hide_user_logs", "yes"),
            ("cursor", "%%%"),
        ] {
            let message = query(&[(param, value)]).err().map(|e| e.message).unwrap_or_default();
            assert!(message.contains(&format!("`{param}`")), "{param}={value}: {message}");
        }
        let both = query(&[("cursor", &encode_cursor(3)), ("page", "2")]);
        assert!(both.is_err());
    }
}
