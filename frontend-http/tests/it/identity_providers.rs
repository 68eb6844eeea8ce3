//! `/accounts/{account_id}/access/identity_providers`: the built-in one-time PIN provider, OIDC
//! providers whose client secret is masked in every answer and absent from the log's storage,
//! every validation rule a 400 naming the field that changes nothing, the one-per-account rule,
//! providers in use kept, a read token refused.

use actix_web::http::StatusCode;
use portico_core::domain::account::TokenScope;
use portico_core::domain::identity_provider::{IdentityProviderId, one_time_pin_id};
use portico_core::vault::VaultError;
use serde_json::{Value, json};

use crate::support::{Answer, TestApp};

const SECRET: &str = "idp-secret-7f3a9c2e5b1d4086";

fn providers(app: &TestApp) -> String {
    app.api("/access/identity_providers")
}

fn provider(app: &TestApp, id: &str) -> String {
    format!("{}/{id}", providers(app))
}

fn oidc_body(name: &str) -> Value {
    json!({
        "name": name,
        "type": "oidc",
        "config": {
            "client_id": "portico",
            "client_secret": SECRET,
            "auth_url": "https://idp.example.com/authorize",
            "token_url": "https://idp.example.com/token",
            "certs_url": "https://idp.example.com/jwks",
        },
    })
}

/// `body` with the JSON pointer `pointer` set to `value` (`Value::Null` removes the field).
fn with(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
    let object = target.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), value);
    }
    body
}

/// What a refused request must leave unchanged: the log, and the providers as listed.
async fn snapshot(app: &TestApp) -> (usize, Value) {
    let events = app.events().await.len();
    let listed = app.get(&providers(app)).await.ok();
    (events, listed)
}

/// Asserts a 400 whose one error points at `pointer` and whose message contains `says`, and
/// that nothing changed.
#[track_caller]
fn refused(answer: Answer, pointer: &str, says: &str) -> String {
    let text = answer.text.clone();
    let message = answer.error(StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["errors"][0]["source"]["pointer"], pointer, "{text}");
    assert!(message.contains(says), "`{says}` not in: {message}");
    message
}

#[actix_web::test]
async fn a_fresh_account_has_the_built_in_one_time_pin_provider() {
    let app = TestApp::new().await;
    let listed = app.get(&providers(&app)).await;
    assert_eq!(listed.body["result_info"]["total_count"], 1);
    let pin = one_time_pin_id().to_string();
    assert_eq!(
        listed.ok(),
        json!([{
            "id": pin,
            "name": "One-time PIN",
            "type": "onetimepin",
            "config": {},
            "scim_config": {
                "enabled": false,
                "user_deprovision": false,
                "seat_deprovision": false,
                "identity_update_behavior": "no_action",
            },
        }])
    );
    let read = app.get(&provider(&app, &pin)).await.ok();
    assert_eq!(read["type"], "onetimepin");
    // The account has its one-time PIN provider: another is refused (and not retried).
    let again = app.post(&providers(&app), json!({"name": "PIN", "type": "onetimepin"})).await;
    let message = again.error(StatusCode::CONFLICT);
    assert!(
        message.contains("`onetimepin` identity provider") && message.contains("already exists")
    );
    assert_eq!(app.get(&providers(&app)).await.ok().as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn oidc_providers_through_their_life_with_the_secret_always_masked() {
    let app = TestApp::new().await;
    let mut body = oidc_body("Company SSO");
    body["config"]["scopes"] = json!(["openid", "email", "groups"]);
    body["config"]["claims"] = json!(["department"]);
    body["config"]["email_claim_name"] = json!("upn");
    body["config"]["groups_claim_name"] = json!("roles");
    body["config"]["pkce_enabled"] = json!(true);
    let created = app.post(&providers(&app), body.clone()).await;
    assert!(!created.text.contains(SECRET));
    let created = created.ok();
    let id = created["id"].as_str().unwrap().to_owned();
    let parsed = IdentityProviderId::parse("id", &id).unwrap();
    assert_eq!(created["type"], "oidc");
    assert_eq!(created["name"], "Company SSO");
    assert_eq!(
        created["config"],
        json!({
            "client_id": "portico",
            "client_secret": "**********",
            "auth_url": "https://idp.example.com/authorize",
            "token_url": "https://idp.example.com/token",
            "certs_url": "https://idp.example.com/jwks",
            "scopes": ["openid", "email", "groups"],
            "claims": ["department"],
            "email_claim_name": "upn",
            "pkce_enabled": true,
            "groups_claim_name": "roles",
        })
    );
    let read = app.get(&provider(&app, &id)).await;
    assert!(!read.text.contains(SECRET));
    assert_eq!(read.ok(), created);
    let listed = app.get(&providers(&app)).await;
    assert!(!listed.text.contains(SECRET));
    assert_eq!(listed.ok()[1], created, "after the one-time PIN provider");

    // The secret is in the vault; the read model knows where.
    let secret_ref =
        || app.state.read(|m| m.identity_providers.get(&parsed).and_then(|r| r.client_secret()));
    let first = secret_ref().unwrap();
    assert_eq!(app.state.app.vault.get(&first).await.unwrap().expose_secret(), SECRET);

    // Sent back masked (a GET's config as it came), the secret is kept.
    let mut round_trip = body.clone();
    round_trip["config"] = created["config"].clone();
    round_trip["name"] = json!("Renamed");
    let updated = app.put(&provider(&app, &id), round_trip).await.ok();
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(secret_ref(), Some(first.clone()));
    // Omitted, too; and optional fields go back to their defaults.
    let mut without = oidc_body("Renamed");
    without["config"].as_object_mut().unwrap().remove("client_secret");
    let updated = app.put(&provider(&app, &id), without).await.ok();
    assert_eq!(updated["config"]["scopes"], json!(["openid", "email", "profile"]));
    assert_eq!(updated["config"]["groups_claim_name"], "groups");
    assert_eq!(updated["config"]["pkce_enabled"], false);
    assert_eq!(secret_ref(), Some(first.clone()));
    // A new secret replaces it.
    let mut rotated = oidc_body("Renamed");
    rotated["config"]["client_secret"] = json!("idp-secret-rotated-0c4e");
    let answer = app.put(&provider(&app, &id), rotated).await;
    assert!(!answer.text.contains("idp-secret-rotated-0c4e"));
    answer.ok();
    let second = secret_ref().unwrap();
    assert_eq!(second.version, 2);
    let stored = app.state.app.vault.get(&second).await.unwrap();
    assert_eq!(stored.expose_secret(), "idp-secret-rotated-0c4e");

    let audit =
        app.get(&app.api("/audit_logs?resource.type=identity_provider&direction=asc")).await;
    assert!(!audit.text.contains(SECRET) && !audit.text.contains("idp-secret-rotated-0c4e"));
    let entries = audit.ok();
    let actions: Vec<&str> =
        entries.as_array().unwrap().iter().map(|e| e["action"]["type"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "create", "update", "update", "update"], "the built-in first");

    let deleted = app.delete(&provider(&app, &id)).await.ok();
    assert_eq!(deleted, json!({"id": id}));
    app.get(&provider(&app, &id)).await.error(StatusCode::NOT_FOUND);
    for secret in [first, second] {
        assert!(matches!(app.state.app.vault.get(&secret).await, Err(VaultError::NotFound { .. })));
    }
}

#[actix_web::test]
async fn the_secret_is_in_no_event_and_nowhere_in_the_log_database() {
    let app = TestApp::new().await;
    app.post(&providers(&app), oidc_body("SSO")).await.ok();
    // Refused writes do not echo it either.
    let mut refused_body = oidc_body("SSO");
    refused_body["config"]["auth_url"] = json!("http://idp.example.com/authorize");
    let answer = app.post(&providers(&app), refused_body).await;
    assert!(!answer.text.contains(SECRET), "{}", answer.text);
    answer.error(StatusCode::BAD_REQUEST);

    let events = app.events().await;
    assert!(events.iter().any(|e| e.event.event_type() == "IdentityProviderCreated"));
    for event in &events {
        let json = serde_json::to_string(&event.event).unwrap();
        assert!(!json.contains(SECRET), "an event holds the secret: {json}");
    }
    // The raw bytes of the log's database (and its write-ahead log) never held it.
    let mut raw = Vec::new();
    for name in ["portico.db", "portico.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data_dir().join(name)) {
            raw.extend(bytes);
        }
    }
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    // The provider's events are there, so the search would find the secret if it were.
    assert!(holds(b"idp.example.com/jwks"), "no provider event in the log database");
    assert!(!holds(SECRET.as_bytes()), "the log database holds the secret");
    // The vault holds it encrypted only.
    let vault = std::fs::read(app.data_dir().join("vault.db")).unwrap();
    assert!(!vault.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
}

#[actix_web::test]
async fn every_rule_is_a_400_naming_the_field_that_changes_nothing() {
    let app = TestApp::new().await;
    let base = oidc_body("SSO");
    let long_secret = "s".repeat(4097);
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(&base, "/name", Value::Null), "/name", "is required"),
        (with(&base, "/name", json!("")), "/name", "must not be empty"),
        (with(&base, "/name", json!("n".repeat(351))), "/name", "longer than 350"),
        (with(&base, "/name", json!("a\u{1}b")), "/name", "control characters"),
        (with(&base, "/type", Value::Null), "/type", "is required"),
        (
            with(&base, "/type", json!("saml")),
            "/type",
            "Portico supports the types `onetimepin` and `oidc`",
        ),
        (with(&base, "/type", json!("github")), "/type", "`github` is not supported"),
        (with(&base, "/config", Value::Null), "/config", "is required for an `oidc` provider"),
        (with(&base, "/config", json!("x")), "/config", "expected an object"),
        (with(&base, "/config/client_id", Value::Null), "/config/client_id", "is required"),
        (with(&base, "/config/client_id", json!("")), "/config/client_id", "must not be empty"),
        (with(&base, "/config/client_secret", Value::Null), "/config/client_secret", "is required"),
        (
            with(&base, "/config/client_secret", json!("")),
            "/config/client_secret",
            "must not be empty",
        ),
        (
            with(&base, "/config/client_secret", json!(long_secret)),
            "/config/client_secret",
            "longer than 4096 bytes",
        ),
        (
            with(&base, "/config/auth_url", json!("http://idp.example.com/a")),
            "/config/auth_url",
            "`https`",
        ),
        (with(&base, "/config/auth_url", Value::Null), "/config/auth_url", "is required"),
        (with(&base, "/config/token_url", json!("not a url")), "/config/token_url", "spaces"),
        (
            with(&base, "/config/certs_url", json!("ftp://idp.example.com/k")),
            "/config/certs_url",
            "not `ftp`",
        ),
        (
            with(
                &base,
                "/config/certs_url",
                json!(format!("https://a.example/{}", "k".repeat(2048))),
            ),
            "/config/certs_url",
            "longer than 2048",
        ),
        (
            with(&base, "/config/scopes", json!(["email"])),
            "/config/scopes",
            "must include `openid`",
        ),
        (
            with(&base, "/config/scopes", json!(["openid", "a\"b"])),
            "/config/scopes/1",
            "not a scope",
        ),
        (with(&base, "/config/scopes", json!("openid")), "/config/scopes", "invalid type"),
        (
            with(
                &base,
                "/config/claims",
                json!((0..33).map(|i| format!("c{i}")).collect::<Vec<_>>()),
            ),
            "/config/claims",
            "at most 32",
        ),
        (
            with(&base, "/config/email_claim_name", json!("")),
            "/config/email_claim_name",
            "must not be empty",
        ),
        (
            with(&base, "/config/groups_claim_name", json!("my groups")),
            "/config/groups_claim_name",
            "spaces",
        ),
        (with(&base, "/config/pkce_enabled", json!("yes")), "/config/pkce_enabled", "invalid type"),
        (
            with(&base, "/scim_config", json!({"enabled": true})),
            "/scim_config/enabled",
            "SCIM provisioning is not supported",
        ),
        (
            with(&base, "/scim_config", json!({"identity_update_behavior": "reauth"})),
            "/scim_config/identity_update_behavior",
            "only `no_action`",
        ),
    ];
    let before = snapshot(&app).await;
    for (body, pointer, says) in cases {
        let answer = app.post(&providers(&app), body.clone()).await;
        assert!(!answer.text.contains(SECRET), "{}", answer.text);
        let message = refused(answer, pointer, says);
        assert!(!message.contains(&"s".repeat(100)), "the secret is not quoted: {message}");
        assert_eq!(snapshot(&app).await, before, "{body} changed something");
    }
    // Unknown fields are named too, at the top and inside `config`.
    let message = app
        .post(&providers(&app), with(&base, "/zone_id", json!("z")))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(message.contains("unknown field `zone_id`"), "{message}");
    let answer = app.post(&providers(&app), with(&base, "/config/prompt", json!("login"))).await;
    let message = answer.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("unknown field `prompt`") && message.contains("`config"), "{message}");
    let pin_config = json!({"name": "PIN", "type": "onetimepin", "config": {"redirect_url": "x"}});
    let message = app.post(&providers(&app), pin_config).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("unknown field `redirect_url`"), "{message}");
    assert_eq!(snapshot(&app).await, before);

    // The same rules hold for an update, which changes nothing either.
    let id = app.post(&providers(&app), base.clone()).await.ok()["id"].as_str().unwrap().to_owned();
    let before = snapshot(&app).await;
    let path = provider(&app, &id);
    refused(
        app.put(&path, with(&base, "/config/auth_url", json!("https://"))).await,
        "/config/auth_url",
        "not a valid URL",
    );
    refused(app.put(&path, with(&base, "/name", json!(" "))).await, "/name", "must not be empty");
    let to_pin = json!({"name": "SSO", "type": "onetimepin"});
    refused(app.put(&path, to_pin).await, "/type", "cannot be changed");
    assert_eq!(snapshot(&app).await, before);
    // Ids in paths.
    refused(
        app.get(&provider(&app, "not-a-uuid")).await,
        "/identity_provider_id",
        "not a lowercase UUID",
    );
    let missing = provider(&app, "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    app.get(&missing).await.error(StatusCode::NOT_FOUND);
    app.put(&missing, base.clone()).await.error(StatusCode::NOT_FOUND);
    app.delete(&missing).await.error(StatusCode::NOT_FOUND);
    assert_eq!(snapshot(&app).await, before);
}

#[actix_web::test]
async fn a_provider_an_access_application_allows_cannot_be_deleted() {
    let app = TestApp::new().await;
    let id =
        app.post(&providers(&app), oidc_body("SSO")).await.ok()["id"].as_str().unwrap().to_owned();
    app.post(&app.portals(), json!({"id": "eng", "name": "Eng", "hostname": "eng.example.com"}))
        .await
        .ok();
    let apps = app.get(&app.api("/access/apps")).await.ok();
    let app_path = app.api(&format!("/access/apps/{}", apps[0]["id"].as_str().unwrap()));
    app.put(&app_path, json!({"type": "mcp_portal", "allowed_idps": [id]})).await.ok();
    let before = snapshot(&app).await;
    let answer = app.delete(&provider(&app, &id)).await;
    assert_eq!(answer.body["errors"][0]["code"], 10011);
    let message = answer.error(StatusCode::CONFLICT);
    assert!(message.contains("portal `eng`") && message.contains("allowed_idps"), "{message}");
    assert_eq!(snapshot(&app).await, before);
    app.put(&app_path, json!({"type": "mcp_portal"})).await.ok();
    app.delete(&provider(&app, &id)).await.ok();
}

#[actix_web::test]
async fn the_list_pages_and_filters_like_cloudflare() {
    let app = TestApp::new().await;
    for name in ["A", "B"] {
        app.post(&providers(&app), oidc_body(name)).await.ok();
    }
    let page = app.get(&format!("{}?per_page=2&page=2", providers(&app))).await;
    assert_eq!(page.body["result_info"]["total_count"], 3);
    assert_eq!(page.body["result_info"]["total_pages"], 2);
    assert_eq!(page.ok()[0]["name"], "B");
    let scim = app.get(&format!("{}?scim_enabled=true", providers(&app))).await.ok();
    assert_eq!(scim, json!([]), "no provider has SCIM");
    let all = app.get(&format!("{}?scim_enabled=false", providers(&app))).await.ok();
    assert_eq!(all.as_array().unwrap().len(), 3);
    app.get(&format!("{}?scim_enabled=maybe", providers(&app)))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.get(&format!("{}?per_page=0", providers(&app))).await.error(StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_read_token_reads_but_does_not_write() {
    let app = TestApp::new().await;
    let read = app.create_token("reader", TokenScope::Read).await;
    let listed = app.get_as(&providers(&app), Some(&read)).await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let before = snapshot(&app).await;
    let answer = app
        .request(
            actix_web::http::Method::POST,
            &providers(&app),
            Some(&read),
            Some(oidc_body("SSO")),
        )
        .await;
    answer.error(StatusCode::FORBIDDEN);
    let pin = provider(&app, &one_time_pin_id().to_string());
    app.request(actix_web::http::Method::DELETE, &pin, Some(&read), None)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(snapshot(&app).await, before);
    app.get_as(&providers(&app), None).await.expect(StatusCode::UNAUTHORIZED);
}
