//! Given/when/then tests of the identity provider rules.

use super::*;
use crate::domain::Aggregate;
use crate::domain::testing::{self, Given};

const OIDC_ID: &str = "5b0b3f1e-8f7a-4c6e-9d2b-1a2b3c4d5e6f";

fn given(events: impl IntoIterator<Item = Event>) -> Given<IdentityProviderState> {
    testing::given(events)
}

fn given_no_events() -> Given<IdentityProviderState> {
    testing::given_no_events()
}

fn oidc_id() -> IdentityProviderId {
    IdentityProviderId::parse("id", OIDC_ID).unwrap()
}

fn portal(id: &str) -> PortalId {
    PortalId::parse(id).unwrap()
}

fn oidc_input() -> OidcInput {
    OidcInput {
        client_id: "portico".into(),
        auth_url: "https://idp.example.com/authorize".into(),
        token_url: "https://idp.example.com/token".into(),
        certs_url: "https://idp.example.com/jwks".into(),
        ..OidcInput::default()
    }
}

fn input(name: &str, config: ConfigInput) -> IdentityProviderInput {
    IdentityProviderInput { name: name.into(), config }
}

fn create_oidc(oidc: OidcInput, secret: Option<u32>) -> CreateIdentityProvider {
    CreateIdentityProvider {
        identity_provider_id: oidc_id(),
        input: input("Company SSO", ConfigInput::Oidc(oidc)),
        client_secret_version: secret,
    }
}

fn update_oidc(oidc: OidcInput, secret: Option<u32>) -> UpdateIdentityProvider {
    UpdateIdentityProvider {
        identity_provider_id: oidc_id(),
        input: input("Company SSO", ConfigInput::Oidc(oidc)),
        client_secret_version: secret,
    }
}

fn create_pin() -> CreateIdentityProvider {
    CreateIdentityProvider {
        identity_provider_id: one_time_pin_id(),
        input: input("One-time PIN", ConfigInput::OneTimePin),
        client_secret_version: None,
    }
}

fn oidc_config(secret: u32) -> OidcConfig {
    OidcConfig {
        client_id: "portico".into(),
        auth_url: "https://idp.example.com/authorize".into(),
        token_url: "https://idp.example.com/token".into(),
        certs_url: "https://idp.example.com/jwks".into(),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        claims: vec![],
        email_claim_name: "email".into(),
        pkce_enabled: false,
        groups_claim_name: "groups".into(),
        client_secret_version: secret,
    }
}

fn oidc_created(secret: u32) -> Event {
    Event::IdentityProviderCreated(IdentityProviderCreated {
        identity_provider_id: oidc_id(),
        settings: IdentityProviderSettings {
            name: "Company SSO".into(),
            config: IdentityProviderConfig::Oidc(oidc_config(secret)),
        },
    })
}

fn oidc_updated(config: OidcConfig) -> Event {
    Event::IdentityProviderUpdated(IdentityProviderUpdated {
        identity_provider_id: oidc_id(),
        settings: IdentityProviderSettings {
            name: "Company SSO".into(),
            config: IdentityProviderConfig::Oidc(config),
        },
    })
}

fn pin_created() -> Event {
    Event::IdentityProviderCreated(IdentityProviderCreated {
        identity_provider_id: one_time_pin_id(),
        settings: IdentityProviderSettings {
            name: "One-time PIN".into(),
            config: IdentityProviderConfig::OneTimePin,
        },
    })
}

fn deleted(id: IdentityProviderId) -> Event {
    Event::IdentityProviderDeleted(IdentityProviderDeleted { identity_provider_id: id })
}

#[test]
fn an_oidc_provider_is_created_with_its_defaults_and_the_secret_version_only() {
    given_no_events().when(create_oidc(oidc_input(), Some(1))).then_expect([oidc_created(1)]);
}

#[test]
fn an_oidc_provider_needs_a_client_secret() {
    let message = given_no_events()
        .when(create_oidc(oidc_input(), None))
        .then_expect_invalid("config.client_secret");
    assert_eq!(message, "is required");
}

#[test]
fn the_one_time_pin_provider_has_its_own_id_and_is_one_per_account() {
    given_no_events().when(create_pin()).then_expect([pin_created()]);
    given([pin_created()]).when(create_pin()).then_expect_error(DomainError::AlreadyExists {
        kind: "`onetimepin` identity provider",
        id: one_time_pin_id().to_string(),
    });
    // Another id for a one-time PIN provider would be a second one.
    let mut elsewhere = create_pin();
    elsewhere.identity_provider_id = oidc_id();
    let message = given_no_events().when(elsewhere).then_expect_invalid("id");
    assert!(message.contains("always has the id"), "{message}");
    // And no other provider may take its id.
    let mut squatter = create_oidc(oidc_input(), Some(1));
    squatter.identity_provider_id = one_time_pin_id();
    given_no_events().when(squatter).then_expect_invalid("id");
    // Deleted, it may be created again.
    given([pin_created(), deleted(one_time_pin_id())])
        .when(create_pin())
        .then_expect([pin_created()]);
}

#[test]
fn the_one_time_pin_id_is_stable() {
    // Published in docs/identity.md, and the built-in provider of every existing account:
    // the derivation must never change.
    assert_eq!(one_time_pin_id().to_string(), "f1c7dbf9-65db-5d13-a50e-3d72191bfc29");
    assert_eq!(one_time_pin_id().as_uuid().get_version_num(), 5);
    assert_eq!(
        identity_provider_stream(&one_time_pin_id()),
        format!("identity-provider-{}", one_time_pin_id())
    );
}

#[test]
fn a_one_time_pin_provider_has_no_secret() {
    let mut with_secret = create_pin();
    with_secret.client_secret_version = Some(1);
    given_no_events().when(with_secret).then_expect_invalid("config.client_secret");
}

#[test]
fn an_update_keeps_the_secret_unless_a_new_one_was_stored() {
    let mut changed = oidc_input();
    changed.pkce_enabled = Some(true);
    let mut expected = oidc_config(1);
    expected.pkce_enabled = true;
    given([oidc_created(1)])
        .when(update_oidc(changed.clone(), None))
        .then_expect([oidc_updated(expected.clone())]);
    expected.client_secret_version = 2;
    given([oidc_created(1)])
        .when(update_oidc(changed.clone(), Some(2)))
        .then_expect([oidc_updated(expected)]);
    // A version that was used before is refused.
    let message = given([oidc_created(1)])
        .when(update_oidc(changed, Some(1)))
        .then_expect_invalid("config.client_secret");
    assert!(message.contains("version 2"), "{message}");
}

#[test]
fn the_secret_versions_grow_across_a_delete() {
    let mut state = IdentityProviderState::fold([oidc_created(3), deleted(oidc_id())]);
    assert_eq!(state.next_client_secret_version(), 4);
    assert!(!state.exists());
    state.apply(&oidc_created(4));
    assert_eq!(state.next_client_secret_version(), 5);
    assert_eq!(state.version(), 3);
}

#[test]
fn the_type_cannot_change() {
    let to_pin = UpdateIdentityProvider {
        identity_provider_id: oidc_id(),
        input: input("Company SSO", ConfigInput::OneTimePin),
        client_secret_version: None,
    };
    let message = given([oidc_created(1)]).when(to_pin).then_expect_invalid("type");
    assert!(message.contains("cannot be changed"), "{message}");
}

#[test]
fn a_missing_provider_is_not_found() {
    let not_found = DomainError::NotFound { kind: "identity provider", id: OIDC_ID.to_owned() };
    given_no_events().when(update_oidc(oidc_input(), None)).then_expect_error(not_found.clone());
    given([oidc_created(1), deleted(oidc_id())])
        .when(DeleteIdentityProvider { identity_provider_id: oidc_id() })
        .then_expect_error(not_found);
}

#[test]
fn a_provider_an_access_application_allows_is_not_deleted() {
    let usage = BTreeMap::from([(oidc_id(), vec![portal("eng"), portal("ops")])]);
    given([oidc_created(1)])
        .with_usage(usage)
        .when(DeleteIdentityProvider { identity_provider_id: oidc_id() })
        .then_expect_error(DomainError::InUse {
            kind: "identity provider",
            id: OIDC_ID.to_owned(),
            by: "the Access applications of portals `eng`, `ops`: remove it from their \
                 `allowed_idps` first"
                .into(),
        });
    given([oidc_created(1)])
        .with_usage(BTreeMap::from([(one_time_pin_id(), vec![portal("eng")])]))
        .when(DeleteIdentityProvider { identity_provider_id: oidc_id() })
        .then_expect([deleted(oidc_id())]);
}

#[test]
fn names_are_trimmed_and_bounded() {
    let named = |name: &str| CreateIdentityProvider {
        identity_provider_id: one_time_pin_id(),
        input: input(name, ConfigInput::OneTimePin),
        client_secret_version: None,
    };
    let events = given_no_events().when(named("  PIN  ")).then_accept();
    let Event::IdentityProviderCreated(created) = &events[0] else { panic!("{events:?}") };
    assert_eq!(created.settings.name, "PIN");
    given_no_events().when(named(&"é".repeat(MAX_NAME_LEN))).then_accept();
    let message =
        given_no_events().when(named(&"a".repeat(MAX_NAME_LEN + 1))).then_expect_invalid("name");
    assert!(message.contains("longer than 350"), "{message}");
    assert_eq!(given_no_events().when(named(" ")).then_expect_invalid("name"), "must not be empty");
    given_no_events().when(named("a\u{7}b")).then_expect_invalid("name");
}

#[test]
fn endpoints_are_https_or_http_on_loopback() {
    for (field, set) in [
        (
            "config.auth_url",
            (|o: &mut OidcInput, v: &str| o.auth_url = v.into()) as fn(&mut OidcInput, &str),
        ),
        ("config.token_url", |o, v| o.token_url = v.into()),
        ("config.certs_url", |o, v| o.certs_url = v.into()),
    ] {
        for ok in [
            "https://idp.example.com/x",
            "http://localhost:9000/x",
            "http://127.0.0.1:9000/x",
            "http://[::1]:9000/x",
            "http://idp.localhost/x",
        ] {
            let mut oidc = oidc_input();
            set(&mut oidc, ok);
            given_no_events().when(create_oidc(oidc, Some(1))).then_accept();
        }
        for (bad, why) in [
            ("", "must not be empty"),
            ("http://idp.example.com/x", "only on the loopback host"),
            ("http://10.0.0.1/x", "only on the loopback host"),
            ("ftp://idp.example.com/x", "not `ftp`"),
            ("idp.example.com/x", "not a valid URL"),
            ("https://user:pw@idp.example.com/x", "credentials"),
            ("https://idp.example.com/x#f", "fragment"),
            ("https://idp.example.com/ x", "spaces"),
        ] {
            let mut oidc = oidc_input();
            set(&mut oidc, bad);
            let message =
                given_no_events().when(create_oidc(oidc, Some(1))).then_expect_invalid(field);
            assert!(message.contains(why), "{field} {bad}: {message}");
        }
        let mut oidc = oidc_input();
        set(&mut oidc, &format!("https://idp.example.com/{}", "a".repeat(2048)));
        let message = given_no_events().when(create_oidc(oidc, Some(1))).then_expect_invalid(field);
        assert!(message.contains("longer than 2048"), "{message}");
    }
}

#[test]
fn scopes_claims_and_claim_names_are_checked() {
    let with = |f: fn(&mut OidcInput)| {
        let mut oidc = oidc_input();
        f(&mut oidc);
        given_no_events().when(create_oidc(oidc, Some(1)))
    };
    let events = with(|o| {
        o.scopes = Some(vec!["openid".into(), "groups".into()]);
        o.claims = Some(vec!["department".into(), "https://example.com/roles".into()]);
        o.email_claim_name = Some("upn".into());
        o.groups_claim_name = Some("roles".into());
        o.pkce_enabled = Some(true);
    })
    .then_accept();
    let Event::IdentityProviderCreated(e) = &events[0] else { panic!("{events:?}") };
    let IdentityProviderConfig::Oidc(config) = &e.settings.config else { panic!() };
    assert_eq!(config.scopes, ["openid", "groups"]);
    assert_eq!(config.claims, ["department", "https://example.com/roles"]);
    assert_eq!(config.email_claim_name, "upn");
    assert_eq!(config.groups_claim_name, "roles");
    assert!(config.pkce_enabled);

    let message =
        with(|o| o.scopes = Some(vec!["email".into()])).then_expect_invalid("config.scopes");
    assert!(message.contains("must include `openid`"), "{message}");
    with(|o| o.scopes = Some(vec!["openid".into(), "a b".into()]))
        .then_expect_invalid("config.scopes[1]");
    with(|o| o.scopes = Some(vec!["openid".into(), "".into()]))
        .then_expect_invalid("config.scopes[1]");
    with(|o| o.scopes = Some(vec!["openid".into(), "openid".into()]))
        .then_expect_invalid("config.scopes[1]");
    with(|o| o.scopes = Some(vec!["openid".into(), "x".repeat(MAX_SCOPE_LEN + 1)]))
        .then_expect_invalid("config.scopes[1]");
    with(|o| o.scopes = Some((0..=MAX_SCOPES).map(|i| format!("s{i}")).collect()))
        .then_expect_invalid("config.scopes");
    with(|o| o.claims = Some(vec!["a".into(), "a".into()])).then_expect_invalid("config.claims[1]");
    with(|o| o.claims = Some(vec!["has space".into()])).then_expect_invalid("config.claims[0]");
    with(|o| o.claims = Some((0..=MAX_CLAIMS).map(|i| format!("c{i}")).collect()))
        .then_expect_invalid("config.claims");
    with(|o| o.email_claim_name = Some("".into())).then_expect_invalid("config.email_claim_name");
    with(|o| o.groups_claim_name = Some("x".repeat(MAX_CLAIM_NAME_LEN + 1)))
        .then_expect_invalid("config.groups_claim_name");
    with(|o| o.client_id = " ".into()).then_expect_invalid("config.client_id");
    with(|o| o.client_id = "a b".into()).then_expect_invalid("config.client_id");
    with(|o| o.client_id = "x".repeat(MAX_CLIENT_ID_LEN + 1))
        .then_expect_invalid("config.client_id");
}

#[test]
fn client_secrets_are_checked_without_being_quoted() {
    assert!(check_client_secret("s3cr3t-value").is_ok());
    assert!(check_client_secret(&"x".repeat(MAX_CLIENT_SECRET_LEN)).is_ok());
    for (secret, why) in
        [("", "must not be empty"), (MASKED_SECRET, "masked value"), ("a\nb", "control characters")]
    {
        let message = check_client_secret(secret).unwrap_err().to_string();
        assert!(message.starts_with("invalid `config.client_secret`"), "{message}");
        assert!(message.contains(why), "{message}");
    }
    let long = "y".repeat(MAX_CLIENT_SECRET_LEN + 1);
    let message = check_client_secret(&long).unwrap_err().to_string();
    assert!(message.contains("longer than 4096 bytes") && !message.contains("yyyy"), "{message}");
}

#[test]
fn types_other_than_onetimepin_and_oidc_are_refused_naming_the_supported_ones() {
    assert_eq!(IdentityProviderType::parse("oidc").unwrap(), IdentityProviderType::Oidc);
    assert_eq!(
        IdentityProviderType::parse("onetimepin").unwrap(),
        IdentityProviderType::OneTimePin
    );
    let message = IdentityProviderType::parse("saml").unwrap_err().to_string();
    assert!(message.starts_with("invalid `type`: `saml` is not supported"), "{message}");
    assert!(message.contains("`onetimepin` and `oidc`"), "{message}");
}

#[test]
fn ids_are_lowercase_uuids() {
    assert!(IdentityProviderId::parse("id", OIDC_ID).is_ok());
    assert!(IdentityProviderId::parse("id", &OIDC_ID.to_uppercase()).is_err());
    assert!(IdentityProviderId::parse("id", "not-a-uuid").is_err());
    assert!(IdentityProviderId::parse("id", &OIDC_ID.replace('-', "")).is_err());
}

#[test]
fn events_hold_the_secret_version_and_no_secret() {
    let json = serde_json::to_value(oidc_created(2)).unwrap();
    assert_eq!(json["settings"]["config"]["type"], "oidc");
    assert_eq!(json["settings"]["config"]["client_secret_version"], 2);
    assert!(json["settings"]["config"].get("client_secret").is_none());
    let config = oidc_config(2);
    assert_eq!(
        config.client_secret(&oidc_id()),
        SecretRef::new(format!("identity-provider:{OIDC_ID}"), "client_secret", 2)
    );
}
