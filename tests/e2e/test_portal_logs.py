"""The portal logs API, fed by real calls: the official MCP Python SDK calls tools through a
portal in front of the Python SDK upstream, on SQLite and on PostgreSQL, and the logs API
answers each call once, newest first, under the `mcp_portal_logs` field names, with its
filters, its cursor and the analytics per server. `portico logs export` writes the same calls to
Parquet, NDJSON and CSV files, which DuckDB queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import anyio
import duckdb
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from test_mcp_portal import BOTH_BACKENDS, gateway, gateway_backend, py_portal, text  # noqa: F401

DATASET_FIELDS = {
    "ClientCountry", "ClientIP", "ColoCode", "Datetime", "Error", "Method", "PortalAUD",
    "PortalID", "PromptGetName", "ResourceReadURI", "ServerAUD", "ServerID",
    "ServerResponseDurationMs", "ServerURL", "SessionID", "Success", "ToolCallName",
    "UserEmail", "UserID",
}  # fmt: skip


def get(gateway, path: str, **params) -> httpx.Response:
    return httpx.get(
        f"{gateway.portico.base_url}/accounts/{gateway.account_id}/access/ai-controls/mcp/portals/{path}",
        params=params,
        headers={"Authorization": f"Bearer {gateway.portico.admin_token}"},
        timeout=30,
    )


def rows(gateway, portal: str, want: int, **params) -> list[dict]:
    """The logs of `portal`, once `want` rows are there (the call log follows the event log
    50 ms or so behind)."""
    deadline = time.monotonic() + 30
    while True:
        answer = get(gateway, f"{portal}/logs", **params)
        assert answer.status_code == 200, answer.text
        result = answer.json()["result"]
        if len(result) >= want or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def forbid_destructive_calls(gateway, portal) -> None:
    """A policy that denies the portal's token every destructive tool (`py_delete_note`)."""
    gateway.add_policy(
        "no destructive calls",
        f'forbid (principal == Portico::ServiceToken::"{portal.token.id}", '
        'action == Portico::Action::"call_tool", resource) when { resource.destructiveHint };',
    )


@BOTH_BACKENDS
def test_every_call_through_the_portal_is_one_row_newest_first(gateway, py_portal):
    forbid_destructive_calls(gateway, py_portal)

    async def calls():
        async with py_portal.client() as client:
            for i in range(5):
                assert text(await client.call_tool("py_echo", {"text": f"call {i}"})) == f"call {i}"
            with pytest.raises(MCPError):
                await client.call_tool("py_delete_note", {"id": "1"})

    anyio.run(calls)
    logs = rows(gateway, py_portal.id, 6)
    assert len(logs) == 6, logs
    assert DATASET_FIELDS <= set(logs[0]), sorted(logs[0])
    denied, *echoes = logs
    assert (denied["ToolCallName"], denied["Success"], denied["Status"]) == ("py_delete_note", False, "denied")
    assert [e["ToolCallName"] for e in echoes] == ["py_echo"] * 5
    for row in logs:
        assert row["PortalID"] == py_portal.id
        assert row["Method"] == "tools/call"
        assert row["ServerID"] == "py"
        assert row["UserID"] == py_portal.token.id
        assert row["SessionID"] == logs[0]["SessionID"]
        assert row["Datetime"].endswith("Z")
    assert [r["Datetime"] for r in logs] == sorted((r["Datetime"] for r in logs), reverse=True)
    assert all(e["Success"] and e["Status"] == "ok" for e in echoes)
    assert py_portal.use_policies["py"] in echoes[0]["PolicyIDs"]

    # Filters and the cursor.
    assert [r["ToolCallName"] for r in rows(gateway, py_portal.id, 1, success="false")] == ["py_delete_note"]
    assert len(rows(gateway, py_portal.id, 5, tool="py_echo")) == 5
    assert rows(gateway, py_portal.id, 0, server_id="elsewhere") == []
    first = get(gateway, f"{py_portal.id}/logs", per_page=4).json()
    assert first["result_info"]["count"] == 4 and first["result_info"]["cursor"]
    rest = get(gateway, f"{py_portal.id}/logs", per_page=4, cursor=first["result_info"]["cursor"]).json()
    assert "cursor" not in rest["result_info"]
    assert [r["EventID"] for r in first["result"] + rest["result"]] == [r["EventID"] for r in logs]

    # The analytics count the same calls.
    series = get(gateway, f"{py_portal.id}/analytics", bucket="1d").json()["result"]["series"]
    assert sum(s["requests"] for s in series) == 6 and sum(s["errors"] for s in series) == 1, series
    assert {s["server_id"] for s in series} == {"py"}


def test_a_bad_query_is_a_400_naming_the_parameter(gateway, py_portal):
    answer = get(gateway, f"{py_portal.id}/logs", per_page="5000")
    assert answer.status_code == 400, answer.text
    assert "per_page" in answer.json()["errors"][0]["message"]
    answer = get(gateway, f"{py_portal.id}/analytics", bucket="1m", since="2026-01-01", until="2026-02-01")
    assert answer.status_code == 400, answer.text
    assert "at most 1440" in answer.json()["errors"][0]["message"]
    assert get(gateway, "no-such-portal/logs").status_code == 404


def export(gateway, tmp_path, fmt: str, *extra: str) -> str:
    out = tmp_path / f"calls.{fmt}"
    subprocess.run(
        gateway.portico._global_args() + ["logs", "export", "--format", fmt, "--out", str(out), *extra],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    return str(out)


@BOTH_BACKENDS
def test_an_export_holds_every_call_once_and_duckdb_queries_it(gateway, py_portal, tmp_path):
    forbid_destructive_calls(gateway, py_portal)

    async def calls():
        async with py_portal.client() as client:
            for i in range(7):
                await client.call_tool("py_echo", {"text": f"call {i}"})
            for _ in range(2):
                with pytest.raises(MCPError):
                    await client.call_tool("py_delete_note", {"id": "1"})

    anyio.run(calls)
    logs = rows(gateway, py_portal.id, 9)
    parquet = export(gateway, tmp_path, "parquet", "--portal", py_portal.id)
    db = duckdb.connect()
    # Typed columns: a UTC timestamp, a boolean, an integer.
    types = dict(db.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{parquet}')").fetchall())
    assert types["Datetime"] == "TIMESTAMPTZ_NS", types  # TIMESTAMP(ns, UTC)
    assert types["Success"] == "BOOLEAN" and types["ServerResponseDurationMs"] == "BIGINT", types
    assert set(types) == DATASET_FIELDS
    # Every call once: the same sessions, tools and outcomes as the logs API.
    exported = db.execute(f"SELECT ToolCallName, Success, UserID FROM '{parquet}' ORDER BY Datetime").fetchall()
    assert len(exported) == 9
    api = [(r["ToolCallName"], r["Success"], r["UserID"]) for r in reversed(logs)]
    assert exported == api
    # What an auditor asks: calls per user per day, and the denied ones.
    per_day = db.execute(
        f"SELECT UserID, date_trunc('day', Datetime) AS day, count(*) FROM '{parquet}' GROUP BY ALL"
    ).fetchall()
    assert [(u, n) for u, _, n in per_day] == [(py_portal.token.id, 9)]
    denied = db.execute(f"SELECT count(*) FROM '{parquet}' WHERE NOT Success").fetchone()[0]
    assert denied == 2
    p95 = db.execute(
        f"SELECT ServerID, quantile_cont(ServerResponseDurationMs, 0.95) FROM '{parquet}' "
        "WHERE Success GROUP BY ServerID"
    ).fetchall()
    assert [server for server, _ in p95] == ["py"] and p95[0][1] is not None, p95

    # NDJSON and CSV hold the same calls, with the fields asked for.
    ndjson = export(gateway, tmp_path, "ndjson", "--fields", "Datetime,ToolCallName,Success")
    lines = [json.loads(line) for line in open(ndjson) if line.strip()]
    assert len(lines) == 9 and set(lines[0]) == {"Datetime", "ToolCallName", "Success"}, lines[0]
    csv = export(gateway, tmp_path, "csv", "--fields", "ToolCallName,Success")
    assert db.execute(f"SELECT count(*) FROM read_csv('{csv}', header=false)").fetchone()[0] == 9
    # A period before the calls holds none of them.
    empty = export(gateway, tmp_path, "ndjson", "--until", "2000-01-01")
    assert open(empty).read() == ""
