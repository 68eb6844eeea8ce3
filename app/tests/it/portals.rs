//! Portal hostnames are unique whatever the timing: concurrent creates race on the hostname's
//! claim stream and exactly one wins; deletes and renames give hostnames back.

use std::sync::Arc;

use portico_app::portals::PortalChanges;
use portico_app::{App, AppError};
use portico_core::domain::DomainError;
use portico_core::domain::ids::PortalId;
use portico_core::domain::portal::PortalInput;
use portico_core::{Actor, Event};

use crate::support::{Harness, on_every_backend};

fn actor() -> Actor {
    Actor::ApiToken { id: "tok".into(), name: "tests".into() }
}

fn id(s: &str) -> PortalId {
    PortalId::try_from(s.to_owned()).unwrap()
}

fn input(hostname: &str) -> PortalInput {
    PortalInput {
        name: "Portal".into(),
        hostname: hostname.into(),
        description: None,
        code_mode: None,
        allow_code_mode: None,
        secure_web_gateway: false,
        servers: Vec::new(),
    }
}

#[track_caller]
fn assert_taken(result: Result<(), AppError>, holder: &str) {
    match result {
        Err(AppError::Rule(DomainError::HostnameTaken { hostname, portal_id })) => {
            assert_eq!(hostname, "mcp.example.com");
            assert_eq!(portal_id, holder);
        }
        other => panic!("expected the hostname to be taken by `{holder}`, got {other:?}"),
    }
}

async fn portals_with_hostname(app: &App, hostname: &str) -> Vec<String> {
    app.read(|m| {
        m.portals
            .iter()
            .filter(|p| p.settings.hostname == hostname)
            .map(|p| p.portal_id.to_string())
            .collect()
    })
}

async fn sixteen_concurrent_creates_with_one_hostname_have_one_winner(harness: Harness) {
    let app = harness.app;
    let creates = (0..16).map(|n| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let portal = id(&format!("p{n}"));
            (n, app.create_portal(&portal, input("MCP.example.com"), &actor()).await)
        })
    });
    let results = futures::future::join_all(creates).await;
    let mut winners = Vec::new();
    let mut refused = 0;
    for result in results {
        match result.unwrap() {
            (n, Ok(())) => winners.push(format!("p{n}")),
            (_, Err(AppError::Rule(DomainError::HostnameTaken { hostname, .. }))) => {
                assert_eq!(hostname, "mcp.example.com");
                refused += 1;
            }
            (n, Err(other)) => panic!("p{n}: unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    assert_eq!(refused, 15);
    assert_eq!(portals_with_hostname(&app, "mcp.example.com").await, winners);
    // The losers left nothing behind: no portal, and no claim of theirs still standing.
    let events = app.log.read_all(0, 10_000).await.unwrap();
    let added: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::PortalAdded(p) => Some(p.portal_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(added, winners);
    let held = app.log.read_stream("portal-hostname-mcp.example.com", 1, 100).await.unwrap();
    let holder = held.iter().rev().find_map(|e| match &e.event {
        Event::PortalHostnameClaimed(c) => Some(c.portal_id.to_string()),
        _ => None,
    });
    assert_eq!(holder.as_ref(), winners.first());
}

async fn delete_and_rename_give_hostnames_back(harness: Harness) {
    let app = harness.app;
    app.create_portal(&id("a"), input("mcp.example.com"), &actor()).await.unwrap();
    assert_taken(app.create_portal(&id("b"), input("mcp.example.com"), &actor()).await, "a");

    // A renames to another hostname: its old one is free, its new one taken.
    let rename = PortalChanges { hostname: Some("other.example.com".into()), ..Default::default() };
    app.update_portal(&id("a"), rename, &actor()).await.unwrap();
    app.create_portal(&id("b"), input("mcp.example.com"), &actor()).await.unwrap();
    let taken = app.create_portal(&id("c"), input("other.example.com"), &actor()).await;
    assert!(matches!(taken, Err(AppError::Rule(DomainError::HostnameTaken { .. }))), "{taken:?}");

    // An update that keeps the hostname is not a claim, and a rename onto a held one is refused
    // and changes nothing.
    let keep = PortalChanges { name: Some("Renamed".into()), ..Default::default() };
    app.update_portal(&id("b"), keep, &actor()).await.unwrap();
    let onto = PortalChanges { hostname: Some("other.example.com".into()), ..Default::default() };
    let refused = app.update_portal(&id("b"), onto, &actor()).await;
    assert!(matches!(refused, Err(AppError::Rule(DomainError::HostnameTaken { .. }))));
    assert_eq!(portals_with_hostname(&app, "mcp.example.com").await, ["b"]);

    // Deleting B frees its hostname for a new portal.
    app.delete_portal(&id("b"), &actor()).await.unwrap();
    app.create_portal(&id("c"), input("mcp.example.com"), &actor()).await.unwrap();
    assert_eq!(portals_with_hostname(&app, "mcp.example.com").await, ["c"]);
}

async fn a_create_refused_by_the_portal_rules_claims_nothing(harness: Harness) {
    let app = harness.app;
    app.create_portal(&id("a"), input("one.example.com"), &actor()).await.unwrap();
    // `a` exists: the create is refused by the portal's own rules before any claim...
    let again = app.create_portal(&id("a"), input("two.example.com"), &actor()).await;
    assert!(matches!(again, Err(AppError::Rule(DomainError::AlreadyExists { .. }))), "{again:?}");
    // ...so `two` was never held, and another portal takes it at once.
    app.create_portal(&id("b"), input("two.example.com"), &actor()).await.unwrap();
}

on_every_backend!(
    sixteen_concurrent_creates_with_one_hostname_have_one_winner,
    delete_and_rename_give_hostnames_back,
    a_create_refused_by_the_portal_rules_claims_nothing,
);
