//! `/accounts/{account_id}/access/service_tokens` and the authentication of MCP clients with
//! `CF-Access-Client-Id` + `CF-Access-Client-Secret`: the secret is shown once and never
//! stored, rotation retires the old secret, refresh extends the life, expiry and deletion stop
//! a token, bad input is a 400 naming the field that changes nothing, a read token cannot write.

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use actix_web::{App, HttpRequest, HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use portico_core::domain::account::TokenScope;
use portico_core::domain::service_token::{
    self, CreateServiceToken, ServiceTokenState, service_token_stream,
};
use portico_core::{Actor, Event};
use portico_frontend_http::api::error::ApiError;
use portico_frontend_http::auth::{
    CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, GENERIC_MESSAGE, ServiceAuthError,
    authenticate_service_request, authenticate_service_token,
};
use portico_frontend_http::state::AppState;
use portico_policies::Principal;
use serde_json::{Value, json};

use crate::audit_fail_closed::echo;
use crate::live::{Backend, Live, PORTAL_ID};
use crate::support::TestApp;

fn tokens(app: &TestApp) -> String {
    app.api("/access/service_tokens")
}

fn token_path(app: &TestApp, id: &str) -> String {
    format!("{}/{id}", tokens(app))
}

async fn create(app: &TestApp, body: Value) -> Value {
    app.post(&tokens(app), body).await.ok()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("no `{field}` in {v}"))
}

fn time(v: &Value, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(str_of(v, field)).unwrap().with_timezone(&Utc)
}

fn authenticate(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Principal, ServiceAuthError> {
    app.state.read(|m| authenticate_service_token(m, client_id, secret, now))
}

#[actix_web::test]
async fn the_secret_is_shown_once_and_stored_only_as_a_hash() {
    let app = TestApp::new().await;
    let before = Utc::now();
    let created = create(&app, json!({"name": "CI deploys"})).await;
    let id = str_of(&created, "id").to_owned();
    let client_id = str_of(&created, "client_id").to_owned();
    let secret = str_of(&created, "client_secret").to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert!(client_id.ends_with(".access") && client_id.len() == 39, "{client_id}");
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["name"], "CI deploys");
    assert_eq!(created["duration"], "8760h");
    let expires_at = time(&created, "expires_at");
    assert!(expires_at >= before + TimeDelta::hours(8760));
    assert!(expires_at <= Utc::now() + TimeDelta::hours(8760));
    assert!(created["last_seen_at"].is_null());
    assert_eq!(created["created_at"], created["updated_at"]);

    let read = app.get(&token_path(&app, &id)).await;
    assert!(!read.text.contains(&secret));
    let read = read.ok();
    assert!(read.get("client_secret").is_none(), "{read}");
    assert_eq!(read["client_id"], client_id.as_str());
    let list = app.get(&tokens(&app)).await;
    assert!(!list.text.contains(&secret));
    assert_eq!(list.ok().as_array().unwrap().len(), 1);

    let audit = app.get(&app.api("/audit_logs?resource.type=service_token")).await;
    assert!(!audit.text.contains(&secret));
    let entries = audit.ok();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["resource"]["type"], "service_token");
    assert_eq!(entries[0]["resource"]["id"], id.as_str());
    assert_eq!(entries[0]["action"]["type"], "create");

    for event in app.events().await {
        let json = serde_json::to_string(&event.event).unwrap();
        assert!(!json.contains(&secret), "the log holds the secret: {json}");
    }
    let principal = authenticate(&app, &client_id, &secret, Utc::now()).unwrap();
    assert_eq!(principal, Principal::ServiceToken { id, name: "CI deploys".into(), client_id });
}

/// `Actor::ServiceToken` names a token by its id, as the admin API and the policies do, not by
/// the client id it sends: what a portal records for a call through it.
#[actix_web::test]
async fn a_call_through_a_portal_is_recorded_as_the_token_id() {
    let live = Live::start(Backend::Sqlite).await.unwrap();
    assert_ne!(live.token_id, live.client_id());
    let client = live.mcp_client().await;
    assert_eq!(echo(&client, "who").await.unwrap(), "who");
    client.cancel().await.unwrap();

    let calls = live.state.app.log.read_stream(&format!("calls-{PORTAL_ID}"), 0, 10).await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].actor, Actor::ServiceToken { id: live.token_id.clone() });
    let Event::PortalRequestHandled(call) = &calls[0].event else {
        panic!("not a call: {:?}", calls[0].event)
    };
    assert_eq!(call.user_id, live.token_id);
    assert_eq!(call.user_email, None);
}

#[actix_web::test]
async fn list_read_update_delete() {
    let app = TestApp::new().await;
    let a = create(&app, json!({"name": "Alpha", "duration": "forever"})).await;
    let b = create(&app, json!({"name": "Beta", "duration": "30m"})).await;
    let c = create(&app, json!({"name": "Gamma"})).await;
    assert!(a["expires_at"].is_null());
    assert!(time(&b, "expires_at") - time(&b, "created_at") <= TimeDelta::minutes(30));

    let page = app.get(&format!("{}?per_page=2&page=2", tokens(&app))).await;
    assert_eq!(page.body["result_info"]["total_count"], 3);
    assert_eq!(page.body["result_info"]["total_pages"], 2);
    assert_eq!(page.ok()[0]["id"], c["id"]);
    let found = app.get(&format!("{}?search=bet", tokens(&app))).await.ok();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], b["id"]);

    let b_path = token_path(&app, str_of(&b, "id"));
    let renamed = app.put(&b_path, json!({"name": "Beta 2"})).await.ok();
    assert_eq!(renamed["name"], "Beta 2");
    assert_eq!(renamed["duration"], "30m");
    assert_eq!(renamed["expires_at"], b["expires_at"], "same duration: same expiry");
    assert!(time(&renamed, "updated_at") > time(&renamed, "created_at"));
    let longer = app.put(&b_path, json!({"duration": "2h"})).await.ok();
    assert_eq!(longer["name"], "Beta 2");
    assert!(time(&longer, "expires_at") > time(&b, "expires_at") + TimeDelta::minutes(60));
    let forever = app.put(&b_path, json!({"duration": "forever"})).await.ok();
    assert!(forever["expires_at"].is_null());

    let deleted = app.delete(&b_path).await.ok();
    assert_eq!(deleted["id"], b["id"]);
    assert_eq!(deleted["name"], "Beta 2");
    app.get(&b_path).await.error(StatusCode::NOT_FOUND);
    app.delete(&b_path).await.error(StatusCode::NOT_FOUND);
    app.put(&b_path, json!({"name": "x"})).await.error(StatusCode::NOT_FOUND);
    app.post(&format!("{b_path}/rotate"), json!({})).await.error(StatusCode::NOT_FOUND);
    app.post(&format!("{b_path}/refresh"), json!({})).await.error(StatusCode::NOT_FOUND);
    assert_eq!(app.get(&tokens(&app)).await.ok().as_array().unwrap().len(), 2);
    let missing = token_path(&app, "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    app.get(&missing).await.error(StatusCode::NOT_FOUND);

    let audit = app.get(&app.api("/audit_logs?resource.type=service_token")).await.ok();
    let actions: Vec<&str> =
        audit.as_array().unwrap().iter().map(|e| e["action"]["type"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "create").count(), 3);
    assert_eq!(actions.iter().filter(|a| **a == "update").count(), 3);
    assert_eq!(actions.iter().filter(|a| **a == "delete").count(), 1);
}

#[actix_web::test]
async fn rotate_retires_the_old_secret() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"name": "CI"})).await;
    let (client_id, old) = (str_of(&created, "client_id"), str_of(&created, "client_secret"));
    let path = token_path(&app, str_of(&created, "id"));
    // Cloudflare's SDKs send no body; `{}` is accepted too.
    let rotated = app
        .send(
            TestRequest::default()
                .method(Method::POST)
                .uri(&format!("{path}/rotate"))
                .insert_header(("Authorization", format!("Bearer {}", app.token))),
        )
        .await;
    assert!(!rotated.text.contains(old));
    let rotated = rotated.ok();
    let new = str_of(&rotated, "client_secret");
    assert_ne!(new, old);
    assert_eq!(rotated["client_id"], client_id);
    let now = Utc::now();
    assert_eq!(
        authenticate(&app, client_id, old, now),
        Err(ServiceAuthError::RotatedSecret { token_id: str_of(&created, "id").into() })
    );
    assert!(authenticate(&app, client_id, new, now).is_ok());
    assert!(app.get(&path).await.ok().get("client_secret").is_none());
    let again = app.post(&format!("{path}/rotate"), json!({})).await.ok();
    assert!(authenticate(&app, client_id, new, now).is_err());
    assert!(authenticate(&app, client_id, str_of(&again, "client_secret"), now).is_ok());

    for secret in [old, new, str_of(&again, "client_secret")] {
        for event in app.events().await {
            assert!(!serde_json::to_string(&event.event).unwrap().contains(secret));
        }
        let audit = app.get(&app.api("/audit_logs?resource.type=service_token")).await;
        assert!(!audit.text.contains(secret));
    }
}

#[actix_web::test]
async fn refresh_extends_the_life_by_the_duration() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"name": "CI", "duration": "1m"})).await;
    let (client_id, secret) = (str_of(&created, "client_id"), str_of(&created, "client_secret"));
    let first = time(&created, "expires_at");
    // The clock is injected: a minute later the token no longer authenticates.
    let later = first + TimeDelta::seconds(1);
    assert!(matches!(
        authenticate(&app, client_id, secret, later),
        Err(ServiceAuthError::Expired { .. })
    ));
    let refreshed = app
        .post(&format!("{}/refresh", token_path(&app, str_of(&created, "id"))), json!({}))
        .await
        .ok();
    let second = time(&refreshed, "expires_at");
    assert!(second >= first, "{first} -> {second}");
    assert!(second - time(&refreshed, "updated_at") <= TimeDelta::minutes(1));
    assert_eq!(refreshed["duration"], "1m");
    assert!(refreshed.get("client_secret").is_none());
    assert!(authenticate(&app, client_id, secret, second - TimeDelta::seconds(1)).is_ok());
}

/// A token whose `expires_at` is already past, written through the domain's own rules.
#[actix_web::test]
async fn an_expired_token_does_not_authenticate_until_refreshed() {
    let app = TestApp::new().await;
    let id = "0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let client_id = "4d4ea9a30cb4d4d5fc8f77e8a4c21d0c.access";
    let secret = "5".repeat(64);
    let events = service_token::decide(
        &ServiceTokenState::default(),
        CreateServiceToken {
            token_id: id.into(),
            client_id: client_id.into(),
            name: "Old".into(),
            secret_hash: portico_app::api_tokens::hash(&secret),
            duration: "1h".into(),
            expires_at: Some(Utc::now() - TimeDelta::hours(2)),
        }
        .into(),
    )
    .unwrap();
    // Arranged straight in the log: no command creates a token that is already expired.
    let events = events.into_iter().map(portico_core::NewEvent::new).collect();
    let metadata = portico_core::EventMetadata::new(Actor::system("test"));
    let stream = service_token_stream(id);
    let log = &app.state.app.log;
    log.append(&stream, portico_core::ExpectedVersion::NoStream, events, &metadata).await.unwrap();
    app.caught_up().await;
    assert!(matches!(
        authenticate(&app, client_id, &secret, Utc::now()),
        Err(ServiceAuthError::Expired { .. })
    ));
    let answer = whoami(&app, Some(client_id), Some(&secret)).await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
    app.post(&format!("{}/refresh", token_path(&app, id)), json!({})).await.ok();
    assert!(authenticate(&app, client_id, &secret, Utc::now()).is_ok());
}

/// Calls a route that authenticates its service token as the MCP endpoint does, with these
/// headers.
async fn whoami(
    app: &TestApp,
    client_id: Option<&str>,
    secret: Option<&str>,
) -> (StatusCode, Value) {
    let service = actix_web::test::init_service(
        App::new().app_data(web::Data::new(app.state.clone())).route(
            "/whoami",
            web::get().to(|req: HttpRequest, state: web::Data<AppState>| async move {
                match state.read(|m| authenticate_service_request(m, &req, Utc::now()))? {
                    Principal::ServiceToken { id, name, client_id } => Ok::<_, ApiError>(
                        HttpResponse::Ok()
                            .json(json!({"id": id, "name": name, "client_id": client_id})),
                    ),
                    other => panic!("a service token authenticated as {other:?}"),
                }
            }),
        ),
    )
    .await;
    let mut req = TestRequest::get().uri("/whoami");
    if let Some(client_id) = client_id {
        req = req.insert_header((CLIENT_ID_HEADER, client_id));
    }
    if let Some(secret) = secret {
        req = req.insert_header((CLIENT_SECRET_HEADER, secret));
    }
    let response = actix_web::test::call_service(&service, req.to_request()).await;
    let status = response.status();
    let body: Value = actix_web::test::read_body_json(response).await;
    (status, body)
}

#[actix_web::test]
async fn service_token_authentication_refuses_with_one_message() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"name": "CI"})).await;
    let (client_id, secret) = (str_of(&created, "client_id"), str_of(&created, "client_secret"));
    let (status, body) = whoami(&app, Some(client_id), Some(secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": created["id"], "name": "CI", "client_id": client_id}));
    // Surrounding whitespace in the header values is ignored.
    let (status, _) = whoami(&app, Some(&format!(" {client_id} ")), Some(secret)).await;
    assert_eq!(status, StatusCode::OK);

    let wrong = "0".repeat(64);
    let unknown = "ffffffffffffffffffffffffffffffff.access";
    let cases: Vec<(Option<&str>, Option<&str>)> = vec![
        (None, None),
        (Some(client_id), None),
        (None, Some(secret)),
        (Some(client_id), Some(&wrong)),
        (Some(client_id), Some("")),
        (Some(unknown), Some(secret)),
        (Some(""), Some(secret)),
        (Some(secret), Some(client_id)),
    ];
    for (id, s) in cases {
        let (status, body) = whoami(&app, id, s).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id:?} {s:?}: {body}");
        assert_eq!(body["errors"][0]["message"], GENERIC_MESSAGE, "{body}");
        assert_eq!(body["success"], false);
    }
    assert!(matches!(
        authenticate(&app, client_id, &wrong, Utc::now()),
        Err(ServiceAuthError::WrongSecret { .. })
    ));
    assert!(matches!(
        authenticate(&app, unknown, secret, Utc::now()),
        Err(ServiceAuthError::UnknownClient { .. })
    ));

    app.delete(&token_path(&app, str_of(&created, "id"))).await.ok();
    let (status, body) = whoami(&app, Some(client_id), Some(secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["message"], GENERIC_MESSAGE);
    assert!(matches!(
        authenticate(&app, client_id, secret, Utc::now()),
        Err(ServiceAuthError::Deleted { .. })
    ));
}

/// Each case: method, path (relative to the token), body, the JSON pointer of the error (or
/// `None` for body-level errors), and a phrase of the message.
#[actix_web::test]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"name": "CI"})).await;
    let id = str_of(&created, "id").to_owned();
    let before_events = app.events().await.len();
    let long = "x".repeat(256);
    let cases: Vec<(Method, String, Value, Option<&str>, &str)> = vec![
        (Method::POST, String::new(), json!({}), Some("/name"), "is required"),
        (Method::POST, String::new(), json!({"name": ""}), Some("/name"), "must not be empty"),
        (Method::POST, String::new(), json!({"name": "   "}), Some("/name"), "must not be empty"),
        (Method::POST, String::new(), json!({"name": long}), Some("/name"), "longer than 255"),
        (Method::POST, String::new(), json!({"name": "a\u{1}b"}), Some("/name"), "control"),
        (Method::POST, String::new(), json!({"name": 7}), Some("/name"), "invalid type"),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": "1d"}),
            Some("/duration"),
            "not a duration",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": "10s"}),
            Some("/duration"),
            "shorter than 1 minute",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": "876601h"}),
            Some("/duration"),
            "longer than 100 years",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": "8760"}),
            Some("/duration"),
            "without a unit",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": ""}),
            Some("/duration"),
            "is empty",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "duration": 5}),
            Some("/duration"),
            "invalid type",
        ),
        (
            Method::POST,
            String::new(),
            json!({"name": "x", "client_secret": "mine"}),
            Some("/client_secret"),
            "unknown field `client_secret`",
        ),
        (Method::POST, String::new(), json!([1]), None, "expected a JSON object"),
        (Method::PUT, format!("/{id}"), json!({"name": ""}), Some("/name"), "must not be empty"),
        (
            Method::PUT,
            format!("/{id}"),
            json!({"duration": "1y"}),
            Some("/duration"),
            "not a duration",
        ),
        (Method::PUT, format!("/{id}"), json!({"id": "x"}), Some("/id"), "unknown field `id`"),
        (
            Method::POST,
            format!("/{id}/rotate"),
            json!({"previous_client_secret_expires_at": "2030-01-01T00:00:00Z"}),
            Some("/previous_client_secret_expires_at"),
            "unknown field",
        ),
        (
            Method::POST,
            format!("/{id}/refresh"),
            json!({"duration": "1h"}),
            Some("/duration"),
            "unknown field",
        ),
        (
            Method::GET,
            "/not-a-uuid".to_owned(),
            Value::Null,
            Some("/service_token"),
            "not a lowercase UUID",
        ),
        (
            Method::PUT,
            "/not-a-uuid".to_owned(),
            json!({"name": "x"}),
            Some("/service_token"),
            "not a lowercase UUID",
        ),
        (
            Method::DELETE,
            format!("/{}", id.to_uppercase()),
            Value::Null,
            Some("/service_token"),
            "not a lowercase UUID",
        ),
        (
            Method::POST,
            "/not-a-uuid/rotate".to_owned(),
            json!({}),
            Some("/service_token"),
            "not a lowercase UUID",
        ),
    ];
    for (method, suffix, body, pointer, phrase) in cases {
        let path = format!("{}{suffix}", tokens(&app));
        let body = (!body.is_null()).then_some(body);
        let answer = app.request(method.clone(), &path, Some(&app.token), body.clone()).await;
        let label = format!("{method} {suffix} {body:?}");
        assert_eq!(
            answer.body["errors"][0]["source"]["pointer"].as_str(),
            pointer,
            "{label}: {}",
            answer.text
        );
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(phrase), "{label}: {message}");
    }
    let malformed = app
        .send(
            TestRequest::default()
                .method(Method::POST)
                .uri(&format!("{}/rotate", token_path(&app, &id)))
                .insert_header(("Authorization", format!("Bearer {}", app.token)))
                .set_payload("not json"),
        )
        .await;
    malformed.error(StatusCode::BAD_REQUEST);
    app.get(&format!("{}?per_page=0", tokens(&app))).await.error(StatusCode::BAD_REQUEST);
    app.get(&format!("{}?name=x", tokens(&app))).await.error(StatusCode::BAD_REQUEST);
    assert_eq!(app.events().await.len(), before_events, "a refused request changed the log");
    let after = app.get(&token_path(&app, &id)).await.ok();
    assert_eq!(after["name"], "CI");
    assert_eq!(after["updated_at"], created["updated_at"]);
}

#[actix_web::test]
async fn a_read_token_may_read_but_not_write() {
    let app = TestApp::new().await;
    let created = create(&app, json!({"name": "CI"})).await;
    let path = token_path(&app, str_of(&created, "id"));
    let reader = app.create_token("reader", TokenScope::Read).await;
    let before = app.events().await.len();
    app.get_as(&tokens(&app), Some(&reader)).await.ok();
    let read = app.get_as(&path, Some(&reader)).await.ok();
    assert!(read.get("client_secret").is_none());
    let writes = [
        (Method::POST, tokens(&app), Some(json!({"name": "x"}))),
        (Method::PUT, path.clone(), Some(json!({"name": "x"}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate"), None),
        (Method::POST, format!("{path}/refresh"), None),
    ];
    for (method, uri, body) in writes {
        let answer = app.request(method.clone(), &uri, Some(&reader), body).await;
        assert!(!answer.text.contains("client_secret"), "{method} {uri}: {}", answer.text);
        answer.error(StatusCode::FORBIDDEN);
    }
    app.get_as(&tokens(&app), None).await.error(StatusCode::UNAUTHORIZED);
    let other_account =
        "/client/v4/accounts/ffffffffffffffffffffffffffffffff/access/service_tokens";
    app.get(other_account).await.error(StatusCode::NOT_FOUND);
    assert_eq!(app.events().await.len(), before);
    // The admin API's bearer tokens and the service tokens are separate: neither opens the
    // other's door.
    let secret = str_of(&created, "client_secret");
    app.get_as(&tokens(&app), Some(secret)).await.error(StatusCode::UNAUTHORIZED);
}
