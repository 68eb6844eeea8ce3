"""Logpush delivery, end to end: jobs created with the official Cloudflare SDK push the calls
of a portal (the official MCP Python SDK calling the Python SDK upstream) to moto's S3 server
(`moto_server`, reached by Portico's AWS SDK through `endpoint=`) and to an HTTPS sink of this
suite (its certificate issued by trustme, trusted by Portico through `SSL_CERT_FILE`). The
objects are read back with boto3 and DuckDB: every call arrives exactly once, through a
destination outage and through `portico serve` killed with SIGKILL at random points.

Portico runs with `--logpush-interval 1` (a batch closes one second after its first record)
and `--logpush-max-retry-wait 2`, so these tests take seconds, not minutes.
"""

from __future__ import annotations

import datetime
import gzip
import http.server
import json
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anyio
import boto3
import cloudflare
import duckdb
import pytest
import trustme

from conftest import Portico, free_port
from test_mcp_portal import (  # noqa: F401
    BOTH_BACKENDS,
    Gateway,
    Portal,
    gateway,
    gateway_backend,
    py_portal,
    text,
)

pytestmark = pytest.mark.serve_args("--logpush-interval", "1", "--logpush-max-retry-wait", "2")

KEY_ID = "e2e-moto-key-id"
SECRET = "e2e-moto-secret-9c1d"
SINK_TOKEN = "e2e-sink-token-5e2a"
BUCKET = "mcp-logs"
# Object names: `{path with {DATE} replaced}/{first}-{last}_{job}.{extension}`.
OBJECT_NAME = re.compile(r"^logs/(\d{8})/(\d+)-(\d+)_(\d+)\.(parquet|log\.gz|csv\.gz)$")


class Moto:
    """`moto_server` on a free port; its state lives in memory and goes when it stops."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                self.s3().create_bucket(Bucket=BUCKET)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def s3(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )

    def objects(self) -> dict[str, bytes]:
        s3 = self.s3()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}

    def destination(self) -> str:
        return (
            f"s3://{BUCKET}/logs/{{DATE}}?region=us-east-1&endpoint={self.endpoint}"
            f"&access-key-id={KEY_ID}&secret-access-key={SECRET}"
        )


@pytest.fixture
def moto():
    server = Moto()
    server.start()
    yield server
    server.stop()


class Sink:
    """An HTTPS endpoint that keeps every POST and answers `status`."""

    def __init__(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.status = 200
        self.posts: list[dict] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.posts.append({"status": sink.status, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        return [p for p in self.posts if p["status"] == 200]


@pytest.fixture
def sink(tmp_path):
    server = Sink(tmp_path)
    yield server
    server.server.shutdown()


def call_echo(portal, texts: list[str]) -> None:
    async def calls():
        async with portal.client() as client:
            for t in texts:
                assert text(await client.call_tool("py_echo", {"text": t})) == t

    anyio.run(calls)


def create_job(gateway, destination: str, dataset: str = "mcp_portal_logs", **fields):
    """An enabled job (of `mcp_portal_logs` unless told), created with the official SDK."""
    return gateway.client.logpush.jobs.create(
        account_id=gateway.account_id,
        destination_conf=destination,
        dataset=dataset,
        enabled=True,
        **fields,
    )


def job_of(gateway, job_id):
    return gateway.client.logpush.jobs.get(job_id, account_id=gateway.account_id)


def wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def parquet_rows(objects: dict[str, bytes], tmp_path: Path) -> list[dict]:
    """Every row of the Parquet objects, through DuckDB, with the object it came from."""
    rows = []
    for i, (key, body) in enumerate(sorted(objects.items())):
        path = tmp_path / f"object-{i}.parquet"
        path.write_bytes(body)
        result = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
        columns = result.columns
        rows += [dict(zip(columns, row), _object=key) for row in result.fetchall()]
    return rows


def assert_ranges_do_not_overlap(keys) -> None:
    ranges = sorted((int(m[2]), int(m[3])) for m in map(OBJECT_NAME.match, keys))
    for (_, last), (first, _) in zip(ranges, ranges[1:]):
        assert first > last, f"objects overlap: {ranges}"


@BOTH_BACKENDS
def test_calls_reach_s3_as_parquet_exactly_once_and_duckdb_reads_them(gateway, py_portal, moto, tmp_path):
    job = create_job(gateway, moto.destination(), name="to-moto", output_options={"output_type": "parquet"})
    texts = [f"parquet {i}" for i in range(25)]
    call_echo(py_portal, texts)

    objects = wait_for(
        "25 records in the bucket",
        lambda: (o := moto.objects()) and len(parquet_rows(o, tmp_path)) >= 25 and o,
    )
    rows = parquet_rows(objects, tmp_path)
    for key in objects:
        match = OBJECT_NAME.match(key)
        assert match, key
        assert match[4] == str(job.id) and match[5] == "parquet"
        # `{DATE}` is the day of the object's first record.
        first_record = min(r["Datetime"] for r in rows if r["_object"] == key)
        assert match[1] == first_record.astimezone(datetime.timezone.utc).strftime("%Y%m%d"), key
    assert_ranges_do_not_overlap(objects)
    assert len(rows) == 25, rows
    assert sorted(r["ToolCallName"] for r in rows) == ["py_echo"] * 25
    assert all(r["Success"] is True and r["PortalID"] == py_portal.id for r in rows)
    assert all(r["UserID"] == py_portal.token.id and r["ServerID"] == "py" for r in rows)

    # Typed columns, as auditors query them.
    first = tmp_path / "object-0.parquet"
    types = {r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{first}')").fetchall()}
    assert types["Datetime"] == "TIMESTAMPTZ_NS", types  # TIMESTAMP(ns, UTC)
    assert types["Success"] == "BOOLEAN" and types["ServerResponseDurationMs"] == "BIGINT"
    metadata = dict(
        (k.decode(), v.decode())
        for k, v in duckdb.sql(f"SELECT key, value FROM parquet_kv_metadata('{first}')").fetchall()
    )
    assert metadata.get("portico.dataset") == "mcp_portal_logs", metadata
    assert metadata.get("portico.job_id") == str(job.id), metadata

    # docs/logs.md's query over the downloaded objects.
    downloaded = tmp_path / "download"
    for key, body in objects.items():
        target = downloaded / key.removeprefix("logs/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    per_day = duckdb.sql(
        "SELECT UserEmail, date_trunc('day', Datetime) AS day, count(*) AS calls "
        f"FROM read_parquet('{downloaded}/*/*.parquet') GROUP BY ALL ORDER BY day"
    ).fetchall()
    assert sum(row[2] for row in per_day) == 25, per_day

    read = wait_for("last_complete", lambda: (j := job_of(gateway, job.id)).last_complete and j)
    assert read.error_message is None
    # The worker's reports never put the destination's secrets anywhere.
    assert SECRET not in gateway.portico.log_tail(10_000)


def test_an_https_sink_gets_gzipped_ndjson_with_its_headers_through_an_outage(
    gateway, py_portal, sink
):
    # Portico trusts the sink's CA (and only through this setting).
    gateway.portico.stop()
    gateway.portico.env = {"SSL_CERT_FILE": str(sink.ca_file)}
    gateway.portico.start()
    gateway.client = gateway.portico.client()
    destination = f"https://127.0.0.1:{sink.port}/ingest?tag=mcp&header_Authorization=Bearer%20{SINK_TOKEN}"
    job = create_job(gateway, destination)
    call_echo(py_portal, [f"before {i}" for i in range(5)])
    wait_for("the first batch", sink.accepted)

    # The sink refuses for a while; calls go on.
    sink.status = 503
    call_echo(py_portal, [f"during {i}" for i in range(7)])
    failing = wait_for("error_message", lambda: (j := job_of(gateway, job.id)).error_message and j)
    assert "503" in failing.error_message and SINK_TOKEN not in failing.error_message
    assert failing.last_error is not None
    sink.status = 200

    def delivered():
        records = [
            json.loads(line)
            for post in sink.accepted()
            for line in gzip.decompress(post["body"]).decode().splitlines()
        ]
        return len(records) >= 12 and records

    records = wait_for("every record after the outage", delivered)
    calls = sorted(r["ToolCallName"] for r in records)
    assert calls == ["py_echo"] * 12, records
    # Each batch was accepted once: no record twice.
    keys = [p["headers"]["idempotency-key"] for p in sink.accepted()]
    assert len(keys) == len(set(keys)), keys
    # A refused batch was sent again under the same key.
    refused = {p["headers"]["idempotency-key"] for p in sink.posts if p["status"] == 503}
    assert refused and refused <= set(keys)
    for post in sink.posts:
        assert post["path"] == "/ingest?tag=mcp"
        assert post["headers"]["authorization"] == f"Bearer {SINK_TOKEN}"
        assert post["headers"]["content-encoding"] == "gzip"
        assert post["headers"]["content-type"] == "application/x-ndjson"
    read = wait_for("the error cleared", lambda: (j := job_of(gateway, job.id)).error_message is None and j)
    assert read.last_complete is not None
    assert SINK_TOKEN not in gateway.portico.log_tail(10_000)


def test_an_s3_outage_loses_nothing(gateway, py_portal, moto, tmp_path):
    job = create_job(gateway, moto.destination(), output_options={"output_type": "parquet"})
    call_echo(py_portal, [f"a {i}" for i in range(4)])
    kept = dict(wait_for("the first batch", moto.objects))
    # The S3 server goes away (with what it held: it keeps objects in memory, so the test keeps
    # what was delivered before).
    moto.stop()
    call_echo(py_portal, [f"b {i}" for i in range(6)])
    failing = wait_for("error_message", lambda: (j := job_of(gateway, job.id)).error_message and j)
    assert "could not be reached" in failing.error_message or "failed" in failing.error_message
    moto.start()
    kept.update(wait_for("the batches held back", moto.objects))
    rows = wait_for(
        "every record",
        lambda: (o := {**kept, **moto.objects()}) and len(r := parquet_rows(o, tmp_path)) >= 10 and r,
    )
    assert len(rows) == 10, rows
    assert_ranges_do_not_overlap({**kept, **moto.objects()})
    wait_for("the error cleared", lambda: job_of(gateway, job.id).error_message is None)


@BOTH_BACKENDS
def test_sigkill_at_random_points_loses_and_doubles_nothing(gateway, py_portal, moto, tmp_path):
    job = create_job(gateway, moto.destination(), output_options={"output_type": "ndjson"})
    rng = random.Random(os.environ.get("PORTICO_E2E_SEED", "logpush-crash"))
    sent = 0
    for round_ in range(8):
        texts = [f"crash {round_} {i}" for i in range(rng.randint(3, 12))]
        call_echo(py_portal, texts)
        sent += len(texts)
        # Kill it somewhere in the batch's second of collecting, its planning or its upload.
        time.sleep(rng.uniform(0.2, 2.5))
        gateway.portico.kill()
        gateway.portico.start()

    def records():
        objects = moto.objects()
        lines = [
            json.loads(line)
            for body in objects.values()
            for line in gzip.decompress(body).decode().splitlines()
        ]
        return len(lines) >= sent and (objects, lines)

    objects, lines = wait_for(f"{sent} records", records, timeout=90)
    assert len(lines) == sent, f"{len(lines)} records for {sent} calls"
    # Every call once: its session and time identify it.
    identities = [(r["SessionID"], r["Datetime"]) for r in lines]
    assert len(set(identities)) == sent
    assert all(OBJECT_NAME.match(k) for k in objects), list(objects)
    assert_ranges_do_not_overlap(objects)
    assert job_of(gateway, job.id).last_complete is not None


def test_an_ownership_challenge_is_written_to_the_bucket_and_validates(gateway, moto):
    logpush = gateway.client.logpush
    written = logpush.ownership.create(account_id=gateway.account_id, destination_conf=moto.destination())
    assert re.fullmatch(r"logs/\d{8}/ownership-challenge-[0-9a-f]{8}\.txt", written.filename), written
    assert written.valid is True
    # Only who reads the bucket gets the token.
    token = moto.s3().get_object(Bucket=BUCKET, Key=written.filename)["Body"].read().decode()
    check = logpush.ownership.validate(
        account_id=gateway.account_id, destination_conf=moto.destination(), ownership_challenge=token
    )
    assert check.valid is True
    # Another destination's challenge is not this one's.
    other = moto.destination().replace("/logs/", "/elsewhere/")
    check = logpush.ownership.validate(
        account_id=gateway.account_id, destination_conf=other, ownership_challenge=token
    )
    assert check.valid is False
    # HTTPS destinations need none; a bucket that does not exist is a clear error.
    with pytest.raises(cloudflare.BadRequestError) as refused:
        logpush.ownership.create(account_id=gateway.account_id, destination_conf="https://siem.example.com/in")
    assert "`s3` destinations only" in str(refused.value)
    with pytest.raises(cloudflare.BadRequestError) as refused:
        logpush.ownership.create(
            account_id=gateway.account_id, destination_conf=moto.destination().replace(BUCKET, "no-such-bucket")
        )
    assert "NoSuchBucket" in str(refused.value) and SECRET not in str(refused.value)


def records_delivered(portico: Portico, job_id) -> int:
    """How many of the job's records this instance delivered, from its `/metrics`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{portico.port}/metrics", timeout=10) as r:
        scraped = r.read().decode()
    pattern = rf'^portico_logpush_records_delivered_total{{job="{job_id}"}} (\d+)$'
    match = re.search(pattern, scraped, re.MULTILINE)
    return int(match[1]) if match else 0


def ndjson_records(posts: list[dict]) -> list[dict]:
    return [
        json.loads(line)
        for post in posts
        for line in gzip.decompress(post["body"]).decode().splitlines()
    ]


@pytest.mark.parametrize("gateway_backend", ["postgres"], indirect=True)
def test_two_instances_on_postgres_run_a_job_once_and_hand_it_over_when_one_dies(
    gateway, py_portal, sink, tmp_path_factory
):
    # Two instances on one database, each with its own data directory and the same master key;
    # both trust the HTTPS sink, whose idempotency keys show every batch that was sent.
    first = gateway.portico
    first.stop()
    first.env = {"SSL_CERT_FILE": str(sink.ca_file)}
    first.start()
    gateway.client = first.client()
    second = first.sibling(tmp_path_factory.mktemp("second") / "data")
    second.start()
    try:
        job = create_job(gateway, f"https://127.0.0.1:{sink.port}/ingest")
        call_echo(py_portal, [f"both up {i}" for i in range(10)])
        wait_for("10 records", lambda: len(ndjson_records(sink.accepted())) >= 10)
        # Give the other instance several lease checks in which it could have run the job.
        time.sleep(4)
        delivered = {p.port: records_delivered(p, job.id) for p in (first, second)}
        assert sorted(delivered.values()) == [0, 10], delivered
        runner, survivor = (first, second) if delivered[first.port] else (second, first)
        keys = [p["headers"]["idempotency-key"] for p in sink.posts]
        assert len(keys) == len(set(keys)), f"a batch was sent twice: {keys}"

        # The instance running the job dies; calls go on through the other, which takes the job
        # over once the lease expires (15 s) and resumes from the checkpoint.
        runner.kill()
        after = Portal(Gateway(survivor), py_portal.id, py_portal.token)
        call_echo(after, [f"one left {i}" for i in range(8)])
        wait_for("18 records", lambda: len(ndjson_records(sink.accepted())) >= 18, timeout=90)
        time.sleep(2)
        records = ndjson_records(sink.accepted())
        identities = [(r["SessionID"], r["Datetime"]) for r in records]
        assert len(identities) == 18 and len(set(identities)) == 18, records
        assert records_delivered(survivor, job.id) == 8
        assert job_of(Gateway(survivor), job.id).last_complete is not None
    finally:
        if second.process is not None:
            code = second.stop()
            assert code == 0, f"the second portico exited with {code}:\n{second.log_tail()}"
        second.kill()


def lease_holders(portico: Portico) -> list[str]:
    """The `portico_leases` rows of the instance's database: `name holder` for unexpired ones."""
    psql = shutil.which("psql") or sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    sql = "SELECT name || ' ' || holder FROM portico_leases WHERE expires_at > clock_timestamp()"
    out = subprocess.run(
        [str(psql), "--no-psqlrc", "-tA", "-d", portico.database_url, "-c", sql],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout
    return out.strip().splitlines()


@pytest.mark.parametrize("gateway_backend", ["postgres"], indirect=True)
def test_a_stopping_instance_gives_its_leases_up_for_the_next_one(gateway, py_portal, moto, tmp_path_factory):
    first = gateway.portico
    job = create_job(gateway, moto.destination(), output_options={"output_type": "ndjson"})
    call_echo(py_portal, [f"alone {i}" for i in range(3)])
    wait_for("the first batch", moto.objects)
    instance = (first.data_dir / "instance-id").read_text().strip()
    assert lease_holders(first) == [f"logpush-job:{job.id} {instance}"]

    # A graceful stop gives the lease up, so that another instance need not wait for it to
    # expire.
    assert first.stop() == 0
    assert lease_holders(first) == []
    second = first.sibling(tmp_path_factory.mktemp("second") / "data")
    second.start()
    try:
        after = Portal(Gateway(second), py_portal.id, py_portal.token)
        call_echo(after, [f"handed over {i}" for i in range(4)])
        wait_for("the second instance's batch", lambda: records_delivered(second, job.id) == 4)
        lines = [line for body in moto.objects().values() for line in gzip.decompress(body).splitlines()]
        assert len(lines) == 7, lines
        other = (second.data_dir / "instance-id").read_text().strip()
        assert other != instance
        assert lease_holders(second) == [f"logpush-job:{job.id} {other}"]
    finally:
        if second.process is not None:
            assert second.stop() == 0, second.log_tail()
        second.kill()


def test_admin_changes_reach_s3_as_audit_logs_with_their_values(gateway, moto, tmp_path):
    job = create_job(
        gateway,
        moto.destination(),
        dataset="audit_logs",
        output_options={"output_type": "parquet", "field_names": [
            "When", "ID", "ActionType", "ActorID", "ActorType", "Interface", "ResourceType",
            "ResourceID", "OldValue", "NewValue", "OwnerID", "Metadata", "EventType",
        ]},
    )
    servers = gateway.servers
    servers.create(
        account_id=gateway.account_id, id="audited", name="Before",
        hostname="https://mcp.example.com/mcp", auth_type="unauthenticated",
    )
    servers.update("audited", account_id=gateway.account_id, name="After")
    servers.delete("audited", account_id=gateway.account_id)

    def changes():
        objects = moto.objects()
        rows = [r for r in parquet_rows(objects, tmp_path) if r["ResourceID"] == "audited"]
        return len(rows) >= 3 and (objects, rows)

    objects, rows = wait_for("the three changes of the server", changes)
    assert all(OBJECT_NAME.match(k) and k.endswith(f"_{job.id}.parquet") for k in objects), list(objects)
    rows.sort(key=lambda r: r["When"])
    assert [r["ActionType"] for r in rows] == ["create", "update", "delete"]
    assert {(r["ResourceType"], r["ActorType"], r["Interface"], r["OwnerID"]) for r in rows} == {
        ("mcp_server", "api_token", "API", gateway.account_id)
    }
    create, update, delete = rows
    # Values before and after, as the audit-log API shows them: JSON text in Parquet.
    assert create["OldValue"] is None and json.loads(create["NewValue"])["name"] == "Before"
    assert json.loads(update["OldValue"])["name"] == "Before"
    assert json.loads(update["NewValue"])["name"] == "After"
    assert json.loads(delete["OldValue"])["name"] == "After" and delete["NewValue"] is None
    assert json.loads(update["Metadata"])["event_type"] == update["EventType"] == "ServerUpdated"
    # The same entries as the audit-log API.
    api = gateway.client.get(
        f"/accounts/{gateway.account_id}/audit_logs",
        cast_to=object,
        options={"params": {"resource.id": "audited", "direction": "asc"}},
    )
    assert [e["id"] for e in api["result"]] == [r["ID"] for r in rows]
    assert [e.get("newValueJson") for e in api["result"]] == [
        r["NewValue"] and json.loads(r["NewValue"]) for r in rows
    ]
    # The job starts after its own creation; the server's syncs are not admin changes.
    assert {r["ResourceID"] for r in parquet_rows(objects, tmp_path)} == {"audited"}

    # `portico logs export` writes the same rows.
    out = tmp_path / "audit.ndjson"
    subprocess.run(
        gateway.portico._global_args()
        + ["logs", "export", "--dataset", "audit_logs", "--format", "ndjson", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    audited = [r for r in exported if r["ResourceID"] == "audited"]
    assert [r["ID"] for r in audited] == [r["ID"] for r in rows]
    # NDJSON writes the values as JSON objects, not text.
    assert audited[1]["NewValue"]["name"] == "After" and audited[0]["OldValue"] is None
    assert set(exported[0]) == {
        "ActionResult", "ActionType", "ActorEmail", "ActorID", "ActorIP", "ActorType", "ID",
        "Interface", "Metadata", "NewValue", "OldValue", "OwnerID", "ResourceID", "ResourceType",
        "When",
    }
