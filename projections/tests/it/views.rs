//! The shape of the views: effective overrides, removed servers, search, timestamps and actors.

use portico_core::domain::ids::{PortalId, ServerId};
use portico_projections::{Projection, ReadModels};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::replay::record;
use crate::scenario::{Op, op};

fn fold(ops: &[Op]) -> ReadModels {
    let mut state = ReadModels::default();
    for e in record(ops) {
        state.apply(&e);
    }
    state
}

fn sid(n: &str) -> ServerId {
    ServerId::parse(n).unwrap()
}

#[test]
fn effective_overrides_merge_server_and_portal_levels() {
    let models = fold(&[
        // tool0 gets server alias s1; tool1 is disabled at server level.
        Op::AddServer { server: 1, tools: vec![(0, Some(1), None), (1, None, Some(false))] },
        Op::AddServer { server: 2, tools: vec![] },
        // The portal aliases tool0 as p3 and re-enables tool1 for server 1.
        Op::AddPortal {
            portal: 0,
            servers: vec![
                (1, false, vec![(0, Some(3), None), (1, None, Some(true))]),
                (2, true, vec![]),
            ],
        },
    ]);
    let view = models.portal(&PortalId::parse("portal-0").unwrap()).unwrap();
    assert_eq!(view.servers.len(), 2);
    let s1 = &view.servers[0];
    assert_eq!(s1.server_id, sid("srv-1"));
    assert!(s1.on_behalf && !s1.default_disabled);
    let json = serde_json::to_value(&s1.updated_tools).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"name": "tool0", "portal_alias": "p3", "portal_description": "p description 3",
             "server_alias": "s1", "server_description": "s description 1"},
            {"name": "tool1", "enabled": true},
        ])
    );
    assert_eq!(s1.updated_tools[0].exposed_name(), "p3");
    assert_eq!(s1.updated_tools[0].description(), Some("p description 3"));
    assert_eq!(s1.updated_tools[1].exposed_name(), "tool1");
    assert!(view.servers[1].default_disabled && !view.servers[1].on_behalf);
}

#[test]
fn server_changes_reach_every_portal_that_names_it() {
    let mut ops = vec![
        Op::AddServer { server: 1, tools: vec![(0, Some(1), None)] },
        Op::AddPortal { portal: 0, servers: vec![(1, false, vec![])] },
        Op::AddPortal { portal: 1, servers: vec![(1, false, vec![])] },
    ];
    let before = fold(&ops);
    for p in ["portal-0", "portal-1"] {
        let view = before.portal(&PortalId::parse(p).unwrap()).unwrap();
        assert_eq!(view.servers[0].updated_tools[0].server_alias.as_deref(), Some("s1"));
    }
    ops.push(Op::UpdateServer { server: 1, tools: vec![(0, Some(4), None)], credential: true });
    let after = fold(&ops);
    for p in ["portal-0", "portal-1"] {
        let view = after.portal(&PortalId::parse(p).unwrap()).unwrap();
        assert_eq!(view.servers[0].updated_tools[0].server_alias.as_deref(), Some("t4"));
    }
    let server = after.catalog.get(&sid("srv-1")).unwrap();
    assert_eq!(server.settings.name, "Server 1 renamed");
    assert_eq!(server.credentials.len(), 1, "credential version recorded, never the secret");
    assert!(server.modified_at > server.created_at);
    assert_eq!(server.stream_version, 4, "added + credential, updated + credential");
}

#[test]
fn a_removed_server_leaves_every_view_and_comes_back_when_added_again() {
    let mut ops = vec![
        Op::AddServer { server: 1, tools: vec![] },
        Op::AddServer { server: 2, tools: vec![] },
        Op::AddPortal { portal: 0, servers: vec![(1, false, vec![]), (2, false, vec![])] },
        Op::RemoveServer { server: 1 },
    ];
    let removed = fold(&ops);
    let view = removed.portal(&PortalId::parse("portal-0").unwrap()).unwrap();
    assert_eq!(view.servers.iter().map(|s| s.server_id.as_str()).collect::<Vec<_>>(), ["srv-2"]);
    assert!(removed.catalog.get(&sid("srv-1")).is_none());
    assert_eq!(removed.portals.portals_of(&sid("srv-1")).count(), 1, "the portal still names it");

    ops.push(Op::AddServer { server: 1, tools: vec![] });
    let back = fold(&ops);
    let view = back.portal(&PortalId::parse("portal-0").unwrap()).unwrap();
    assert_eq!(view.servers.len(), 2);
    ops.push(Op::RemovePortal { portal: 0 });
    let gone = fold(&ops);
    assert!(gone.portals.is_empty());
    assert_eq!(gone.portals.portals_of(&sid("srv-1")).count(), 0);
}

#[test]
fn search_and_hostname_lookup() {
    let models = fold(&[
        Op::AddServer { server: 1, tools: vec![] },
        Op::AddServer { server: 2, tools: vec![] },
        Op::AddPortal { portal: 3, servers: vec![] },
    ]);
    assert_eq!(models.catalog.search("SRV-2").count(), 1);
    assert_eq!(models.catalog.search("server").count(), 2, "matches names too");
    assert_eq!(models.catalog.search("").count(), 2);
    assert_eq!(models.portals.search("p3.example").count(), 1);
    assert_eq!(
        models.portals.by_hostname("P3.EXAMPLE.COM").unwrap().portal_id.as_str(),
        "portal-3"
    );
    assert!(models.portal_by_hostname("nope.example.com").is_none());
}

/// The generated histories are not trivial: a good share of commands is accepted, and views
/// end up with servers and overrides. (Guards the property test against vacuous inputs.)
#[test]
fn generated_histories_exercise_the_views() {
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 60);
    let (mut events, mut portal_servers, mut overrides) = (0, 0, 0);
    for _ in 0..50 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let recorded = record(&ops);
        events += recorded.len();
        let mut models = ReadModels::default();
        for e in &recorded {
            models.apply(e);
        }
        for v in models.portals.iter().map(|r| models.view(r)) {
            portal_servers += v.servers.len();
            overrides += v.servers.iter().map(|s| s.updated_tools.len()).sum::<usize>();
        }
    }
    assert!(events > 50 * 20, "{events} events");
    assert!(portal_servers > 50, "{portal_servers} servers in portal views");
    assert!(overrides > 50, "{overrides} effective overrides");
}
