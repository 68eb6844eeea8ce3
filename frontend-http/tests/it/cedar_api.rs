//! The Cedar policy API: CRUD, the atomic replace, strict validation with line and column,
//! every kind of bad input (a 400 naming the field, nothing changed), scopes, and the audit log.

use actix_web::http::{Method, StatusCode};
use portico_core::domain::account::TokenScope;
use serde_json::{Value, json};

use crate::support::TestApp;

const PERMIT_DOCS: &str = r#"permit(principal in Portico::Group::"eng", action in Portico::Action::"use_server", resource in Portico::Server::"docs");"#;

fn policy(id: &str) -> Value {
    json!({"id": id, "name": format!("Policy {id}"), "policy": PERMIT_DOCS})
}

fn policies(app: &TestApp) -> String {
    app.api("/cedar/policies")
}

#[actix_web::test]
async fn policies_are_created_read_listed_updated_and_deleted() {
    let app = TestApp::new().await;
    let created = app.post(&policies(&app), policy("eng-docs")).await.ok();
    assert_eq!(
        created,
        json!({"id": "eng-docs", "name": "Policy eng-docs", "description": null, "policy": PERMIT_DOCS, "enabled": true})
    );
    // Without an id, one is made from the name, and made unique.
    let generated = app
        .post(&policies(&app), json!({"name": "Eng docs", "policy": PERMIT_DOCS, "enabled": false}))
        .await
        .ok();
    assert_eq!(generated["id"], "eng-docs-2");
    assert_eq!(generated["enabled"], false);
    app.post(&policies(&app), policy("eng-docs")).await.error(StatusCode::CONFLICT);

    let read = app.get(&format!("{}/eng-docs", policies(&app))).await.ok();
    assert_eq!(read, created);
    let list = app.get(&format!("{}?per_page=1", policies(&app))).await;
    assert_eq!(list.body["result_info"]["total_count"], 2);
    assert_eq!(list.body["result_info"]["policy_set_version"], 2);
    assert_eq!(list.ok().as_array().unwrap().len(), 1);

    let text = PERMIT_DOCS.replace("eng", "ops");
    let updated = app
        .put(
            &format!("{}/eng-docs", policies(&app)),
            json!({"policy": text, "description": "ops now"}),
        )
        .await
        .ok();
    assert_eq!(updated["policy"], text.as_str());
    assert_eq!(updated["name"], "Policy eng-docs", "omitted fields keep their values");
    assert_eq!(updated["description"], "ops now");
    let cleared =
        app.put(&format!("{}/eng-docs", policies(&app)), json!({"description": null})).await.ok();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["policy"], text.as_str());
    let updated = app
        .put(&format!("{}/eng-docs", policies(&app)), json!({"description": "ops now"}))
        .await
        .ok();
    app.put(&format!("{}/eng-docs", policies(&app)), json!({"id": "other"}))
        .await
        .error(StatusCode::BAD_REQUEST);

    let deleted = app.delete(&format!("{}/eng-docs", policies(&app))).await.ok();
    assert_eq!(deleted, updated);
    app.get(&format!("{}/eng-docs", policies(&app))).await.error(StatusCode::NOT_FOUND);
    app.delete(&format!("{}/eng-docs", policies(&app))).await.error(StatusCode::NOT_FOUND);
    app.put(&format!("{}/nosuch", policies(&app)), json!({"name": "x"}))
        .await
        .error(StatusCode::NOT_FOUND);
    let types: Vec<String> = app
        .events()
        .await
        .iter()
        .filter(|e| e.stream_id == "policies")
        .map(|e| e.event.event_type().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "PolicyCreated",
            "PolicyCreated",
            "PolicyUpdated",
            "PolicyUpdated",
            "PolicyUpdated",
            "PolicyDeleted"
        ]
    );
}

#[actix_web::test]
async fn a_replace_is_one_event_or_nothing() {
    let app = TestApp::new().await;
    app.post(&policies(&app), policy("old")).await.ok();
    let set: Vec<Value> = (1..=5).map(|i| policy(&format!("p{i}"))).collect();
    let result = app.put(&policies(&app), json!({"policies": set})).await.ok();
    let ids: Vec<&str> =
        result.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5"]);
    let replaced: Vec<_> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.event.event_type() == "PolicySetReplaced")
        .collect();
    assert_eq!(replaced.len(), 1);

    // One invalid policy of five: a 400 naming it, with line and column; nothing changes.
    let before = app.events().await.len();
    let mut bad: Vec<Value> = (1..=5).map(|i| policy(&format!("q{i}"))).collect();
    bad[3]["policy"] = json!(
        "permit(principal, action == Portico::Action::\"call_tool\", resource)\nwhen { resource.nosuch };"
    );
    let answer = app.put(&policies(&app), json!({"policies": bad})).await;
    let body = answer.body.clone();
    let message = answer.error(StatusCode::BAD_REQUEST);
    assert!(message.starts_with("invalid `policies[3].policy`: line 2, column "), "{message}");
    assert!(message.contains("nosuch"), "{message}");
    let source = &body["errors"][0]["source"];
    assert_eq!(source["pointer"], "/policies/3/policy");
    assert_eq!(source["line"], 2);
    assert!(source["column"].as_u64().unwrap() > 1);
    assert_eq!(app.events().await.len(), before);
    let list = app.get(&policies(&app)).await.ok();
    assert_eq!(list.as_array().unwrap().len(), 5);
}

/// Each case: method, path suffix under `cedar/`, body, the JSON pointer, a phrase of the
/// message, and whether the error carries a line and column.
#[actix_web::test]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let app = TestApp::new().await;
    app.post(&policies(&app), policy("existing")).await.ok();
    let before = app.events().await.len();
    let two = "permit(principal, action, resource);\nforbid(principal, action, resource);";
    let unknown_type = r#"permit(principal == Portico::Widget::"x", action, resource);"#;
    let unknown_attr = "permit(principal, action == Portico::Action::\"call_tool\", resource)\nwhen { resource.nosuch == 1 };";
    let syntax = "permit(\n  principal,\n  action,\n  resource\n) when { principal.email == };";
    let long_text = format!("permit(principal, action, resource);{}", " ".repeat(65_537));
    let cases: Vec<(Method, &str, Value, &str, &str, bool)> = vec![
        (
            Method::POST,
            "policies",
            json!({"id": "bad_id", "name": "x", "policy": PERMIT_DOCS}),
            "/id",
            "contains `_`",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "Upper", "name": "x", "policy": PERMIT_DOCS}),
            "/id",
            "not a slug",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "x".repeat(65), "name": "x", "policy": PERMIT_DOCS}),
            "/id",
            "longer than 64",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": ""}),
            "/policy",
            "must not be empty",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x"}),
            "/policy",
            "is required",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": two}),
            "/policy",
            "line 2",
            true,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": unknown_type}),
            "/policy",
            "Widget",
            true,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": unknown_attr}),
            "/policy",
            "nosuch",
            true,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": syntax}),
            "/policy",
            "line 5",
            true,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": long_text}),
            "/policy",
            "65536",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "", "policy": PERMIT_DOCS}),
            "/name",
            "must not be empty",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "n".repeat(256), "policy": PERMIT_DOCS}),
            "/name",
            "longer than 255",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "description": "d".repeat(1025), "policy": PERMIT_DOCS}),
            "/description",
            "longer than 1024",
            false,
        ),
        (
            Method::POST,
            "policies",
            json!({"id": "e", "name": "x", "policy": PERMIT_DOCS, "extra": 1}),
            "",
            "unknown field",
            false,
        ),
        (
            Method::PUT,
            "policies/existing",
            json!({"policy": unknown_attr}),
            "/policy",
            "nosuch",
            true,
        ),
        (
            Method::PUT,
            "policies/existing",
            json!({"enabled": "yes"}),
            "/enabled",
            "invalid type",
            false,
        ),
        (
            Method::PUT,
            "policies",
            json!({"policies": [policy("a"), policy("b"), policy("a")]}),
            "/policies/2/id",
            "more than once",
            false,
        ),
        (
            Method::PUT,
            "policies",
            json!({"policies": [policy("a"), {"name": "x", "policy": PERMIT_DOCS}]}),
            "/policies/1/id",
            "is required",
            false,
        ),
        (
            Method::PUT,
            "policies",
            json!({"policies": [policy("a"), policy("Bad")]}),
            "/policies/1/id",
            "not a slug",
            false,
        ),
        (
            Method::PUT,
            "policies",
            json!({"policies": [policy("a"), {"id": "b", "name": "x", "policy": two}]}),
            "/policies/1/policy",
            "line 2",
            true,
        ),
    ];
    for (method, suffix, body, pointer, phrase, located) in cases {
        let path = app.api(&format!("/cedar/{suffix}"));
        let answer = app.request(method.clone(), &path, Some(&app.token), Some(body)).await;
        let error = answer.body["errors"][0].clone();
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(phrase), "{method} {suffix}: `{message}` lacks `{phrase}`");
        if !pointer.is_empty() {
            assert_eq!(error["source"]["pointer"], pointer, "{method} {suffix}: {message}");
        }
        let has_location = error["source"]["line"].is_u64() && error["source"]["column"].is_u64();
        assert_eq!(has_location, located, "{method} {suffix}: {error}");
        if located {
            let line = error["source"]["line"].as_u64().unwrap();
            assert!(message.contains(&format!("line {line}, column ")), "{message}");
        }
    }
    assert_eq!(app.events().await.len(), before, "a refused write changes nothing");
}

#[actix_web::test]
async fn a_read_token_may_read_but_not_write() {
    let app = TestApp::new().await;
    app.post(&policies(&app), policy("p")).await.ok();
    let read = app.create_token("reader", TokenScope::Read).await;
    app.get_as(&policies(&app), Some(&read)).await.ok();
    app.get_as(&app.api("/cedar/schema"), Some(&read)).await.ok();
    let writes = [
        (Method::POST, policies(&app), Some(policy("q"))),
        (Method::PUT, policies(&app), Some(json!({"policies": []}))),
        (Method::PUT, format!("{}/p", policies(&app)), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("{}/p", policies(&app)), None),
    ];
    for (method, path, body) in writes {
        app.request(method, &path, Some(&read), body).await.error(StatusCode::FORBIDDEN);
    }
    app.get_as(&policies(&app), None).await.error(StatusCode::UNAUTHORIZED);
    app.get(&app.api("/cedar/policies").replace("0123", "9999")).await.error(StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_schema_is_published_as_text_and_json() {
    let app = TestApp::new().await;
    let schema = app.get(&app.api("/cedar/schema")).await.ok();
    assert_eq!(schema["text"], portico_policies::SCHEMA_TEXT);
    assert!(schema["json"]["Portico"]["entityTypes"]["Tool"].is_object(), "{}", schema["json"]);
}

#[actix_web::test]
async fn each_change_is_in_the_audit_log_with_old_and_new_text() {
    let app = TestApp::new().await;
    app.post(&policies(&app), policy("p")).await.ok();
    let text = PERMIT_DOCS.replace("docs", "wiki");
    app.put(&format!("{}/p", policies(&app)), json!({"policy": text})).await.ok();
    app.put(&policies(&app), json!({"policies": [policy("q")]})).await.ok();
    app.delete(&format!("{}/q", policies(&app))).await.ok();
    let items = app.get(&app.api("/audit_logs?direction=asc")).await.ok();
    let items: Vec<&Value> = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["resource"]["type"].as_str().unwrap().starts_with("cedar_policy"))
        .collect();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["resource"]["type"].as_str().unwrap(),
                i["resource"]["id"].as_str().unwrap(),
                i["action"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cedar_policy", "p", "create"),
            ("cedar_policy", "p", "update"),
            ("cedar_policy_set", "policies", "update"),
            ("cedar_policy", "q", "delete"),
        ]
    );
    assert!(items[0].get("oldValueJson").is_none());
    assert_eq!(items[0]["newValueJson"]["policy"], PERMIT_DOCS);
    assert_eq!(items[1]["oldValueJson"]["policy"], PERMIT_DOCS);
    assert_eq!(items[1]["newValueJson"]["policy"], text.as_str());
    assert_eq!(items[2]["oldValueJson"][0]["policy"], text.as_str());
    assert_eq!(items[2]["newValueJson"][0]["id"], "q");
    assert_eq!(items[3]["oldValueJson"]["id"], "q");
    assert!(items[3].get("newValueJson").is_none());
    assert_eq!(items[3]["actor"]["type"], "api_token");
}

/// A set larger than the 1 MiB body limit of other resources is accepted in one replace.
#[actix_web::test]
async fn a_large_set_is_replaced_at_once() {
    let app = TestApp::new().await;
    let padding = format!("// {}\n", "x".repeat(700));
    let set: Vec<Value> = (0..2000)
        .map(|i| {
            json!({"id": format!("p{i}"), "name": format!("Policy {i}"),
                   "policy": format!("{padding}{PERMIT_DOCS}")})
        })
        .collect();
    let body = json!({"policies": set});
    assert!(body.to_string().len() > 1024 * 1024);
    let result = app.put(&policies(&app), body).await.ok();
    assert_eq!(result.as_array().unwrap().len(), 2000);
}
