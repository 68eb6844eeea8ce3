//! The optimised [`visibility`] gives the answer of a straightforward reference: the same two
//! entity sets, and every item decided by Cedar over the whole policy set
//! ([`PolicyEngine::is_authorized_unindexed`]). Random portals (servers in several portals,
//! tools with random hints, a tool listed twice) and random policy sets (unconditional and
//! conditional permits and forbids, hints-only conditions, conditions that name entities or
//! error). A seeded generator (splitmix64): a failure names its seed.

#![allow(clippy::unwrap_used, clippy::panic)]

use chrono::{DateTime, Utc};
use portico_core::domain::ids::PolicyId as RecordId;
use portico_core::domain::policy::PolicyRecord;

use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const GROUPS: usize = 4;
const SERVERS: usize = 6;
const TOOLS: usize = 5;

/// The reference: the entities as `visibility` has always built them, each item decided by
/// Cedar over the whole set.
fn reference(
    engine: &PolicyEngine,
    principal: &Principal,
    catalog: PortalCatalog<'_>,
    context: &RequestContext,
) -> Visibility {
    let who = principal.uid().unwrap();
    let mut builder = EntitiesBuilder::new();
    builder.principal(principal).unwrap().portal(catalog.portal).unwrap();
    for server in catalog.servers {
        builder.server(server).unwrap();
    }
    let entities = builder.build().unwrap();
    let ask = |action: Action, resource: &EntityUid, entities: &Entities| {
        let context = context.to_cedar(action).unwrap();
        engine.is_authorized_unindexed(&who, action, resource, &context, entities)
    };
    let portal = ask(Action::Connect, &catalog.portal.uid().unwrap(), &entities);
    if !portal.allowed {
        return Visibility { portal, servers: Vec::new(), reason: None };
    }
    let allowed: Vec<_> = catalog
        .servers
        .iter()
        .map(|s| (s, ask(Action::UseServer, &s.uid().unwrap(), &entities)))
        .filter(|(_, d)| d.allowed)
        .collect();
    let mut builder = EntitiesBuilder::new();
    builder.principal(principal).unwrap().portal(catalog.portal).unwrap();
    for (server, _) in &allowed {
        builder.server(server).unwrap();
    }
    let visible = |id: &str| allowed.iter().any(|(s, _)| s.id == id);
    for tool in catalog.tools.iter().filter(|t| visible(&t.server_id)) {
        builder.tool(tool).unwrap();
    }
    for prompt in catalog.prompts.iter().filter(|p| visible(&p.server_id)) {
        builder.prompt(prompt).unwrap();
    }
    let entities = builder.build().unwrap();
    let mut servers = Vec::new();
    for (server, decision) in &allowed {
        let tools = catalog
            .tools
            .iter()
            .filter(|t| t.server_id == server.id)
            .map(|t| (t.name.clone(), ask(Action::ListTool, &t.uid().unwrap(), &entities)))
            .filter(|(_, d)| d.allowed)
            .collect();
        let prompts = catalog
            .prompts
            .iter()
            .filter(|p| p.server_id == server.id)
            .map(|p| (p.name.clone(), ask(Action::GetPrompt, &p.uid().unwrap(), &entities)))
            .filter(|(_, d)| d.allowed)
            .collect();
        servers.push(VisibleServer {
            id: server.id.clone(),
            decision: decision.clone(),
            tools,
            prompts,
        });
    }
    Visibility { portal, servers, reason: None }
}

fn random_policy(rng: &mut Rng) -> String {
    let effect = if rng.chance(25) { "forbid" } else { "permit" };
    let principal = match rng.below(6) {
        0 | 1 => "principal".to_owned(),
        2 | 3 => format!(r#"principal in Portico::Group::"g{}""#, rng.below(GROUPS)),
        4 => "principal is Portico::User".to_owned(),
        _ => format!(r#"principal == Portico::User::"u{}""#, rng.below(2)),
    };
    let action = match rng.below(5) {
        0 => "action".to_owned(),
        1 => r#"action in Portico::Action::"use_server""#.to_owned(),
        2 => r#"action == Portico::Action::"list_tool""#.to_owned(),
        3 => r#"action in [Portico::Action::"connect", Portico::Action::"get_prompt"]"#.to_owned(),
        _ => r#"action == Portico::Action::"use_server""#.to_owned(),
    };
    let resource = match rng.below(8) {
        0 | 1 => "resource".to_owned(),
        2 => format!(r#"resource in Portico::Server::"s{}""#, rng.below(SERVERS)),
        3 => r#"resource in Portico::Portal::"p0""#.to_owned(),
        4 => "resource is Portico::Tool".to_owned(),
        5 => format!(
            r#"resource == Portico::Tool::"s{}/tool{}""#,
            rng.below(SERVERS),
            rng.below(TOOLS)
        ),
        6 => format!(r#"resource is Portico::Tool in Portico::Server::"s{}""#, rng.below(SERVERS)),
        _ => format!(r#"resource == Portico::Server::"s{}""#, rng.below(SERVERS)),
    };
    let conditions = [
        "",
        "",
        "",
        "when { resource.readOnlyHint }",
        "unless { resource.destructiveHint }",
        "when { resource has idempotentHint && resource.idempotentHint || resource.openWorldHint }",
        "when { resource.readOnlyHint && context.weekday <= 5 }",
        r#"when { resource.name == "tool1" }"#,
        r#"when { resource.host == "s1.internal" }"#,
        r#"when { principal in Portico::Group::"g1" && resource.readOnlyHint }"#,
        r#"when { Portico::Tool::"s1/tool0".readOnlyHint }"#,
        r#"when { resource in Portico::Server::"s2" }"#,
        r#"when { context.dlp.findings.contains("ssn") && resource.destructiveHint }"#,
        "when { resource is Portico::Tool }",
        r#"unless { context has dlp && context.dlp.findings.isEmpty() }"#,
    ];
    format!("{effect}({principal}, {action}, {resource}) {};", rng.pick(&conditions))
}

fn normalised(mut view: Visibility) -> Visibility {
    view.reason = None;
    view.portal.errors.sort();
    for server in &mut view.servers {
        server.decision.errors.sort();
        for (_, d) in server.tools.iter_mut().chain(server.prompts.iter_mut()) {
            d.errors.sort();
        }
    }
    view
}

#[test]
fn visibility_gives_the_reference_answer() {
    let mut tools_seen = 0;
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let portal = PortalFacts { id: "p0".into(), hostname: "p0.example.com".into() };
        let mut servers = Vec::new();
        let mut tools = Vec::new();
        let mut prompts = Vec::new();
        for s in 0..SERVERS {
            let mut portals = vec!["p0".to_owned()];
            if rng.chance(30) {
                portals.push("p1".into());
            }
            servers.push(ServerFacts {
                id: format!("s{s}"),
                url: format!("https://s{s}.internal/mcp"),
                auth_type: "bearer".into(),
                portals,
            });
            for t in 0..TOOLS {
                tools.push(ToolFacts {
                    server_id: format!("s{s}"),
                    name: format!("tool{t}"),
                    // Few distinct hint sets, so that tools share Cedar answers.
                    read_only: rng.chance(50),
                    destructive: rng.chance(20),
                    idempotent: rng.chance(10),
                    open_world: rng.chance(90),
                });
            }
            prompts.push(PromptFacts { server_id: format!("s{s}"), name: "prompt0".into() });
        }
        // A tool listed twice, with other hints: the first facts count.
        if rng.chance(30) {
            let mut twice = tools[rng.below(tools.len())].clone();
            twice.read_only = !twice.read_only;
            twice.destructive = !twice.destructive;
            tools.push(twice);
        }
        // Mostly a principal who may connect and use the servers, so that tools are asked.
        let mut texts = Vec::new();
        if rng.chance(80) {
            texts.push(
                r#"permit(principal, action == Portico::Action::"connect", resource);"#.into(),
            );
        }
        if rng.chance(70) {
            texts.push(
                r#"permit(principal, action == Portico::Action::"use_server", resource);"#.into(),
            );
        }
        texts.extend((0..(10 + rng.below(30))).map(|_| random_policy(&mut rng)));
        let records: Vec<PolicyRecord> = texts
            .into_iter()
            .enumerate()
            .map(|(i, policy)| PolicyRecord {
                id: RecordId::parse(format!("r{i}")).unwrap(),
                name: format!("r{i}"),
                description: None,
                policy,
                enabled: true,
            })
            .collect();
        let engine = PolicyEngine::new(&records).unwrap();
        let principal = if rng.chance(85) {
            Principal::User {
                id: format!("u{}", rng.below(2)),
                email: "u@corp.example".into(),
                name: "U".into(),
                idp: "okta".into(),
                groups: (0..GROUPS).filter(|_| rng.chance(50)).map(|g| format!("g{g}")).collect(),
                claims: Default::default(),
            }
        } else {
            Principal::ServiceToken { id: "t0".into(), name: "t".into(), client_id: "t0.x".into() }
        };
        let seconds = 1_764_000_000 + (rng.next() % (14 * 24 * 3600)) as i64;
        let mut context = RequestContext::new(
            DateTime::<Utc>::from_timestamp(seconds, 0).unwrap(),
            [10, 1, 2, 3].into(),
        );
        if rng.chance(30) {
            context.dlp_findings = vec!["ssn".into()];
        }
        let catalog =
            PortalCatalog { portal: &portal, servers: &servers, tools: &tools, prompts: &prompts };
        let got = normalised(visibility(&engine, &principal, catalog, &context).unwrap());
        let want = normalised(reference(&engine, &principal, catalog, &context));
        assert_eq!(got, want, "seed {seed}: {records:#?}");
        tools_seen += got.servers.iter().map(|s| s.tools.len()).sum::<usize>();
    }
    println!("{tools_seen} visible tools");
    assert!(tools_seen > 1_500, "only {tools_seen} visible tools: the cases prove little");
}

#[test]
fn tools_with_the_same_hints_but_other_names_get_their_own_answers() {
    let portal = PortalFacts { id: "p0".into(), hostname: "p0.example.com".into() };
    let servers = [ServerFacts {
        id: "s0".into(),
        url: "https://s0.internal/mcp".into(),
        auth_type: "bearer".into(),
        portals: vec!["p0".into()],
    }];
    let tools: Vec<ToolFacts> =
        (0..3).map(|t| ToolFacts::with_mcp_defaults("s0", format!("tool{t}"))).collect();
    let policies = [
        "permit(principal, action, resource);",
        "forbid(principal, action, resource) when { resource.destructiveHint && resource.name == \"tool1\" };",
        "forbid(principal, action, resource) when { resource.destructiveHint && resource.host == \"x\" };",
    ];
    let records: Vec<PolicyRecord> = policies
        .iter()
        .enumerate()
        .map(|(i, text)| PolicyRecord {
            id: RecordId::parse(format!("r{i}")).unwrap(),
            name: format!("r{i}"),
            description: None,
            policy: (*text).to_owned(),
            enabled: true,
        })
        .collect();
    for n in 1..=records.len() {
        let engine = PolicyEngine::new(&records[..n]).unwrap();
        let principal =
            Principal::ServiceToken { id: "t0".into(), name: "t".into(), client_id: "t0.x".into() };
        let context = RequestContext::new(Utc::now(), [10, 1, 2, 3].into());
        let catalog =
            PortalCatalog { portal: &portal, servers: &servers, tools: &tools, prompts: &[] };
        let got = normalised(visibility(&engine, &principal, catalog, &context).unwrap());
        let want = normalised(reference(&engine, &principal, catalog, &context));
        assert_eq!(got, want, "the first {n} policies");
    }
}
