"""Logpush jobs through the official Cloudflare SDK: `client.logpush.jobs`,
`client.logpush.datasets` and `client.logpush.validate`, against the real `portico serve` on
SQLite and PostgreSQL: the jobs' admin API, and that a destination's secrets are masked and never
stored in the clear. Delivery is test_logpush_delivery.py's."""

from __future__ import annotations

import cloudflare
import pytest

from test_errors import assert_names_field

SECRET = "e2e-logpush-secret-3b9f17c4"
KEY_ID = "e2e-logpush-key-id-81d2"
MASKED = "**********"
DESTINATION = (
    "s3://mcp-logs/portico/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000"
    f"&access-key-id={KEY_ID}&secret-access-key={SECRET}"
)
SHOWN = (
    "s3://mcp-logs/portico/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000"
    f"&access-key-id={MASKED}&secret-access-key={MASKED}"
)


@pytest.fixture
def logpush(client):
    return client.logpush


def test_a_job_life_with_its_secrets_masked(portico, logpush, account_id):
    created = logpush.jobs.create(
        account_id=account_id,
        destination_conf=DESTINATION,
        dataset="mcp_portal_logs",
        name="archive",
        output_options={"output_type": "ndjson", "field_names": ["Datetime", "ToolCallName"]},
        max_upload_interval_seconds=60,
    )
    assert isinstance(created.id, int)
    assert created.dataset == "mcp_portal_logs"
    assert created.destination_conf == SHOWN
    assert created.enabled is False
    assert created.output_options.field_names == ["Datetime", "ToolCallName"]
    assert created.max_upload_interval_seconds == 60
    assert created.last_complete is None and created.error_message is None

    assert logpush.jobs.get(created.id, account_id=account_id) == created
    assert [job.id for job in logpush.jobs.list(account_id=account_id)] == [created.id]
    of_dataset = logpush.datasets.jobs.get("mcp_portal_logs", account_id=account_id)
    assert [job.id for job in of_dataset] == [created.id]

    # Sent back as read, the masked destination keeps the stored secrets.
    updated = logpush.jobs.update(
        created.id,
        account_id=account_id,
        destination_conf=created.destination_conf,
        enabled=True,
        filter='{"where":{"key":"Success","operator":"eq","value":false}}',
    )
    assert updated.enabled is True
    assert updated.destination_conf == SHOWN
    assert updated.filter == '{"where":{"key":"Success","operator":"eq","value":false}}'
    assert updated.name == "archive"

    deleted = logpush.jobs.delete(created.id, account_id=account_id)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        logpush.jobs.get(created.id, account_id=account_id)
    assert list(logpush.jobs.list(account_id=account_id)) == []

    # The secrets are in no log line, and (on SQLite) nowhere in the log's database.
    logs = portico.log_tail(10_000)
    assert SECRET not in logs and KEY_ID not in logs
    if portico.database_url is None:
        for name in ("portico.db", "portico.db-wal"):
            path = portico.data_dir / name
            if path.exists():
                raw = path.read_bytes()
                assert SECRET.encode() not in raw and KEY_ID.encode() not in raw, name


def test_each_dataset_lists_its_fields(logpush, account_id):
    fields = logpush.datasets.fields.get("mcp_portal_logs", account_id=account_id)
    # The product's 19, then Portico's own 4.
    assert len(fields) == 23
    assert "ToolCallName" in fields and "ServerResponseDurationMs" in fields
    assert fields["PolicyIDs"].startswith("Portico: ")
    audit = logpush.datasets.fields.get("audit_logs", account_id=account_id)
    assert len(audit) == 18 and "ActorEmail" in audit and "ToolCallName" not in audit
    with pytest.raises(cloudflare.BadRequestError) as err:
        logpush.datasets.fields.get("http_requests", account_id=account_id)
    assert_names_field(err, "dataset_id", "/dataset_id")


def test_invalid_jobs_are_refused_naming_the_field(logpush, account_id):
    cases = [
        ({"dataset": "http_requests"}, "dataset", "/dataset"),
        ({"destination_conf": "gs://bucket/logs"}, "destination_conf", "/destination_conf"),
        ({"max_upload_records": 10}, "max_upload_records", "/max_upload_records"),
        ({"filter": '{"where":{"key":"Nope","operator":"eq","value":1}}'}, "filter", "/filter"),
        ({"output_options": {"field_names": ["Nope"]}}, "output_options.field_names[0]",
         "/output_options/field_names/0"),
    ]
    for changes, field, pointer in cases:
        args = {"destination_conf": DESTINATION, "dataset": "mcp_portal_logs", **changes}
        with pytest.raises(cloudflare.BadRequestError) as err:
            logpush.jobs.create(account_id=account_id, **args)
        assert_names_field(err, field, pointer)
        assert SECRET not in str(err.value.body)
    assert list(logpush.jobs.list(account_id=account_id)) == []


def test_destinations_are_checked(logpush, account_id):
    valid = logpush.validate.destination(account_id=account_id, destination_conf=DESTINATION)
    assert valid.valid is True
    invalid = logpush.validate.destination(account_id=account_id, destination_conf="gs://b/x")
    assert invalid.valid is False and "`gs`" in invalid.message
    exists = logpush.validate.destination_exists(
        account_id=account_id, destination_conf=DESTINATION
    )
    assert exists.exists is False
    logpush.jobs.create(
        account_id=account_id, destination_conf=DESTINATION, dataset="mcp_portal_logs"
    )
    exists = logpush.validate.destination_exists(
        account_id=account_id, destination_conf=DESTINATION
    )
    assert exists.exists is True


def test_aws_s3_needs_an_ownership_challenge(logpush, account_id):
    aws = "s3://mcp-logs/portico?region=eu-west-1"
    checked = logpush.ownership.validate(
        account_id=account_id, destination_conf=aws, ownership_challenge="forged.token.sig"
    )
    assert checked.valid is False
    with pytest.raises(cloudflare.BadRequestError) as err:
        logpush.jobs.create(account_id=account_id, destination_conf=aws, dataset="mcp_portal_logs")
    assert_names_field(err, "ownership_challenge", "/ownership_challenge")
