//! Several Portico instances sharing one PostgreSQL log: their writers interleave without gaps,
//! and each instance's subscribers are woken by the others' commits (LISTEN/NOTIFY).

use std::sync::Arc;
use std::time::Duration;

use portico_core::log::Subscription;
use portico_core::log::postgres::{PostgresLog, PostgresOptions};
use portico_core::{EventLog, ExpectedVersion};

use crate::support::{event, metadata};

async fn two_instances() -> Option<(Arc<dyn EventLog>, Arc<dyn EventLog>)> {
    let (config, _schema) = crate::support::postgres_config().await?;
    let a = PostgresLog::connect(config.clone(), PostgresOptions::default()).await.unwrap();
    let b = PostgresLog::connect(config, PostgresOptions::default()).await.unwrap();
    Some((Arc::new(a), Arc::new(b)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_two_instances_interleave_without_gaps() {
    let Some((a, b)) = two_instances().await else { return };
    const PER_WRITER: u64 = 300;
    let total = 8 * PER_WRITER;
    // Each instance has a subscriber from the start; both must see every event once, in order.
    let follow = |log: &Arc<dyn EventLog>| {
        let mut sub = Subscription::new(Arc::clone(log), 0).with_batch(50);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while (seen.len() as u64) < total {
                let e = tokio::time::timeout(Duration::from_secs(60), sub.next())
                    .await
                    .unwrap()
                    .unwrap();
                seen.push(e.position);
            }
            seen
        })
    };
    let (follow_a, follow_b) = (follow(&a), follow(&b));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let log = if w % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        writers.push(tokio::spawn(async move {
            // Two instances write to each stream, so expected versions really race.
            let stream = format!("shared-{}", w / 2);
            for i in 0..PER_WRITER {
                log.append(&stream, ExpectedVersion::Any, vec![event(w * 1000 + i)], &metadata())
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(follow_a.await.unwrap(), expected);
    assert_eq!(follow_b.await.unwrap(), expected);
    for s in 0..4 {
        let events = a.read_stream(&format!("shared-{s}"), 1, 10_000).await.unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (1..=2 * PER_WRITER).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_on_one_instance_wakes_subscribers_of_another() {
    let Some((a, b)) = two_instances().await else { return };
    // Polling is pushed out of reach: only the notification can deliver the event in time.
    let mut sub =
        Subscription::new(Arc::clone(&b), 0).with_poll_interval(Duration::from_secs(3600));
    let waiting = tokio::spawn(async move { sub.next().await.map(|e| e.position) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.append("s", ExpectedVersion::NoStream, vec![event(1)], &metadata()).await.unwrap();
    let position =
        tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(position, 1);
    assert_eq!(*b.watch_head().borrow(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_concurrency_holds_across_instances() {
    let Some((a, b)) = two_instances().await else { return };
    a.append("portal-x", ExpectedVersion::NoStream, vec![event(1)], &metadata()).await.unwrap();
    // Both instances read version 1 and try to write version 2: exactly one wins.
    let meta = metadata();
    let (ra, rb) = tokio::join!(
        a.append("portal-x", ExpectedVersion::Exact(1), vec![event(2)], &meta),
        b.append("portal-x", ExpectedVersion::Exact(1), vec![event(3)], &meta),
    );
    assert!(ra.is_ok() != rb.is_ok(), "exactly one wins: {ra:?} {rb:?}");
    assert_eq!(a.read_stream("portal-x", 1, 10).await.unwrap().len(), 2);
}
