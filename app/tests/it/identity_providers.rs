//! Identity providers against real storage: the built-in one-time PIN provider of every
//! account, OIDC client secrets in the vault and never in the log, one one-time PIN provider
//! whatever the timing, and providers an Access application allows kept from deletion.

use std::collections::BTreeSet;
use std::sync::Arc;

use portico_app::identity_providers::BUILT_IN_PIN_NAME;
use portico_app::{App, AppError};
use portico_core::domain::DomainError;
use portico_core::domain::access_app::AccessAppInput;
use portico_core::domain::identity_provider::{
    ConfigInput, IdentityProviderConfig, IdentityProviderId, IdentityProviderInput,
    IdentityProviderType, OidcInput, one_time_pin_id,
};
use portico_core::domain::ids::PortalId;
use portico_core::domain::portal::PortalInput;
use portico_core::vault::{SecretString, VaultError};
use portico_core::{Actor, Event};

use crate::support::{Harness, on_every_backend};

const SECRET: &str = "oidc-client-secret-3b9f1c0e7a5d";
const NEW_SECRET: &str = "oidc-client-secret-rotated-44d2a8";

fn actor() -> Actor {
    Actor::ApiToken { id: "tok".into(), name: "tests".into() }
}

fn oidc(name: &str, auth_url: &str) -> IdentityProviderInput {
    IdentityProviderInput {
        name: name.into(),
        config: ConfigInput::Oidc(OidcInput {
            client_id: "portico".into(),
            auth_url: auth_url.into(),
            token_url: "https://idp.example.com/token".into(),
            certs_url: "https://idp.example.com/jwks".into(),
            ..OidcInput::default()
        }),
    }
}

fn pin() -> IdentityProviderInput {
    IdentityProviderInput { name: "PIN".into(), config: ConfigInput::OneTimePin }
}

fn portal(id: &str) -> PortalId {
    PortalId::parse(id).unwrap()
}

async fn create_portal(app: &App, id: &str) {
    let input = PortalInput {
        name: format!("Portal {id}"),
        hostname: format!("{id}.example.com"),
        ..PortalInput::default()
    };
    app.create_portal(&portal(id), input, &actor()).await.unwrap();
}

/// Every event of the log, every field of it written out.
async fn log_text(app: &App) -> Vec<String> {
    let events = app.log.read_all(0, 100_000).await.unwrap();
    events.iter().map(|e| format!("{e:?}")).collect()
}

async fn a_fresh_account_has_the_built_in_one_time_pin_provider(harness: Harness) {
    let app = harness.app;
    let providers: Vec<_> = app.read(|m| m.identity_providers.iter().cloned().collect());
    assert_eq!(providers.len(), 1, "{providers:?}");
    assert_eq!(providers[0].id, one_time_pin_id());
    assert_eq!(providers[0].name, BUILT_IN_PIN_NAME);
    assert_eq!(providers[0].provider_type(), IdentityProviderType::OneTimePin);
    assert_eq!(providers[0].created_by, Actor::system("bootstrap"));

    // Starting again creates nothing more.
    let boot = portico_app::account::bootstrap(app.log.as_ref(), None, None).await.unwrap();
    assert!(!boot.account_created);
    let created = app.log.read_all(0, 100_000).await.unwrap();
    let pins =
        created.iter().filter(|e| matches!(e.event, Event::IdentityProviderCreated(_))).count();
    assert_eq!(pins, 1);

    // Deleted by an admin, it stays deleted across starts.
    app.delete_identity_provider(&one_time_pin_id(), &actor()).await.unwrap();
    portico_app::account::bootstrap(app.log.as_ref(), None, None).await.unwrap();
    let head = app.log.head_position().await.unwrap();
    app.models.wait_for(head, portico_app::WRITE_VISIBILITY_TIMEOUT).await.unwrap();
    assert!(app.read(|m| m.identity_providers.is_empty()));
    // And it can be added again, with the same id.
    assert_eq!(
        app.create_identity_provider(pin(), None, &actor()).await.unwrap(),
        one_time_pin_id()
    );
}

async fn oidc_client_secrets_live_in_the_vault_and_never_in_the_log(harness: Harness) {
    let app = harness.app;
    let id = app
        .create_identity_provider(
            oidc("Company SSO", "https://idp.example.com/authorize"),
            Some(SecretString::from(SECRET)),
            &actor(),
        )
        .await
        .unwrap();
    assert_ne!(id, one_time_pin_id());
    let record = app.read(|m| m.identity_providers.get(&id).cloned()).unwrap();
    let first = record.client_secret().unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(app.vault.get(&first).await.unwrap().expose_secret(), SECRET);
    let config = record.oidc().unwrap();
    assert_eq!(config.scopes, ["openid", "email", "profile"], "defaults resolved");
    assert_eq!(
        (config.email_claim_name.as_str(), config.groups_claim_name.as_str()),
        ("email", "groups")
    );

    // An update without a secret keeps it; one with a secret replaces it.
    app.update_identity_provider(
        &id,
        oidc("Renamed", "https://idp.example.com/a2"),
        None,
        &actor(),
    )
    .await
    .unwrap();
    let record = app.read(|m| m.identity_providers.get(&id).cloned()).unwrap();
    assert_eq!(record.name, "Renamed");
    assert_eq!(record.client_secret(), Some(first.clone()));
    app.update_identity_provider(
        &id,
        oidc("Renamed", "https://idp.example.com/a2"),
        Some(SecretString::from(NEW_SECRET)),
        &actor(),
    )
    .await
    .unwrap();
    let second =
        app.read(|m| m.identity_providers.get(&id).and_then(|r| r.client_secret())).unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(app.vault.get(&second).await.unwrap().expose_secret(), NEW_SECRET);

    // A write the rules refuse stores no secret.
    let refused = app
        .update_identity_provider(
            &id,
            oidc("Renamed", "http://idp.example.com/authorize"),
            Some(SecretString::from("never-stored-secret")),
            &actor(),
        )
        .await;
    assert!(
        matches!(&refused, Err(AppError::Rule(DomainError::InvalidField { field, .. })) if field == "config.auth_url"),
        "{refused:?}"
    );
    let latest = app.vault.latest(&second.owner, "client_secret").await.unwrap();
    assert_eq!(latest, Some(second.clone()));

    for json in log_text(&app).await {
        for secret in [SECRET, NEW_SECRET, "never-stored-secret"] {
            assert!(!json.contains(secret), "the log holds a secret: {json}");
        }
    }

    // Deleting the provider removes its secrets.
    app.delete_identity_provider(&id, &actor()).await.unwrap();
    assert!(app.read(|m| m.identity_providers.get(&id).is_none()));
    for secret in [first, second] {
        assert!(matches!(app.vault.get(&secret).await, Err(VaultError::NotFound { .. })));
    }
}

async fn concurrent_one_time_pin_creates_have_one_winner(harness: Harness) {
    let app = harness.app;
    app.delete_identity_provider(&one_time_pin_id(), &actor()).await.unwrap();
    let creates = (0..8).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.create_identity_provider(pin(), None, &actor()).await })
    });
    let mut winners = 0;
    for result in futures::future::join_all(creates).await {
        match result.unwrap() {
            Ok(id) => {
                assert_eq!(id, one_time_pin_id());
                winners += 1;
            }
            // Lost the race at the append, or decided after the winner was visible.
            Err(AppError::Conflict(_) | AppError::Rule(DomainError::AlreadyExists { .. })) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    let pins = app.read(|m| {
        m.identity_providers
            .iter()
            .filter(|r| r.provider_type() == IdentityProviderType::OneTimePin)
            .count()
    });
    assert_eq!(pins, 1);
    // A later create is refused: an account has one one-time PIN provider.
    let again = app.create_identity_provider(pin(), None, &actor()).await;
    assert!(matches!(again, Err(AppError::Rule(DomainError::AlreadyExists { .. }))), "{again:?}");
}

async fn a_provider_an_application_allows_is_not_deleted(harness: Harness) {
    let app = harness.app;
    create_portal(&app, "eng").await;
    let sso = app
        .create_identity_provider(
            oidc("SSO", "https://idp.example.com/authorize"),
            Some(SecretString::from(SECRET)),
            &actor(),
        )
        .await
        .unwrap();
    let allow = |ids: Vec<IdentityProviderId>| AccessAppInput {
        allowed_idps: ids.iter().map(ToString::to_string).collect(),
        ..AccessAppInput::default()
    };
    app.update_access_app(&portal("eng"), allow(vec![sso]), &actor()).await.unwrap();
    let refused = app.delete_identity_provider(&sso, &actor()).await;
    match refused {
        Err(AppError::Rule(DomainError::InUse { by, .. })) => {
            assert!(by.contains("portal `eng`"), "{by}");
        }
        other => panic!("expected the provider to be in use, got {other:?}"),
    }
    assert!(app.read(|m| m.identity_providers.get(&sso).is_some()));
    // Allowed nowhere any more, it may go.
    app.update_access_app(&portal("eng"), allow(vec![one_time_pin_id()]), &actor()).await.unwrap();
    app.delete_identity_provider(&sso, &actor()).await.unwrap();
    let left: BTreeSet<IdentityProviderId> =
        app.read(|m| m.identity_providers.iter().map(|r| r.id).collect());
    assert_eq!(left, BTreeSet::from([one_time_pin_id()]));
    let record = app.read(|m| m.identity_providers.get(&one_time_pin_id()).cloned()).unwrap();
    assert!(matches!(record.config, IdentityProviderConfig::OneTimePin));
}

on_every_backend!(
    a_fresh_account_has_the_built_in_one_time_pin_provider,
    oidc_client_secrets_live_in_the_vault_and_never_in_the_log,
    concurrent_one_time_pin_creates_have_one_winner,
    a_provider_an_application_allows_is_not_deleted,
);
