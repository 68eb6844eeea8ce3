//! The OpenAPI document: served without a token, equal to the committed golden copy, and true
//! to the routes and the answers.

use std::path::PathBuf;

use actix_web::http::{Method, StatusCode};
use portico_projections::{AuditAction, ResourceType};
use serde_json::{Map, Value, json};

use crate::support::{ACCOUNT_ID, TestApp};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("openapi.json")
}

async fn document(app: &TestApp) -> Value {
    let answer = app.get_as("/client/v4/openapi.json", None).await.expect(StatusCode::OK);
    answer.body
}

/// Compares the served document with `tests/openapi.json`; `UPDATE_GOLDEN=1` rewrites the copy.
#[actix_web::test]
async fn the_document_matches_the_golden_copy() {
    let app = TestApp::new().await;
    let answer = app.get_as("/client/v4/openapi.json", None).await.expect(StatusCode::OK);
    let served = format!("{}\n", answer.text);
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if golden != served {
        let line = golden
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| golden.lines().count().min(served.lines().count()));
        panic!(
            "the OpenAPI document differs from {} (first at line {}: golden `{}`, now `{}`). \
             If the API change is deliberate, run the tests with UPDATE_GOLDEN=1 and commit the file.",
            path.display(),
            line + 1,
            golden.lines().nth(line).unwrap_or("<end>"),
            served.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[actix_web::test]
async fn the_document_is_openapi_3_1_with_a_bearer_scheme() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/client/v4");
    assert_eq!(doc["components"]["securitySchemes"]["api_token"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"api_token": []}]));
    let mut operations = 0;
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            ids.push(op["operationId"].as_str().unwrap().to_owned());
            let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            // A portal's Access application is created and deleted with the portal: these two
            // operations exist to say so, and always answer 400.
            let always_refused = ["create_access_application", "delete_access_application"]
                .contains(&op["operationId"].as_str().unwrap());
            if always_refused {
                let expected = ["400", "401", "403", "404"];
                assert_eq!(statuses, expected, "{method} {path}");
                continue;
            }
            for status in ["200", "401", "404"] {
                assert!(statuses.iter().any(|s| *s == status), "{method} {path}: {statuses:?}");
            }
            // `authorize` and the destination checks are questions, not writes: POST for their
            // bodies, but read-only.
            let questions = [
                "authorize_cedar_request",
                "validate_logpush_destination",
                "logpush_destination_exists",
                "validate_logpush_ownership",
            ];
            let writes =
                method != "get" && !questions.contains(&op["operationId"].as_str().unwrap());
            if writes {
                for status in ["400", "403", "409", "503"] {
                    assert!(statuses.iter().any(|s| *s == status), "{method} {path}: {status}");
                }
            }
            if method == "post" || method == "put" {
                // An oversized body is a 400 like every other rejected body.
                assert!(!statuses.iter().any(|s| *s == "413"), "{method} {path}");
                // `POST .../sync` and `.../authorize` are actions on the server and take no
                // body.
                if !path.ends_with("/sync") && !path.ends_with("/servers/{id}/authorize") {
                    assert!(op["requestBody"].is_object(), "{method} {path}");
                }
            }
        }
    }
    assert_eq!(operations, 57);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 57, "operation ids are unique");
}

/// Every documented operation reaches a handler (which asks for a token), none is a stray path.
#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = format!(
            "/client/v4{}",
            path.replace("{account_id}", ACCOUNT_ID)
                .replace("{id}", "x")
                .replace("{job_id}", "1")
                .replace("{dataset_id}", "mcp_portal_logs")
        );
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == Method::POST || method == Method::PUT).then(|| json!({}));
            let answer = app.request(method.clone(), &uri, None, body).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", answer.text);
        }
    }
}

/// The values the document lists for query parameter `name` of `GET .../audit_logs`.
fn audit_log_filter_values(doc: &Value, name: &str) -> Vec<String> {
    let op = &doc["paths"]["/accounts/{account_id}/audit_logs"]["get"];
    let param = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name);
    let schema = &param.unwrap_or_else(|| panic!("no parameter `{name}`"))["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    let values = schema["enum"].as_array().unwrap_or_else(|| panic!("`{name}`: {schema}"));
    values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// Every resource type and action an audit log can carry is listed by the filter parameter of
/// the same name, and nothing else is.
#[actix_web::test]
async fn audit_log_filters_list_every_value_an_entry_can_carry() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let resource_types: Vec<&str> = ResourceType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(audit_log_filter_values(&doc, "resource.type"), resource_types);
    assert!(
        resource_types.contains(&"cedar_policy") && resource_types.contains(&"cedar_policy_set")
    );
    let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(audit_log_filter_values(&doc, "action.type"), actions);
}

/// The schema named `name`, with `allOf` parts merged.
fn schema(doc: &Value, name: &str) -> Map<String, Value> {
    let named = &doc["components"]["schemas"][name];
    assert!(named.is_object(), "no schema `{name}`");
    let mut merged = Map::new();
    let parts = match named.get("allOf") {
        Some(Value::Array(parts)) => parts.clone(),
        _ => vec![named.clone()],
    };
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(r) => Value::Object(schema(doc, r.trim_start_matches("#/components/schemas/"))),
            None => part,
        };
        if let Some(Value::Object(props)) = part.get("properties") {
            let all = merged.entry("properties").or_insert_with(|| json!({}));
            all.as_object_mut().unwrap().extend(props.clone());
        }
        if let Some(Value::Array(required)) = part.get("required") {
            let all = merged.entry("required").or_insert_with(|| json!([]));
            all.as_array_mut().unwrap().extend(required.clone());
        }
    }
    merged
}

/// Every field of `value` is a property of schema `name`, and every required property is there.
#[track_caller]
fn conforms(doc: &Value, name: &str, value: &Value) {
    let schema = schema(doc, name);
    let props = schema["properties"].as_object().unwrap();
    let fields = value.as_object().unwrap();
    for field in fields.keys() {
        assert!(props.contains_key(field), "{name} has no property `{field}`: {value}");
    }
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let required = required.as_str().unwrap();
        assert!(fields.contains_key(required), "{name} needs `{required}`: {value}");
    }
}

#[actix_web::test]
async fn answers_have_the_documented_shapes() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    app.post(
        &app.servers(),
        json!({"id": "docs", "name": "Docs", "hostname": "https://docs.example.com/mcp", "auth_type": "unauthenticated",
               "updated_tools": [{"name": "search", "alias": "find", "enabled": true}]}),
    )
    .await
    .ok();
    app.post(
        &app.portals(),
        json!({"id": "main", "name": "Main", "hostname": "mcp.example.com",
               "servers": [{"server_id": "docs", "updated_tools": [{"name": "search", "description": "Finds"}]}]}),
    )
    .await
    .ok();
    let servers = app.get(&app.servers()).await;
    conforms(&doc, "ServerList", &servers.body);
    conforms(&doc, "ResultInfo", &servers.body["result_info"]);
    conforms(&doc, "ServerObject", &servers.body["result"][0]);
    conforms(&doc, "CapabilityOverride", &servers.body["result"][0]["updated_tools"][0]);
    let portals = app.get(&app.portals()).await;
    conforms(&doc, "PortalList", &portals.body);
    conforms(&doc, "PortalObject", &portals.body["result"][0]);
    let mapping = &portals.body["result"][0]["servers"][0];
    conforms(&doc, "PortalServerObject", mapping);
    let merged = &mapping["updated_tools"][0];
    conforms(&doc, "EffectiveOverrideObject", merged);
    assert_eq!(merged["server_alias"], "find", "{merged}");
    assert_eq!(merged["portal_description"], "Finds", "{merged}");

    let question = json!({"principal": {"type": "user", "id": "a", "email": "a@example.com", "name": "A", "idp": "okta", "groups": []},
                          "action": "connect", "resource": {"type": "portal", "id": "main"}});
    let decided = app.post(&app.api("/cedar/authorize"), question).await;
    conforms(&doc, "AuthorizeResult", &decided.body);
    conforms(&doc, "AuthorizeObject", &decided.body["result"]);
    let seen =
        app.get(&format!("{}/main/visibility?principal=user:a@example.com", app.portals())).await;
    conforms(&doc, "VisibilityResult", &seen.body);
    conforms(&doc, "VisibilityObject", &seen.body["result"]);
    conforms(&doc, "DecisionObject", &seen.body["result"]["connect"]);
    let token = app.post(&app.api("/access/service_tokens"), json!({"name": "ci"})).await;
    conforms(&doc, "ServiceTokenSecretResult", &token.body);
    conforms(&doc, "ServiceTokenWithSecret", &token.body["result"]);
    let tokens = app.get(&app.api("/access/service_tokens")).await;
    conforms(&doc, "ServiceTokenList", &tokens.body);
    conforms(&doc, "ServiceTokenObject", &tokens.body["result"][0]);
    let deleted = app.delete(&format!("{}/main", app.portals())).await;
    conforms(&doc, "PortalResult", &deleted.body);
    conforms(&doc, "PortalObject", &deleted.body["result"]);

    let audit = app.get(&app.api("/audit_logs?per_page=2")).await;
    conforms(&doc, "AuditLogList", &audit.body);
    conforms(&doc, "AuditLogResultInfo", &audit.body["result_info"]);
    for item in audit.body["result"].as_array().unwrap() {
        conforms(&doc, "AuditLog", item);
        for part in ["action", "actor", "metadata", "owner", "resource"] {
            let name = format!("AuditLog{}{}", part[..1].to_uppercase(), &part[1..]);
            conforms(&doc, &name, &item[part]);
        }
    }

    let error = app.get(&format!("{}/nope", app.servers())).await;
    conforms(&doc, "ErrorEnvelope", &error.body);
    conforms(&doc, "ResponseInfo", &error.body["errors"][0]);

    let cedar = app.api("/cedar/policies");
    let text = r#"permit(principal, action == Portico::Action::"connect", resource);"#;
    let created = app.post(&cedar, json!({"name": "All connect", "policy": text})).await;
    conforms(&doc, "PolicyResult", &created.body);
    conforms(&doc, "PolicyObject", &created.body["result"]);
    let list = app.get(&cedar).await;
    conforms(&doc, "PolicyList", &list.body);
    conforms(&doc, "PolicyListInfo", &list.body["result_info"]);
    let replaced = app.put(&cedar, json!({"policies": []})).await;
    conforms(&doc, "PolicySetResult", &replaced.body);
    let schema = app.get(&app.api("/cedar/schema")).await;
    conforms(&doc, "CedarSchemaResult", &schema.body);
    let invalid = app
        .post(
            &cedar,
            json!({"name": "x", "policy": "permit(principal, action, resource) when { 1 };"}),
        )
        .await;
    conforms(&doc, "ErrorEnvelope", &invalid.body);
    conforms(&doc, "ErrorSource", &invalid.body["errors"][0]["source"]);

    let idps = app.api("/access/identity_providers");
    let oidc = json!({"name": "SSO", "type": "oidc", "config": {
        "client_id": "c", "client_secret": "s", "auth_url": "https://idp.example.com/a",
        "token_url": "https://idp.example.com/t", "certs_url": "https://idp.example.com/k"}});
    let created = app.post(&idps, oidc).await;
    conforms(&doc, "IdentityProviderResult", &created.body);
    conforms(&doc, "IdentityProviderObject", &created.body["result"]);
    conforms(&doc, "OidcConfigObject", &created.body["result"]["config"]);
    conforms(&doc, "ScimConfigObject", &created.body["result"]["scim_config"]);
    let listed = app.get(&idps).await;
    conforms(&doc, "IdentityProviderList", &listed.body);
    // `OneTimePinConfigObject` has no properties: the config is empty.
    assert_eq!(listed.body["result"][0]["config"], json!({}));
    assert!(doc["components"]["schemas"]["OneTimePinConfigObject"].get("properties").is_none());
    let id = created.body["result"]["id"].as_str().unwrap();
    let deleted = app.delete(&format!("{idps}/{id}")).await;
    conforms(&doc, "DeletedIdentityProviderResult", &deleted.body);

    app.post(&app.portals(), json!({"id": "apps", "name": "Apps", "hostname": "apps.example.com"}))
        .await
        .ok();
    let apps = app.get(&app.api("/access/apps")).await;
    conforms(&doc, "AccessAppList", &apps.body);
    let object = &apps.body["result"][0];
    conforms(&doc, "AccessAppObject", object);
    conforms(&doc, "OAuthConfigurationObject", &object["oauth_configuration"]);
    let oauth = &object["oauth_configuration"];
    conforms(&doc, "DynamicClientRegistrationObject", &oauth["dynamic_client_registration"]);
    conforms(&doc, "GrantObject", &oauth["grant"]);
    let path = app.api(&format!("/access/apps/{}", object["id"].as_str().unwrap()));
    let updated = app.put(&path, json!({"type": "mcp_portal"})).await;
    conforms(&doc, "AccessAppResult", &updated.body);
}
