//! The bearer-token check on the MCP request path: hashing the presented access token and
//! finding its live grant among 10,000 (what `App::user_of_access_token` does under the read
//! lock). Target: at most 5 µs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[global_allocator]
static ALLOCATOR: portico_benches::Allocator = mimalloc::MiMalloc;

use chrono::{TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use portico_app::api_tokens::hash;
use portico_core::domain::grant::{GrantAuthorized, GrantCodeRedeemed, GrantUser};
use portico_core::domain::ids::PortalId;
use portico_core::{Actor, CorrelationId, Event, RecordedEvent};
use portico_projections::{Grants, Projection};

const GRANTS: u64 = 10_000;

fn recorded(position: u64, event: Event) -> RecordedEvent {
    RecordedEvent {
        position,
        stream_id: format!("grant-{position}"),
        stream_version: 1,
        event_id: uuid::Uuid::now_v7(),
        recorded_at: Utc::now(),
        actor: Actor::system("bench"),
        correlation_id: CorrelationId::new(),
        schema_version: 1,
        event,
    }
}

fn token(i: u64) -> String {
    format!("pa_{i:064x}")
}

fn grants() -> Grants {
    let mut grants = Grants::default();
    let now = Utc::now();
    let portal = PortalId::parse("team").unwrap();
    for i in 0..GRANTS {
        let id = format!("grant-{i}");
        grants.apply(&recorded(
            2 * i + 1,
            Event::GrantAuthorized(GrantAuthorized {
                grant_id: id.clone(),
                portal_id: portal.clone(),
                client_id: "client".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                code_challenge: "xcbZOoE7jIS1XSoIOS1zV3mk2cyjrFtvRZzOpbiWloA".into(),
                code_hash: hash(&format!("code-{i}")),
                code_expires_at: now + TimeDelta::minutes(1),
                resource: "https://team.example.com/mcp".into(),
                scope: None,
                user: GrantUser {
                    id: format!("user-{i}"),
                    email: format!("user{i}@example.com"),
                    name: format!("User {i}"),
                    idp: "onetimepin".into(),
                    groups: vec!["engineering".into()],
                    claims: Default::default(),
                },
                session_expires_at: now + TimeDelta::hours(24),
            }),
        ));
        grants.apply(&recorded(
            2 * i + 2,
            Event::GrantCodeRedeemed(GrantCodeRedeemed {
                grant_id: id,
                access_token_hash: hash(&token(i)),
                access_expires_at: now + TimeDelta::minutes(15),
                refresh_token_hash: hash(&format!("refresh-{i}")),
            }),
        ));
    }
    grants
}

fn bearer(c: &mut Criterion) {
    let grants = grants();
    let portal = PortalId::parse("team").unwrap();
    let tokens: Vec<String> = (0..GRANTS).step_by(97).map(token).collect();
    let mut i = 0;
    c.bench_function("bearer check (hash + live grant of 10,000)", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            let now = Utc::now();
            let live = grants.live_access_token(&hash(&tokens[i]), now).unwrap();
            assert!(live.grant.portal_id == portal);
            live.grant.user.email.len()
        })
    });
}

criterion_group!(benches, bearer);
criterion_main!(benches);
