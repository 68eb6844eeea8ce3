//! `/accounts/{account_id}/access/apps`: an `mcp_portal` application appears with each portal
//! and disappears with it; its settings are replaced by `PUT`, every rule a 400 naming the field
//! that changes nothing; `POST` and `DELETE` are refused with the reason.

use actix_web::http::StatusCode;
use portico_core::domain::access_app::{access_app_aud, access_app_id};
use portico_core::domain::identity_provider::one_time_pin_id;
use portico_core::domain::ids::PortalId;
use serde_json::{Value, json};

use crate::support::{Answer, TestApp};

fn apps(app: &TestApp) -> String {
    app.api("/access/apps")
}

fn app_path(app: &TestApp, id: &str) -> String {
    format!("{}/{id}", apps(app))
}

async fn create_portal(app: &TestApp, id: &str, hostname: &str) {
    let body = json!({"id": id, "name": format!("Portal {id}"), "hostname": hostname});
    app.post(&app.portals(), body).await.ok();
}

fn id_of(portal: &str) -> String {
    access_app_id(&PortalId::parse(portal).unwrap()).to_string()
}

/// The log's length and the applications as listed: what a refused request leaves unchanged.
async fn snapshot(app: &TestApp) -> (usize, Value) {
    (app.events().await.len(), app.get(&apps(app)).await.ok())
}

#[track_caller]
fn refused(answer: Answer, pointer: &str, says: &str) {
    let text = answer.text.clone();
    let message = answer.error(StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["errors"][0]["source"]["pointer"], pointer, "{text}");
    assert!(message.contains(says), "`{says}` not in: {message}");
}

fn defaults(portal: &str, hostname: &str) -> Value {
    let portal_id = PortalId::parse(portal).unwrap();
    json!({
        "id": id_of(portal),
        "type": "mcp_portal",
        "name": format!("Portal {portal}"),
        "domain": hostname,
        "aud": access_app_aud(&portal_id),
        "allowed_idps": [],
        "auto_redirect_to_identity": false,
        "session_duration": "24h",
        "custom_deny_message": "That account does not have access",
        "custom_deny_url": null,
        "custom_non_identity_deny_url": null,
        "oauth_configuration": {
            "enabled": true,
            "dynamic_client_registration": {
                "enabled": true,
                "allow_any_on_localhost": true,
                "allow_any_on_loopback": true,
                "allowed_uris": [],
            },
            "grant": {"access_token_lifetime": "15m", "session_duration": null},
        },
    })
}

/// `value` without its timestamps.
fn untimed(mut value: Value) -> Value {
    let object = value.as_object_mut().unwrap();
    assert!(object.remove("created_at").unwrap().is_string());
    assert!(object.remove("updated_at").unwrap().is_string());
    value
}

#[actix_web::test]
async fn applications_appear_and_disappear_with_their_portals() {
    let app = TestApp::new().await;
    assert_eq!(app.get(&apps(&app)).await.ok(), json!([]));
    create_portal(&app, "eng", "eng.example.com").await;
    create_portal(&app, "ops", "ops.example.com").await;
    let listed = app.get(&apps(&app)).await;
    assert_eq!(listed.body["result_info"]["total_count"], 2);
    let listed = listed.ok();
    assert_eq!(untimed(listed[0].clone()), defaults("eng", "eng.example.com"));
    assert_eq!(untimed(listed[1].clone()), defaults("ops", "ops.example.com"));
    let aud = listed[0]["aud"].as_str().unwrap();
    assert!(aud.len() == 64 && aud.bytes().all(|b| b.is_ascii_hexdigit()), "{aud}");
    let read = app.get(&app_path(&app, &id_of("eng"))).await.ok();
    assert_eq!(read, listed[0]);

    // A rename follows.
    let rename = json!({"name": "Engineering", "hostname": "mcp.eng.example.com"});
    app.put(&format!("{}/eng", app.portals()), rename).await.ok();
    let read = app.get(&app_path(&app, &id_of("eng"))).await.ok();
    assert_eq!(
        (&read["name"], &read["domain"]),
        (&json!("Engineering"), &json!("mcp.eng.example.com"))
    );

    app.delete(&format!("{}/eng", app.portals())).await.ok();
    let listed = app.get(&apps(&app)).await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id_of("ops"));
    let message = app.get(&app_path(&app, &id_of("eng"))).await.error(StatusCode::NOT_FOUND);
    assert_eq!(message, format!("access application `{}` does not exist", id_of("eng")));
    app.put(&app_path(&app, &id_of("eng")), json!({"type": "mcp_portal"}))
        .await
        .error(StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn settings_are_replaced_and_shown() {
    let app = TestApp::new().await;
    create_portal(&app, "eng", "eng.example.com").await;
    let pin = one_time_pin_id().to_string();
    let path = app_path(&app, &id_of("eng"));
    let settings = json!({
        "type": "mcp_portal",
        "allowed_idps": [pin],
        "auto_redirect_to_identity": true,
        "session_duration": "2h45m",
        "custom_deny_message": "Ask #platform for access",
        "custom_deny_url": "https://intranet.example.com/denied",
        "custom_non_identity_deny_url": "https://intranet.example.com/device",
        "oauth_configuration": {
            "enabled": true,
            "dynamic_client_registration": {
                "enabled": true,
                "allow_any_on_localhost": false,
                "allow_any_on_loopback": true,
                "allowed_uris": ["https://app.example.com/callback/*", "cursor://anysphere.cursor-retrieval/oauth/callback"],
            },
            "grant": {"access_token_lifetime": "5m", "session_duration": "1h"},
        },
    });
    let updated = app.put(&path, settings.clone()).await.ok();
    let mut expected = defaults("eng", "eng.example.com");
    for field in [
        "allowed_idps",
        "auto_redirect_to_identity",
        "session_duration",
        "custom_deny_message",
        "custom_deny_url",
        "custom_non_identity_deny_url",
        "oauth_configuration",
    ] {
        expected[field] = settings[field].clone();
    }
    assert_eq!(untimed(updated.clone()), expected);
    assert_eq!(app.get(&path).await.ok(), updated);
    let portal = PortalId::parse("eng").unwrap();
    let resolved = app.state.read(|m| m.access_apps.settings(&portal)).unwrap();
    assert_eq!(resolved.session_duration, std::time::Duration::from_secs(2 * 3600 + 45 * 60));
    assert_eq!(resolved.oauth.grant_session_duration, std::time::Duration::from_secs(3600));

    // A round trip of the object as read (minus its timestamps) changes nothing but the time.
    let round_trip = untimed(updated.clone());
    let again = app.put(&path, round_trip).await.ok();
    assert_eq!(untimed(again), untimed(updated));

    // A PUT replaces: what it omits goes back to its default.
    let reset = app.put(&path, json!({"type": "mcp_portal"})).await.ok();
    assert_eq!(untimed(reset), defaults("eng", "eng.example.com"));

    let audit =
        app.get(&app.api("/audit_logs?resource.type=access_application&direction=asc")).await.ok();
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e["resource"]["id"] == id_of("eng") && e["action"]["type"] == "update")
    );
}

#[actix_web::test]
async fn every_rule_is_a_400_naming_the_field_that_changes_nothing() {
    let app = TestApp::new().await;
    create_portal(&app, "eng", "eng.example.com").await;
    let path = app_path(&app, &id_of("eng"));
    let pin = one_time_pin_id().to_string();
    let missing = "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let base = json!({"type": "mcp_portal"});
    let set = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let oauth = |value: Value| set("oauth_configuration", value);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "/type", "is required"),
        (set("type", json!("self_hosted")), "/type", "of type `mcp_portal`"),
        (set("id", json!(missing)), "/id", "an application's id is fixed"),
        (set("aud", json!("0".repeat(64))), "/aud", "read-only"),
        (set("name", json!("Other")), "/name", "change it on the portal"),
        (set("domain", json!("other.example.com")), "/domain", "change it on the portal"),
        (set("allowed_idps", json!([missing])), "/allowed_idps/0", "does not exist"),
        (set("allowed_idps", json!(["okta"])), "/allowed_idps/0", "not a lowercase UUID"),
        (set("allowed_idps", json!([pin, pin])), "/allowed_idps/1", "listed twice"),
        (set("allowed_idps", json!(pin)), "/allowed_idps", "invalid type"),
        (
            set("auto_redirect_to_identity", json!(true)),
            "/auto_redirect_to_identity",
            "exactly one identity provider",
        ),
        (set("session_duration", json!("1d")), "/session_duration", "unknown unit"),
        (
            set("session_duration", json!("30s")),
            "/session_duration",
            "shorter than the minimum, `1m`",
        ),
        (
            set("session_duration", json!("8761h")),
            "/session_duration",
            "longer than the maximum, `8760h`",
        ),
        (
            set("custom_deny_message", json!("m".repeat(1025))),
            "/custom_deny_message",
            "longer than 1024",
        ),
        (set("custom_deny_message", json!(" ")), "/custom_deny_message", "must not be empty"),
        (
            set("custom_deny_url", json!("http://intranet.example.com/")),
            "/custom_deny_url",
            "`https`",
        ),
        (
            set("custom_non_identity_deny_url", json!("javascript:alert(1)")),
            "/custom_non_identity_deny_url",
            "has no host",
        ),
        (oauth(json!({"enabled": "yes"})), "/oauth_configuration/enabled", "invalid type"),
        (
            oauth(json!({"grant": {"access_token_lifetime": "25h"}})),
            "/oauth_configuration/grant/access_token_lifetime",
            "`24h`",
        ),
        (
            oauth(json!({"grant": {"access_token_lifetime": "2h", "session_duration": "1h"}})),
            "/oauth_configuration/grant/access_token_lifetime",
            "cannot outlive its grant",
        ),
        (
            oauth(json!({"grant": {"session_duration": "1w"}})),
            "/oauth_configuration/grant/session_duration",
            "unknown unit",
        ),
        (
            oauth(
                json!({"dynamic_client_registration": {"allowed_uris": ["http://app.example.com/cb"]}}),
            ),
            "/oauth_configuration/dynamic_client_registration/allowed_uris/0",
            "loopback",
        ),
        (
            oauth(
                json!({"dynamic_client_registration": {"allowed_uris": ["https://*.example.com/cb"]}}),
            ),
            "/oauth_configuration/dynamic_client_registration/allowed_uris/0",
            "final `/*`",
        ),
        (
            oauth(json!({"dynamic_client_registration": {"allowed_uris": ["myapp://cb#x"]}})),
            "/oauth_configuration/dynamic_client_registration/allowed_uris/0",
            "fragment",
        ),
    ];
    let before = snapshot(&app).await;
    for (body, pointer, says) in cases {
        refused(app.put(&path, body.clone()).await, pointer, says);
        assert_eq!(snapshot(&app).await, before, "{body} changed something");
    }
    // Unknown fields are named, at the top and inside `oauth_configuration`.
    let message = app.put(&path, set("policies", json!([]))).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("unknown field `policies`"), "{message}");
    let message = app
        .put(&path, oauth(json!({"grant": {"lifetime": "1h"}})))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(message.contains("unknown field `lifetime`"), "{message}");
    refused(app.get(&app_path(&app, "eng")).await, "/app_id", "not a lowercase UUID");
    assert_eq!(snapshot(&app).await, before);
}

#[actix_web::test]
async fn applications_are_neither_created_nor_deleted_through_this_api() {
    let app = TestApp::new().await;
    create_portal(&app, "eng", "eng.example.com").await;
    let before = snapshot(&app).await;
    let answer = app
        .post(&apps(&app), json!({"type": "mcp_portal", "name": "X", "domain": "x.example.com"}))
        .await;
    let message = answer.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("created with the portal"), "{message}");
    assert!(message.contains("/access/ai-controls/mcp/portals"), "{message}");
    let answer = app.delete(&app_path(&app, &id_of("eng"))).await;
    let message = answer.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("deleted with the portal") && message.contains("`eng`"), "{message}");
    assert_eq!(snapshot(&app).await, before);
    app.get(&format!("{}/eng", app.portals())).await.ok();
    app.delete(&app_path(&app, missing_app())).await.error(StatusCode::NOT_FOUND);
}

fn missing_app() -> &'static str {
    "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
}

#[actix_web::test]
async fn the_list_pages_and_filters_like_cloudflare() {
    let app = TestApp::new().await;
    for (id, host) in [("a", "a.example.com"), ("b", "mcp.b.example.com"), ("c", "c.example.org")] {
        create_portal(&app, id, host).await;
    }
    let names = |v: Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect()
    };
    let page = app.get(&format!("{}?per_page=2&page=2", apps(&app))).await;
    assert_eq!(page.body["result_info"]["total_pages"], 2);
    assert_eq!(names(page.ok()), ["Portal c"]);
    assert_eq!(
        names(app.get(&format!("{}?search=example.org", apps(&app))).await.ok()),
        ["Portal c"]
    );
    assert_eq!(
        names(app.get(&format!("{}?domain=b.example", apps(&app))).await.ok()),
        ["Portal b"]
    );
    let exact = app.get(&format!("{}?domain=b.example.com&exact=true", apps(&app))).await.ok();
    assert_eq!(exact, json!([]));
    let exact = app.get(&format!("{}?name=Portal%20a&exact=true", apps(&app))).await.ok();
    assert_eq!(names(exact), ["Portal a"]);
    let aud = access_app_aud(&PortalId::parse("b").unwrap());
    assert_eq!(names(app.get(&format!("{}?aud={aud}", apps(&app))).await.ok()), ["Portal b"]);
    app.get(&format!("{}?target_attributes=x", apps(&app))).await.error(StatusCode::BAD_REQUEST);
    app.get(&format!("{}?page=0", apps(&app))).await.error(StatusCode::BAD_REQUEST);
}
