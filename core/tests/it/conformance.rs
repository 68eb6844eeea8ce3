//! The event-log conformance suite: every backend must pass it unchanged.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use portico_core::domain::portal::CodeMode;
use portico_core::log::{ActualVersion, RECORDS_PER_WAKE, Subscription};
use portico_core::testing::CountingReads;
use portico_core::{AppendError, Event, EventLog, ExpectedVersion};

use crate::support::{Harness, call_record, event, metadata, number_of, on_every_backend};

on_every_backend!(
    append_then_read_stream_keeps_everything,
    expected_version_rules,
    conflicting_append_writes_nothing,
    racing_creators_only_one_wins,
    invalid_appends_are_rejected,
    read_all_is_in_position_order,
    concurrent_writers_get_contiguous_positions_and_versions,
    subscriber_from_the_middle_sees_each_event_once,
    subscriber_wakes_on_live_append,
    read_after_append,
    older_payloads_are_upcast,
    recent_events_read_as_stored,
    appends_of_another_instance_in_between_are_read,
    a_follower_at_the_head_waits_without_reading,
    a_follower_finds_appends_of_another_process_by_polling,
    a_follower_of_changes_reads_call_records_with_the_next_change,
);

async fn append_then_read_stream_keeps_everything(h: Harness) {
    let meta = metadata();
    let events: Vec<_> = (1..=3).map(event).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    let appended =
        h.log.append("server-a", ExpectedVersion::NoStream, events, &meta).await.unwrap();
    assert_eq!(
        (appended.first_position, appended.last_position, appended.stream_version),
        (1, 3, 3)
    );

    let read = h.log.read_stream("server-a", 1, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    for (i, recorded) in read.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(recorded.position, n);
        assert_eq!(recorded.stream_version, n);
        assert_eq!(recorded.stream_id, "server-a");
        assert_eq!(recorded.event_id, ids[i]);
        assert_eq!(recorded.actor, meta.actor);
        assert_eq!(recorded.correlation_id, meta.correlation_id);
        assert_eq!(recorded.schema_version, 1);
        assert_eq!(number_of(&recorded.event), n);
        assert!(recorded.event_id.get_version_num() == 7, "event ids are UUIDv7");
    }
    // from_version and limit
    let tail = h.log.read_stream("server-a", 2, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].stream_version, 2);
    assert!(h.log.read_stream("server-b", 1, 100).await.unwrap().is_empty());
}

async fn expected_version_rules(h: Harness) {
    let m = metadata();
    let log = &h.log;
    log.append("s", ExpectedVersion::NoStream, vec![event(1)], &m).await.unwrap();
    log.append("s", ExpectedVersion::Exact(1), vec![event(2)], &m).await.unwrap();
    log.append("s", ExpectedVersion::Any, vec![event(3)], &m).await.unwrap();
    log.append("fresh", ExpectedVersion::Any, vec![event(4)], &m).await.unwrap();

    let err = log.append("s", ExpectedVersion::NoStream, vec![event(5)], &m).await.unwrap_err();
    match &err {
        AppendError::Conflict { stream_id, expected, actual } => {
            assert_eq!(stream_id, "s");
            assert_eq!(*expected, ExpectedVersion::NoStream);
            assert_eq!(*actual, ActualVersion(Some(3)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(err.to_string(), "stream `s` was expected at no stream but is at version 3");

    let err = log.append("s", ExpectedVersion::Exact(7), vec![event(6)], &m).await.unwrap_err();
    assert_eq!(err.to_string(), "stream `s` was expected at version 7 but is at version 3");
    let err = log.append("none", ExpectedVersion::Exact(0), vec![event(7)], &m).await.unwrap_err();
    assert_eq!(err.to_string(), "stream `none` was expected at version 0 but is at no stream");
}

async fn conflicting_append_writes_nothing(h: Harness) {
    let m = metadata();
    h.log.append("s", ExpectedVersion::NoStream, vec![event(1), event(2)], &m).await.unwrap();
    let before = h.log.head_position().await.unwrap();
    let err = h
        .log
        .append("s", ExpectedVersion::Exact(1), vec![event(3), event(4), event(5)], &m)
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict { .. }));
    assert_eq!(h.log.head_position().await.unwrap(), before);
    assert_eq!(h.log.read_all(0, 100).await.unwrap().len(), 2);
    assert_eq!(h.log.read_stream("s", 1, 100).await.unwrap().len(), 2);
}

async fn racing_creators_only_one_wins(h: Harness) {
    let mut tasks = Vec::new();
    for n in 0..32 {
        let log = Arc::clone(&h.log);
        tasks.push(tokio::spawn(async move {
            log.append(
                "contested",
                ExpectedVersion::NoStream,
                vec![event(n), event(n + 100)],
                &metadata(),
            )
            .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, ActualVersion(Some(2))),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(wins, 1);
    let stream = h.log.read_stream("contested", 1, 100).await.unwrap();
    assert_eq!(stream.len(), 2);
    assert_eq!(number_of(&stream[1].event), number_of(&stream[0].event) + 100, "one append, whole");
}

async fn invalid_appends_are_rejected(h: Harness) {
    let m = metadata();
    let err = h.log.append("s", ExpectedVersion::Any, vec![], &m).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid append: no events to append");
    let long = "x".repeat(portico_core::log::MAX_STREAM_ID_LEN + 1);
    let err = h.log.append(&long, ExpectedVersion::Any, vec![event(1)], &m).await.unwrap_err();
    assert!(matches!(err, AppendError::Invalid(_)), "{err}");
    let err = h.log.append("", ExpectedVersion::Any, vec![event(1)], &m).await.unwrap_err();
    assert!(matches!(err, AppendError::Invalid(_)), "{err}");
    // The same event id twice is refused by the storage; the log stays as it was.
    let e = event(1);
    h.log.append("a", ExpectedVersion::Any, vec![e.clone()], &m).await.unwrap();
    let err = h.log.append("b", ExpectedVersion::Any, vec![event(2), e], &m).await.unwrap_err();
    assert!(matches!(err, AppendError::Log(_)), "{err}");
    assert_eq!(h.log.head_position().await.unwrap(), 1);
    assert!(h.log.read_stream("b", 1, 10).await.unwrap().is_empty());
}

async fn read_all_is_in_position_order(h: Harness) {
    let m = metadata();
    for n in 0..50u64 {
        let stream = format!("stream-{}", n % 5);
        h.log.append(&stream, ExpectedVersion::Any, vec![event(n)], &m).await.unwrap();
    }
    let all = h.log.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 50);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1);
        assert_eq!(number_of(&e.event), i as u64);
        assert_eq!(e.stream_version, i as u64 / 5 + 1);
    }
    let page = h.log.read_all(20, 7).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), (21..=27).collect::<Vec<_>>());
    assert!(h.log.read_all(50, 10).await.unwrap().is_empty());
    let timestamps: Vec<_> = all.iter().map(|e| e.recorded_at).collect();
    assert!(timestamps.windows(2).all(|w| w[0] <= w[1]), "time follows position");
}

const WRITERS: u64 = 16;
const EVENTS_PER_WRITER: u64 = 1000;

/// 16 writers append 1,000 events each, one at a time with an exact expected version, while a
/// subscriber follows from the start.
async fn concurrent_writers_get_contiguous_positions_and_versions(h: Harness) {
    let total = WRITERS * EVENTS_PER_WRITER;
    let follower = tokio::spawn(collect(Subscription::new(Arc::clone(&h.log), 0), total));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = Arc::clone(&h.log);
        writers.push(tokio::spawn(async move {
            let stream = format!("writer-{w}");
            for i in 0..EVENTS_PER_WRITER {
                let expected =
                    if i == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(i) };
                let appended = log
                    .append(&stream, expected, vec![event(w * EVENTS_PER_WRITER + i)], &metadata())
                    .await
                    .unwrap();
                assert_eq!(appended.stream_version, i + 1);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let all = h.log.read_all(0, total as usize + 10).await.unwrap();
    assert_eq!(all.len() as u64, total);
    let mut next_version: BTreeMap<String, u64> = BTreeMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "positions are contiguous");
        let version = next_version.entry(e.stream_id.clone()).or_insert(1);
        assert_eq!(e.stream_version, *version, "stream versions are contiguous");
        let w: u64 = e.stream_id["writer-".len()..].parse().unwrap();
        assert_eq!(number_of(&e.event), w * EVENTS_PER_WRITER + *version - 1, "stream order kept");
        *version += 1;
    }
    assert_eq!(next_version.len() as u64, WRITERS);
    let followed = follower.await.unwrap();
    assert_eq!(followed, (1..=total).collect::<Vec<_>>());
}

/// Collects the positions of `count` events from a subscription.
async fn collect(mut sub: Subscription, count: u64) -> Vec<u64> {
    let mut seen = Vec::with_capacity(count as usize);
    while (seen.len() as u64) < count {
        let e = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .expect("subscription stalled")
            .unwrap();
        seen.push(e.position);
    }
    seen
}

/// A subscriber that starts half-way, while writers keep appending, sees every later event
/// exactly once and in order.
async fn subscriber_from_the_middle_sees_each_event_once(h: Harness) {
    let m = metadata();
    for n in 0..500 {
        h.log
            .append(&format!("pre-{}", n % 7), ExpectedVersion::Any, vec![event(n)], &m)
            .await
            .unwrap();
    }
    let start = h.log.head_position().await.unwrap();
    assert_eq!(start, 500);
    let later = 8 * 250;
    let sub = Subscription::new(Arc::clone(&h.log), start).with_batch(64);
    let follower = tokio::spawn(collect(sub, later));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let log = Arc::clone(&h.log);
        writers.push(tokio::spawn(async move {
            for i in 0..250u64 {
                let batch = if i % 10 == 0 { vec![event(i), event(i + 1)] } else { vec![event(i)] };
                log.append(&format!("live-{w}"), ExpectedVersion::Any, batch, &metadata())
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let total = h.log.head_position().await.unwrap();
    let seen = follower.await.unwrap();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(seen, (start + 1..=start + later).collect::<Vec<_>>());
    assert!(total >= start + later);
}

async fn subscriber_wakes_on_live_append(h: Harness) {
    let mut sub = Subscription::new(Arc::clone(&h.log), 0)
        // A long poll interval: only the head notification can wake it in time.
        .with_poll_interval(Duration::from_secs(3600));
    let waiting = tokio::spawn(async move { sub.next().await.map(|e| e.position) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.log.append("s", ExpectedVersion::Any, vec![event(1)], &metadata()).await.unwrap();
    let position =
        tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(position, 1);
}

async fn read_after_append(h: Harness) {
    let m = metadata();
    for n in 1..=20u64 {
        let appended = h.log.append("ryw", ExpectedVersion::Any, vec![event(n)], &m).await.unwrap();
        assert!(h.log.head_position().await.unwrap() >= appended.last_position);
        assert!(*h.log.watch_head().borrow() >= appended.last_position);
        let all = h.log.read_all(appended.last_position - 1, 10).await.unwrap();
        assert_eq!(all.first().map(|e| number_of(&e.event)), Some(n));
        let stream = h.log.read_stream("ryw", appended.stream_version, 10).await.unwrap();
        assert_eq!(stream.len(), 1);
    }
}

/// A portal written by an older build, with `allow_code_mode` instead of `code_mode`, reads back
/// in the current shape.
async fn older_payloads_are_upcast(h: Harness) {
    let v1_open = r#"{"type":"PortalAdded","portal_id":"legacy","settings":{"name":"Legacy","hostname":"mcp.example.com","description":null,"allow_code_mode":true,"secure_web_gateway":false,"servers":[]}}"#;
    let v1_closed = r#"{"type":"PortalUpdated","portal_id":"legacy","settings":{"name":"Legacy","hostname":"mcp.example.com","description":null,"allow_code_mode":false,"secure_web_gateway":true,"servers":[]}}"#;
    let actor = r#"{"kind":"system","component":"tests"}"#;
    let sqlite = format!(
        "INSERT INTO events VALUES (1, 'portal-legacy', 1, X'0190000000007000800000000000000A', 'PortalAdded', 1, 0, '{actor}', X'0190000000007000800000000000000B', '{v1_open}');
         INSERT INTO events VALUES (2, 'portal-legacy', 2, X'0190000000007000800000000000000C', 'PortalUpdated', 1, 1, '{actor}', X'0190000000007000800000000000000B', '{v1_closed}');"
    );
    let postgres = format!(
        "INSERT INTO portico_events VALUES (1, 'portal-legacy', 1, '01900000-0000-7000-8000-00000000000a', 'PortalAdded', 1, now(), '{actor}', '01900000-0000-7000-8000-00000000000b', '{v1_open}');
         INSERT INTO portico_events VALUES (2, 'portal-legacy', 2, '01900000-0000-7000-8000-00000000000c', 'PortalUpdated', 1, now(), '{actor}', '01900000-0000-7000-8000-00000000000b', '{v1_closed}');
         UPDATE portico_log_head SET position = 2;"
    );
    h.execute_raw(&sqlite, &postgres).await;
    let log = h.reopen().await;
    let events = log.read_stream("portal-legacy", 1, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].schema_version, 1, "the stored version is reported");
    match &events[0].event {
        Event::PortalAdded(p) => {
            assert_eq!(p.portal_id.as_str(), "legacy");
            assert_eq!(p.settings.code_mode, CodeMode::OptIn);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &events[1].event {
        Event::PortalUpdated(p) => {
            assert_eq!(p.settings.code_mode, CodeMode::Off);
            assert!(p.settings.secure_web_gateway);
        }
        other => panic!("unexpected {other:?}"),
    }
    // New appends continue after the planted rows, at the current schema version.
    let appended = log
        .append("portal-legacy", ExpectedVersion::Exact(2), vec![event(9)], &metadata())
        .await
        .unwrap();
    assert_eq!(appended.last_position, 3);
}

/// What a follower reads of the events this instance just committed (the backend may serve them
/// from memory) is exactly what a fresh instance reads of them from storage.
async fn recent_events_read_as_stored(h: Harness) {
    let m = metadata();
    for n in 1..=30u64 {
        let events = (0..n % 3 + 1).map(|k| event(n * 10 + k)).collect();
        h.log.append(&format!("stream-{}", n % 4), ExpectedVersion::Any, events, &m).await.unwrap();
    }
    let head = h.log.head_position().await.unwrap();
    let fresh = h.reopen().await;
    for after in [0, 1, head / 2, head - 1, head] {
        for limit in [1, 7, 1000] {
            let recent = h.log.read_all(after, limit).await.unwrap();
            let stored = fresh.read_all(after, limit).await.unwrap();
            assert_eq!(recent, stored, "after {after}, limit {limit}");
        }
    }
}

/// Another instance (the CLI on the same SQLite file, another server on PostgreSQL) appends
/// between this instance's appends: reading from any position returns every event once, in
/// order, with none of the other instance's left out.
async fn appends_of_another_instance_in_between_are_read(h: Harness) {
    let m = metadata();
    let other = h.reopen().await;
    for n in 1..=12u64 {
        let log = if n % 3 == 0 { &other } else { &h.log };
        log.append("shared", ExpectedVersion::Any, vec![event(n)], &m).await.unwrap();
    }
    for after in 0..12u64 {
        // Page as a follower does: a page may end early, an empty one means the end.
        let mut read = Vec::new();
        let mut position = after;
        loop {
            let page = h.log.read_all(position, 100).await.unwrap();
            let Some(last) = page.last() else { break };
            position = last.position;
            read.extend(page.iter().map(|e| number_of(&e.event)));
        }
        assert_eq!(read, (after + 1..=12).collect::<Vec<_>>(), "after {after}");
    }
    let mut sub = Subscription::new(Arc::clone(&h.log), 0);
    let mut seen = Vec::new();
    for _ in 0..12 {
        let next = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.unwrap();
        seen.push(number_of(&next.unwrap().event));
    }
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
}

/// A follower woken by each of 40 appends reads the log once per wake-up: it does not read
/// again to learn that it has reached the head it was told of.
async fn a_follower_at_the_head_waits_without_reading(h: Harness) {
    let counting = Arc::new(CountingReads::new(Arc::clone(&h.log)));
    let mut sub = Subscription::new(Arc::clone(&counting) as Arc<dyn EventLog>, 0)
        .with_poll_interval(Duration::from_secs(3600));
    let m = metadata();
    for n in 1..=40u64 {
        h.log.append("s", ExpectedVersion::Any, vec![event(n)], &m).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.unwrap();
        assert_eq!(number_of(&next.unwrap().event), n);
    }
    // Its first call reads (and finds nothing or the first event); then one read per event.
    let reads = counting.reads();
    assert!(reads <= 41, "{reads} reads for 40 events");
}

/// Appends by another process move no head here (SQLite: the CLI on the same file): a caught-up
/// follower still finds them, by reading the log once per poll interval.
async fn a_follower_finds_appends_of_another_process_by_polling(h: Harness) {
    let m = metadata();
    h.log.append("s", ExpectedVersion::Any, vec![event(1)], &m).await.unwrap();
    let mut sub =
        Subscription::new(Arc::clone(&h.log), 0).with_poll_interval(Duration::from_millis(50));
    assert_eq!(number_of(&sub.next().await.unwrap().event), 1);
    let other = h.reopen().await;
    for n in 2..=4u64 {
        other.append("s", ExpectedVersion::Any, vec![event(n)], &m).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.unwrap();
        assert_eq!(number_of(&next.unwrap().event), n);
    }
}

/// A follower of changes is not woken by commits of call records alone (one per audited call):
/// it reads them, in order, with the next change, or once `RECORDS_PER_WAKE` positions of them
/// have passed. Its poll (an hour here) plays no part.
async fn a_follower_of_changes_reads_call_records_with_the_next_change(h: Harness) {
    let m = metadata();
    let mut sub = Subscription::new(Arc::clone(&h.log), 0)
        .with_poll_interval(Duration::from_secs(3600))
        .waking_on_changes();
    h.log.append("s", ExpectedVersion::Any, vec![event(1)], &m).await.unwrap();
    assert_eq!(next_number(&mut sub).await, 1);
    for n in 2..=4 {
        h.log.append("calls", ExpectedVersion::Any, vec![call_record(n)], &m).await.unwrap();
    }
    assert_not_woken(&mut sub).await;
    h.log.append("s", ExpectedVersion::Any, vec![event(5)], &m).await.unwrap();
    let mut seen = Vec::new();
    for _ in 2..=5 {
        seen.push(next_number(&mut sub).await);
    }
    assert_eq!(seen, [2, 3, 4, 5]);

    // The changes head is at 5: the record at 5 + RECORDS_PER_WAKE moves it, not one before.
    let last = 5 + RECORDS_PER_WAKE;
    for n in 6..=last {
        if n == last {
            assert_not_woken(&mut sub).await;
        }
        h.log.append("calls", ExpectedVersion::Any, vec![call_record(n)], &m).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 6..=last {
        seen.push(next_number(&mut sub).await);
    }
    assert_eq!(seen, (6..=last).collect::<Vec<_>>());
}

/// The number of the subscription's next event, which must come.
async fn next_number(sub: &mut Subscription) -> u64 {
    let next = tokio::time::timeout(Duration::from_secs(30), sub.next()).await;
    number_of(&next.expect("the follower was not woken").unwrap().event)
}

/// Checks that the subscription has no event for a while (dropping `next` loses nothing).
async fn assert_not_woken(sub: &mut Subscription) {
    let woken = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(woken.is_err(), "woken by call records alone: {woken:?}");
}
