//! The admin API's contract beyond what the SDK suite covers: every kind of bad input is a 400
//! that names the field and changes nothing, conflicts are 409s and never lost updates, writes
//! are visible to the next read, scopes and accounts are enforced, secrets never come back.

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use portico_core::Event;
use portico_core::domain::account::TokenScope;
use serde_json::{Value, json};

use crate::support::TestApp;

fn server(id: &str) -> Value {
    json!({"id": id, "name": format!("Server {id}"), "hostname": format!("https://{id}.example.com/mcp"), "auth_type": "unauthenticated"})
}

async fn with_docs_server() -> TestApp {
    let app = TestApp::new().await;
    app.post(&app.servers(), json!({
        "id": "docs", "name": "Docs", "hostname": "https://docs.example.com/mcp", "auth_type": "bearer",
        "auth_credentials": "upstream-secret-value",
        "updated_tools": [{"name": "search", "alias": "find"}, {"name": "fetch"}]
    }))
    .await
    .ok();
    app
}

/// Each case: method, path suffix ("servers", "portals", "servers/docs"...), body, the JSON
/// pointer the error must carry (or `None` for body-level errors), and a phrase of the message.
#[actix_web::test]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let app = with_docs_server().await;
    app.post(&app.portals(), json!({"id": "team", "name": "Team", "hostname": "team.example.com", "servers": [{"server_id": "docs"}]}))
        .await
        .ok();
    let before = app.events().await.len();
    let long = "x".repeat(300);
    let too_many: Vec<Value> = (0..257).map(|i| json!({"server_id": format!("s{i}")})).collect();
    let cases: Vec<(Method, &str, Value, Option<&str>, &str)> = vec![
        (
            Method::POST,
            "servers",
            json!({"id": "bad_id", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer"}),
            Some("/id"),
            "contains `_`",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "Upper", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer"}),
            Some("/id"),
            "not a slug",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "x".repeat(65), "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer"}),
            Some("/id"),
            "longer than 64",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": long, "hostname": "https://x.example.com/mcp", "auth_type": "bearer"}),
            Some("/name"),
            "name",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "not a url", "auth_type": "bearer"}),
            Some("/hostname"),
            "hostname",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://user:pw@x.example.com/mcp", "auth_type": "bearer"}),
            Some("/hostname"),
            "auth_credentials",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "magic"}),
            Some("/auth_type"),
            "unknown variant",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "unauthenticated", "auth_credentials": "s"}),
            Some("/auth_credentials"),
            "auth_credentials",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer", "bogus": 1}),
            Some("/bogus"),
            "unknown field `bogus`",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer", "updated_tools": [{"name": "a", "alias": "y".repeat(41)}]}),
            Some("/updated_tools/0/alias"),
            "alias",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "ok", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer", "updated_tools": [{"name": "a", "alias": "b"}, {"name": "b"}]}),
            Some("/updated_tools/0/alias"),
            "`b`",
        ),
        (
            Method::POST,
            "servers",
            json!({"id": "docs", "name": "x", "hostname": "https://x.example.com/mcp", "auth_type": "bearer"}),
            None,
            "already exists",
        ),
        (
            Method::PUT,
            "servers/docs",
            json!({"name": "Docs", "hostname": "https://elsewhere.example.com/mcp"}),
            Some("/hostname"),
            "cannot be changed",
        ),
        (
            Method::PUT,
            "servers/docs",
            json!({"name": "Docs", "auth_type": "unauthenticated"}),
            Some("/auth_type"),
            "cannot be changed",
        ),
        (
            Method::PUT,
            "servers/docs",
            json!({"id": "other", "name": "Docs"}),
            Some("/id"),
            "cannot be changed",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "https://p.example.com"}),
            Some("/hostname"),
            "hostname",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "servers": [{"server_id": "nope"}]}),
            Some("/servers/0/server_id"),
            "`nope`",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "servers": [{"server_id": "docs"}, {"server_id": "docs"}]}),
            Some("/servers/1/server_id"),
            "docs",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "servers": [{"server_id": "docs", "on_behalf": "yes"}]}),
            Some("/servers/0/on_behalf"),
            "invalid type",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "servers": [{"server_id": "docs", "updated_tools": [{"name": "fetch", "alias": "find"}]}]}),
            Some("/servers/0/updated_tools/0/alias"),
            "`find`",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "servers": too_many}),
            Some("/servers"),
            "at most 256",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "name": "P", "hostname": "p.example.com", "code_mode": "off", "allow_code_mode": true}),
            Some("/allow_code_mode"),
            "allow_code_mode",
        ),
        (
            Method::POST,
            "portals",
            json!({"id": "p", "hostname": "p.example.com"}),
            Some("/name"),
            "required",
        ),
        (
            Method::PUT,
            "portals/team",
            json!({"servers": [{"server_id": "ghost"}]}),
            Some("/servers/0/server_id"),
            "`ghost`",
        ),
    ];
    for (method, suffix, body, pointer, phrase) in cases {
        let path = app.api(&format!("/access/ai-controls/mcp/{suffix}"));
        let answer = app.request(method.clone(), &path, Some(&app.token), Some(body.clone())).await;
        let expected =
            if phrase == "already exists" { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
        let pointer_seen = answer.body["errors"][0]["source"]["pointer"].clone();
        let message = answer.error(expected);
        assert!(message.contains(phrase), "{method} {suffix} {body}: `{message}` lacks `{phrase}`");
        match pointer {
            Some(p) => assert_eq!(pointer_seen, json!(p), "{method} {suffix}: {message}"),
            None => assert_eq!(pointer_seen, Value::Null),
        }
    }

    // Bodies that are not JSON, empty, or too large.
    let raw = |body: Vec<u8>| {
        TestRequest::post()
            .uri(&app.servers())
            .insert_header(("Authorization", format!("Bearer {}", app.token)))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
    };
    let message = app.send(raw(b"{\"id\": ".to_vec())).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("not valid JSON"), "{message}");
    let message = app.send(raw(Vec::new())).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("empty"), "{message}");
    let message = app.send(raw(b"[1, 2]".to_vec())).await.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("expected a JSON object"), "{message}");
    let huge = format!("{{\"id\": \"big\", \"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let answer = app.send(raw(huge.into_bytes())).await;
    assert_eq!(answer.body["errors"][0]["code"], 10003);
    let message = answer.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("larger than 1048576 bytes"), "{message}");

    // Query strings.
    for query in ["per_page=0", "per_page=5000", "page=0", "page=x", "sort=name"] {
        let answer = app.get(&format!("{}?{query}", app.servers())).await;
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(!message.is_empty(), "{query}");
    }

    assert_eq!(app.events().await.len(), before, "a rejected request appends nothing");
}

#[actix_web::test]
async fn a_portal_holds_at_least_200_servers() {
    let app = TestApp::new().await;
    for i in 0..200 {
        app.post(&app.servers(), server(&format!("s{i}"))).await.ok();
    }
    let servers: Vec<Value> =
        (0..200).map(|i| json!({"server_id": format!("s{i}"), "on_behalf": false})).collect();
    let portal = app
        .post(
            &app.portals(),
            json!({"id": "big", "name": "Big", "hostname": "big.example.com", "servers": servers}),
        )
        .await
        .ok();
    assert_eq!(portal["servers"].as_array().unwrap().len(), 200);
    let read = app.get(&format!("{}/big", app.portals())).await.ok();
    assert_eq!(read["servers"][199]["server_id"], "s199");
    assert_eq!(read["servers"][199]["on_behalf"], false);
}

#[actix_web::test]
async fn every_write_is_visible_to_the_next_read() {
    let app = with_docs_server().await;
    app.post(
        &app.portals(),
        json!({"id": "team", "name": "Team 0", "hostname": "team.example.com"}),
    )
    .await
    .ok();
    for n in 1..=25 {
        let name = format!("Team {n}");
        let put = app
            .put(&format!("{}/team", app.portals()), json!({"name": name, "hostname": "team.example.com", "servers": [{"server_id": "docs", "default_disabled": n % 2 == 0}]}))
            .await
            .ok();
        assert_eq!(put["name"], name);
        let got = app.get(&format!("{}/team", app.portals())).await.ok();
        assert_eq!(got["name"], name);
        assert_eq!(got["servers"][0]["default_disabled"], n % 2 == 0);
        let listed = app.get(&format!("{}?search=team", app.portals())).await.ok();
        assert_eq!(listed[0]["name"], name);
    }
}

#[actix_web::test]
async fn concurrent_conflicting_writes_are_409s_never_lost_updates() {
    let app = with_docs_server().await;
    app.post(
        &app.portals(),
        json!({"id": "team", "name": "Start", "hostname": "team.example.com"}),
    )
    .await
    .ok();
    let path = format!("{}/team", app.portals());
    let writes = (0..24).map(|n| {
        let body = json!({"name": format!("Writer {n}"), "hostname": "team.example.com"});
        app.request(Method::PUT, &path, Some(&app.token), Some(body))
    });
    let answers = futures_join(writes).await;
    let mut won = Vec::new();
    for (n, answer) in answers.into_iter().enumerate() {
        match answer.status {
            StatusCode::OK => won.push(format!("Writer {n}")),
            StatusCode::CONFLICT => {
                let message = answer.error(StatusCode::CONFLICT);
                assert!(message.contains("retry"), "{message}");
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert!(!won.is_empty());
    // All 24 are decided before the first append commits, so they really race.
    assert!(won.len() < 24, "the writes overlapped, so some must have conflicted");
    // Exactly the winners were recorded, and the portal shows the last of them.
    let recorded: Vec<String> = app
        .events()
        .await
        .iter()
        .filter_map(|e| match &e.event {
            Event::PortalUpdated(p) => Some(p.settings.name.clone()),
            _ => None,
        })
        .collect();
    let mut sorted_won = won.clone();
    sorted_won.sort();
    let mut sorted_recorded = recorded.clone();
    sorted_recorded.sort();
    assert_eq!(sorted_recorded, sorted_won);
    let current = app.get(&path).await.ok();
    assert_eq!(current["name"], json!(recorded.last().unwrap()));
}

/// Polls the futures together (a small `join_all`), so the requests really overlap.
pub(crate) async fn futures_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}

#[actix_web::test]
async fn scopes_tokens_and_accounts_are_enforced() {
    let app = with_docs_server().await;
    let reader = app.create_token("reader", TokenScope::Read).await;
    let read = app.get_as(&app.servers(), Some(&reader)).await.ok();
    assert_eq!(read.as_array().unwrap().len(), 1);
    let answer =
        app.request(Method::POST, &app.servers(), Some(&reader), Some(server("new"))).await;
    let message = answer.error(StatusCode::FORBIDDEN);
    assert!(message.contains("`read` scope"), "{message}");
    let answer =
        app.request(Method::DELETE, &format!("{}/docs", app.servers()), Some(&reader), None).await;
    answer.error(StatusCode::FORBIDDEN);

    for bad in [None, Some("wrong"), Some("AdminTestToken0123456789abcdefghijklmnoX")] {
        let message = app.get_as(&app.servers(), bad).await.error(StatusCode::UNAUTHORIZED);
        assert!(!message.contains(&app.token), "the message never echoes a token");
    }
    let other =
        "/client/v4/accounts/ffffffffffffffffffffffffffffffff/access/ai-controls/mcp/servers";
    let message = app.get(other).await.error(StatusCode::NOT_FOUND);
    assert!(message.contains("does not exist"), "{message}");
    app.get(&format!("{}/nope", app.servers())).await.error(StatusCode::NOT_FOUND);
    app.get("/client/v4/nowhere").await.error(StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn secrets_never_come_back_and_deletes_return_the_object() {
    let app = with_docs_server().await;
    app.put(
        &format!("{}/docs", app.servers()),
        json!({"name": "Docs", "auth_credentials": "rotated-secret-value"}),
    )
    .await
    .ok();
    app.post(&app.portals(), json!({"id": "team", "name": "Team", "hostname": "team.example.com", "servers": [{"server_id": "docs"}]}))
        .await
        .ok();
    for path in [
        app.servers(),
        format!("{}/docs", app.servers()),
        app.portals(),
        format!("{}/team", app.portals()),
    ] {
        let answer = app.get(&path).await;
        assert!(!answer.text.contains("secret-value"), "{path}: {}", answer.text);
        assert!(!answer.text.contains("auth_credentials\""), "{path}: write-only field returned");
    }
    let events =
        serde_json::to_string(&app.events().await.iter().map(|e| &e.event).collect::<Vec<_>>())
            .unwrap();
    assert!(!events.contains("secret-value"));

    let deleted = app.delete(&format!("{}/team", app.portals())).await.ok();
    assert_eq!(deleted["id"], "team");
    assert!(deleted.get("servers").is_none(), "a deleted portal comes back without servers");
    app.get(&format!("{}/team", app.portals())).await.error(StatusCode::NOT_FOUND);
    let deleted = app.delete(&format!("{}/docs", app.servers())).await.ok();
    assert_eq!(deleted["id"], "docs");
    assert_eq!(deleted["hostname"], "https://docs.example.com/mcp");
    app.delete(&format!("{}/docs", app.servers())).await.error(StatusCode::NOT_FOUND);
    // The id can be used again, and its credentials start afresh in the vault.
    app.post(&app.servers(), json!({"id": "docs", "name": "Docs again", "hostname": "https://docs.example.com/mcp", "auth_type": "bearer", "auth_credentials": "third"}))
        .await
        .ok();
}

#[actix_web::test]
async fn health_and_readiness() {
    let app = TestApp::new().await;
    let health = app.get_as("/healthz", None).await.expect(StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.get_as("/readyz", None).await.expect(StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["log_head"], ready.body["projected"]);
    assert!(
        ready.body["log_head"].as_u64().unwrap() >= 2,
        "account and admin token are in the log"
    );
}

#[actix_web::test]
async fn upstreams_on_internal_addresses_are_refused_at_registration() {
    // The default configuration: `allow_private_upstreams` off.
    let app = TestApp::new().await;
    let before = app.events().await.len();
    for (hostname, kind) in [
        ("http://127.0.0.1:9/mcp", "loopback"),
        ("http://10.1.2.3/mcp", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[::1]:8080/mcp", "loopback"),
        ("http://localhost:3000/mcp", "loopback"),
    ] {
        let mut body = server("internal");
        body["hostname"] = json!(hostname);
        let answer = app.post(&app.servers(), body).await;
        assert_eq!(answer.body["errors"][0]["source"]["pointer"], "/hostname", "{hostname}");
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(kind), "{hostname}: {message}");
        // Metadata endpoints cannot be allowed; the others name the setting that allows them.
        let remedy = if kind == "metadata" { "never connects" } else { "allow_private_upstreams" };
        assert!(message.contains(remedy), "{hostname}: {message}");
    }
    assert_eq!(app.events().await.len(), before, "a refused registration appends nothing");
    // A public name that does not resolve (yet) may be registered: it is checked at connect.
    app.post(&app.servers(), server("later")).await.ok();
}
