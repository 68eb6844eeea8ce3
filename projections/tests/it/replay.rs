//! The property: replaying from position 0 gives exactly the state that incremental
//! application reached, including across a checkpoint (state serialised, then restored).

use chrono::{TimeZone, Utc};
use portico_core::{Actor, CorrelationId, RecordedEvent};
use portico_projections::{Projection, ReadModels};
use proptest::prelude::*;

use crate::scenario::{History, op};

/// Records the accepted commands of `ops` as the log would: positions from 1, stream versions
/// per stream, time moving forward.
pub fn record(ops: &[crate::scenario::Op]) -> Vec<RecordedEvent> {
    let mut history = History::default();
    let mut versions = std::collections::BTreeMap::<String, u64>::new();
    let mut recorded = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(decided) = history.decide(op) else { continue };
        let actor = Actor::ApiToken { id: format!("tok-{}", i % 3), name: "admin".into() };
        let correlation_id = CorrelationId::new();
        for event in decided.events {
            let version = versions.entry(decided.stream.clone()).or_default();
            *version += 1;
            let position = recorded.len() as u64 + 1;
            recorded.push(RecordedEvent {
                position,
                stream_id: decided.stream.clone(),
                stream_version: *version,
                event_id: uuid::Uuid::now_v7(),
                recorded_at: Utc.timestamp_opt(1_700_000_000 + position as i64, 0).unwrap(),
                actor: actor.clone(),
                correlation_id,
                schema_version: event.schema_version(),
                event,
            });
        }
    }
    recorded
}

fn fold(events: &[RecordedEvent]) -> ReadModels {
    let mut state = ReadModels::default();
    for e in events {
        state.apply(e);
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replay_equals_incremental_application(
        ops in prop::collection::vec(op(), 1..80),
        cut in any::<prop::sample::Index>(),
    ) {
        let events = record(&ops);
        let replayed = fold(&events);

        // Incremental: apply up to a checkpoint, serialise and restore the state as the
        // runner does, then apply the rest one event at a time.
        let split = if events.is_empty() { 0 } else { cut.index(events.len() + 1) };
        let before = fold(&events[..split]);
        let stored = serde_json::to_string(&before).unwrap();
        let mut incremental: ReadModels = serde_json::from_str(&stored).unwrap();
        for e in &events[split..] {
            incremental.apply(e);
        }
        prop_assert_eq!(&incremental, &replayed);

        // And the views agree with the aggregates' own folds: every portal view lists exactly
        // the portal's servers that exist.
        for view in replayed.portals.iter().map(|r| replayed.view(r)) {
            for s in &view.servers {
                prop_assert!(replayed.catalog.get(&s.server_id).is_some());
            }
        }
    }
}
