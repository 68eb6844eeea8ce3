//! The index gives exactly Cedar's answer: random policy sets (hundreds of policies with mixed
//! scopes, conditions on attributes and context, forbids, conditions that error) and random
//! requests, each decided by the indexed engine and by `cedar_policy::Authorizer` over the
//! whole set; the decision, the set of reasons and the errors must be the same.
//!
//! A seeded generator (splitmix64), so a failure is reproducible from the printed seed.

use std::collections::BTreeSet;

use cedar_policy::{
    Authorizer, Decision as CedarDecision, Entities, EntityUid, PolicySet, Request,
};
use chrono::{DateTime, Utc};
use portico_policies::{
    Action, EntitiesBuilder, PolicyEngine, PortalFacts, Principal, PromptFacts, RequestContext,
    ServerFacts, ToolFacts,
};

use crate::support::record;

const ROUNDS: u64 = 12;
const POLICIES_PER_ROUND: usize = 200;
const REQUESTS_PER_ROUND: usize = 400;

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

const GROUPS: usize = 6;
const USERS: usize = 10;
const TOKENS: usize = 3;
const PORTALS: usize = 3;
const SERVERS: usize = 8;
const TOOLS_PER_SERVER: usize = 4;
const PROMPTS_PER_SERVER: usize = 2;

struct World {
    principals: Vec<Principal>,
    servers: Vec<ServerFacts>,
    tools: Vec<ToolFacts>,
    prompts: Vec<PromptFacts>,
    entities: Entities,
}

fn world(rng: &mut Rng) -> World {
    let mut principals = Vec::new();
    for u in 0..USERS {
        let groups = (0..GROUPS).filter(|_| rng.chance(30)).map(|g| format!("g{g}")).collect();
        let domain = if rng.chance(50) { "corp.example" } else { "contractor.example" };
        principals.push(Principal::User {
            id: format!("u{u}"),
            email: format!("u{u}@{domain}"),
            name: format!("User {u}"),
            idp: if rng.chance(50) { "okta".into() } else { "github".into() },
            groups,
            claims: Default::default(),
        });
    }
    for t in 0..TOKENS {
        principals.push(Principal::ServiceToken {
            id: format!("t{t}"),
            name: format!("token {t}"),
            client_id: format!("t{t}.access"),
        });
    }
    let portals: Vec<PortalFacts> = (0..PORTALS)
        .map(|p| PortalFacts { id: format!("p{p}"), hostname: format!("p{p}.example.com") })
        .collect();
    let mut servers = Vec::new();
    let mut tools = Vec::new();
    let mut prompts = Vec::new();
    for s in 0..SERVERS {
        let mut in_portals: Vec<String> =
            (0..PORTALS).filter(|_| rng.chance(40)).map(|p| format!("p{p}")).collect();
        if in_portals.is_empty() {
            in_portals.push(format!("p{}", rng.below(PORTALS)));
        }
        servers.push(ServerFacts {
            id: format!("s{s}"),
            url: format!(
                "https://s{s}.{}/mcp",
                if rng.chance(50) { "internal" } else { "example.com" }
            ),
            auth_type: rng.pick(&["bearer", "oauth", "unauthenticated"]).to_string(),
            portals: in_portals,
        });
        for t in 0..TOOLS_PER_SERVER {
            tools.push(ToolFacts {
                server_id: format!("s{s}"),
                name: format!("tool{t}"),
                read_only: rng.chance(50),
                destructive: rng.chance(50),
                idempotent: rng.chance(50),
                open_world: rng.chance(50),
            });
        }
        for p in 0..PROMPTS_PER_SERVER {
            prompts.push(PromptFacts { server_id: format!("s{s}"), name: format!("prompt{p}") });
        }
    }
    let mut builder = EntitiesBuilder::new();
    for principal in &principals {
        builder.principal(principal).unwrap();
    }
    for portal in &portals {
        builder.portal(portal).unwrap();
    }
    for server in &servers {
        builder.server(server).unwrap();
    }
    for tool in &tools {
        builder.tool(tool).unwrap();
    }
    for prompt in &prompts {
        builder.prompt(prompt).unwrap();
    }
    let entities = builder.build().unwrap();
    World { principals, servers, tools, prompts, entities }
}

fn random_policy(rng: &mut Rng, world: &World) -> String {
    let forbid = rng.chance(15);
    let effect = if forbid { "forbid" } else { "permit" };
    // Forbids are mostly narrow (an emergency deny, a carve-out), as in real sets.
    let narrow = forbid && rng.chance(85);
    let principal = match if narrow { 2 + rng.below(4) } else { rng.below(12) } {
        0 => "principal".to_owned(),
        2 => format!(r#"principal == Portico::User::"u{}""#, rng.below(USERS)),
        3 | 4 => format!(r#"principal in Portico::Group::"g{}""#, rng.below(GROUPS)),
        5 => format!(r#"principal == Portico::ServiceToken::"t{}""#, rng.below(TOKENS)),
        6 => "principal is Portico::User".to_owned(),
        7 => format!(r#"principal is Portico::User in Portico::Group::"g{}""#, rng.below(GROUPS)),
        8 => format!(r#"principal in Portico::User::"u{}""#, rng.below(USERS)),
        _ => format!(r#"principal is Portico::User in Portico::Group::"g{}""#, rng.below(GROUPS)),
    };
    let action_name = |rng: &mut Rng| {
        *rng.pick(&["connect", "use_server", "list_tool", "call_tool", "get_prompt"])
    };
    let action = match rng.below(5) {
        0 => "action".to_owned(),
        1 => format!(r#"action == Portico::Action::"{}""#, action_name(rng)),
        2 => r#"action in Portico::Action::"use_server""#.to_owned(),
        3 => format!(
            r#"action in [Portico::Action::"{}", Portico::Action::"{}"]"#,
            action_name(rng),
            action_name(rng)
        ),
        _ => format!(r#"action in Portico::Action::"{}""#, action_name(rng)),
    };
    let tool = |rng: &mut Rng| {
        let t = rng.pick(&world.tools);
        format!(r#"Portico::Tool::"{}/{}""#, t.server_id, t.name)
    };
    let resource = match if narrow { 2 + rng.below(8) } else { rng.below(10) } {
        0 | 1 => "resource".to_owned(),
        2 => format!("resource == {}", tool(rng)),
        3 | 4 => format!(r#"resource in Portico::Server::"{}""#, rng.pick(&world.servers).id),
        5 => format!(r#"resource in Portico::Portal::"p{}""#, rng.below(PORTALS)),
        6 => "resource is Portico::Tool".to_owned(),
        7 => format!(
            r#"resource is Portico::Tool in Portico::Server::"{}""#,
            rng.pick(&world.servers).id
        ),
        8 => format!(r#"resource == Portico::Server::"{}""#, rng.pick(&world.servers).id),
        _ => {
            let p = rng.pick(&world.prompts);
            format!(r#"resource == Portico::Prompt::"{}/{}""#, p.server_id, p.name)
        }
    };
    // Conditions, some of which error on some requests (a missing attribute, a context field
    // that only `call_tool` has): the policies are not validated, on purpose.
    let erring = [
        "when { resource.readOnlyHint }",
        "unless { resource.destructiveHint }",
        r#"when { principal.email like "*@corp.example" }"#,
        r#"when { context.dlp.findings.contains("ssn") }"#,
        r#"when { resource.host == "s1.internal" }"#,
    ];
    let conditions = [
        "when { resource has destructiveHint && resource.destructiveHint }",
        "when { resource is Portico::Tool && resource.readOnlyHint }",
        r#"when { principal has idp && principal.idp == "okta" }"#,
        "when { context.weekday <= 5 }",
        r#"when { context.time.toTime() >= duration("9h") && context.time.toTime() < duration("18h") }"#,
        r#"when { context.ip.isInRange(ip("10.0.0.0/8")) }"#,
        r#"unless { context has dlp && context.dlp.findings.isEmpty() }"#,
        r#"when { principal in Portico::Group::"g1" }"#,
        r#"when { resource in Portico::Portal::"p0" }"#,
    ];
    let condition = match rng.below(30) {
        0..=11 => "",
        12..=14 => *rng.pick(&erring),
        _ => *rng.pick(&conditions),
    };
    format!("{effect}({principal}, {action}, {resource}) {condition};")
}

fn random_request(rng: &mut Rng, world: &World) -> (EntityUid, Action, EntityUid, RequestContext) {
    let principal = rng.pick(&world.principals).uid().unwrap();
    let action = *rng.pick(&Action::ALL);
    // Mostly a resource of the action's type, sometimes any (Cedar answers those too).
    let kind = if rng.chance(90) { action } else { *rng.pick(&Action::ALL) };
    let resource = match kind {
        Action::Connect => {
            format!(r#"Portico::Portal::"p{}""#, rng.below(PORTALS)).parse().unwrap()
        }
        Action::UseServer => rng.pick(&world.servers).uid().unwrap(),
        Action::ListTool | Action::CallTool => rng.pick(&world.tools).uid().unwrap(),
        Action::GetPrompt => rng.pick(&world.prompts).uid().unwrap(),
    };
    let seconds = 1_764_000_000 + (rng.next() % (14 * 24 * 3600)) as i64;
    let time = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap();
    let ip = if rng.chance(50) { [10, 1, 2, 3] } else { [198, 51, 100, 7] };
    let mut context = RequestContext::new(time, ip.into());
    if rng.chance(30) {
        context.dlp_findings = vec!["ssn".into()];
    }
    (principal, action, resource, context)
}

#[test]
fn the_index_gives_cedars_answer() {
    let mut requests = 0;
    let mut outcomes = [0usize; 4]; // allowed, denied by forbid, denied by default, with errors
    for seed in 0..ROUNDS {
        let mut rng = Rng(seed);
        let world = world(&mut rng);
        let records: Vec<_> = (0..POLICIES_PER_ROUND)
            .map(|i| record(&format!("p{i}"), &random_policy(&mut rng, &world)))
            .collect();
        let engine = PolicyEngine::new(&records).unwrap();
        let whole = PolicySet::from_policies(records.iter().map(|r| {
            cedar_policy::Policy::parse(Some(cedar_policy::PolicyId::new(r.id.as_str())), &r.policy)
                .unwrap()
        }))
        .unwrap();
        for n in 0..REQUESTS_PER_ROUND {
            let (principal, action, resource, context) = random_request(&mut rng, &world);
            let cedar_context = context.to_cedar(action).unwrap();
            let indexed = engine.is_authorized(
                &principal,
                action,
                &resource,
                &cedar_context,
                &world.entities,
            );
            let request = Request::new(
                principal.clone(),
                action.uid().unwrap(),
                resource.clone(),
                cedar_context,
                None,
            )
            .unwrap();
            let response = Authorizer::new().is_authorized(&request, &whole, &world.entities);
            let reasons: BTreeSet<String> =
                response.diagnostics().reason().map(ToString::to_string).collect();
            let mut errors: Vec<String> =
                response.diagnostics().errors().map(ToString::to_string).collect();
            errors.sort();
            let mut indexed_errors = indexed.errors.clone();
            indexed_errors.sort();
            let what = format!("seed {seed}, request {n}: {principal} {action:?} {resource}");
            assert_eq!(indexed.allowed, response.decision() == CedarDecision::Allow, "{what}");
            assert_eq!(
                indexed.policy_ids.iter().cloned().collect::<BTreeSet<_>>(),
                reasons,
                "{what}"
            );
            assert_eq!(indexed_errors, errors, "{what}");
            requests += 1;
            if indexed.allowed {
                outcomes[0] += 1;
            } else if indexed.policy_ids.is_empty() {
                outcomes[2] += 1;
            } else {
                outcomes[1] += 1;
            }
            if !indexed.errors.is_empty() {
                outcomes[3] += 1;
            }
        }
    }
    // The generator must exercise every outcome, or the comparison proves little.
    assert!(outcomes.iter().all(|&n| n > requests / 50), "{outcomes:?} of {requests}");
    println!("{requests} requests: {outcomes:?} (allowed, forbidden, default deny, with errors)");
}
