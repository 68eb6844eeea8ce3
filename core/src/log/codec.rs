//! The stored form of an event, shared by every backend, and its conversion to and from
//! [`RecordedEvent`] (with upcasting of older payload shapes on the way in).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{LogError, Position};
use crate::event::{Actor, CorrelationId, Event, EventMetadata, NewEvent, RecordedEvent};
use crate::upcast;

/// An event serialised for storage, before the log assigns its position and stream version,
/// with the event itself (for the log's in-memory tail).
#[derive(Debug, Clone)]
pub(crate) struct EncodedEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: String,
    pub original: Event,
}

/// The metadata of an append, serialised once for all its events, with the metadata itself.
#[derive(Debug, Clone)]
pub(crate) struct EncodedMetadata {
    pub actor: String,
    pub correlation_id: Uuid,
    pub original: EventMetadata,
}

pub(crate) fn encode_events(events: Vec<NewEvent>) -> Result<Vec<EncodedEvent>, LogError> {
    events
        .into_iter()
        .map(|e| {
            Ok(EncodedEvent {
                event_id: e.event_id,
                event_type: e.event.event_type(),
                schema_version: e.event.schema_version(),
                payload: serde_json::to_string(&e.event).map_err(LogError::storage)?,
                original: e.event,
            })
        })
        .collect()
}

pub(crate) fn encode_metadata(metadata: &EventMetadata) -> Result<EncodedMetadata, LogError> {
    Ok(EncodedMetadata {
        actor: serde_json::to_string(&metadata.actor).map_err(LogError::storage)?,
        correlation_id: metadata.correlation_id.0,
        original: metadata.clone(),
    })
}

/// One row of the log with its text columns borrowed from the database driver's buffer, so
/// that a replay does not copy them before parsing.
#[derive(Debug, Clone)]
pub(crate) struct StoredEventRef<'a> {
    pub position: Position,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub recorded_at: DateTime<Utc>,
    pub actor: &'a str,
    pub correlation_id: Uuid,
    pub payload: &'a str,
}

/// The last actor decoded while reading a batch: consecutive events mostly share their actor,
/// and a clone is much cheaper than parsing it again.
#[derive(Debug, Default)]
pub(crate) struct ActorCache {
    last: Option<(String, Actor)>,
}

impl ActorCache {
    fn decode(&mut self, text: &str) -> Result<Actor, serde_json::Error> {
        if let Some((cached, actor)) = &self.last {
            if cached == text {
                return Ok(actor.clone());
            }
        }
        let actor: Actor = serde_json::from_str(text)?;
        self.last = Some((text.to_owned(), actor.clone()));
        Ok(actor)
    }
}

impl StoredEventRef<'_> {
    pub(crate) fn decode(self, actors: &mut ActorCache) -> Result<RecordedEvent, LogError> {
        let position = self.position;
        let decode_err = |message: String| LogError::Decode { position, message };
        let event = upcast::decode(self.event_type, self.schema_version, self.payload)
            .map_err(|e| decode_err(e.to_string()))?;
        let actor = actors.decode(self.actor).map_err(|e| decode_err(format!("actor: {e}")))?;
        Ok(RecordedEvent {
            position,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            recorded_at: self.recorded_at,
            actor,
            correlation_id: CorrelationId(self.correlation_id),
            schema_version: self.schema_version,
            event,
        })
    }
}

/// Microseconds since the Unix epoch, the SQLite backend's time column.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(position: Position, micros: i64) -> Result<DateTime<Utc>, LogError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| LogError::Decode {
        position,
        message: format!("timestamp {micros} is out of range"),
    })
}

/// Converts a stored integer to `u64`, failing on a negative value (which only corruption makes).
pub(crate) fn non_negative(position: Position, what: &str, value: i64) -> Result<u64, LogError> {
    u64::try_from(value)
        .map_err(|_| LogError::Decode { position, message: format!("{what} {value} is negative") })
}
