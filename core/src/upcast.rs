//! Upcasters: rewrite the stored JSON of an older event shape into the current one on read.
//!
//! A payload that was shipped is never changed incompatibly. When its shape must change, the
//! variant's version in [`current_version`] goes up by one and a step `(type, old version) ->
//! JSON rewrite` is added to [`upcast_step`]. Reading applies the steps one after the other until
//! the payload reaches the current version, then deserialises it. Events at the current version
//! skip the intermediate JSON tree entirely (the common, fast path).

use serde_json::Value;

use crate::event::Event;

/// Why a stored payload cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("`{event_type}` has schema version {found}, newer than this build knows ({current})")]
    FromTheFuture { event_type: String, found: u16, current: u16 },
    #[error("unknown event type `{event_type}`")]
    UnknownType { event_type: String },
    #[error("no upcaster from `{event_type}` version {version}")]
    MissingStep { event_type: String, version: u16 },
    #[error("`{event_type}` version {version} is malformed: {message}")]
    Malformed { event_type: String, version: u16, message: String },
    #[error("payload does not match `{event_type}`: {source}")]
    Json {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The current schema version of each event type.
pub fn current_version(event_type: &str) -> u16 {
    match event_type {
        // v1 carried the deprecated `allow_code_mode: bool` instead of `code_mode`.
        "PortalAdded" | "PortalUpdated" => 2,
        _ => 1,
    }
}

/// Decodes a stored payload written at `version`, upcasting it to the current shape.
pub fn decode(event_type: &str, version: u16, payload: &str) -> Result<Event, UpcastError> {
    let current = current_version(event_type);
    let json_err = |source| UpcastError::Json { event_type: event_type.to_owned(), source };
    if version == current {
        return match Event::from_payload(event_type, payload) {
            Some(decoded) => decoded.map_err(json_err),
            None => Err(UpcastError::UnknownType { event_type: event_type.to_owned() }),
        };
    }
    if version > current {
        return Err(UpcastError::FromTheFuture {
            event_type: event_type.to_owned(),
            found: version,
            current,
        });
    }
    let mut value: Value = serde_json::from_str(payload).map_err(json_err)?;
    for v in version..current {
        upcast_step(event_type, v, &mut value)?;
    }
    serde_json::from_value(value).map_err(json_err)
}

/// Rewrites `value` from `version` of `event_type` to `version + 1`.
fn upcast_step(event_type: &str, version: u16, value: &mut Value) -> Result<(), UpcastError> {
    match (event_type, version) {
        ("PortalAdded" | "PortalUpdated", 1) => portal_v1_to_v2(value).map_err(|message| {
            UpcastError::Malformed { event_type: event_type.to_owned(), version, message }
        }),
        _ => Err(UpcastError::MissingStep { event_type: event_type.to_owned(), version }),
    }
}

/// Portal payloads v1 -> v2: the boolean `allow_code_mode` became the `code_mode` enum.
/// `true` meant "clients may opt in", which is `opt_in`; `false` is `off`.
fn portal_v1_to_v2(value: &mut Value) -> Result<(), String> {
    let settings = value
        .get_mut("settings")
        .and_then(Value::as_object_mut)
        .ok_or("missing `settings` object")?;
    let allow = match settings.remove("allow_code_mode") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(format!("`allow_code_mode` is not a boolean: {other}")),
    };
    let mode = if allow { "opt_in" } else { "off" };
    settings.insert("code_mode".to_owned(), Value::String(mode.to_owned()));
    Ok(())
}
