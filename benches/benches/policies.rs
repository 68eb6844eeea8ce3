//! The authorizer's speed with a realistic policy set of 1,000 policies over 400 servers and
//! 100 groups: one decision (indexed, and Cedar over the whole set for comparison), and the
//! full visibility of a portal with 80 servers and 4,000 tools for one principal (uncached,
//! and from the cache).
//!
//! The policy mix: per-group `connect` permits on portals, per-group `use_server` permits on
//! servers, read-only-tools permits, emergency denies of single tools, a contractors forbid on
//! destructive tools, office-hours conditions, per-user and service-token permits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: portico_benches::Allocator = mimalloc::MiMalloc;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use portico_core::domain::ids::PolicyId;
use portico_core::domain::policy::PolicyRecord;
use portico_policies::{
    Action, EntitiesBuilder, PolicyEngine, PortalCatalog, PortalFacts, Principal, PromptFacts,
    RequestContext, ServerFacts, ToolFacts, VisibilityCache, visibility,
};

const SERVERS: usize = 400;
const GROUPS: usize = 100;
const PORTALS: usize = 5;
const PORTAL_SERVERS: usize = 80;
const TOOLS_PER_SERVER: usize = 50;
const PROMPTS_PER_SERVER: usize = 2;

fn record(id: String, policy: String) -> PolicyRecord {
    PolicyRecord {
        id: PolicyId::parse(id.clone()).unwrap(),
        name: id,
        description: None,
        policy,
        enabled: true,
    }
}

/// 1,000 policies; server `s{n}` is in portal `p{n % 5}`, so portal `p0` has 80 servers.
fn policies() -> Vec<PolicyRecord> {
    let mut out = Vec::new();
    let group = |n: usize| format!(r#"Portico::Group::"g{}""#, n % GROUPS);
    let server = |n: usize| format!(r#"Portico::Server::"s{}""#, n % SERVERS);
    for g in 0..GROUPS {
        out.push(record(
            format!("connect-{g}"),
            format!(
                r#"permit(principal in {}, action == Portico::Action::"connect", resource == Portico::Portal::"p{}");"#,
                group(g),
                g % PORTALS
            ),
        ));
    }
    for n in 0..550 {
        out.push(record(
            format!("use-{n}"),
            format!(
                r#"permit(principal in {}, action in Portico::Action::"use_server", resource in {});"#,
                group(n * 7),
                server(n * 13)
            ),
        ));
    }
    for n in 0..150 {
        out.push(record(
            format!("read-only-{n}"),
            format!(
                r#"permit(principal in {}, action in [Portico::Action::"list_tool", Portico::Action::"call_tool"], resource in {}) when {{ resource.readOnlyHint }};"#,
                group(n * 11),
                server(n * 17 + 3)
            ),
        ));
    }
    for n in 0..100 {
        out.push(record(
            format!("emergency-{n}"),
            format!(
                r#"forbid(principal, action in [Portico::Action::"list_tool", Portico::Action::"call_tool"], resource == Portico::Tool::"s{}/tool{}");"#,
                (n * 29) % SERVERS,
                n % TOOLS_PER_SERVER
            ),
        ));
    }
    out.push(record(
        "no-destructive-for-contractors".into(),
        r#"forbid(principal in Portico::Group::"contractors", action in [Portico::Action::"list_tool", Portico::Action::"call_tool"], resource) when { resource.destructiveHint };"#.into(),
    ));
    for n in 0..49 {
        out.push(record(
            format!("office-hours-{n}"),
            format!(
                r#"permit(principal in {}, action in Portico::Action::"use_server", resource in {}) when {{ context.weekday <= 5 && context.time.toTime() >= duration("9h") && context.time.toTime() < duration("18h") }};"#,
                group(n * 3 + 1),
                server(n * 31 + 5)
            ),
        ));
    }
    for n in 0..25 {
        out.push(record(
            format!("user-{n}"),
            format!(
                r#"permit(principal == Portico::User::"u{n}", action in Portico::Action::"use_server", resource in {});"#,
                server(n * 37)
            ),
        ));
        out.push(record(
            format!("token-{n}"),
            format!(
                r#"permit(principal == Portico::ServiceToken::"t{n}", action in Portico::Action::"use_server", resource in {});"#,
                server(n * 41)
            ),
        ));
    }
    assert_eq!(out.len(), 1_000);
    out
}

struct Portal {
    portal: PortalFacts,
    servers: Vec<ServerFacts>,
    tools: Vec<ToolFacts>,
    prompts: Vec<PromptFacts>,
}

/// Portal `p0`: 80 servers (`s0`, `s5`, ...), 50 tools each, 2 prompts each.
fn portal() -> Portal {
    let portal = PortalFacts { id: "p0".into(), hostname: "p0.example.com".into() };
    let mut servers = Vec::new();
    let mut tools = Vec::new();
    let mut prompts = Vec::new();
    for n in (0..SERVERS).step_by(PORTALS).take(PORTAL_SERVERS) {
        servers.push(ServerFacts {
            id: format!("s{n}"),
            url: format!("https://s{n}.example.com/mcp"),
            auth_type: "bearer".into(),
            portals: vec!["p0".into()],
        });
        for t in 0..TOOLS_PER_SERVER {
            tools.push(ToolFacts {
                server_id: format!("s{n}"),
                name: format!("tool{t}"),
                read_only: t % 2 == 0,
                destructive: t % 5 == 0,
                idempotent: t % 3 == 0,
                open_world: true,
            });
        }
        for p in 0..PROMPTS_PER_SERVER {
            prompts.push(PromptFacts { server_id: format!("s{n}"), name: format!("prompt{p}") });
        }
    }
    assert_eq!(tools.len(), 4_000);
    Portal { portal, servers, tools, prompts }
}

fn principal() -> Principal {
    // In groups that connect to p0 (g0, g5, ...) and use some of its servers.
    Principal::User {
        id: "u0".into(),
        email: "u0@example.com".into(),
        name: "User 0".into(),
        idp: "okta".into(),
        groups: vec!["g0".into(), "g5".into(), "g35".into(), "contractors".into()],
        claims: Default::default(),
    }
}

fn context() -> RequestContext {
    let time = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap().with_timezone(&Utc);
    RequestContext::new(time, [203, 0, 113, 7].into())
}

fn bench(c: &mut Criterion) {
    let engine = PolicyEngine::new(&policies()).unwrap();
    let portal = portal();
    let who = principal();
    let context = context();

    // One decision: calling a tool of a server the principal's groups have policies on.
    let tool = portal.tools.iter().find(|t| t.server_id == "s0" && t.name == "tool2").unwrap();
    let server = &portal.servers[0];
    let mut builder = EntitiesBuilder::new();
    builder
        .principal(&who)
        .unwrap()
        .portal(&portal.portal)
        .unwrap()
        .server(server)
        .unwrap()
        .tool(tool)
        .unwrap();
    let entities = builder.build().unwrap();
    let (p, r) = (who.uid().unwrap(), tool.uid().unwrap());
    let cedar_context = context.to_cedar(Action::CallTool).unwrap();
    let indexed = engine.is_authorized(&p, Action::CallTool, &r, &cedar_context, &entities);
    let whole = engine.is_authorized_unindexed(&p, Action::CallTool, &r, &cedar_context, &entities);
    assert_eq!(indexed, whole);
    eprintln!("the decision: {indexed:?}");

    let mut group = c.benchmark_group("decision (1,000 policies)");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("indexed", |b| {
        b.iter(|| {
            engine.is_authorized(&p, Action::CallTool, &r, black_box(&cedar_context), &entities)
        })
    });
    group.bench_function("unindexed (Cedar over the whole set)", |b| {
        b.iter(|| {
            engine.is_authorized_unindexed(
                &p,
                Action::CallTool,
                &r,
                black_box(&cedar_context),
                &entities,
            )
        })
    });
    group.finish();

    let catalog = PortalCatalog {
        portal: &portal.portal,
        servers: &portal.servers,
        tools: &portal.tools,
        prompts: &portal.prompts,
    };
    let view = visibility(&engine, &who, catalog, &context).unwrap();
    eprintln!(
        "the view: {} servers, {} tools, {} prompts",
        view.servers.len(),
        view.servers.iter().map(|s| s.tools.len()).sum::<usize>(),
        view.servers.iter().map(|s| s.prompts.len()).sum::<usize>()
    );
    let mut group = c.benchmark_group("visibility (80 servers, 4,000 tools, 1,000 policies)");
    group.measurement_time(Duration::from_secs(5)).sample_size(20);
    group.bench_function("uncached", |b| {
        b.iter(|| visibility(&engine, &who, catalog, black_box(&context)).unwrap())
    });
    // The worst case: one more policy lets the principal see every server and tool.
    let mut everything = policies();
    everything.push(record(
        "everything-in-p0".into(),
        r#"permit(principal, action, resource in Portico::Portal::"p0");"#.into(),
    ));
    let open = PolicyEngine::new(&everything).unwrap();
    let view = visibility(&open, &who, catalog, &context).unwrap();
    eprintln!(
        "the open view: {} servers, {} tools",
        view.servers.len(),
        view.servers.iter().map(|s| s.tools.len()).sum::<usize>()
    );
    group.bench_function("uncached, every server visible (1,001 policies)", |b| {
        b.iter(|| visibility(&open, &who, catalog, black_box(&context)).unwrap())
    });
    // The same, with a condition on tool names that applies to every tool: it reads more than
    // the tool's hints, so no Cedar answer is shared between tools (the slow path).
    let mut by_name = everything.clone();
    by_name.push(record(
        "no-delete-tools".into(),
        r#"forbid(principal, action in Portico::Action::"list_tool", resource) when { resource.name like "*delete*" };"#.into(),
    ));
    let by_name = PolicyEngine::new(&by_name).unwrap();
    assert_eq!(
        visibility(&by_name, &who, catalog, &context).unwrap().servers.len(),
        PORTAL_SERVERS
    );
    group
        .bench_function("uncached, every server visible, a name condition (1,002 policies)", |b| {
            b.iter(|| visibility(&by_name, &who, catalog, black_box(&context)).unwrap())
        });
    let cache = VisibilityCache::new(1024);
    group.bench_function("cached", |b| {
        b.iter(|| cache.visibility(&engine, 1, &who, catalog, 1, black_box(&context)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
