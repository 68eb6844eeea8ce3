//! `POST /cedar/authorize` and `GET /portals/{id}/visibility`: decisions with the policies that
//! made them, default deny at every level, the product's "no allowed servers" answer, service
//! tokens limited to `on_behalf: false` servers, and answers that follow policy changes.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

async fn setup() -> TestApp {
    let app = TestApp::new().await;
    for id in ["docs", "wiki"] {
        app.post(&app.servers(), json!({"id": id, "name": id, "hostname": format!("https://{id}.example.com/mcp"), "auth_type": "unauthenticated"}))
            .await
            .ok();
    }
    app.post(&app.portals(), json!({
        "id": "team", "name": "Team", "hostname": "team.example.com",
        "servers": [{"server_id": "docs", "on_behalf": false}, {"server_id": "wiki", "on_behalf": true}]
    }))
    .await
    .ok();
    app
}

async fn add_policy(app: &TestApp, id: &str, text: &str) {
    app.post(&app.api("/cedar/policies"), json!({"id": id, "name": id, "policy": text})).await.ok();
}

async fn add_team_policies(app: &TestApp) {
    add_policy(app, "eng-connect", r#"permit(principal in Portico::Group::"eng", action == Portico::Action::"connect", resource == Portico::Portal::"team");"#).await;
    add_policy(app, "sales-connect", r#"permit(principal in Portico::Group::"sales", action == Portico::Action::"connect", resource == Portico::Portal::"team");"#).await;
    add_policy(app, "eng-docs", r#"permit(principal in Portico::Group::"eng", action in Portico::Action::"use_server", resource in Portico::Server::"docs");"#).await;
    add_policy(app, "no-delete", r#"forbid(principal, action == Portico::Action::"call_tool", resource == Portico::Tool::"docs/delete");"#).await;
}

fn alice(groups: &[&str]) -> Value {
    json!({"type": "user", "id": "alice", "email": "alice@example.com", "name": "Alice", "idp": "okta", "groups": groups})
}

async fn ask(app: &TestApp, principal: Value, action: &str, resource: Value) -> Value {
    app.post(
        &app.api("/cedar/authorize"),
        json!({"principal": principal, "action": action, "resource": resource}),
    )
    .await
    .ok()
}

#[actix_web::test]
async fn with_no_policy_everything_is_denied() {
    let app = setup().await;
    let answer = ask(
        &app,
        alice(&["eng"]),
        "call_tool",
        json!({"type": "tool", "server_id": "docs", "name": "search"}),
    )
    .await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["policies"], json!([]));
    assert_eq!(answer["reason"], "no policy permits this: default deny");
    let seen = app
        .get(&format!(
            "{}/team/visibility?principal=user:alice@example.com&groups=eng",
            app.portals()
        ))
        .await
        .ok();
    assert_eq!(seen["connect"]["decision"], "deny");
    assert_eq!(seen["servers"], json!([]));
    assert_eq!(seen["reason"]["kind"], "no_portal_access");
}

#[actix_web::test]
async fn decisions_name_the_policies_that_made_them() {
    let app = setup().await;
    add_team_policies(&app).await;
    let search = json!({"type": "tool", "server_id": "docs", "name": "search"});
    let answer = ask(&app, alice(&["eng"]), "call_tool", search.clone()).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["policies"], json!(["eng-docs"]));
    assert_eq!(answer["reason"], "permitted by policy `eng-docs`");

    let delete = json!({"type": "tool", "server_id": "docs", "name": "delete"});
    let answer = ask(&app, alice(&["eng"]), "call_tool", delete).await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["policies"], json!(["no-delete"]));
    assert_eq!(answer["reason"], "forbidden by policy `no-delete`");

    let answer = ask(&app, alice(&[]), "call_tool", search.clone()).await;
    assert_eq!(answer["decision"], "deny");
    let answer =
        ask(&app, alice(&["eng"]), "use_server", json!({"type": "server", "id": "wiki"})).await;
    assert_eq!(answer["decision"], "deny");
    let answer =
        ask(&app, alice(&["eng"]), "connect", json!({"type": "portal", "id": "team"})).await;
    assert_eq!(answer["policies"], json!(["eng-connect"]));
}

#[actix_web::test]
async fn visibility_follows_the_policies_at_every_level() {
    let app = setup().await;
    add_team_policies(&app).await;
    let path = |who: &str| format!("{}/team/visibility?principal={who}", app.portals());
    let eng = app.get(&path("user:alice@example.com&groups=eng")).await.ok();
    assert_eq!(eng["connect"]["decision"], "allow");
    let servers: Vec<&str> =
        eng["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(servers, ["docs"]);
    assert_eq!(eng["servers"][0]["policies"], json!(["eng-docs"]));
    assert_eq!(eng["reason"], Value::Null);

    // Sales may connect, but no policy lets them use a server: the product's actionable error.
    let sales = app.get(&path("user:carol@example.com&groups=sales")).await.ok();
    assert_eq!(sales["servers"], json!([]));
    assert_eq!(sales["reason"]["kind"], "no_allowed_servers");
    let message = sales["reason"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("No allowed servers available, check your Zero Trust Policies"),
        "{message}"
    );
    assert!(
        sales["reason"]["policies_to_check"].as_array().unwrap().iter().any(|p| p == "eng-docs")
    );

    let nobody = app.get(&path("user:mallory@example.com")).await.ok();
    assert_eq!(nobody["reason"]["kind"], "no_portal_access");

    // A policy change is seen at once (the cached view belongs to the old policy set).
    add_policy(&app, "sales-wiki", r#"permit(principal in Portico::Group::"sales", action in Portico::Action::"use_server", resource in Portico::Server::"wiki");"#).await;
    let sales = app.get(&path("user:carol@example.com&groups=sales")).await.ok();
    assert_eq!(sales["servers"][0]["id"], "wiki");
    assert_eq!(sales["reason"], Value::Null);
}

#[actix_web::test]
async fn a_service_token_reaches_only_servers_used_with_their_own_credential() {
    let app = setup().await;
    let created = app.post(&app.api("/access/service_tokens"), json!({"name": "ci"})).await.ok();
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let token_id = created["id"].as_str().unwrap().to_owned();
    add_policy(&app, "ci-team", &format!(r#"permit(principal == Portico::ServiceToken::"{token_id}", action, resource in Portico::Portal::"team");"#)).await;
    let ci_connect = format!(
        r#"permit(principal == Portico::ServiceToken::"{token_id}", action == Portico::Action::"connect", resource == Portico::Portal::"team");"#
    );
    add_policy(&app, "ci-connect", &ci_connect).await;
    let seen = app
        .get(&format!("{}/team/visibility?principal=service_token:{client_id}", app.portals()))
        .await
        .ok();
    let servers: Vec<&str> =
        seen["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    // The policy would allow both, but `wiki` is `on_behalf: true` (needs a person's login).
    assert_eq!(servers, ["docs"], "{seen}");
    assert_eq!(seen["principal"]["type"], "service_token");
}

#[actix_web::test]
async fn bad_questions_are_400s_naming_the_problem() {
    let app = setup().await;
    let authorize = app.api("/cedar/authorize");
    let cases = [
        (
            json!({"principal": alice(&[]), "action": "fly", "resource": {"type": "portal", "id": "team"}}),
            "action",
        ),
        (
            json!({"principal": alice(&[]), "action": "call_tool", "resource": {"type": "tool", "server_id": "ghost", "name": "x"}}),
            "ghost",
        ),
        (
            json!({"principal": alice(&[]), "action": "connect", "resource": {"type": "portal", "id": "nope"}}),
            "nope",
        ),
        (
            json!({"principal": {"type": "robot"}, "action": "connect", "resource": {"type": "portal", "id": "team"}}),
            "principal",
        ),
        (
            json!({"principal": alice(&[]), "action": "connect", "resource": {"type": "portal", "id": "team"}, "extra": 1}),
            "extra",
        ),
        (
            json!({"principal": alice(&[]), "action": "connect", "resource": {"type": "portal", "id": "team"}, "context": {"ip": "not-an-ip"}}),
            "ip",
        ),
        (
            json!({"principal": alice(&[]), "action": "connect", "resource": {"type": "server", "id": "docs"}}),
            "action `connect` applies to a portal, not to a server",
        ),
    ];
    for (body, phrase) in cases {
        let message = app.post(&authorize, body.clone()).await.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(phrase), "{body}: {message}");
    }
    for query in [
        "principal=alice",
        "principal=service_token:nope",
        "groups=eng",
        "principal=user:a@b.c&bogus=1",
    ] {
        let message = app
            .get(&format!("{}/team/visibility?{query}", app.portals()))
            .await
            .error(StatusCode::BAD_REQUEST);
        assert!(!message.is_empty(), "{query}");
    }
    app.get(&format!("{}/ghost/visibility?principal=user:a@b.c", app.portals()))
        .await
        .error(StatusCode::NOT_FOUND);
    let message = app
        .get_as(&format!("{}/team/visibility?principal=user:a@b.c", app.portals()), None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(!message.is_empty());
}
