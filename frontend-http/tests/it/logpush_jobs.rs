//! `/accounts/{account_id}/logpush/...`: Logpush jobs created, read, listed, updated and
//! deleted; destination secrets masked in every answer, kept when sent back masked, and absent
//! from the log; every rule a 400 naming the field that records nothing; numeric ids unique
//! under concurrent creates; the dataset's fields; the destination checks; the audit trail.

use actix_web::http::{Method, StatusCode};
use portico_core::domain::account::TokenScope;
use portico_core::domain::logpush_job::LogpushJobId;
use serde_json::{Value, json};

use crate::support::{Answer, TestApp};

const SECRET: &str = "s3-secret-9d41c7a2e06b";
const KEY_ID: &str = "AKIA-logpush-5f2e";
const TOKEN: &str = "Splunk 7c1f0e9a-hec-token";

fn jobs(app: &TestApp) -> String {
    app.api("/logpush/jobs")
}

fn job(app: &TestApp, id: &Value) -> String {
    format!("{}/{id}", jobs(app))
}

fn s3_conf() -> String {
    format!(
        "s3://mcp-logs/portico/{{DATE}}?region=us-east-1&endpoint=http://127.0.0.1:9000\
         &access-key-id={KEY_ID}&secret-access-key={SECRET}"
    )
}

const S3_MASKED: &str = "s3://mcp-logs/portico/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000\
                         &access-key-id=**********&secret-access-key=**********";

fn body() -> Value {
    json!({"dataset": "mcp_portal_logs", "destination_conf": s3_conf(), "name": "archive"})
}

/// What a refused request must leave unchanged: the log, and the jobs as listed.
async fn snapshot(app: &TestApp) -> (usize, Value) {
    (app.events().await.len(), app.get(&jobs(app)).await.ok())
}

/// Asserts a 400 whose error points at `pointer` and whose message contains `says`.
#[track_caller]
fn refused(answer: Answer, pointer: &str, says: &str) -> String {
    let text = answer.text.clone();
    let message = answer.error(StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["errors"][0]["source"]["pointer"], pointer, "{text}");
    assert!(message.contains(says), "`{says}` not in: {message}");
    assert!(!text.contains(SECRET) && !text.contains(KEY_ID), "{text}");
    message
}

#[actix_web::test]
async fn a_job_is_created_read_listed_updated_and_deleted() {
    let app = TestApp::new().await;
    let created = app.post(&jobs(&app), body()).await.ok();
    assert_eq!(
        created,
        json!({
            "id": 1, "dataset": "mcp_portal_logs", "destination_conf": S3_MASKED,
            "enabled": false, "name": "archive", "filter": null, "kind": "",
            "output_options": null, "logpull_options": null, "max_upload_bytes": null,
            "max_upload_records": null, "max_upload_interval_seconds": null, "frequency": null,
            "last_complete": null, "last_error": null, "error_message": null,
        })
    );
    let id = &created["id"];
    assert_eq!(app.get(&job(&app, id)).await.ok(), created);
    assert_eq!(app.get(&jobs(&app)).await.ok(), json!([created.clone()]));
    let of_dataset = app.get(&app.api("/logpush/datasets/mcp_portal_logs/jobs")).await.ok();
    assert_eq!(of_dataset, json!([created.clone()]));

    let filter = r#"{"where":{"and":[{"key":"Success","operator":"eq","value":false}]}}"#;
    let updated = app
        .put(
            &job(&app, id),
            json!({
                "enabled": true, "filter": filter, "name": null,
                "output_options": {"output_type": "csv", "field_names": ["Datetime", "ToolCallName"]},
                "max_upload_bytes": 5_000_000, "max_upload_records": 1000,
                "max_upload_interval_seconds": 30, "frequency": "low", "kind": "",
            }),
        )
        .await
        .ok();
    assert_eq!(updated["enabled"], true);
    assert_eq!(updated["filter"], filter);
    assert_eq!(updated["name"], Value::Null);
    assert_eq!(updated["output_options"]["output_type"], "csv");
    assert_eq!(updated["max_upload_interval_seconds"], 30);
    assert_eq!(updated["destination_conf"], S3_MASKED, "an update keeps what it does not send");

    let deleted = app.delete(&job(&app, id)).await.ok();
    assert_eq!(deleted, json!({"id": 1}));
    app.get(&job(&app, id)).await.error(StatusCode::NOT_FOUND);
    app.delete(&job(&app, id)).await.error(StatusCode::NOT_FOUND);
    assert_eq!(app.get(&jobs(&app)).await.ok(), json!([]));
    // A new job never reuses an id.
    assert_eq!(app.post(&jobs(&app), body()).await.ok()["id"], 2);
}

#[actix_web::test]
async fn destination_secrets_are_masked_kept_when_sent_back_and_replaced_when_sent() {
    let app = TestApp::new().await;
    let created = app.post(&jobs(&app), body()).await;
    assert!(!created.text.contains(SECRET) && !created.text.contains(KEY_ID), "{}", created.text);
    let id = created.ok()["id"].as_u64().unwrap();
    let secrets = |app: &TestApp| {
        app.state.app.read(|m| m.logpush_jobs.get(LogpushJobId(id)).unwrap().destination_secrets())
    };
    let first = secrets(&app).unwrap();
    let stored = app.state.app.logpush_destination_secrets(&first).await.unwrap();
    assert_eq!(stored["secret-access-key"].expose_secret(), SECRET);
    assert_eq!(stored["access-key-id"].expose_secret(), KEY_ID);

    // The masked destination sent back keeps the secrets, and records nothing new.
    let before = app.events().await.len();
    let kept = app.put(&job(&app, &json!(id)), json!({"destination_conf": S3_MASKED})).await.ok();
    assert_eq!(kept["destination_conf"], S3_MASKED);
    assert_eq!(secrets(&app), Some(first.clone()));
    assert_eq!(app.events().await.len(), before);

    // One new value: a new version holding it and the kept one; the old version goes.
    let rotated = S3_MASKED.replace("secret-access-key=**********", "secret-access-key=rotated-1");
    app.put(&job(&app, &json!(id)), json!({"destination_conf": rotated})).await.ok();
    let second = secrets(&app).unwrap();
    assert_eq!(second.version, 2);
    let stored = app.state.app.logpush_destination_secrets(&second).await.unwrap();
    assert_eq!(stored["secret-access-key"].expose_secret(), "rotated-1");
    assert_eq!(stored["access-key-id"].expose_secret(), KEY_ID);
    assert!(app.state.app.vault.get(&first).await.is_err(), "the old version is removed");

    // A masked value the job has no stored value for is refused.
    let https = "https://siem.example.com/in?header_Authorization=**********";
    let before = snapshot(&app).await;
    let answer = app.put(&job(&app, &json!(id)), json!({"destination_conf": https})).await;
    refused(answer, "/destination_conf", "masked value");
    assert_eq!(snapshot(&app).await, before);

    // Deleting the job removes its secrets.
    app.delete(&job(&app, &json!(id))).await.ok();
    assert!(app.state.app.vault.get(&second).await.is_err());
}

#[actix_web::test]
async fn no_secret_is_in_any_event_nor_in_the_log_database() {
    let app = TestApp::new().await;
    app.post(&jobs(&app), body()).await.ok();
    let splunk = format!(
        "splunk://splunk.example.com:8088/services/collector/raw?channel=0e1c&header_Authorization={}",
        TOKEN.replace(' ', "%20")
    );
    let answer = app
        .post(&jobs(&app), json!({"dataset": "mcp_portal_logs", "destination_conf": splunk}))
        .await;
    assert!(!answer.text.contains("7c1f0e9a"), "{}", answer.text);
    answer.ok();
    // A refused write does not echo the secret either.
    let mut bad = body();
    bad["max_upload_records"] = json!(5);
    refused(app.post(&jobs(&app), bad).await, "/max_upload_records", "out of range");

    let events = app.events().await;
    assert_eq!(events.iter().filter(|e| e.event.event_type() == "LogpushJobCreated").count(), 2);
    for event in &events {
        let json = serde_json::to_string(&event.event).unwrap();
        for secret in [SECRET, KEY_ID, "7c1f0e9a"] {
            assert!(!json.contains(secret), "an event holds a secret: {json}");
        }
    }
    let mut raw = Vec::new();
    for name in ["portico.db", "portico.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data_dir().join(name)) {
            raw.extend(bytes);
        }
    }
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"splunk.example.com"), "no job event in the log database");
    for secret in [SECRET, KEY_ID, "7c1f0e9a"] {
        assert!(!holds(secret.as_bytes()), "the log database holds `{secret}`");
    }
    let audit = app.get(&app.api("/audit_logs?resource.type=logpush_job")).await;
    for secret in [SECRET, KEY_ID, "7c1f0e9a"] {
        assert!(!audit.text.contains(secret), "{}", audit.text);
    }
}

#[actix_web::test]
async fn every_invalid_field_is_a_400_naming_it_that_records_nothing() {
    let app = TestApp::new().await;
    let created = app.post(&jobs(&app), body()).await.ok();
    let id = created["id"].clone();
    let set = |field: &str, value: Value| {
        let mut b = body();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = body();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("dataset"), "/dataset", "`mcp_portal_logs`"),
        (
            set("dataset", json!("http_requests")),
            "/dataset",
            "the datasets are `mcp_portal_logs` and `audit_logs`",
        ),
        (
            set("output_options", json!({"field_names": ["Datetime", "ActorEmail"]})),
            "/output_options/field_names/1",
            "the fields of mcp_portal_logs are",
        ),
        (without("destination_conf"), "/destination_conf", "is required"),
        (set("destination_conf", json!("gs://bucket/x")), "/destination_conf", "`gs`"),
        (set("destination_conf", json!("ftp://host/x")), "/destination_conf", "`ftp`"),
        (set("destination_conf", json!("s3://mcp-logs/x")), "/destination_conf", "region"),
        (
            set("destination_conf", json!("s3://mcp-logs/x?region=us-east-1")),
            "/ownership_challenge",
            "is required for an AWS S3 destination",
        ),
        (set("name", json!("n".repeat(513))), "/name", "512"),
        (
            set("filter", json!(r#"{"where":{"key":"Nope","operator":"eq","value":1}}"#)),
            "/filter",
            "Nope",
        ),
        (set("filter", json!("not json")), "/filter", "JSON"),
        (set("kind", json!("instant")), "/kind", "edge"),
        (
            set("output_options", json!({"field_names": ["Datetime", "Nope"]})),
            "/output_options/field_names/1",
            "Nope",
        ),
        (set("output_options", json!({"colour": "red"})), "/output_options/colour", "colour"),
        (set("max_upload_bytes", json!(1)), "/max_upload_bytes", "5000000"),
        (set("max_upload_records", json!(999)), "/max_upload_records", "1000"),
        (set("max_upload_interval_seconds", json!(301)), "/max_upload_interval_seconds", "300"),
        (set("max_upload_bytes", json!("big")), "/max_upload_bytes", "invalid type"),
        (set("frequency", json!("daily")), "/frequency", "`high`"),
        (set("logpull_options", json!("fields=ClientIP")), "/logpull_options", "output_options"),
        (set("enabled", json!("yes")), "/enabled", "invalid type"),
    ];
    let before = snapshot(&app).await;
    for (bad, pointer, says) in &cases {
        refused(app.post(&jobs(&app), bad.clone()).await, pointer, says);
    }
    refused(app.put(&job(&app, &id), json!({"kind": "edge"})).await, "/kind", "cannot be changed");
    refused(
        app.put(&job(&app, &id), json!({"dataset": "dns_logs"})).await,
        "/dataset",
        "mcp_portal_logs",
    );
    refused(app.get(&format!("{}/abc", jobs(&app))).await, "/job_id", "`abc`");
    refused(app.put(&format!("{}/-3", jobs(&app)), json!({})).await, "/job_id", "`-3`");
    refused(
        app.get(&app.api("/logpush/datasets/http_requests/fields")).await,
        "/dataset_id",
        "mcp_portal_logs",
    );
    assert_eq!(snapshot(&app).await, before, "a refused request recorded something");
    app.get(&format!("{}/99", jobs(&app))).await.error(StatusCode::NOT_FOUND);
    // The next create still gets the next id: refused creates reserved none.
    assert_eq!(app.post(&jobs(&app), body()).await.ok()["id"], 2);
}

#[actix_web::test]
async fn sixteen_concurrent_creates_get_sixteen_ids() {
    let app = TestApp::new().await;
    let path = jobs(&app);
    let answers = crate::admin_api::futures_join((0..16).map(|i| {
        let mut b = body();
        b["name"] = json!(format!("job-{i}"));
        let (app, path) = (&app, path.clone());
        async move { app.post(&path, b).await }
    }))
    .await;
    let mut ids: Vec<u64> = answers.into_iter().map(|a| a.ok()["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=16).collect::<Vec<u64>>());
    assert_eq!(app.get(&path).await.ok().as_array().unwrap().len(), 16);
}

#[actix_web::test]
async fn each_dataset_lists_its_fields_and_portico_s_own() {
    let app = TestApp::new().await;
    let fields = app.get(&app.api("/logpush/datasets/mcp_portal_logs/fields")).await.ok();
    let fields = fields.as_object().unwrap();
    // The 19 fields of the product's dataset, and Portico's 4.
    assert_eq!(fields.len(), 23);
    assert!(fields["ToolCallName"].as_str().unwrap().contains("tool name"));
    assert!(fields.contains_key("ClientIP") && fields.contains_key("ServerResponseDurationMs"));
    assert!(fields["Status"].as_str().unwrap().starts_with("Portico: "));
    let audit = app.get(&app.api("/logpush/datasets/audit_logs/fields")).await.ok();
    let audit = audit.as_object().unwrap();
    assert_eq!(audit.len(), 18);
    assert!(audit.contains_key("ActorEmail") && audit.contains_key("NewValue"));
    assert!(!audit.contains_key("ClientIP"));
}

#[actix_web::test]
async fn an_audit_logs_job_takes_the_fields_of_its_dataset() {
    let app = TestApp::new().await;
    let audit = |options: Value| json!({"dataset": "audit_logs", "destination_conf": s3_conf(), "output_options": options});
    let created = app
        .post(&jobs(&app), audit(json!({"field_names": ["When", "ActorEmail", "NewValue"]})))
        .await
        .ok();
    assert_eq!(created["dataset"], "audit_logs");
    refused(
        app.post(&jobs(&app), audit(json!({"field_names": ["When", "ToolCallName"]}))).await,
        "/output_options/field_names/1",
        "the fields of audit_logs are",
    );
    let on_values = json!({"dataset": "audit_logs", "destination_conf": s3_conf(),
        "filter": r#"{"where":{"key":"NewValue","operator":"eq","value":null}}"#});
    refused(app.post(&jobs(&app), on_values).await, "/filter", "object field");
    // The dataset of a job does not change.
    refused(
        app.put(&job(&app, &created["id"]), json!({"dataset": "mcp_portal_logs"})).await,
        "/dataset",
        "cannot be changed",
    );
    let listed = app.get(&app.api("/logpush/datasets/audit_logs/jobs")).await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn destinations_are_checked_and_found() {
    let app = TestApp::new().await;
    let validate = app.api("/logpush/validate/destination");
    let valid = app.post(&validate, json!({"destination_conf": s3_conf()})).await.ok();
    assert_eq!(valid, json!({"valid": true, "message": ""}));
    let invalid = app.post(&validate, json!({"destination_conf": "gs://b/x"})).await.ok();
    assert_eq!(invalid["valid"], false);
    assert!(invalid["message"].as_str().unwrap().contains("`gs`"));

    let exists = app.api("/logpush/validate/destination/exists");
    let answer = app.post(&exists, json!({"destination_conf": s3_conf()})).await.ok();
    assert_eq!(answer, json!({"exists": false}));
    app.post(&jobs(&app), body()).await.ok();
    // Compared with secrets masked: other key values still name the same destination.
    let other_keys = s3_conf().replace(SECRET, "another");
    let answer = app.post(&exists, json!({"destination_conf": other_keys})).await.ok();
    assert_eq!(answer, json!({"exists": true}));
}

#[actix_web::test]
async fn job_changes_are_in_the_audit_log() {
    let app = TestApp::new().await;
    let id = app.post(&jobs(&app), body()).await.ok()["id"].clone();
    app.put(&job(&app, &id), json!({"enabled": true})).await.ok();
    app.delete(&job(&app, &id)).await.ok();
    let audit = app.get(&app.api("/audit_logs?resource.type=logpush_job")).await.ok();
    let entries = audit.as_array().unwrap();
    let actions: Vec<&str> =
        entries.iter().map(|e| e["action"]["type"].as_str().unwrap()).collect();
    assert_eq!(actions.len(), 3, "{audit}");
    for action in ["create", "update", "delete"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
    assert!(entries.iter().all(|e| e["resource"]["id"] == "1"), "{audit}");
}

#[actix_web::test]
async fn a_read_token_reads_but_does_not_write() {
    let app = TestApp::new().await;
    let id = app.post(&jobs(&app), body()).await.ok()["id"].clone();
    let read = app.create_token("reader", TokenScope::Read).await;
    assert_eq!(app.get_as(&jobs(&app), Some(&read)).await.ok().as_array().unwrap().len(), 1);
    let before = snapshot(&app).await;
    app.request(Method::POST, &jobs(&app), Some(&read), Some(body()))
        .await
        .error(StatusCode::FORBIDDEN);
    app.request(Method::PUT, &job(&app, &id), Some(&read), Some(json!({"enabled": true})))
        .await
        .error(StatusCode::FORBIDDEN);
    app.request(Method::DELETE, &job(&app, &id), Some(&read), None)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(snapshot(&app).await, before);
    app.get_as(&jobs(&app), None).await.expect(StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn aws_s3_needs_an_ownership_challenge_issued_for_its_destination() {
    let app = TestApp::new().await;
    let aws = "s3://mcp-logs/portico?region=eu-west-1";
    let conf = portico_app::logpush_jobs::DestinationConf::new(aws.to_owned());
    let challenge = app.state.app.issue_ownership_challenge(&conf).await.unwrap();
    let other = portico_app::logpush_jobs::DestinationConf::new(
        "s3://mcp-logs/elsewhere?region=eu-west-1".to_owned(),
    );
    let others = app.state.app.issue_ownership_challenge(&other).await.unwrap();

    let validate = app.api("/logpush/ownership/validate");
    let check =
        |challenge: &str| json!({"destination_conf": aws, "ownership_challenge": challenge});
    assert_eq!(app.post(&validate, check(&challenge)).await.ok(), json!({"valid": true}));
    assert_eq!(app.post(&validate, check(&others)).await.ok(), json!({"valid": false}));
    assert_eq!(app.post(&validate, check("forged.token.x")).await.ok(), json!({"valid": false}));

    let create = |challenge: &str| json!({"dataset": "mcp_portal_logs", "destination_conf": aws, "ownership_challenge": challenge});
    let before = snapshot(&app).await;
    refused(
        app.post(&jobs(&app), create(&others)).await,
        "/ownership_challenge",
        "another destination",
    );
    refused(
        app.post(&jobs(&app), create("forged.token.x")).await,
        "/ownership_challenge",
        "issued",
    );
    assert_eq!(snapshot(&app).await, before);
    let created = app.post(&jobs(&app), create(&challenge)).await;
    assert!(!created.text.contains("ownership_challenge"), "write-only: {}", created.text);
    assert_eq!(created.ok()["destination_conf"], aws);
    // Seven days later the challenge has expired.
    app.state.app.clock.advance(std::time::Duration::from_secs(7 * 24 * 3600));
    assert_eq!(app.post(&validate, check(&challenge)).await.ok(), json!({"valid": false}));
}
