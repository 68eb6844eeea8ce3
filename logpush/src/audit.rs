//! One row of `audit_logs`: an admin change, as the audit-log API shows it, in the fields of
//! Cloudflare's `audit_logs` dataset.
//!
//! Which events are admin changes, and the resource's value before and after one, are the audit
//! trail's (`portico_projections::audit`), so the API and Logpush agree. A row is built in two
//! steps: [`AuditLogRecord::from_recorded`] from the event alone (enough for filters, sampling
//! and a batch's limits), then [`fill_values`] folds `OldValue` and `NewValue` from the
//! resource's stream up to the change. A stream's events up to a version never change, so a
//! batch rebuilt after a crash has the same values, byte for byte.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use portico_core::{Actor, EventLog, Position, RecordedEvent};
use portico_projections::{audit_entry, resource_values};

use crate::dataset::Field;
use crate::record::{Record, Row, Value};

/// One row of `audit_logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogRecord {
    /// The global log position of the change's event (not a dataset field).
    pub position: Position,
    /// `ID`: the event's id.
    pub id: String,
    /// `When`.
    pub when: DateTime<Utc>,
    /// `ActionType`.
    pub action_type: &'static str,
    /// `ActorEmail`.
    pub actor_email: Option<String>,
    /// `ActorID`.
    pub actor_id: String,
    /// `ActorType`.
    pub actor_type: &'static str,
    /// `ActorName` (Portico's).
    pub actor_name: Option<String>,
    /// `Interface`.
    pub interface: &'static str,
    /// `OwnerID`: the account.
    pub owner_id: String,
    /// `ResourceID`.
    pub resource_id: String,
    /// `ResourceType`.
    pub resource_type: &'static str,
    /// `EventType` (Portico's).
    pub event_type: &'static str,
    /// `CorrelationID` (Portico's).
    pub correlation_id: String,
    /// The resource's stream and the change's version in it.
    pub stream_id: String,
    pub stream_version: u64,
    /// `Metadata`, as JSON text.
    pub metadata: String,
    /// `OldValue` and `NewValue`, as JSON text, once [`fill_values`] has run.
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

impl AuditLogRecord {
    /// The row of `recorded` in account `owner_id`, if it is an admin change; its values are
    /// filled by [`fill_values`].
    pub fn from_recorded(recorded: &RecordedEvent, owner_id: &str) -> Option<AuditLogRecord> {
        let entry = audit_entry(recorded)?;
        let (actor_id, actor_email, actor_name, actor_type, interface) = match &entry.actor {
            Actor::User { id, email } => (id, Some(email), None, "user", "API"),
            Actor::ApiToken { id, name } => (id, None, Some(name), "api_token", "API"),
            Actor::ServiceToken { id } => (id, None, None, "service_token", "API"),
            Actor::System { component } => {
                let interface = if component == "cli" { "CLI" } else { "system" };
                (component, None, None, "system", interface)
            }
        };
        let event_type = recorded.event.event_type();
        let correlation_id = recorded.correlation_id.0.to_string();
        let metadata = serde_json::json!({
            "event_type": event_type,
            "position": recorded.position,
            "stream_id": recorded.stream_id,
            "stream_version": recorded.stream_version,
            "correlation_id": correlation_id,
        })
        .to_string();
        Some(AuditLogRecord {
            position: recorded.position,
            id: entry.id.to_string(),
            when: entry.when,
            action_type: entry.action.as_str(),
            actor_email: actor_email.cloned(),
            actor_id: actor_id.clone(),
            actor_type,
            actor_name: actor_name.cloned(),
            interface,
            owner_id: owner_id.to_owned(),
            resource_id: entry.resource_id,
            resource_type: entry.resource_type.as_str(),
            event_type,
            correlation_id,
            stream_id: entry.stream_id,
            stream_version: entry.stream_version,
            metadata,
            old_value: None,
            new_value: None,
        })
    }
}

impl Row for AuditLogRecord {
    fn position(&self) -> Position {
        self.position
    }

    fn datetime(&self) -> DateTime<Utc> {
        self.when
    }

    fn value(&self, field: Field) -> Value<'_> {
        fn text(value: &Option<String>) -> Value<'_> {
            value.as_deref().map_or(Value::Null, Value::Str)
        }
        fn json(value: &Option<String>) -> Value<'_> {
            value.as_deref().map_or(Value::Null, Value::Json)
        }
        match field {
            Field::ActionResult => Value::Bool(true),
            Field::ActionType => Value::Str(self.action_type),
            Field::ActorEmail => text(&self.actor_email),
            Field::ActorId => Value::Str(&self.actor_id),
            Field::ActorIp => Value::Null,
            Field::ActorType => Value::Str(self.actor_type),
            Field::Id => Value::Str(&self.id),
            Field::Interface => Value::Str(self.interface),
            Field::Metadata => Value::Json(&self.metadata),
            Field::NewValue => json(&self.new_value),
            Field::OldValue => json(&self.old_value),
            Field::OwnerId => Value::Str(&self.owner_id),
            Field::ResourceId => Value::Str(&self.resource_id),
            Field::ResourceType => Value::Str(self.resource_type),
            Field::When => Value::Timestamp(self.when),
            Field::ActorName => text(&self.actor_name),
            Field::CorrelationId => Value::Str(&self.correlation_id),
            Field::EventType => Value::Str(self.event_type),
            _ => Value::Null,
        }
    }

    fn estimated_size(&self) -> usize {
        // The values are not known yet when a batch is filled; a resource's value is rarely
        // more than a few hundred bytes.
        const FIXED_AND_VALUES: usize = 1_000;
        FIXED_AND_VALUES
            + self.metadata.len()
            + self.actor_id.len()
            + self.resource_id.len()
            + self.actor_email.as_deref().map_or(0, str::len)
    }
}

/// Fills `OldValue` and `NewValue` of the `audit_logs` rows among `records`, reading each
/// resource's stream once, up to the newest version the rows need.
pub async fn fill_values(records: &mut [Record], log: &dyn EventLog) -> Result<(), String> {
    let mut needed: HashMap<String, u64> = HashMap::new();
    for record in records.iter() {
        if let Record::Audit(row) = record {
            let upto = needed.entry(row.stream_id.clone()).or_default();
            *upto = (*upto).max(row.stream_version);
        }
    }
    let mut streams: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
    for (stream_id, upto) in needed {
        let limit = usize::try_from(upto).unwrap_or(usize::MAX);
        let events = log
            .read_stream(&stream_id, 1, limit)
            .await
            .map_err(|e| format!("the stream `{stream_id}` could not be read: {e}"))?;
        streams.insert(stream_id, events);
    }
    for record in records.iter_mut() {
        let Record::Audit(row) = record else { continue };
        let upto = usize::try_from(row.stream_version).unwrap_or(usize::MAX);
        let events = streams.get(&row.stream_id).and_then(|s| s.get(..upto)).ok_or_else(|| {
            format!(
                "the stream `{}` ends before version {} of the change {}",
                row.stream_id, row.stream_version, row.id
            )
        })?;
        let (old, new) = resource_values(events.iter().map(|e| &e.event), &row.resource_id);
        row.old_value = old.map(|v| v.to_string());
        row.new_value = new.map(|v| v.to_string());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use portico_core::Event;
    use portico_core::domain::ids::ServerId;
    use portico_core::domain::server::ServerRemoved;

    use super::*;
    use crate::testing::{call_event, recorded_at};

    fn removal(actor: Actor) -> RecordedEvent {
        let removed = ServerRemoved { server_id: ServerId::parse("github").unwrap() };
        RecordedEvent { actor, ..recorded_at(9, Event::ServerRemoved(removed)) }
    }

    #[test]
    fn an_admin_change_maps_to_the_dataset_fields() {
        let actor = Actor::User { id: "u-1".into(), email: "ada@example.com".into() };
        let row = AuditLogRecord::from_recorded(&removal(actor), "acct-1").unwrap();
        assert_eq!(row.value(Field::ActionType), Value::Str("delete"));
        assert_eq!(row.value(Field::ActionResult), Value::Bool(true));
        assert_eq!(row.value(Field::ActorEmail), Value::Str("ada@example.com"));
        assert_eq!(row.value(Field::ActorType), Value::Str("user"));
        assert_eq!(row.value(Field::Interface), Value::Str("API"));
        assert_eq!(row.value(Field::ActorIp), Value::Null);
        assert_eq!(row.value(Field::ResourceType), Value::Str("mcp_server"));
        assert_eq!(row.value(Field::ResourceId), Value::Str("github"));
        assert_eq!(row.value(Field::OwnerId), Value::Str("acct-1"));
        assert_eq!(row.value(Field::EventType), Value::Str("ServerRemoved"));
        assert_eq!(row.datetime(), row.when);
        let Value::Json(metadata) = row.value(Field::Metadata) else { panic!("not JSON") };
        let metadata: serde_json::Value = serde_json::from_str(metadata).unwrap();
        assert_eq!(metadata["position"], 9);
        // No values until they are folded from the stream.
        assert_eq!(row.value(Field::NewValue), Value::Null);
        // A call's field has no value in this dataset.
        assert_eq!(row.value(Field::ToolCallName), Value::Null);
    }

    #[test]
    fn the_cli_and_portico_itself_are_their_own_interfaces() {
        let cli = AuditLogRecord::from_recorded(&removal(Actor::system("cli")), "a").unwrap();
        assert_eq!(
            (cli.actor_type, cli.interface, cli.actor_id.as_str()),
            ("system", "CLI", "cli")
        );
        let sync = AuditLogRecord::from_recorded(&removal(Actor::system("sync")), "a").unwrap();
        assert_eq!(sync.interface, "system");
        let token = Actor::ApiToken { id: "t-1".into(), name: "ci".into() };
        let token = AuditLogRecord::from_recorded(&removal(token), "a").unwrap();
        assert_eq!(token.value(Field::ActorName), Value::Str("ci"));
        assert_eq!(token.value(Field::ActorEmail), Value::Null);
    }

    #[test]
    fn calls_are_not_admin_changes() {
        assert_eq!(AuditLogRecord::from_recorded(&call_event(3), "a"), None);
    }
}
