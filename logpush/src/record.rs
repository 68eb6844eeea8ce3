//! The rows a job delivers: [`Record`], one of a dataset's rows, and [`McpPortalLog`], one row of
//! `mcp_portal_logs`, built from a recorded [`PortalRequestHandled`] event (the rows of
//! `audit_logs` are in [`crate::audit`]). Every row shows its fields through [`Row`].
//!
//! A `mcp_portal_logs` row holds the dataset's 19 fields with their dataset types, Portico's own
//! (`EventID`, `Status`, `PolicyIDs`, `DurationMs`), plus the log position of the event it came
//! from (not a dataset field: the worker names objects after position ranges, and
//! sampling is decided by position so that re-encoding a batch gives the same object).
//!
//! A field the event has no value for is `None` and is written as a null: `ClientCountry`,
//! `ColoCode` and `ServerAUD` have no equivalent in a self-hosted deployment (docs/data-plane.md),
//! and the per-method fields are null for the other methods.

use chrono::{DateTime, Utc};
use portico_core::domain::call::{AuditedMethod, PortalRequestHandled};
use portico_core::{Event, Position, RecordedEvent};

use crate::audit::AuditLogRecord;
use crate::dataset::Field;

/// What the encoders, filters and batches need of a row.
pub trait Row {
    /// The global log position of the event the row was built from.
    fn position(&self) -> Position;
    /// When the row's event was recorded (`{DATE}` of an object's name is its first row's).
    fn datetime(&self) -> DateTime<Utc>;
    /// The value of `field` (`Null` for a field of another dataset).
    fn value(&self, field: Field) -> Value<'_>;
    /// About how many bytes the row takes as text: what a batch's bytes limit counts.
    fn estimated_size(&self) -> usize;
}

/// One row of a job's dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Call(McpPortalLog),
    Audit(AuditLogRecord),
}

impl Row for Record {
    fn position(&self) -> Position {
        match self {
            Record::Call(r) => r.position,
            Record::Audit(r) => r.position,
        }
    }

    fn datetime(&self) -> DateTime<Utc> {
        match self {
            Record::Call(r) => r.datetime,
            Record::Audit(r) => r.when,
        }
    }

    fn value(&self, field: Field) -> Value<'_> {
        match self {
            Record::Call(r) => r.value(field),
            Record::Audit(r) => r.value(field),
        }
    }

    fn estimated_size(&self) -> usize {
        match self {
            Record::Call(r) => r.estimated_size(),
            Record::Audit(r) => r.estimated_size(),
        }
    }
}

/// One row of `mcp_portal_logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpPortalLog {
    /// The global log position of the event the row was built from (not a dataset field).
    pub position: Position,
    /// `ClientCountry`.
    pub client_country: Option<String>,
    /// `ClientIP`.
    pub client_ip: Option<String>,
    /// `ColoCode`.
    pub colo_code: Option<String>,
    /// `Datetime`: when the event was recorded.
    pub datetime: DateTime<Utc>,
    /// `Error`.
    pub error: Option<String>,
    /// `Method`.
    pub method: AuditedMethod,
    /// `PortalAUD`.
    pub portal_aud: Option<String>,
    /// `PortalID`.
    pub portal_id: String,
    /// `PromptGetName`.
    pub prompt_get_name: Option<String>,
    /// `ResourceReadURI`.
    pub resource_read_uri: Option<String>,
    /// `ServerAUD`.
    pub server_aud: Option<String>,
    /// `ServerID`.
    pub server_id: Option<String>,
    /// `ServerResponseDurationMs`.
    pub server_response_duration_ms: Option<i64>,
    /// `ServerURL`.
    pub server_url: Option<String>,
    /// `SessionID`.
    pub session_id: Option<String>,
    /// `Success`.
    pub success: bool,
    /// `ToolCallName`.
    pub tool_call_name: Option<String>,
    /// `UserEmail`.
    pub user_email: Option<String>,
    /// `UserID`.
    pub user_id: String,
    /// `EventID` (Portico's).
    pub event_id: String,
    /// `Status` (Portico's).
    pub status: &'static str,
    /// `PolicyIDs` (Portico's): a JSON list of strings.
    pub policy_ids: String,
    /// `DurationMs` (Portico's).
    pub duration_ms: i64,
}

/// The value of one field of a row, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// The row has no value for the field.
    Null,
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    /// A JSON value, as its compact text.
    Json(&'a str),
}

impl McpPortalLog {
    /// The row of a recorded event, if it is a [`PortalRequestHandled`]; `None` for any other
    /// event (admin changes are not part of this dataset).
    pub fn from_recorded(recorded: &RecordedEvent) -> Option<McpPortalLog> {
        match &recorded.event {
            Event::PortalRequestHandled(call) => Some(McpPortalLog::from_call(
                recorded.position,
                &recorded.event_id,
                recorded.recorded_at,
                call,
            )),
            _ => None,
        }
    }

    /// The row of a call event `event_id` recorded at `position` and time `recorded_at`.
    pub fn from_call(
        position: Position,
        event_id: &uuid::Uuid,
        recorded_at: DateTime<Utc>,
        call: &PortalRequestHandled,
    ) -> McpPortalLog {
        // Saturate the impossible (durations above 292 million years).
        let millis = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        McpPortalLog {
            position,
            client_country: None,
            client_ip: call.client_ip.clone(),
            colo_code: None,
            datetime: recorded_at,
            error: call.error.clone(),
            method: call.method,
            portal_aud: call.portal_aud.clone(),
            portal_id: call.portal_id.to_string(),
            prompt_get_name: call.prompt_get_name.clone(),
            resource_read_uri: call.resource_read_uri.clone(),
            server_aud: None,
            server_id: call.server_id.as_ref().map(ToString::to_string),
            server_response_duration_ms: call.server_response_duration_ms.map(millis),
            server_url: call.server_url.clone(),
            session_id: call.session_id.clone(),
            success: call.success(),
            tool_call_name: call.tool_call_name.clone(),
            user_email: call.user_email.clone(),
            user_id: call.user_id.clone(),
            event_id: event_id.to_string(),
            status: call.status.as_str(),
            // INVARIANT: a list of strings always serializes.
            policy_ids: serde_json::to_string(&call.policies).unwrap_or_else(|_| "[]".to_owned()),
            duration_ms: millis(call.duration_ms),
        }
    }
}

impl Row for McpPortalLog {
    fn position(&self) -> Position {
        self.position
    }

    fn datetime(&self) -> DateTime<Utc> {
        self.datetime
    }

    fn estimated_size(&self) -> usize {
        const FIXED: usize = 160; // names, quotes, the timestamp, the numbers and the booleans
        let text = |v: &Option<String>| v.as_deref().map_or(0, str::len);
        FIXED
            + [
                &self.client_ip,
                &self.error,
                &self.portal_aud,
                &self.prompt_get_name,
                &self.resource_read_uri,
                &self.server_id,
                &self.server_url,
                &self.session_id,
                &self.tool_call_name,
                &self.user_email,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>()
            + self.portal_id.len()
            + self.user_id.len()
    }

    fn value(&self, field: Field) -> Value<'_> {
        fn text(value: &Option<String>) -> Value<'_> {
            value.as_deref().map_or(Value::Null, Value::Str)
        }
        match field {
            Field::ClientCountry => text(&self.client_country),
            Field::ClientIp => text(&self.client_ip),
            Field::ColoCode => text(&self.colo_code),
            Field::Datetime => Value::Timestamp(self.datetime),
            Field::Error => text(&self.error),
            Field::Method => Value::Str(self.method.as_str()),
            Field::PortalAud => text(&self.portal_aud),
            Field::PortalId => Value::Str(&self.portal_id),
            Field::PromptGetName => text(&self.prompt_get_name),
            Field::ResourceReadUri => text(&self.resource_read_uri),
            Field::ServerAud => text(&self.server_aud),
            Field::ServerId => text(&self.server_id),
            Field::ServerResponseDurationMs => {
                self.server_response_duration_ms.map_or(Value::Null, Value::Int)
            }
            Field::ServerUrl => text(&self.server_url),
            Field::SessionId => text(&self.session_id),
            Field::Success => Value::Bool(self.success),
            Field::ToolCallName => text(&self.tool_call_name),
            Field::UserEmail => text(&self.user_email),
            Field::UserId => Value::Str(&self.user_id),
            Field::EventId => Value::Str(&self.event_id),
            Field::Status => Value::Str(self.status),
            Field::PolicyIds => Value::Json(&self.policy_ids),
            Field::DurationMs => Value::Int(self.duration_ms),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::call::CallStatus;
    use portico_core::domain::ids::ServerId;
    use portico_core::domain::server::ServerRemoved;

    use super::*;
    use crate::dataset::FieldType;
    use crate::testing::{handled, recorded_at};

    fn call() -> PortalRequestHandled {
        handled(CallStatus::ToolError)
    }

    fn recorded(event: Event) -> RecordedEvent {
        recorded_at(42, event)
    }

    #[test]
    fn a_call_event_maps_to_the_dataset_fields() {
        let row = McpPortalLog::from_recorded(&recorded(Event::PortalRequestHandled(call())))
            .expect("a call event has a row");
        assert_eq!(row.position, 42);
        assert_eq!(
            row.value(Field::Datetime),
            Value::Timestamp(Utc.timestamp_opt(1_700_000_000, 5).unwrap())
        );
        assert_eq!(row.value(Field::PortalId), Value::Str("main"));
        assert_eq!(row.value(Field::PortalAud), Value::Str("aud-1"));
        assert_eq!(row.value(Field::Method), Value::Str("tools/call"));
        assert_eq!(row.value(Field::ServerId), Value::Str("github"));
        assert_eq!(row.value(Field::ServerUrl), Value::Str("https://mcp.example.com/mcp"));
        // The name the client called, not the upstream's own name.
        assert_eq!(row.value(Field::ToolCallName), Value::Str("github_search"));
        assert_eq!(row.value(Field::PromptGetName), Value::Null);
        assert_eq!(row.value(Field::SessionId), Value::Str("s-1"));
        assert_eq!(row.value(Field::ClientIp), Value::Str("192.0.2.7"));
        assert_eq!(row.value(Field::UserId), Value::Str("u-1"));
        assert_eq!(row.value(Field::UserEmail), Value::Str("ada@example.com"));
        // A tool error is not a success.
        assert_eq!(row.value(Field::Success), Value::Bool(false));
        assert_eq!(row.value(Field::Error), Value::Str("tool reported an error"));
        assert_eq!(row.value(Field::ServerResponseDurationMs), Value::Int(9));
        // Portico's own fields.
        assert_eq!(row.value(Field::EventId), Value::Str("00000000-0000-0000-0000-000000000000"));
        assert_eq!(row.value(Field::Status), Value::Str("tool_error"));
        assert_eq!(row.value(Field::PolicyIds), Value::Json(r#"["p1"]"#));
        assert_eq!(row.value(Field::DurationMs), Value::Int(12));
        // A field of another dataset has no value here.
        assert_eq!(row.value(Field::ActorEmail), Value::Null);
        for absent in [Field::ClientCountry, Field::ColoCode, Field::ServerAud] {
            assert_eq!(row.value(absent), Value::Null);
        }
    }

    #[test]
    fn every_value_has_its_fields_type() {
        let row = McpPortalLog::from_call(1, &uuid::Uuid::nil(), Utc::now(), &call());
        for field in Field::ALL {
            let ok = matches!(
                (row.value(field), field.field_type()),
                (Value::Null, _)
                    | (Value::Str(_), FieldType::String)
                    | (Value::Int(_), FieldType::Int)
                    | (Value::Bool(_), FieldType::Bool)
                    | (Value::Timestamp(_), FieldType::Timestamp)
                    | (Value::Json(_), FieldType::Json)
            );
            assert!(ok, "{field} has a value of the wrong type");
        }
    }

    #[test]
    fn other_events_have_no_row() {
        let removed = ServerRemoved { server_id: ServerId::parse("github").unwrap() };
        assert_eq!(McpPortalLog::from_recorded(&recorded(Event::ServerRemoved(removed))), None);
    }
}
