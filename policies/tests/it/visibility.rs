//! What a principal sees in a portal, with the example policies and the corpus's catalog.

use portico_policies::{
    Hidden, NO_ALLOWED_SERVERS, PolicyEngine, PortalCatalog, Visibility, VisibilityCache,
    visibility,
};

use crate::corpus::{Corpus, load};
use crate::support::{example_policies, record};

fn view(engine: &PolicyEngine, corpus: &Corpus, who: &str, portal: &str) -> Visibility {
    let portal = corpus.catalog.portals.iter().find(|p| p.id == portal).unwrap();
    // The portal's catalog: its servers, their tools and prompts.
    let servers: Vec<_> =
        corpus.catalog.servers.iter().filter(|s| s.portals.contains(&portal.id)).cloned().collect();
    let ours = |id: &String| servers.iter().any(|s| &s.id == id);
    let tools: Vec<_> =
        corpus.catalog.tools.iter().filter(|t| ours(&t.server_id)).cloned().collect();
    let prompts: Vec<_> =
        corpus.catalog.prompts.iter().filter(|p| ours(&p.server_id)).cloned().collect();
    let catalog = PortalCatalog { portal, servers: &servers, tools: &tools, prompts: &prompts };
    visibility(engine, &corpus.principals[who], catalog, &corpus.default_context).unwrap()
}

fn names(view: &Visibility) -> Vec<(String, Vec<String>, Vec<String>)> {
    view.servers
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.tools.iter().map(|(n, _)| n.clone()).collect(),
                s.prompts.iter().map(|(n, _)| n.clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn an_engineer_sees_docs_and_the_hr_tools_but_not_the_salary_prompt() {
    let corpus = load();
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    let view = view(&engine, &corpus, "alice", "main");
    assert!(view.portal.allowed);
    assert_eq!(view.reason, None);
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        names(&view),
        vec![
            ("docs".into(), s(&["search", "delete_page"]), s(&["summarize"])),
            ("hr-tools".into(), s(&["request_vacation"]), s(&["vacation-request"])),
        ]
    );
    assert_eq!(view.servers[0].decision.policy_ids, s(&["engineering-uses-docs"]));
    assert_eq!(view.servers[1].decision.policy_ids, s(&["hr-uses-hr-tools"]));
}

#[test]
fn the_emergency_deny_hides_the_tool_from_the_ci_token() {
    let corpus = load();
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    let view = view(&engine, &corpus, "ci", "automation");
    assert!(view.portal.allowed);
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        names(&view),
        vec![("github".into(), s(&["list_issues", "create_pull_request"]), s(&["triage"]))]
    );
}

#[test]
fn no_portal_permit_means_nothing() {
    let corpus = load();
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    let view = view(&engine, &corpus, "bob", "main");
    assert!(!view.portal.allowed);
    assert!(view.servers.is_empty());
    assert!(matches!(view.reason, Some(Hidden::NoPortalAccess { .. })), "{:?}", view.reason);
}

#[test]
fn a_portal_permit_without_a_server_says_which_policies_to_check() {
    let corpus = load();
    let mut policies = example_policies();
    policies.push(record(
        "marketing-portal",
        r#"permit(principal in Portico::Group::"marketing", action == Portico::Action::"connect", resource == Portico::Portal::"sales");"#,
    ));
    let engine = PolicyEngine::new(&policies).unwrap();
    let view = view(&engine, &corpus, "bob", "sales");
    assert!(view.portal.allowed);
    assert!(view.servers.is_empty());
    let Some(Hidden::NoAllowedServers { message, policies_to_check }) = view.reason else {
        panic!("{:?}", view.reason);
    };
    assert!(message.starts_with(NO_ALLOWED_SERVERS), "{message}");
    // The policies on `use_server` (or any action) for the sales portal, its servers (crm,
    // quotes) or any resource.
    let expected = [
        "auditors-use-crm",
        "ci-token-only-github",
        "contractors-office-hours",
        "sales-uses-sales-portal-servers",
    ];
    assert_eq!(policies_to_check, expected);
    assert!(message.contains(&expected.join(", ")), "{message}");
}

#[test]
fn the_cache_misses_on_a_new_version() {
    let corpus = load();
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    assert!(engine.reads_context(), "the office-hours example reads the context");
    let without_office_hours: Vec<_> = example_policies()
        .into_iter()
        .filter(|p| p.id.as_str() != "contractors-office-hours")
        .collect();
    let engine = PolicyEngine::new(&without_office_hours).unwrap();
    assert!(!engine.reads_context());
    let cache = VisibilityCache::new(2);
    let portal = &corpus.catalog.portals[0];
    let catalog = PortalCatalog {
        portal,
        servers: &corpus.catalog.servers,
        tools: &corpus.catalog.tools,
        prompts: &corpus.catalog.prompts,
    };
    let alice = &corpus.principals["alice"];
    let ctx = &corpus.default_context;
    let first = cache.visibility(&engine, 1, alice, catalog, 1, ctx).unwrap();
    let again = cache.visibility(&engine, 1, alice, catalog, 1, ctx).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "a hit");
    let new_policies = cache.visibility(&engine, 2, alice, catalog, 1, ctx).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &new_policies), "a new policy version misses");
    let new_catalog = cache.visibility(&engine, 2, alice, catalog, 2, ctx).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&new_policies, &new_catalog), "a new catalog version misses");
    assert_eq!(cache.len(), 2, "bounded");
    assert_eq!(*first, *new_catalog);
}

/// With a policy on the time of day, views are shared within a minute and computed for that
/// minute, so the cache still serves the requests of one minute.
#[test]
fn context_reading_policies_share_views_within_a_minute() {
    let corpus = load();
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    assert!(engine.reads_context());
    let cache = VisibilityCache::new(8);
    let portal = &corpus.catalog.portals[0];
    let catalog = PortalCatalog {
        portal,
        servers: &corpus.catalog.servers,
        tools: &corpus.catalog.tools,
        prompts: &corpus.catalog.prompts,
    };
    let alice = &corpus.principals["alice"];
    let at = |seconds: i64| {
        let mut ctx = corpus.default_context.clone();
        ctx.time =
            chrono::DateTime::from_timestamp(ctx.time.timestamp() / 60 * 60 + seconds, 0).unwrap();
        ctx
    };
    let early = cache.visibility(&engine, 1, alice, catalog, 1, &at(5)).unwrap();
    let late = cache.visibility(&engine, 1, alice, catalog, 1, &at(55)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&early, &late), "one minute, one view");
    let next = cache.visibility(&engine, 1, alice, catalog, 1, &at(65)).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&early, &next), "the next minute is computed again");
    // The shared view is the one computed for the start of the minute.
    assert_eq!(*early, visibility(&engine, alice, catalog, &at(0)).unwrap());
}
