//! Tests every [`Leases`] store must pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use super::{LeaseError, Leases, MAX_LEASE_NAME_LEN};

const TTL: Duration = Duration::from_secs(30);

/// Runs every conformance test on `leases`.
pub(super) async fn run_all(leases: Arc<dyn Leases>) {
    one_holder_at_a_time(&*leases).await;
    an_expired_lease_goes_to_the_next_holder(&*leases).await;
    release_frees_only_the_holders_lease(&*leases).await;
    racing_holders_get_it_once(Arc::clone(&leases)).await;
    bad_requests_are_refused(&*leases).await;
}

async fn one_holder_at_a_time(leases: &dyn Leases) {
    assert_eq!(leases.holder("job:1").await.unwrap(), None);
    assert!(leases.hold("job:1", "a", TTL).await.unwrap());
    assert!(!leases.hold("job:1", "b", TTL).await.unwrap(), "b took a's lease");
    // Renewing is holding again.
    assert!(leases.hold("job:1", "a", TTL).await.unwrap());
    assert_eq!(leases.holder("job:1").await.unwrap().as_deref(), Some("a"));
    // Each name is a lease of its own.
    assert!(leases.hold("job:2", "b", TTL).await.unwrap());
    assert_eq!(leases.holder("job:2").await.unwrap().as_deref(), Some("b"));
}

async fn an_expired_lease_goes_to_the_next_holder(leases: &dyn Leases) {
    assert!(leases.hold("job:expiring", "a", Duration::from_secs(1)).await.unwrap());
    assert!(!leases.hold("job:expiring", "b", TTL).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(leases.holder("job:expiring").await.unwrap(), None);
    assert!(
        leases.hold("job:expiring", "b", TTL).await.unwrap(),
        "the expired lease was not taken"
    );
    // The former holder does not get it back by renewing.
    assert!(!leases.hold("job:expiring", "a", TTL).await.unwrap());
    assert_eq!(leases.holder("job:expiring").await.unwrap().as_deref(), Some("b"));
}

async fn release_frees_only_the_holders_lease(leases: &dyn Leases) {
    assert!(leases.hold("job:released", "a", TTL).await.unwrap());
    leases.release("job:released", "b").await.unwrap();
    assert!(!leases.hold("job:released", "b", TTL).await.unwrap(), "b released a's lease");
    leases.release("job:released", "a").await.unwrap();
    assert_eq!(leases.holder("job:released").await.unwrap(), None);
    assert!(leases.hold("job:released", "b", TTL).await.unwrap());
    // Releasing a lease nobody holds is not an error.
    leases.release("job:never-held", "a").await.unwrap();
}

async fn racing_holders_get_it_once(leases: Arc<dyn Leases>) {
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let leases = Arc::clone(&leases);
            tokio::spawn(async move { leases.hold("job:raced", &format!("racer-{i}"), TTL).await })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap().unwrap());
    }
    assert_eq!(winners, 1, "{winners} racers hold one lease");
}

async fn bad_requests_are_refused(leases: &dyn Leases) {
    let long = "x".repeat(MAX_LEASE_NAME_LEN + 1);
    let refused = [
        leases.hold("", "a", TTL).await,
        leases.hold("job:bad", "", TTL).await,
        leases.hold(&long, "a", TTL).await,
        leases.hold("job:bad", &long, TTL).await,
        leases.hold("job:bad", "a", Duration::from_millis(999)).await,
        leases.hold("job:bad", "a", Duration::from_secs(3601)).await,
    ];
    for result in refused {
        assert!(matches!(result, Err(LeaseError::Invalid(_))), "{result:?}");
    }
    // Nothing was taken.
    assert_eq!(leases.holder("job:bad").await.unwrap(), None);
}
