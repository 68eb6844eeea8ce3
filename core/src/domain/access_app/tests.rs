//! Given/when/then tests of the Access application rules.

use super::*;
use crate::domain::Aggregate;
use crate::domain::identity_provider::one_time_pin_id;
use crate::domain::testing::{self, Given};

const IDP: &str = "5b0b3f1e-8f7a-4c6e-9d2b-1a2b3c4d5e6f";

fn given(events: impl IntoIterator<Item = Event>) -> Given<AccessAppState> {
    testing::given(events)
}

fn portal() -> PortalId {
    PortalId::parse("eng").unwrap()
}

fn idp() -> IdentityProviderId {
    IdentityProviderId::parse("id", IDP).unwrap()
}

/// Portal `eng` exists (generation 1), with the one-time PIN provider and [`IDP`].
fn directory() -> StaticDirectory {
    StaticDirectory {
        portals: BTreeMap::from([(portal(), 1)]),
        identity_providers: BTreeSet::from([one_time_pin_id(), idp()]),
    }
}

fn update(input: AccessAppInput) -> UpdateAccessApp {
    UpdateAccessApp { portal_id: portal(), input }
}

fn updated(configuration: AccessAppConfiguration) -> Event {
    Event::AccessAppUpdated(AccessAppUpdated {
        portal_id: portal(),
        portal_generation: 1,
        configuration,
    })
}

fn when(input: AccessAppInput) -> crate::domain::testing::Outcome {
    given([]).with_directory(directory()).when(update(input))
}

fn duration(text: &str) -> GoDuration {
    GoDuration::parse("f", text).unwrap()
}

#[test]
fn an_empty_write_records_the_defaults() {
    when(AccessAppInput::default()).then_expect([updated(AccessAppConfiguration::default())]);
}

#[test]
fn the_defaults_let_local_clients_register_and_sign_in() {
    let defaults = AccessAppConfiguration::default();
    assert!(defaults.allowed_idps.is_empty(), "every provider");
    assert!(!defaults.auto_redirect_to_identity);
    assert_eq!(defaults.session_duration.as_str(), "24h");
    assert_eq!(defaults.session_duration.value(), Duration::from_secs(86_400));
    assert_eq!(defaults.custom_deny_message, "That account does not have access");
    let oauth = &defaults.oauth_configuration;
    assert!(oauth.enabled);
    assert!(oauth.dynamic_client_registration.enabled);
    assert!(oauth.dynamic_client_registration.allow_any_on_localhost);
    assert!(oauth.dynamic_client_registration.allow_any_on_loopback);
    assert!(oauth.dynamic_client_registration.allowed_uris.is_empty());
    assert_eq!(oauth.grant.access_token_lifetime.value(), Duration::from_secs(900));
    assert_eq!(oauth.grant.session_duration, None);
    // The code's defaults are what parsing their texts gives.
    assert_eq!(defaults.session_duration, duration(DEFAULT_SESSION_DURATION));
    assert_eq!(oauth.grant.access_token_lifetime, duration(DEFAULT_ACCESS_TOKEN_LIFETIME));
}

#[test]
fn every_field_is_recorded_as_sent() {
    let input = AccessAppInput {
        allowed_idps: vec![IDP.into()],
        auto_redirect_to_identity: true,
        session_duration: Some("2h45m".into()),
        custom_deny_message: Some("Ask #help for access".into()),
        custom_deny_url: Some("https://intranet.example.com/denied".into()),
        custom_non_identity_deny_url: Some("https://intranet.example.com/device".into()),
        oauth_configuration: OAuthInput {
            enabled: Some(true),
            dynamic_client_registration: DynamicClientRegistrationInput {
                enabled: Some(false),
                allow_any_on_localhost: Some(false),
                allow_any_on_loopback: Some(false),
                allowed_uris: vec![
                    "https://app.example.com/callback/*".into(),
                    "http://127.0.0.1:6274/oauth/callback".into(),
                    "com.example.app:/oauth".into(),
                ],
            },
            grant: GrantInput {
                access_token_lifetime: Some("5m".into()),
                session_duration: Some("1h".into()),
            },
        },
    };
    when(input).then_expect([updated(AccessAppConfiguration {
        allowed_idps: vec![idp()],
        auto_redirect_to_identity: true,
        session_duration: duration("2h45m"),
        custom_deny_message: "Ask #help for access".into(),
        custom_deny_url: Some("https://intranet.example.com/denied".into()),
        custom_non_identity_deny_url: Some("https://intranet.example.com/device".into()),
        oauth_configuration: OAuthConfiguration {
            enabled: true,
            dynamic_client_registration: DynamicClientRegistration {
                enabled: false,
                allow_any_on_localhost: false,
                allow_any_on_loopback: false,
                allowed_uris: vec![
                    "https://app.example.com/callback/*".into(),
                    "http://127.0.0.1:6274/oauth/callback".into(),
                    "com.example.app:/oauth".into(),
                ],
            },
            grant: GrantConfiguration {
                access_token_lifetime: duration("5m"),
                session_duration: Some(duration("1h")),
            },
        },
    })]);
}

#[test]
fn a_missing_portal_refuses() {
    let not_found = DomainError::NotFound { kind: "portal", id: "eng".into() };
    given([]).when(update(AccessAppInput::default())).then_expect_error(not_found.clone());
    // A portal that existed once (its settings are on the stream) but does not now.
    given([updated(AccessAppConfiguration::default())])
        .when(update(AccessAppInput::default()))
        .then_expect_error(not_found);
}

#[test]
fn a_change_names_the_generation_of_the_portal_it_was_decided_for() {
    let mut directory = directory();
    directory.portals.insert(portal(), 7);
    let events = given([updated(AccessAppConfiguration::default())])
        .with_directory(directory)
        .when(update(AccessAppInput::default()))
        .then_accept();
    let Event::AccessAppUpdated(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.portal_generation, 7);
}

#[test]
fn allowed_idps_must_exist_once_each() {
    let missing = "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let with = |ids: &[&str]| AccessAppInput {
        allowed_idps: ids.iter().map(|s| (*s).to_owned()).collect(),
        ..AccessAppInput::default()
    };
    let message = when(with(&[IDP, missing])).then_expect_invalid("allowed_idps[1]");
    assert_eq!(message, format!("identity provider `{missing}` does not exist"));
    let message = when(with(&[IDP, IDP])).then_expect_invalid("allowed_idps[1]");
    assert!(message.contains("listed twice"), "{message}");
    let message = when(with(&["okta"])).then_expect_invalid("allowed_idps[0]");
    assert!(message.contains("not a lowercase UUID"), "{message}");
    let many: Vec<String> = (0..=MAX_ALLOWED_IDPS).map(|_| IDP.to_owned()).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    when(with(&refs)).then_expect_invalid("allowed_idps");
    let pin = one_time_pin_id().to_string();
    when(with(&[&pin, IDP])).then_accept();
}

#[test]
fn instant_auth_needs_exactly_one_allowed_provider() {
    let pin = one_time_pin_id().to_string();
    for ids in [vec![], vec![pin.clone(), IDP.to_owned()]] {
        let n = ids.len();
        let message = when(AccessAppInput {
            allowed_idps: ids,
            auto_redirect_to_identity: true,
            ..AccessAppInput::default()
        })
        .then_expect_invalid("auto_redirect_to_identity");
        assert!(message.contains(&format!("which lists {n}")), "{message}");
    }
    when(AccessAppInput {
        allowed_idps: vec![pin],
        auto_redirect_to_identity: true,
        ..AccessAppInput::default()
    })
    .then_accept();
}

#[test]
fn durations_are_go_durations_within_bounds() {
    // With the shortest access token, so that only the session's own bounds apply.
    let session = |text: &str| AccessAppInput {
        session_duration: Some(text.into()),
        oauth_configuration: OAuthInput {
            grant: GrantInput { access_token_lifetime: Some("1m".into()), session_duration: None },
            ..OAuthInput::default()
        },
        ..AccessAppInput::default()
    };
    when(session("1m")).then_accept();
    when(session("8760h")).then_accept();
    for bad in ["59s", "8761h", "1d", "-1h", "", "300ms"] {
        when(session(bad)).then_expect_invalid("session_duration");
    }
    let grant = |lifetime: Option<&str>, session: Option<&str>| AccessAppInput {
        oauth_configuration: OAuthInput {
            grant: GrantInput {
                access_token_lifetime: lifetime.map(str::to_owned),
                session_duration: session.map(str::to_owned),
            },
            ..OAuthInput::default()
        },
        ..AccessAppInput::default()
    };
    when(grant(Some("24h"), None)).then_accept();
    for bad in ["59s", "25h", "15x"] {
        when(grant(Some(bad), None))
            .then_expect_invalid("oauth_configuration.grant.access_token_lifetime");
    }
    for bad in ["30s", "9000h", "1y"] {
        when(grant(None, Some(bad)))
            .then_expect_invalid("oauth_configuration.grant.session_duration");
    }
    // An access token cannot outlive its grant, whichever session sets it.
    let message = when(grant(Some("2h"), Some("1h")))
        .then_expect_invalid("oauth_configuration.grant.access_token_lifetime");
    assert!(message.contains("oauth_configuration.grant.session_duration"), "{message}");
    let message =
        when(AccessAppInput { session_duration: Some("10m".into()), ..AccessAppInput::default() })
            .then_expect_invalid("oauth_configuration.grant.access_token_lifetime");
    assert!(message.contains("`15m` is longer than the grant's session, `10m`"), "{message}");
}

#[test]
fn deny_message_and_urls_are_bounded() {
    let message = |m: &str| AccessAppInput {
        custom_deny_message: Some(m.into()),
        ..AccessAppInput::default()
    };
    when(message(&"é".repeat(MAX_DENY_MESSAGE_LEN))).then_accept();
    when(message(&"a".repeat(MAX_DENY_MESSAGE_LEN + 1))).then_expect_invalid("custom_deny_message");
    when(message("  ")).then_expect_invalid("custom_deny_message");
    when(message("a\u{0}b")).then_expect_invalid("custom_deny_message");
    let urls = |deny: &str, other: &str| AccessAppInput {
        custom_deny_url: Some(deny.into()),
        custom_non_identity_deny_url: Some(other.into()),
        ..AccessAppInput::default()
    };
    let events = when(urls("", "")).then_accept();
    let Event::AccessAppUpdated(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.configuration.custom_deny_url, None, "an empty URL is no redirect");
    when(urls("http://intranet.example.com", "")).then_expect_invalid("custom_deny_url");
    when(urls("", "javascript:alert(1)")).then_expect_invalid("custom_non_identity_deny_url");
    when(urls("/relative", "")).then_expect_invalid("custom_deny_url");
}

#[test]
fn allowed_uris_follow_the_redirect_uri_rules() {
    const FIELD: &str = "oauth_configuration.dynamic_client_registration.allowed_uris";
    let uris = |uris: &[&str]| AccessAppInput {
        oauth_configuration: OAuthInput {
            dynamic_client_registration: DynamicClientRegistrationInput {
                allowed_uris: uris.iter().map(|s| (*s).to_owned()).collect(),
                ..DynamicClientRegistrationInput::default()
            },
            ..OAuthInput::default()
        },
        ..AccessAppInput::default()
    };
    when(uris(&[
        "https://app.example.com/cb",
        "https://app.example.com/*",
        "http://localhost:3000/callback",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        "com.example.app:/oauth",
    ]))
    .then_accept();
    for (bad, why) in [
        ("", "must not be empty"),
        ("https://*.example.com/cb", "only as a final `/*`"),
        ("https://app.example.com/*/cb", "only as a final `/*`"),
        ("myapp://cb/*", "custom-scheme URIs match exactly"),
        ("http://app.example.com/cb", "only on the loopback host"),
        ("https://app.example.com/cb#x", "fragment"),
        ("https://u:p@app.example.com/cb", "credentials"),
        ("no-scheme", "not a valid URI"),
        ("https://app.example.com/a b", "spaces"),
    ] {
        let message = when(uris(&["https://ok.example.com/cb", bad]))
            .then_expect_invalid(&format!("{FIELD}[1]"));
        assert!(message.contains(why), "{bad}: {message}");
    }
    when(uris(&["https://a.example.com/cb", "https://a.example.com/cb"]))
        .then_expect_invalid(&format!("{FIELD}[1]"));
    let many: Vec<String> =
        (0..=MAX_ALLOWED_URIS).map(|i| format!("https://a.example.com/{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    when(uris(&refs)).then_expect_invalid(FIELD);
}

#[test]
fn ids_and_audiences_are_derived_from_the_portal_id() {
    let other = PortalId::parse("ops").unwrap();
    assert_eq!(access_app_id(&portal()), access_app_id(&portal()));
    assert_ne!(access_app_id(&portal()), access_app_id(&other));
    assert_eq!(access_app_id(&portal()).get_version_num(), 5);
    let aud = access_app_aud(&portal());
    assert_eq!(aud.len(), 64);
    assert!(aud.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{aud}");
    assert_eq!(aud, access_app_aud(&portal()));
    assert_ne!(aud, access_app_aud(&other));
    assert_eq!(access_app_stream(&portal()), "access-app-eng");
}

#[test]
fn the_state_folds_the_last_configuration() {
    let custom = AccessAppConfiguration {
        custom_deny_message: "No".into(),
        ..AccessAppConfiguration::default()
    };
    let state =
        AccessAppState::fold([updated(AccessAppConfiguration::default()), updated(custom.clone())]);
    assert_eq!(state.version(), 2);
    assert_eq!(state.configured, Some((1, custom)));
}
