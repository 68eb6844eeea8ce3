//! Given/when/then tests of the server aggregate's rules.

use super::*;
use crate::domain::Aggregate;
use crate::domain::overrides::CapabilityOverride;
use crate::domain::testing::{given, given_no_events};

fn id() -> ServerId {
    ServerId::parse("docs").unwrap()
}

fn settings() -> ServerSettings {
    ServerSettings { name: "Docs".to_owned(), ..ServerSettings::default() }
}

fn add(auth_type: AuthType) -> AddServer {
    AddServer {
        server_id: id(),
        hostname: "https://docs.example.com/mcp".to_owned(),
        auth_type,
        settings: settings(),
        auth_credentials: None,
        client_secret: None,
    }
}

fn update() -> UpdateServer {
    UpdateServer {
        server_id: id(),
        hostname: None,
        auth_type: None,
        settings: settings(),
        auth_credentials: None,
        client_secret: None,
    }
}

fn added(auth_type: AuthType) -> Event {
    Event::ServerAdded(ServerAdded {
        server_id: id(),
        hostname: "https://docs.example.com/mcp".to_owned(),
        auth_type,
        settings: settings(),
    })
}

fn updated(settings: ServerSettings) -> Event {
    Event::ServerUpdated(ServerUpdated { server_id: id(), settings })
}

fn removed() -> Event {
    Event::ServerRemoved(ServerRemoved { server_id: id() })
}

fn credential_set(credential: CredentialKind, version: u32) -> Event {
    Event::ServerCredentialSet(ServerCredentialSet { server_id: id(), credential, version })
}

fn tool(name: &str, alias: Option<&str>) -> CapabilityOverride {
    CapabilityOverride {
        name: name.to_owned(),
        alias: alias.map(str::to_owned),
        description: None,
        enabled: None,
    }
}

#[test]
fn stream_id() {
    assert_eq!(server_stream(&id()), "server-docs");
}

#[test]
fn add_a_new_server() {
    given_no_events().when(add(AuthType::Oauth)).then_expect([added(AuthType::Oauth)]);
}

#[test]
fn add_an_existing_server_is_refused() {
    given([added(AuthType::Bearer)])
        .when(add(AuthType::Bearer))
        .then_expect_error(DomainError::AlreadyExists { kind: "server", id: "docs".to_owned() });
}

#[test]
fn a_removed_server_can_be_added_again() {
    given([added(AuthType::Bearer), removed()])
        .when(add(AuthType::Oauth))
        .then_expect([added(AuthType::Oauth)]);
}

#[test]
fn update_replaces_the_settings() {
    let new = ServerSettings {
        name: "Documentation".to_owned(),
        description: Some("Search the docs".to_owned()),
        is_shared_oauth_callback_enabled: true,
        secure_web_gateway: true,
        updated_tools: vec![tool("search_docs", Some("search"))],
        updated_prompts: vec![tool("summarise", None)],
    };
    let command = UpdateServer { settings: new.clone(), ..update() };
    given([added(AuthType::Oauth)]).when(command).then_expect([updated(new)]);
}

#[test]
fn an_update_that_changes_nothing_is_still_recorded() {
    given([added(AuthType::Oauth)]).when(update()).then_expect([updated(settings())]);
}

#[test]
fn update_or_remove_of_a_missing_server_is_refused() {
    let not_found = || DomainError::NotFound { kind: "server", id: "docs".to_owned() };
    given_no_events().when(update()).then_expect_error(not_found());
    given_no_events().when(RemoveServer { server_id: id() }).then_expect_error(not_found());
    given([added(AuthType::Oauth), removed()]).when(update()).then_expect_error(not_found());
    given([added(AuthType::Oauth), removed()])
        .when(RemoveServer { server_id: id() })
        .then_expect_error(not_found());
}

#[test]
fn remove_an_existing_server() {
    given([added(AuthType::Oauth), updated(settings())])
        .when(RemoveServer { server_id: id() })
        .then_expect([removed()]);
}

#[test]
fn hostname_and_auth_type_are_immutable() {
    let same = UpdateServer {
        hostname: Some("https://docs.example.com/mcp".to_owned()),
        auth_type: Some(AuthType::Bearer),
        ..update()
    };
    given([added(AuthType::Bearer)]).when(same).then_expect([updated(settings())]);

    let other_host =
        UpdateServer { hostname: Some("https://other.example.com/mcp".to_owned()), ..update() };
    given([added(AuthType::Bearer)])
        .when(other_host)
        .then_expect_error(DomainError::Immutable { field: "hostname" });

    let other_auth = UpdateServer { auth_type: Some(AuthType::Oauth), ..update() };
    given([added(AuthType::Bearer)])
        .when(other_auth)
        .then_expect_error(DomainError::Immutable { field: "auth_type" });
}

#[test]
fn hostname_must_be_a_full_http_url() {
    let with =
        |hostname: &str| AddServer { hostname: hostname.to_owned(), ..add(AuthType::Bearer) };
    given_no_events().when(with("http://localhost:8080/mcp")).then_accept();
    let message = given_no_events().when(with("docs.example.com")).then_expect_invalid("hostname");
    assert!(message.contains("is not a full URL"), "{message}");
    let message = given_no_events()
        .when(with("https://me:secret@docs.example.com/mcp"))
        .then_expect_invalid("hostname");
    assert!(message.contains("auth_credentials"), "{message}");
    given_no_events().when(with("ftp://docs.example.com")).then_expect_invalid("hostname");
    given_no_events().when(with("https://docs.example.com/#x")).then_expect_invalid("hostname");
}

#[test]
fn name_and_description_are_checked() {
    let with = |settings: ServerSettings| AddServer { settings, ..add(AuthType::Bearer) };
    given_no_events()
        .when(with(ServerSettings { name: " ".to_owned(), ..settings() }))
        .then_expect_invalid("name");
    given_no_events()
        .when(with(ServerSettings { name: "n".repeat(256), ..settings() }))
        .then_expect_invalid("name");
    given_no_events()
        .when(with(ServerSettings { description: Some("d".repeat(1025)), ..settings() }))
        .then_expect_invalid("description");
    given_no_events()
        .when(with(ServerSettings { description: Some("d".repeat(1024)), ..settings() }))
        .then_accept();
    // The same rules on update.
    given([added(AuthType::Bearer)])
        .when(UpdateServer {
            settings: ServerSettings { name: String::new(), ..settings() },
            ..update()
        })
        .then_expect_invalid("name");
}

#[test]
fn server_level_overrides_are_checked_with_their_path() {
    let with = |updated_tools, updated_prompts| AddServer {
        settings: ServerSettings { updated_tools, updated_prompts, ..settings() },
        ..add(AuthType::Bearer)
    };
    let message = given_no_events()
        .when(with(
            vec![tool("a", None), tool("b", None), tool("c", None), tool("d", Some("a_"))],
            vec![],
        ))
        .then_expect_invalid("updated_tools[3].alias");
    assert!(message.starts_with("`a_` is not a valid alias"), "{message}");
    given_no_events()
        .when(with(vec![], vec![tool("", None)]))
        .then_expect_invalid("updated_prompts[0].name");
    given_no_events()
        .when(with(vec![tool("a", None), tool("b", Some("a"))], vec![]))
        .then_expect_invalid("updated_tools[1].alias");
    given_no_events()
        .when(with(vec![tool("a", Some("x")), tool("b", Some("x"))], vec![]))
        .then_expect_invalid("updated_tools[1].alias");
    // Tools and prompts are separate namespaces.
    given_no_events()
        .when(with(vec![tool("a", Some("x"))], vec![tool("b", Some("x"))]))
        .then_accept();
    given_no_events().when(with(vec![tool("a", None)], vec![tool("b", Some("a"))])).then_accept();
}

#[test]
fn credentials_are_recorded_by_version_after_the_server() {
    let command =
        AddServer { auth_credentials: Some(1), client_secret: Some(1), ..add(AuthType::Oauth) };
    given_no_events().when(command).then_expect([
        added(AuthType::Oauth),
        credential_set(CredentialKind::AuthCredentials, 1),
        credential_set(CredentialKind::ClientSecret, 1),
    ]);

    let bearer = AddServer { auth_credentials: Some(1), ..add(AuthType::Bearer) };
    given_no_events()
        .when(bearer)
        .then_expect([added(AuthType::Bearer), credential_set(CredentialKind::AuthCredentials, 1)]);

    // Bearer credentials are optional at creation.
    given_no_events().when(add(AuthType::Bearer)).then_expect([added(AuthType::Bearer)]);
}

#[test]
fn credentials_on_update_must_be_newer() {
    let history = [added(AuthType::Oauth), credential_set(CredentialKind::ClientSecret, 3)];
    given(history.clone())
        .when(UpdateServer { client_secret: Some(4), auth_credentials: Some(1), ..update() })
        .then_expect([
            updated(settings()),
            credential_set(CredentialKind::AuthCredentials, 1),
            credential_set(CredentialKind::ClientSecret, 4),
        ]);
    let message = given(history.clone())
        .when(UpdateServer { client_secret: Some(3), ..update() })
        .then_expect_invalid("client_secret");
    assert_eq!(message, "vault version 3 is not newer than the recorded version 3");
    given(history)
        .when(UpdateServer { auth_credentials: Some(0), ..update() })
        .then_expect_invalid("auth_credentials");
}

#[test]
fn credential_versions_survive_removal() {
    let history =
        [added(AuthType::Bearer), credential_set(CredentialKind::AuthCredentials, 2), removed()];
    given(history.clone())
        .when(AddServer { auth_credentials: Some(2), ..add(AuthType::Bearer) })
        .then_expect_invalid("auth_credentials");
    given(history)
        .when(AddServer { auth_credentials: Some(3), ..add(AuthType::Bearer) })
        .then_expect([added(AuthType::Bearer), credential_set(CredentialKind::AuthCredentials, 3)]);
}

#[test]
fn unauthenticated_servers_take_no_credentials() {
    let message = given_no_events()
        .when(AddServer { auth_credentials: Some(1), ..add(AuthType::Unauthenticated) })
        .then_expect_invalid("auth_credentials");
    assert!(message.contains("`unauthenticated`"), "{message}");
    given_no_events()
        .when(AddServer { client_secret: Some(1), ..add(AuthType::Unauthenticated) })
        .then_expect_invalid("client_secret");
    given([added(AuthType::Unauthenticated)])
        .when(UpdateServer { auth_credentials: Some(1), ..update() })
        .then_expect_invalid("auth_credentials");
}

#[test]
fn only_oauth_servers_take_a_client_secret() {
    let message = given_no_events()
        .when(AddServer { client_secret: Some(1), ..add(AuthType::Bearer) })
        .then_expect_invalid("client_secret");
    assert_eq!(message, "only `oauth` servers take a client secret, and this one is `bearer`");
    // On update, the stored auth type decides.
    given([added(AuthType::Bearer)])
        .when(UpdateServer { client_secret: Some(1), ..update() })
        .then_expect_invalid("client_secret");
}

#[test]
fn state_folds_the_stream() {
    let events = [
        added(AuthType::Oauth),
        credential_set(CredentialKind::AuthCredentials, 1),
        updated(ServerSettings { name: "New".to_owned(), ..settings() }),
        credential_set(CredentialKind::AuthCredentials, 2),
    ];
    let state = ServerState::fold(&events);
    assert!(state.exists());
    assert_eq!(state.stream_version, 4);
    assert_eq!(state.credential_version(CredentialKind::AuthCredentials), 2);
    assert_eq!(state.credential_version(CredentialKind::ClientSecret), 0);
    assert_eq!(state.next_credential_version(CredentialKind::AuthCredentials), 3);
    let server = state.server.as_ref().unwrap();
    assert_eq!(server.settings.name, "New");
    assert_eq!(server.hostname, "https://docs.example.com/mcp");

    let mut removed_state = state.clone();
    removed_state.apply(&removed());
    assert!(!removed_state.exists());
    assert_eq!(removed_state.stream_version, 5);
    assert_eq!(removed_state.credential_version(CredentialKind::AuthCredentials), 2);
}

#[test]
fn replay_equals_incremental_application() {
    let mut state = ServerState::default();
    let mut history = Vec::new();
    let commands: Vec<ServerCommand> = vec![
        AddServer { auth_credentials: Some(1), ..add(AuthType::Bearer) }.into(),
        UpdateServer { auth_credentials: Some(2), ..update() }.into(),
        RemoveServer { server_id: id() }.into(),
        AddServer { auth_credentials: Some(3), ..add(AuthType::Bearer) }.into(),
    ];
    for command in commands {
        for event in decide(&state, command).unwrap() {
            state.apply(&event);
            history.push(event);
        }
    }
    assert_eq!(ServerState::fold(&history), state);
    assert_eq!(state.stream_version, 7);
}

#[test]
fn server_ids_are_slugs_without_underscores() {
    let Err(DomainError::InvalidField { field, message }) = ServerId::parse("my_server") else {
        panic!("`my_server` was accepted");
    };
    assert_eq!(field, "id");
    assert!(message.contains("use `-` instead"), "{message}");
    assert!(ServerId::parse("My-Server").is_err());
    assert!(ServerId::parse("my-server").is_ok());
    // Commands carry parsed ids, so a body with a bad id never reaches `decide`.
    assert!(serde_json::from_str::<ServerId>(r#""a_b""#).is_err());
}

// --- Syncs -------------------------------------------------------------------------------

fn capabilities(tools: &[&str], prompts: &[&str]) -> SyncedCapabilities {
    let objects = |names: &[&str]| {
        names.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>()
    };
    SyncedCapabilities { tools: objects(tools), prompts: objects(prompts) }
}

fn record(outcome: SyncOutcome) -> RecordSync {
    RecordSync { server_id: id(), outcome }
}

fn synced(capabilities: Option<SyncedCapabilities>, dropped_tools: &[&str]) -> Event {
    Event::ServerSynced(ServerSynced {
        server_id: id(),
        capabilities,
        dropped_tool_overrides: dropped_tools.iter().map(|n| (*n).to_owned()).collect(),
        dropped_prompt_overrides: Vec::new(),
    })
}

fn failure(cause: String) -> SyncError {
    SyncError { cause, is_upstream: true, mcp_code: None, retryable: true, status_code: Some(502) }
}

fn with_tool_overrides(overrides: Vec<CapabilityOverride>) -> Event {
    updated(ServerSettings { updated_tools: overrides, ..settings() })
}

#[test]
fn a_sync_of_a_missing_server_is_refused() {
    let not_found = || DomainError::NotFound { kind: "server", id: "docs".to_owned() };
    given_no_events()
        .when(record(SyncOutcome::Synced(capabilities(&["search"], &[]))))
        .then_expect_error(not_found());
    given_no_events()
        .when(record(SyncOutcome::Failed(failure("down".to_owned()))))
        .then_expect_error(not_found());
    // A sync that finishes after the server was removed records nothing.
    given([added(AuthType::Bearer), removed()])
        .when(record(SyncOutcome::Unchanged))
        .then_expect_error(not_found());
}

#[test]
fn the_first_sync_records_the_capabilities() {
    let found = capabilities(&["search", "fetch"], &["summarise"]);
    given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Synced(found.clone())))
        .then_expect([synced(Some(found.clone()), &[])]);

    let state = ServerState::fold([added(AuthType::Bearer), synced(Some(found), &[])]);
    assert!(state.ever_synced);
    assert_eq!(state.synced_tools, BTreeSet::from(["fetch".to_owned(), "search".to_owned()]));
    assert_eq!(state.synced_prompts, BTreeSet::from(["summarise".to_owned()]));
}

#[test]
fn an_unchanged_sync_needs_an_earlier_successful_one() {
    let message = given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Unchanged))
        .then_expect_invalid("capabilities");
    assert!(message.contains("earlier successful"), "{message}");
    // A failure is not a successful sync to compare with.
    given([
        added(AuthType::Bearer),
        Event::ServerSyncFailed(ServerSyncFailed {
            server_id: id(),
            error: failure("down".to_owned()),
        }),
    ])
    .when(record(SyncOutcome::Unchanged))
    .then_expect_invalid("capabilities");
    // After one, it records only that the sync happened.
    given([added(AuthType::Bearer), synced(Some(capabilities(&["search"], &[])), &[])])
        .when(record(SyncOutcome::Unchanged))
        .then_expect([synced(None, &[])]);
    // A server added again after removal starts over.
    given([
        added(AuthType::Bearer),
        synced(Some(capabilities(&["search"], &[])), &[]),
        removed(),
        added(AuthType::Bearer),
    ])
    .when(record(SyncOutcome::Unchanged))
    .then_expect_invalid("capabilities");
}

#[test]
fn an_override_of_a_tool_that_disappears_after_a_sync_is_dropped() {
    let history = [
        added(AuthType::Bearer),
        with_tool_overrides(vec![tool("search", Some("find")), tool("fetch", None)]),
        synced(Some(capabilities(&["search", "fetch"], &[])), &[]),
    ];
    // `search` was renamed upstream: its alias does not follow it.
    given(history.clone())
        .when(record(SyncOutcome::Synced(capabilities(&["search_v2", "fetch"], &[]))))
        .then_expect([synced(Some(capabilities(&["search_v2", "fetch"], &[])), &["search"])]);

    // Folded, the override is gone from the settings and the rest stays.
    let mut events = history.to_vec();
    events.push(synced(Some(capabilities(&["search_v2", "fetch"], &[])), &["search"]));
    let state = ServerState::fold(&events);
    let overrides = &state.server.as_ref().unwrap().settings.updated_tools;
    assert_eq!(overrides, &vec![tool("fetch", None)]);
}

#[test]
fn an_override_written_before_the_first_sync_waits_for_its_tool() {
    let history = [added(AuthType::Bearer), with_tool_overrides(vec![tool("later", Some("soon"))])];
    given(history.clone())
        .when(record(SyncOutcome::Synced(capabilities(&["search"], &[]))))
        .then_expect([synced(Some(capabilities(&["search"], &[])), &[])]);
    // Nor does a failed sync drop anything.
    let events =
        given(history).when(record(SyncOutcome::Failed(failure("down".to_owned())))).then_accept();
    assert!(matches!(events.as_slice(), [Event::ServerSyncFailed(_)]), "{events:?}");
}

#[test]
fn a_failure_cause_is_cut_at_the_limit_on_a_char_boundary() {
    // `é` is two bytes: the limit falls in the middle of one.
    let cause = format!("x{}", "é".repeat(MAX_SYNC_ERROR_LEN));
    let events = given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Failed(failure(cause))))
        .then_accept();
    let [Event::ServerSyncFailed(failed)] = events.as_slice() else {
        panic!("expected one ServerSyncFailed, got {events:?}");
    };
    assert_eq!(failed.error.cause.len(), MAX_SYNC_ERROR_LEN - 1);
    assert!(failed.error.cause.starts_with("xé"));
    assert_eq!(failed.error.status_code, Some(502));

    // A cause within the limit is kept whole.
    let short = "é".repeat(MAX_SYNC_ERROR_LEN / 2);
    given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Failed(failure(short.clone()))))
        .then_expect([Event::ServerSyncFailed(ServerSyncFailed {
            server_id: id(),
            error: failure(short),
        })]);
}

#[test]
fn a_sync_listing_too_many_capabilities_is_refused() {
    let many: Vec<String> = (0..=MAX_SYNCED_CAPABILITIES).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let message = given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Synced(capabilities(&many, &[]))))
        .then_expect_invalid("tools");
    assert!(message.contains(&format!("{}", MAX_SYNCED_CAPABILITIES + 1)), "{message}");
    given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Synced(capabilities(&[], &many))))
        .then_expect_invalid("prompts");
    given([added(AuthType::Bearer)])
        .when(record(SyncOutcome::Synced(capabilities(&many[1..], &[]))))
        .then_accept();
}
