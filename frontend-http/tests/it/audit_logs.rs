//! `GET /accounts/{account_id}/audit_logs`: the admin changes in Cloudflare's audit-log shape.

use actix_web::http::StatusCode;
use chrono::DateTime;
use portico_core::domain::account::TokenScope;
use portico_projections::ResourceType;
use serde_json::{Value, json};

use crate::support::{ACCOUNT_ID, ADMIN_TOKEN, TestApp};

const SECRET: &str = "sk-live-first-credential-b7Q2mZ9xK4";
const ROTATED: &str = "sk-live-rotated-credential-T5vW8nR1";

/// Creates, updates and deletes a server and a portal (with credentials on the server).
async fn changes(app: &TestApp) {
    let servers = app.servers();
    let portals = app.portals();
    app.post(
        &servers,
        json!({
            "id": "docs", "name": "Docs", "hostname": "https://docs.example.com/mcp",
            "auth_type": "bearer", "auth_credentials": SECRET,
        }),
    )
    .await
    .ok();
    app.put(&format!("{servers}/docs"), json!({"name": "Docs 2", "auth_credentials": ROTATED}))
        .await
        .ok();
    app.post(
        &portals,
        json!({
            "id": "main", "name": "Main", "hostname": "mcp.example.com",
            "servers": [{"server_id": "docs"}],
        }),
    )
    .await
    .ok();
    app.put(&format!("{portals}/main"), json!({"name": "Main 2", "servers": []})).await.ok();
    app.delete(&format!("{portals}/main")).await.ok();
    app.delete(&format!("{servers}/docs")).await.ok();
}

async fn audit(app: &TestApp, query: &str) -> (Vec<Value>, Value) {
    let answer = app.get(&app.api(&format!("/audit_logs?{query}"))).await;
    let info = answer.body["result_info"].clone();
    let items = answer.ok().as_array().cloned().unwrap();
    (items, info)
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

fn positions(items: &[Value]) -> Vec<u64> {
    items.iter().map(|i| i["metadata"]["position"].as_u64().unwrap()).collect()
}

#[actix_web::test]
async fn changes_show_with_action_actor_and_values() {
    let app = TestApp::new().await;
    changes(&app).await;
    let (items, info) = audit(&app, "direction=asc").await;
    assert_eq!(info["total_count"], items.len());
    assert_eq!(info["page"], 1);
    assert_eq!(info["per_page"], 100);
    assert!(info.get("cursor").is_none(), "one page holds everything: {info}");

    // Start-up recorded the account, the admin token and the built-in one-time PIN identity
    // provider, as Portico itself.
    let start: Vec<(&str, &str)> = items[..3]
        .iter()
        .map(|i| (i["resource"]["type"].as_str().unwrap(), i["action"]["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        start,
        [("account", "create"), ("api_token", "create"), ("identity_provider", "create")]
    );
    assert_eq!(items[0]["actor"], json!({"id": "bootstrap", "type": "system"}));
    assert_eq!(items[0]["interface"], "system");
    assert_eq!(items[0]["resource"]["id"], ACCOUNT_ID);
    let token = &items[1]["newValueJson"];
    assert_eq!(token["scope"], "edit");
    assert!(token.get("secret_hash").is_none(), "{token}");
    assert_eq!(items[2]["actor"], json!({"id": "bootstrap", "type": "system"}));
    assert_eq!(items[2]["newValueJson"]["config"], json!({"type": "onetimepin"}));

    let changes: Vec<(&str, &str, &str)> = items[3..]
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
        changes,
        [
            ("mcp_server", "docs", "create"),
            ("mcp_server", "docs", "update"), // the credential
            ("mcp_server", "docs", "update"), // the settings
            ("mcp_server", "docs", "update"), // the rotated credential
            ("mcp_portal", "main", "create"),
            ("mcp_portal", "main", "update"),
            ("mcp_portal", "main", "delete"),
            ("mcp_server", "docs", "delete"),
        ]
    );

    let token_id = ADMIN_TOKEN[..8].to_ascii_lowercase();
    for item in &items[3..] {
        assert_eq!(item["actor"]["type"], "api_token");
        assert_eq!(item["actor"]["id"], token_id.as_str());
        assert!(item["actor"]["name"].as_str().unwrap().starts_with("admin"));
        assert!(item["actor"].get("email").is_none());
        assert_eq!(item["interface"], "API");
        assert_eq!(item["action"]["result"], true);
        assert_eq!(item["owner"]["id"], ACCOUNT_ID);
        assert!(DateTime::parse_from_rfc3339(item["when"].as_str().unwrap()).is_ok());
        assert!(item["metadata"]["correlation_id"].as_str().is_some());
        // The text and the JSON of each value say the same.
        for (text, json) in [("newValue", "newValueJson"), ("oldValue", "oldValueJson")] {
            match item.get(text) {
                Some(Value::String(s)) => {
                    assert_eq!(&serde_json::from_str::<Value>(s).unwrap(), &item[json])
                }
                None => assert!(item.get(json).is_none()),
                Some(other) => panic!("{text} is {other}"),
            }
        }
    }

    let created = &items[3];
    assert_eq!(created["metadata"]["event_type"], "ServerAdded");
    assert!(created.get("oldValue").is_none());
    assert_eq!(created["newValueJson"]["name"], "Docs");
    assert_eq!(created["newValueJson"]["hostname"], "https://docs.example.com/mcp");
    assert_eq!(created["newValueJson"]["auth_type"], "bearer");

    let credential = &items[4];
    assert_eq!(credential["metadata"]["event_type"], "ServerCredentialSet");
    assert!(credential["oldValueJson"].get("auth_credentials_version").is_none());
    assert_eq!(credential["newValueJson"]["auth_credentials_version"], 1);

    let renamed = &items[5];
    assert_eq!(renamed["oldValueJson"]["name"], "Docs");
    assert_eq!(renamed["newValueJson"]["name"], "Docs 2");
    assert_eq!(items[6]["newValueJson"]["auth_credentials_version"], 2);

    let portal = &items[7];
    assert_eq!(portal["newValueJson"]["name"], "Main");
    assert_eq!(portal["newValueJson"]["servers"][0]["server_id"], "docs");
    let portal_update = &items[8];
    assert_eq!(portal_update["oldValueJson"]["name"], "Main");
    assert_eq!(portal_update["newValueJson"]["name"], "Main 2");
    assert_eq!(portal_update["newValueJson"]["servers"], json!([]));

    for deleted in [&items[9], &items[10]] {
        assert!(deleted.get("newValue").is_none() && deleted.get("newValueJson").is_none());
    }
    assert_eq!(items[9]["oldValueJson"]["name"], "Main 2");
    assert_eq!(items[10]["oldValueJson"]["name"], "Docs 2");
    assert_eq!(items[10]["oldValueJson"]["auth_credentials_version"], 2);
}

#[actix_web::test]
async fn newest_come_first_unless_asked_otherwise() {
    let app = TestApp::new().await;
    changes(&app).await;
    let (desc, _) = audit(&app, "").await;
    let (explicit, _) = audit(&app, "direction=desc").await;
    let (asc, _) = audit(&app, "direction=asc").await;
    assert_eq!(ids(&desc), ids(&explicit));
    let mut reversed = ids(&asc);
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
    let p = positions(&asc);
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    let times: Vec<_> = asc
        .iter()
        .map(|i| DateTime::parse_from_rfc3339(i["when"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[actix_web::test]
async fn since_and_before_bound_the_time() {
    let app = TestApp::new().await;
    changes(&app).await;
    let (all, _) = audit(&app, "direction=asc").await;
    let middle = all[all.len() / 2]["when"].as_str().unwrap().to_owned();
    let encoded = middle.replace(':', "%3A");
    let (since, _) = audit(&app, &format!("direction=asc&since={encoded}")).await;
    let (before, _) = audit(&app, &format!("direction=asc&before={encoded}")).await;
    assert!(since.iter().all(|i| i["when"].as_str().unwrap() >= middle.as_str()));
    assert!(before.iter().all(|i| (i["when"].as_str().unwrap()) < middle.as_str()));
    assert!(ids(&since).contains(&all[all.len() / 2]["id"].as_str().unwrap().to_owned()));
    // Together they are everything, in order.
    let mut joined = ids(&before);
    joined.extend(ids(&since));
    assert_eq!(joined, ids(&all));

    // Dates are midnight UTC; both bounds together select a window.
    let (window, _) =
        audit(&app, &format!("since=2000-01-01&before={}", "2999-01-01T00%3A00%3A00Z")).await;
    assert_eq!(window.len(), all.len());
    let (none, info) = audit(&app, "since=2999-01-01").await;
    assert!(none.is_empty());
    assert_eq!(info["total_count"], 0);
    assert_eq!(info["total_pages"], 0);
}

#[actix_web::test]
async fn pages_by_cursor_and_by_number() {
    let app = TestApp::new().await;
    changes(&app).await;
    for direction in ["asc", "desc"] {
        let (all, _) = audit(&app, &format!("direction={direction}")).await;
        assert!(all.len() > 6);

        let mut walked = Vec::new();
        let mut query = format!("direction={direction}&per_page=3");
        let mut pages = 0;
        loop {
            let (items, info) = audit(&app, &query).await;
            pages += 1;
            assert!(items.len() <= 3);
            assert_eq!(info["count"], items.len());
            assert_eq!(info["per_page"], 3);
            walked.extend(ids(&items));
            match info.get("cursor").and_then(Value::as_str) {
                Some(cursor) => {
                    assert_eq!(items.len(), 3, "a cursor comes only with a full page");
                    query = format!("direction={direction}&per_page=3&cursor={cursor}");
                }
                None => break,
            }
            assert!(pages < 20, "the cursor does not advance");
        }
        assert_eq!(walked, ids(&all), "{direction}");

        let mut numbered = Vec::new();
        let total_pages = all.len().div_ceil(3);
        for page in 1..=total_pages + 1 {
            let (items, info) =
                audit(&app, &format!("direction={direction}&per_page=3&page={page}")).await;
            assert_eq!(info["page"], page);
            assert_eq!(info["total_count"], all.len());
            assert_eq!(info["total_pages"], total_pages);
            assert_eq!(info.get("cursor").is_some(), page < total_pages, "page {page}");
            numbered.extend(ids(&items));
        }
        assert_eq!(numbered, ids(&all), "{direction}");
    }

    // A cursor continues a filtered listing too, and `page=1` may accompany it.
    let (first, info) = audit(&app, "resource.type=mcp_server&per_page=2").await;
    let cursor = info["cursor"].as_str().unwrap().to_owned();
    let (rest, _) = audit(&app, &format!("resource.type=mcp_server&page=1&cursor={cursor}")).await;
    assert_eq!(first.len() + rest.len(), 5);
    assert!(rest.iter().all(|i| i["resource"]["type"] == "mcp_server"));
}

#[actix_web::test]
async fn filters_by_id_action_resource_and_actor() {
    let app = TestApp::new().await;
    changes(&app).await;
    let (all, _) = audit(&app, "").await;
    let third = all[2]["id"].as_str().unwrap();
    let (one, _) = audit(&app, &format!("id={third}")).await;
    assert_eq!(ids(&one), [third]);

    let (deletes, _) = audit(&app, "action.type=delete").await;
    let deleted: Vec<&str> =
        deletes.iter().map(|i| i["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(deleted, ["docs", "main"]);

    let (portals, _) = audit(&app, "resource.type=mcp_portal").await;
    assert_eq!(portals.len(), 3);
    let (docs, _) = audit(&app, "resource.id=docs&action.type=update").await;
    assert_eq!(docs.len(), 3);

    let (by_user, _) = audit(&app, "actor.email=someone%40example.com").await;
    assert!(by_user.is_empty(), "no change was made by a user");
    let (hidden, _) = audit(&app, "hide_user_logs=true").await;
    assert_eq!(hidden.len(), all.len());
}

/// `(resource.type, resource.id, action.type)` of each item.
fn summary(items: &[Value]) -> Vec<(&str, &str, &str)> {
    items
        .iter()
        .map(|i| {
            (
                i["resource"]["type"].as_str().unwrap(),
                i["resource"]["id"].as_str().unwrap(),
                i["action"]["type"].as_str().unwrap(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn filters_by_the_policy_resource_types() {
    let app = TestApp::new().await;
    changes(&app).await;
    let cedar = app.api("/cedar/policies");
    let text = r#"permit(principal, action == Portico::Action::"connect", resource);"#;
    let policy = |id: &str| json!({"id": id, "name": id, "policy": text});
    app.post(&cedar, policy("p")).await.ok();
    app.put(&format!("{cedar}/p"), json!({"enabled": false})).await.ok();
    app.put(&cedar, json!({"policies": [policy("q")]})).await.ok();
    app.delete(&format!("{cedar}/q")).await.ok();

    let (policies, info) = audit(&app, "resource.type=cedar_policy&direction=asc").await;
    assert_eq!(
        summary(&policies),
        [
            ("cedar_policy", "p", "create"),
            ("cedar_policy", "p", "update"),
            ("cedar_policy", "q", "delete")
        ]
    );
    assert_eq!(info["total_count"], 3);
    let (sets, info) = audit(&app, "resource.type=cedar_policy_set").await;
    assert_eq!(summary(&sets), [("cedar_policy_set", "policies", "update")]);
    assert_eq!(info["total_count"], 1);
    let (deleted, _) = audit(&app, "resource.type=cedar_policy&action.type=delete").await;
    assert_eq!(summary(&deleted), [("cedar_policy", "q", "delete")]);

    // Every type an entry can carry is a type the filter takes, and selects only that type.
    let (all, _) = audit(&app, "").await;
    for resource_type in ResourceType::ALL {
        let wanted = resource_type.as_str();
        let (items, _) = audit(&app, &format!("resource.type={wanted}")).await;
        let expected = all.iter().filter(|i| i["resource"]["type"] == wanted).count();
        assert_eq!(items.len(), expected, "{wanted}");
    }
    let shown: usize = ResourceType::ALL
        .iter()
        .map(|t| all.iter().filter(|i| i["resource"]["type"] == t.as_str()).count())
        .sum();
    assert_eq!(shown, all.len(), "an entry carries a type outside `ResourceType::ALL`");
}

#[actix_web::test]
async fn read_tokens_may_read_and_strangers_may_not() {
    let app = TestApp::new().await;
    let path = app.api("/audit_logs");
    let reader = app.create_token("auditor", TokenScope::Read).await;
    let items = app.get_as(&path, Some(&reader)).await.ok();
    // The reader's own creation is in the trail, made with the CLI.
    assert_eq!(items[0]["resource"]["type"], "api_token");
    assert_eq!(items[0]["newValueJson"]["name"], "auditor");
    assert_eq!(items[0]["newValueJson"]["scope"], "read");
    assert_eq!(items[0]["interface"], "CLI");

    let message = app.get_as(&path, None).await.error(StatusCode::UNAUTHORIZED);
    assert!(message.contains("Authorization"), "{message}");
    app.get_as(&path, Some("WrongToken0123456789abcdefghijklmnopqrstu"))
        .await
        .error(StatusCode::UNAUTHORIZED);
    let other = "/client/v4/accounts/ffffffffffffffffffffffffffffffff/audit_logs";
    let message = app.get(other).await.error(StatusCode::NOT_FOUND);
    assert!(message.contains("ffffffffffffffffffffffffffffffff"), "{message}");
}

#[actix_web::test]
async fn bad_queries_are_400s_that_name_the_parameter() {
    let app = TestApp::new().await;
    for (query, param) in [
        ("colour=blue", "colour"),
        ("since=yesterday", "since"),
        ("before=2025-02-30", "before"),
        ("per_page=0", "per_page"),
        ("per_page=5000", "per_page"),
        ("per_page=-1", "per_page"),
        ("page=0", "page"),
        ("direction=sideways", "direction"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=MTI&page=2", "cursor"),
        ("action.type=explode", "action.type"),
        ("resource.type=zone", "resource.type"),
        ("id=42", "id"),
        ("hide_user_logs=maybe", "hide_user_logs"),
        ("since=2025-01-01&since=2025-01-02", "since"),
    ] {
        let answer = app.get(&app.api(&format!("/audit_logs?{query}"))).await;
        let message = answer.clone().error(StatusCode::BAD_REQUEST);
        assert!(message.contains(&format!("`{param}`")), "{query}: {message}");
        assert_eq!(answer.body["errors"][0]["code"], 10004, "{query}");
    }
}

#[actix_web::test]
async fn secrets_appear_in_no_audit_log_and_no_event() {
    let app = TestApp::new().await;
    changes(&app).await;
    app.post(
        &app.servers(),
        json!({
            "id": "crm", "name": "CRM", "hostname": "https://crm.example.com/mcp",
            "auth_type": "oauth", "client_secret": "oauth-client-secret-Zr8Kp2",
        }),
    )
    .await
    .ok();
    let secrets = [SECRET, ROTATED, "oauth-client-secret-Zr8Kp2", ADMIN_TOKEN];
    let mut seen = 0;
    for direction in ["asc", "desc"] {
        let answer = app.get(&app.api(&format!("/audit_logs?direction={direction}"))).await;
        for secret in secrets {
            assert!(!answer.text.contains(secret), "an audit log shows `{secret}`");
        }
        seen += answer.ok().as_array().unwrap().len();
    }
    assert!(seen > 20);
    let events = app.events().await;
    assert!(events.len() > 10);
    for event in events {
        let text = serde_json::to_string(&event).unwrap();
        for secret in secrets {
            assert!(!text.contains(secret), "event {} holds `{secret}`", event.position);
        }
    }
}
