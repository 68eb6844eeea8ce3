//! Given/when/then tests of the portal aggregate's rules.

use super::*;
use crate::domain::Aggregate;
use crate::domain::testing::{given, given_no_events};

fn id() -> PortalId {
    PortalId::parse("team").unwrap()
}

fn sid(id: &str) -> ServerId {
    ServerId::parse(id).unwrap()
}

fn input() -> PortalInput {
    PortalInput {
        name: "Team portal".to_owned(),
        hostname: "mcp.example.com".to_owned(),
        ..PortalInput::default()
    }
}

fn settings() -> PortalSettings {
    PortalSettings {
        name: "Team portal".to_owned(),
        hostname: "mcp.example.com".to_owned(),
        ..PortalSettings::default()
    }
}

fn add(input: PortalInput) -> PortalCommand {
    AddPortal { portal_id: id(), input }.into()
}

fn update(input: PortalInput) -> PortalCommand {
    UpdatePortal { portal_id: id(), input }.into()
}

fn added(settings: PortalSettings) -> Event {
    Event::PortalAdded(PortalAdded { portal_id: id(), settings })
}

fn updated(settings: PortalSettings) -> Event {
    Event::PortalUpdated(PortalUpdated { portal_id: id(), settings })
}

fn removed() -> Event {
    Event::PortalRemoved(PortalRemoved { portal_id: id() })
}

fn mapping(server_id: &str) -> PortalServer {
    PortalServer {
        server_id: sid(server_id),
        default_disabled: false,
        on_behalf: true,
        updated_tools: Vec::new(),
        updated_prompts: Vec::new(),
    }
}

fn entry(name: &str, alias: Option<&str>) -> CapabilityOverride {
    CapabilityOverride {
        name: name.to_owned(),
        alias: alias.map(str::to_owned),
        description: None,
        enabled: None,
    }
}

/// A directory of servers `s0`..`s{n-1}` without overrides.
fn directory(n: usize) -> BTreeMap<ServerId, ServerCapabilities> {
    (0..n).map(|i| (sid(&format!("s{i}")), ServerCapabilities::default())).collect()
}

fn with_servers(servers: Vec<PortalServer>) -> PortalInput {
    PortalInput { servers, ..input() }
}

#[test]
fn stream_id() {
    assert_eq!(portal_stream(&id()), "portal-team");
}

#[test]
fn add_a_new_portal_with_code_mode_opt_in_by_default() {
    given_no_events().when(add(input())).then_expect([added(settings())]);
    assert_eq!(settings().code_mode, CodeMode::OptIn);
}

#[test]
fn add_an_existing_portal_is_refused() {
    given([added(settings())])
        .when(add(input()))
        .then_expect_error(DomainError::AlreadyExists { kind: "portal", id: "team".to_owned() });
}

#[test]
fn a_removed_portal_can_be_added_again() {
    given([added(settings()), removed()]).when(add(input())).then_expect([added(settings())]);
}

#[test]
fn update_and_remove() {
    let new = PortalInput { name: "Renamed".to_owned(), secure_web_gateway: true, ..input() };
    let expected =
        PortalSettings { name: "Renamed".to_owned(), secure_web_gateway: true, ..settings() };
    given([added(settings())]).when(update(new)).then_expect([updated(expected)]);
    // A PUT that changes nothing is still recorded.
    given([added(settings())]).when(update(input())).then_expect([updated(settings())]);
    given([added(settings())]).when(RemovePortal { portal_id: id() }).then_expect([removed()]);
}

#[test]
fn update_or_remove_of_a_missing_portal_is_refused() {
    let not_found = || DomainError::NotFound { kind: "portal", id: "team".to_owned() };
    given_no_events().when(update(input())).then_expect_error(not_found());
    given_no_events().when(RemovePortal { portal_id: id() }).then_expect_error(not_found());
    given([added(settings()), removed()]).when(update(input())).then_expect_error(not_found());
    given([added(settings()), removed()])
        .when(RemovePortal { portal_id: id() })
        .then_expect_error(not_found());
}

#[test]
fn name_and_description_are_checked() {
    given_no_events()
        .when(add(PortalInput { name: String::new(), ..input() }))
        .then_expect_invalid("name");
    given_no_events()
        .when(add(PortalInput { description: Some("d".repeat(1025)), ..input() }))
        .then_expect_invalid("description");
}

#[test]
fn hostname_is_a_bare_host_name_stored_lowercased() {
    let with = |hostname: &str| add(PortalInput { hostname: hostname.to_owned(), ..input() });
    given_no_events().when(with("MCP.Example.com")).then_expect([added(settings())]);
    let message =
        given_no_events().when(with("https://mcp.example.com/mcp")).then_expect_invalid("hostname");
    assert!(message.contains("bare host name such as `mcp.example.com`"), "{message}");
    given_no_events().when(with("mcp.example.com:443")).then_expect_invalid("hostname");
    given_no_events().when(with("-mcp.example.com")).then_expect_invalid("hostname");
    given_no_events().when(with("mcp.example.com/mcp")).then_expect_invalid("hostname");
}

#[test]
fn code_mode_and_the_deprecated_allow_code_mode() {
    use CodeMode::*;
    let modes = [Off, OptIn, DefaultOn, Enforced];
    // Alone.
    assert_eq!(CodeMode::resolve(None, None), Ok(OptIn));
    assert_eq!(CodeMode::resolve(None, Some(false)), Ok(Off));
    assert_eq!(CodeMode::resolve(None, Some(true)), Ok(OptIn));
    for mode in modes {
        assert_eq!(CodeMode::resolve(Some(mode), None), Ok(mode));
    }
    // Together: they must agree.
    for mode in modes {
        for allow in [false, true] {
            let result = CodeMode::resolve(Some(mode), Some(allow));
            if allow == (mode != Off) {
                assert_eq!(result, Ok(mode));
            } else {
                let Err(DomainError::InvalidField { field, message }) = result else {
                    panic!("{mode:?} with {allow} was accepted");
                };
                assert_eq!(field, "allow_code_mode");
                assert!(
                    message.contains(&format!(
                        "`{allow}` contradicts `code_mode` `{}`",
                        mode.as_str()
                    ))
                );
            }
        }
    }
    // The read side's flag.
    assert!(!Off.allows_code_mode());
    assert!(
        OptIn.allows_code_mode() && DefaultOn.allows_code_mode() && Enforced.allows_code_mode()
    );
}

#[test]
fn code_mode_through_decide() {
    let with = |code_mode, allow_code_mode| PortalInput { code_mode, allow_code_mode, ..input() };
    given_no_events()
        .when(add(with(Some(CodeMode::Enforced), Some(true))))
        .then_expect([added(PortalSettings { code_mode: CodeMode::Enforced, ..settings() })]);
    given_no_events()
        .when(add(with(None, Some(false))))
        .then_expect([added(PortalSettings { code_mode: CodeMode::Off, ..settings() })]);
    given_no_events()
        .when(add(with(Some(CodeMode::Off), Some(true))))
        .then_expect_invalid("allow_code_mode");
    // A PUT that leaves code mode out resets it to the default.
    let enforced = PortalSettings { code_mode: CodeMode::Enforced, ..settings() };
    given([added(enforced)]).when(update(with(None, None))).then_expect([updated(settings())]);
}

#[test]
fn portal_input_deserializes_the_wire_fields() {
    let input: PortalInput = serde_json::from_str(
        r#"{"name":"P","hostname":"mcp.example.com","allow_code_mode":false,
            "servers":[{"server_id":"docs","updated_tools":[{"name":"a","alias":"b"}]}]}"#,
    )
    .unwrap();
    assert_eq!(input.code_mode, None);
    assert_eq!(input.allow_code_mode, Some(false));
    assert!(input.servers[0].on_behalf);
    assert_eq!(input.servers[0].updated_tools[0].alias.as_deref(), Some("b"));
}

#[test]
fn a_portal_holds_200_servers_but_not_257() {
    let servers = |n: usize| (0..n).map(|i| mapping(&format!("s{i}"))).collect::<Vec<_>>();
    let events = given_no_events()
        .with_servers(directory(300))
        .when(add(with_servers(servers(200))))
        .then_accept();
    assert_eq!(events.len(), 1);
    given_no_events()
        .with_servers(directory(300))
        .when(add(with_servers(servers(MAX_SERVERS_PER_PORTAL))))
        .then_accept();
    let message = given_no_events()
        .with_servers(directory(300))
        .when(add(with_servers(servers(MAX_SERVERS_PER_PORTAL + 1))))
        .then_expect_invalid("servers");
    assert_eq!(message, "has 257 servers; a portal holds at most 256");
}

#[test]
fn a_server_is_listed_once() {
    let message = given_no_events()
        .with_servers(directory(3))
        .when(add(with_servers(vec![mapping("s0"), mapping("s1"), mapping("s0")])))
        .then_expect_invalid("servers[2].server_id");
    assert_eq!(message, "`s0` is already listed at `servers[0]`; merge the two entries");
}

#[test]
fn listed_servers_must_exist() {
    let message = given_no_events()
        .with_servers(directory(1))
        .when(add(with_servers(vec![mapping("s0"), mapping("gone")])))
        .then_expect_invalid("servers[1].server_id");
    assert_eq!(message, "server `gone` does not exist");
    given([added(settings())])
        .when(update(with_servers(vec![mapping("gone")])))
        .then_expect_invalid("servers[0].server_id");
}

#[test]
fn portal_level_overrides_are_checked_with_their_path() {
    let mut server = mapping("s1");
    server.updated_prompts = vec![entry("p", None), entry("q", Some("-q"))];
    let message = given_no_events()
        .with_servers(directory(2))
        .when(add(with_servers(vec![mapping("s0"), server])))
        .then_expect_invalid("servers[1].updated_prompts[1].alias");
    assert!(message.starts_with("`-q` is not a valid alias"), "{message}");

    let mut server = mapping("s0");
    server.updated_tools = vec![entry("a", None), entry("a", None)];
    given_no_events()
        .with_servers(directory(1))
        .when(add(with_servers(vec![server])))
        .then_expect_invalid("servers[0].updated_tools[1].name");
}

#[test]
fn portal_aliases_are_unique_against_the_server_level() {
    let facts = ServerCapabilities {
        updated_tools: vec![entry("search_docs", Some("search")), entry("fetch", None)],
        updated_prompts: vec![entry("summary", Some("sum"))],
        tool_names: vec!["list".to_owned()],
        prompt_names: Vec::new(),
    };
    let servers: BTreeMap<_, _> = [(sid("docs"), facts)].into_iter().collect();
    let portal = |tools: Vec<CapabilityOverride>, prompts: Vec<CapabilityOverride>| {
        let mut server = mapping("docs");
        server.updated_tools = tools;
        server.updated_prompts = prompts;
        add(with_servers(vec![server]))
    };
    let when = |command| given_no_events().with_servers(servers.clone()).when(command);

    // Another tool's server alias, original name, or synced name is taken.
    let message = when(portal(vec![entry("fetch", Some("search"))], vec![]))
        .then_expect_invalid("servers[0].updated_tools[0].alias");
    assert_eq!(message, "`search` is already the alias of tool `search_docs` of this server");
    when(portal(vec![entry("search_docs", Some("fetch"))], vec![]))
        .then_expect_invalid("servers[0].updated_tools[0].alias");
    when(portal(vec![entry("fetch", Some("list"))], vec![]))
        .then_expect_invalid("servers[0].updated_tools[0].alias");
    // Two portal aliases collide.
    when(portal(vec![entry("fetch", Some("get")), entry("list", Some("get"))], vec![]))
        .then_expect_invalid("servers[0].updated_tools[1].alias");
    // Re-aliasing a tool frees its server alias.
    when(portal(vec![entry("search_docs", Some("find")), entry("fetch", Some("search"))], vec![]))
        .then_accept();
    // Tools and prompts are separate namespaces.
    when(portal(vec![entry("fetch", Some("sum"))], vec![entry("summary", Some("search"))]))
        .then_accept();
    when(portal(vec![], vec![entry("other", Some("sum"))]))
        .then_expect_invalid("servers[0].updated_prompts[0].alias");
}

#[test]
fn state_folds_the_stream() {
    let renamed = PortalSettings { name: "Renamed".to_owned(), ..settings() };
    let events = [added(settings()), updated(renamed.clone())];
    let state = PortalState::fold(&events);
    assert_eq!(state.stream_version, 2);
    assert_eq!(state.portal.as_ref().unwrap().settings, renamed);
    let state = PortalState::fold(events.iter().chain([&removed()]));
    assert!(!state.exists());
    assert_eq!(state.stream_version, 3);
}

#[test]
fn facts_of_an_existing_server() {
    use crate::domain::server::{AuthType, ServerAdded, ServerState};
    let settings = ServerSettings {
        name: "Docs".to_owned(),
        updated_tools: vec![entry("a", Some("b"))],
        ..ServerSettings::default()
    };
    let state = ServerState::fold([Event::ServerAdded(ServerAdded {
        server_id: sid("docs"),
        hostname: "https://docs.example.com/mcp".to_owned(),
        auth_type: AuthType::Bearer,
        settings,
    })]);
    let facts = ServerCapabilities::from_server(state.server.as_ref().unwrap());
    assert_eq!(facts.updated_tools, vec![entry("a", Some("b"))]);
    assert!(facts.tool_names.is_empty());
}
