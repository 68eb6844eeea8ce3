//! Access applications against real storage: one per portal, appearing and disappearing with
//! it, its settings changed only while the portal exists, with every default resolved for
//! sign-in and a new portal of an old id starting from the defaults.

use std::time::Duration;

use portico_app::{App, AppError};
use portico_core::domain::DomainError;
use portico_core::domain::access_app::{
    AccessAppInput, GrantInput, OAuthInput, access_app_aud, access_app_id,
};
use portico_core::domain::identity_provider::one_time_pin_id;
use portico_core::domain::ids::PortalId;
use portico_core::domain::portal::PortalInput;
use portico_core::{Actor, Event};

use crate::support::{Harness, on_every_backend};

fn actor() -> Actor {
    Actor::ApiToken { id: "tok".into(), name: "tests".into() }
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

fn custom() -> AccessAppInput {
    AccessAppInput {
        allowed_idps: vec![one_time_pin_id().to_string()],
        auto_redirect_to_identity: true,
        session_duration: Some("8h".into()),
        custom_deny_message: Some("Ask the platform team".into()),
        oauth_configuration: OAuthInput {
            grant: GrantInput {
                access_token_lifetime: Some("5m".into()),
                session_duration: Some("1h".into()),
            },
            ..OAuthInput::default()
        },
        ..AccessAppInput::default()
    }
}

async fn an_application_appears_and_disappears_with_its_portal(harness: Harness) {
    let app = harness.app;
    assert!(app.read(|m| m.access_apps.is_empty()));
    create_portal(&app, "eng").await;
    let record = app.read(|m| m.access_apps.by_portal(&portal("eng")).cloned()).unwrap();
    assert_eq!(record.id, access_app_id(&portal("eng")));
    assert_eq!(record.aud, access_app_aud(&portal("eng")));
    assert_eq!((record.name.as_str(), record.domain.as_str()), ("Portal eng", "eng.example.com"));
    let settings = app.read(|m| m.access_apps.settings(&portal("eng"))).unwrap();
    assert!(settings.allowed_idps.is_empty());
    assert!(settings.allows(&one_time_pin_id()));
    assert!(!settings.auto_redirect_to_identity);
    assert_eq!(settings.session_duration, Duration::from_secs(24 * 3600));
    assert_eq!(settings.custom_deny_message, "That account does not have access");
    assert!(settings.oauth.enabled);
    assert!(settings.oauth.dynamic_client_registration.enabled);
    assert!(settings.oauth.dynamic_client_registration.allow_any_on_localhost);
    assert!(settings.oauth.dynamic_client_registration.allow_any_on_loopback);
    assert_eq!(settings.oauth.access_token_lifetime, Duration::from_secs(15 * 60));
    assert_eq!(settings.oauth.grant_session_duration, Duration::from_secs(24 * 3600));
    // Creating the application wrote nothing of its own.
    let events = app.log.read_all(0, 100_000).await.unwrap();
    assert!(!events.iter().any(|e| matches!(e.event, Event::AccessAppUpdated(_))));

    app.update_access_app(&portal("eng"), custom(), &actor()).await.unwrap();
    let settings = app.read(|m| m.access_apps.settings(&portal("eng"))).unwrap();
    assert_eq!(settings.allowed_idps, [one_time_pin_id()]);
    assert!(settings.auto_redirect_to_identity);
    assert_eq!(settings.session_duration, Duration::from_secs(8 * 3600));
    assert_eq!(settings.custom_deny_message, "Ask the platform team");
    assert_eq!(settings.oauth.access_token_lifetime, Duration::from_secs(300));
    assert_eq!(settings.oauth.grant_session_duration, Duration::from_secs(3600));
    let updates = app.log.read_stream("access-app-eng", 1, 100).await.unwrap();
    assert_eq!(updates.len(), 1);

    app.delete_portal(&portal("eng"), &actor()).await.unwrap();
    assert!(app.read(|m| m.access_apps.settings(&portal("eng"))).is_none());
    assert!(app.read(|m| m.access_apps.get(&access_app_id(&portal("eng"))).is_none()));
    let refused = app.update_access_app(&portal("eng"), custom(), &actor()).await;
    assert!(
        matches!(&refused, Err(AppError::Rule(DomainError::NotFound { kind: "portal", .. }))),
        "{refused:?}"
    );
    assert_eq!(app.log.read_stream("access-app-eng", 1, 100).await.unwrap().len(), 1);

    // A new portal with the old id has a new application with the defaults.
    create_portal(&app, "eng").await;
    let settings = app.read(|m| m.access_apps.settings(&portal("eng"))).unwrap();
    assert!(settings.allowed_idps.is_empty());
    assert_eq!(settings.custom_deny_message, "That account does not have access");
    app.update_access_app(&portal("eng"), custom(), &actor()).await.unwrap();
    let settings = app.read(|m| m.access_apps.settings(&portal("eng"))).unwrap();
    assert_eq!(settings.custom_deny_message, "Ask the platform team");
}

async fn a_rename_changes_the_name_and_domain_and_keeps_the_settings(harness: Harness) {
    let app = harness.app;
    create_portal(&app, "eng").await;
    app.update_access_app(&portal("eng"), custom(), &actor()).await.unwrap();
    let changes = portico_app::portals::PortalChanges {
        name: Some("Engineering".into()),
        hostname: Some("mcp.eng.example.com".into()),
        ..Default::default()
    };
    app.update_portal(&portal("eng"), changes, &actor()).await.unwrap();
    let record = app.read(|m| m.access_apps.by_portal(&portal("eng")).cloned()).unwrap();
    assert_eq!(
        (record.name.as_str(), record.domain.as_str()),
        ("Engineering", "mcp.eng.example.com")
    );
    assert_eq!(record.configuration.custom_deny_message, "Ask the platform team");
}

async fn refused_settings_change_nothing(harness: Harness) {
    let app = harness.app;
    create_portal(&app, "eng").await;
    app.update_access_app(&portal("eng"), custom(), &actor()).await.unwrap();
    let before = app.read(|m| m.access_apps.by_portal(&portal("eng")).cloned()).unwrap();
    let head = app.log.head_position().await.unwrap();
    let bad = AccessAppInput {
        allowed_idps: vec!["0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9".into()],
        ..AccessAppInput::default()
    };
    let refused = app.update_access_app(&portal("eng"), bad, &actor()).await;
    assert!(
        matches!(&refused, Err(AppError::Rule(DomainError::InvalidField { field, .. })) if field == "allowed_idps[0]"),
        "{refused:?}"
    );
    let instant = AccessAppInput { auto_redirect_to_identity: true, ..AccessAppInput::default() };
    let refused = app.update_access_app(&portal("eng"), instant, &actor()).await;
    assert!(
        matches!(&refused, Err(AppError::Rule(DomainError::InvalidField { field, .. })) if field == "auto_redirect_to_identity"),
        "{refused:?}"
    );
    assert_eq!(app.log.head_position().await.unwrap(), head, "nothing was appended");
    let after = app.read(|m| m.access_apps.by_portal(&portal("eng")).cloned()).unwrap();
    assert_eq!(after, before);
}

async fn a_replay_rebuilds_the_same_applications_and_providers(harness: Harness) {
    let app = harness.app;
    create_portal(&app, "eng").await;
    create_portal(&app, "ops").await;
    app.update_access_app(&portal("eng"), custom(), &actor()).await.unwrap();
    app.delete_portal(&portal("ops"), &actor()).await.unwrap();
    let replayed = portico_projections::ProjectionRunner::<portico_projections::ReadModels>::start(
        std::sync::Arc::clone(&app.log),
        std::sync::Arc::new(portico_projections::NoCheckpoints),
        portico_projections::RunnerOptions::default(),
    )
    .await
    .unwrap();
    let head = app.log.head_position().await.unwrap();
    replayed.wait_for(head, portico_app::WRITE_VISIBILITY_TIMEOUT).await.unwrap();
    let (apps, providers) = app.read(|m| (m.access_apps.clone(), m.identity_providers.clone()));
    assert_eq!(replayed.read().access_apps, apps);
    assert_eq!(replayed.read().identity_providers, providers);
    assert_eq!(apps.len(), 1);
}

on_every_backend!(
    an_application_appears_and_disappears_with_its_portal,
    a_rename_changes_the_name_and_domain_and_keeps_the_settings,
    refused_settings_change_nothing,
    a_replay_rebuilds_the_same_applications_and_providers,
);
