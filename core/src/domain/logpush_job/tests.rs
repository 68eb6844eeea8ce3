//! Given/when/then tests of the Logpush job rules.

use serde_json::json;

use super::*;
use crate::domain::testing::{self, Given};

const ID: LogpushJobId = LogpushJobId(7);
const S3: &str = "s3://logs-bucket/mcp/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000\
                  &access-key-id=**********&secret-access-key=**********";
const HTTPS: &str = "https://siem.example.com/ingest?tag=mcp";
const AWS: &str = "s3://logs-bucket/mcp?region=us-east-1";

fn given(events: impl IntoIterator<Item = Event>) -> Given<LogpushJobState> {
    testing::given(events)
}

fn given_no_events() -> Given<LogpushJobState> {
    testing::given_no_events()
}

fn destination(conf: &str, secrets_version: Option<u32>) -> DestinationInput {
    DestinationInput { conf: conf.into(), secrets_version }
}

fn create_patch() -> LogpushJobPatch {
    LogpushJobPatch {
        dataset: Some(DATASET.into()),
        destination: Some(destination(S3, Some(1))),
        ..LogpushJobPatch::default()
    }
}

fn create(patch: LogpushJobPatch) -> CreateLogpushJob {
    CreateLogpushJob { job_id: ID, patch }
}

fn update(patch: LogpushJobPatch) -> UpdateLogpushJob {
    UpdateLogpushJob { job_id: ID, patch }
}

fn settings() -> LogpushJobSettings {
    LogpushJobSettings {
        name: None,
        destination_conf: S3.into(),
        destination_secrets_version: Some(1),
        enabled: false,
        filter: None,
        output_options: None,
        max_upload_bytes: None,
        max_upload_records: None,
        max_upload_interval_seconds: None,
        frequency: None,
    }
}

fn created() -> Event {
    Event::LogpushJobCreated(LogpushJobCreated {
        job_id: ID,
        dataset: DATASET.into(),
        kind: String::new(),
        settings: settings(),
    })
}

#[test]
fn a_job_is_created_disabled_with_the_masked_destination_and_its_secrets_version() {
    given_no_events().when(create(create_patch())).then_expect([created()]);
}

#[test]
fn every_field_is_recorded_as_sent() {
    let patch = LogpushJobPatch {
        kind: Some("edge".into()),
        name: Some(Some("siem".into())),
        enabled: Some(true),
        filter: Some(Some(r#"{"where":{"key":"Success","operator":"eq","value":false}}"#.into())),
        output_options: Some(Some(json!({"output_type": "csv"}))),
        max_upload_bytes: Some(Some(5_000_000)),
        max_upload_records: Some(Some(0)),
        max_upload_interval_seconds: Some(Some(300)),
        frequency: Some(Some("high".into())),
        destination: Some(destination(HTTPS, None)),
        ..create_patch()
    };
    let events = given_no_events().when(create(patch)).then_accept();
    let Event::LogpushJobCreated(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.kind, "edge");
    assert_eq!(e.settings.name.as_deref(), Some("siem"));
    assert!(e.settings.enabled);
    assert_eq!(e.settings.output_options, Some(json!({"output_type": "csv"})));
    assert_eq!(e.settings.max_upload_records, Some(0));
    assert_eq!(e.settings.destination_secrets_version, None);
}

#[test]
fn each_invalid_field_is_named() {
    let cases: Vec<(&str, LogpushJobPatch)> = vec![
        ("dataset", LogpushJobPatch { dataset: None, ..create_patch() }),
        ("dataset", LogpushJobPatch { dataset: Some("http_requests".into()), ..create_patch() }),
        ("destination_conf", LogpushJobPatch { destination: None, ..create_patch() }),
        (
            "destination_conf",
            LogpushJobPatch { destination: Some(destination("gs://b", None)), ..create_patch() },
        ),
        ("kind", LogpushJobPatch { kind: Some("instant".into()), ..create_patch() }),
        ("name", LogpushJobPatch { name: Some(Some("x".repeat(513))), ..create_patch() }),
        ("filter", LogpushJobPatch { filter: Some(Some("bad".into())), ..create_patch() }),
        (
            "output_options.field_names[0]",
            LogpushJobPatch { output_options: Some(Some(json!("bad"))), ..create_patch() },
        ),
        (
            "max_upload_bytes",
            LogpushJobPatch { max_upload_bytes: Some(Some(4_999_999)), ..create_patch() },
        ),
        (
            "max_upload_records",
            LogpushJobPatch { max_upload_records: Some(Some(1_000_001)), ..create_patch() },
        ),
        (
            "max_upload_interval_seconds",
            LogpushJobPatch { max_upload_interval_seconds: Some(Some(29)), ..create_patch() },
        ),
        ("frequency", LogpushJobPatch { frequency: Some(Some("daily".into())), ..create_patch() }),
    ];
    for (field, patch) in cases {
        given_no_events().when(create(patch)).then_expect_invalid(field);
    }
}

#[test]
fn the_dataset_error_lists_the_dataset() {
    let message = given_no_events()
        .when(create(LogpushJobPatch { dataset: Some("dns_logs".into()), ..create_patch() }))
        .then_expect_invalid("dataset");
    assert!(message.contains("`mcp_portal_logs`"), "{message}");
}

#[test]
fn a_destination_with_unmasked_secrets_is_refused() {
    let conf = S3.replace("secret-access-key=**********", "secret-access-key=plain");
    let message = given_no_events()
        .when(create(LogpushJobPatch {
            destination: Some(destination(&conf, Some(1))),
            ..create_patch()
        }))
        .then_expect_invalid("destination_conf");
    assert!(!message.contains("plain"), "{message}");
}

#[test]
fn secrets_need_a_version_and_a_version_needs_secrets() {
    given_no_events()
        .when(create(LogpushJobPatch {
            destination: Some(destination(S3, None)),
            ..create_patch()
        }))
        .then_expect_invalid("destination_conf");
    given_no_events()
        .when(create(LogpushJobPatch {
            destination: Some(destination(HTTPS, Some(1))),
            ..create_patch()
        }))
        .then_expect_invalid("destination_conf");
}

#[test]
fn aws_s3_needs_a_valid_ownership_challenge() {
    let aws = |challenge: Option<&str>| LogpushJobPatch {
        destination: Some(destination(AWS, None)),
        ownership_challenge: challenge.map(Into::into),
        ..create_patch()
    };
    given_no_events().when(create(aws(None))).then_expect_invalid("ownership_challenge");
    given_no_events().when(create(aws(Some("forged")))).then_expect_invalid("ownership_challenge");
    given_no_events().when(create(aws(Some("valid-challenge")))).then_accept();
}

#[test]
fn an_update_changes_only_what_it_names() {
    let events = given([created()])
        .when(update(LogpushJobPatch {
            enabled: Some(true),
            name: Some(Some("renamed".into())),
            ..LogpushJobPatch::default()
        }))
        .then_accept();
    let expected = LogpushJobSettings { enabled: true, name: Some("renamed".into()), ..settings() };
    assert_eq!(
        events,
        [Event::LogpushJobUpdated(LogpushJobUpdated { job_id: ID, settings: expected })]
    );
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    given([created()])
        .when(update(LogpushJobPatch {
            destination: Some(destination(S3, Some(1))),
            enabled: Some(false),
            ..LogpushJobPatch::default()
        }))
        .then_expect([]);
}

#[test]
fn new_secrets_take_a_version_never_used_before() {
    let with_secrets = |version| LogpushJobPatch {
        destination: Some(destination(S3, Some(version))),
        ..LogpushJobPatch::default()
    };
    let to_https = Event::LogpushJobUpdated(LogpushJobUpdated {
        job_id: ID,
        settings: LogpushJobSettings {
            destination_conf: HTTPS.into(),
            destination_secrets_version: None,
            ..settings()
        },
    });
    given([created(), to_https.clone()])
        .when(update(with_secrets(1)))
        .then_expect_invalid("destination_conf");
    given([created(), to_https]).when(update(with_secrets(2))).then_accept();
}

#[test]
fn kind_is_fixed_at_creation_and_dataset_cannot_change() {
    given([created()])
        .when(update(LogpushJobPatch { kind: Some("edge".into()), ..LogpushJobPatch::default() }))
        .then_expect_error(DomainError::Immutable { field: "kind" });
    given([created()])
        .when(update(LogpushJobPatch { kind: Some(String::new()), ..LogpushJobPatch::default() }))
        .then_expect([]);
    given([created()])
        .when(update(LogpushJobPatch {
            dataset: Some("audit_logs".into()),
            ..LogpushJobPatch::default()
        }))
        .then_expect_error(DomainError::Immutable { field: "dataset" });
    given([created()])
        .when(update(LogpushJobPatch {
            dataset: Some("http_requests".into()),
            ..LogpushJobPatch::default()
        }))
        .then_expect_invalid("dataset");
    // Its own dataset, named again, changes nothing.
    given([created()])
        .when(update(LogpushJobPatch {
            dataset: Some("mcp_portal_logs".into()),
            ..LogpushJobPatch::default()
        }))
        .then_expect([]);
}

#[test]
fn a_job_cannot_be_created_twice_nor_changed_after_its_delete() {
    given([created()])
        .when(create(create_patch()))
        .then_expect_error(DomainError::AlreadyExists { kind: "Logpush job", id: "7".into() });
    let deleted = Event::LogpushJobDeleted(LogpushJobDeleted { job_id: ID });
    given([created(), deleted.clone()])
        .when(update(LogpushJobPatch::default()))
        .then_expect_error(DomainError::NotFound { kind: "Logpush job", id: "7".into() });
    given([created(), deleted.clone()])
        .when(DeleteLogpushJob { job_id: ID })
        .then_expect_error(DomainError::NotFound { kind: "Logpush job", id: "7".into() });
    given([created()]).when(DeleteLogpushJob { job_id: ID }).then_expect([deleted]);
}

#[test]
fn deliveries_and_failures_are_folded_into_the_job() {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let failed = given([created()])
        .when(RecordLogpushDelivery { job_id: ID, outcome: Err((at, "503 from S3".into())) })
        .then_accept();
    let delivered = given([created()])
        .when(RecordLogpushDelivery { job_id: ID, outcome: Ok((at, None)) })
        .then_accept();
    let mut state = LogpushJobState::default();
    for event in [created()].iter().chain(&failed) {
        state.apply(event);
    }
    assert_eq!(state.job.as_ref().unwrap().error_message.as_deref(), Some("503 from S3"));
    state.apply(&delivered[0]);
    let job = state.job.unwrap();
    assert_eq!((job.last_complete, job.last_error, job.error_message), (Some(at), Some(at), None));
    assert_eq!(state.stream_version, 3);
}

#[test]
fn a_batch_is_planned_after_the_checkpoint_and_delivered_as_planned() {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let plan = |first, last| PlanLogpushBatch { job_id: ID, first, last };
    let planned = |first, last| {
        Event::LogpushJobBatchPlanned(LogpushJobBatchPlanned { job_id: ID, first, last })
    };
    let batch = |first, last| DeliveredBatch {
        first,
        last,
        records: 3,
        bytes: 100,
        object: Some(format!("logs/{first}-{last}_7.parquet")),
    };
    let delivered = |first, last| {
        Event::LogpushJobDelivered(LogpushJobDelivered {
            job_id: ID,
            last_complete: at,
            batch: Some(batch(first, last)),
        })
    };
    given([created()]).when(plan(10, 20)).then_expect([planned(10, 20)]);
    // Planning the same batch again changes nothing; another batch waits for this one.
    given([created(), planned(10, 20)]).when(plan(10, 20)).then_expect([]);
    let error = given([created(), planned(10, 20)]).when(plan(21, 30)).then_expect_invalid("batch");
    assert!(error.contains("already has batch 10-20 planned"), "{error}");
    // A delivery must be of the planned batch.
    let deliver = |first, last| RecordLogpushDelivery {
        job_id: ID,
        outcome: Ok((at, Some(batch(first, last)))),
    };
    let error =
        given([created(), planned(10, 20)]).when(deliver(10, 25)).then_expect_invalid("batch");
    assert!(error.contains("is not its planned batch"), "{error}");
    given([created(), planned(10, 20)]).when(deliver(10, 20)).then_expect([delivered(10, 20)]);
    // The next batch starts after the checkpoint.
    let history = [created(), planned(10, 20), delivered(10, 20)];
    let error = given(history.clone()).when(plan(15, 30)).then_expect_invalid("batch");
    assert!(error.contains("does not follow its checkpoint 20"), "{error}");
    given(history.clone()).when(plan(21, 30)).then_expect([planned(21, 30)]);
    let mut state = LogpushJobState::default();
    for event in &history {
        state.apply(event);
    }
    let job = state.job.unwrap();
    assert_eq!((job.delivered_through, job.planned), (Some(20), None));
}

#[test]
fn ids_are_handed_out_one_after_the_other() {
    testing::given_no_events::<LogpushJobIds>().when(ReserveLogpushJobId).then_expect([
        Event::LogpushJobIdReserved(LogpushJobIdReserved { job_id: LogpushJobId(1) }),
    ]);
    let reserved =
        |id| Event::LogpushJobIdReserved(LogpushJobIdReserved { job_id: LogpushJobId(id) });
    testing::given::<LogpushJobIds>([reserved(1), reserved(2)])
        .when(ReserveLogpushJobId)
        .then_expect([reserved(3)]);
}

#[test]
fn job_ids_parse_from_paths() {
    assert_eq!(LogpushJobId::parse("job_id", "42").unwrap(), LogpushJobId(42));
    for bad in ["0", "-1", "+1", "abc", "1.5", "99999999999999999999"] {
        assert!(LogpushJobId::parse("job_id", bad).is_err(), "{bad}");
    }
}
