"""Context modes and code mode end to end: the official MCP Python SDK connects to a portal with
`?optimize_context=...` or `?codemode=search_and_execute`, finds tools and runs JavaScript that
calls two real upstreams (the Python SDK server `py` and server-everything `everything`).

The tests that run code run on both engines (`--codemode-engine quickjs` and `workerd`; the
latter needs `PORTICO_WORKERD`, which `scripts/test` sets, and fails without it); the others
run on QuickJS, the suite's default.
"""

from __future__ import annotations

import json
import os
import subprocess

import anyio
import httpx
import pytest

from mcp_peers import mcp_client
from test_mcp_portal import (  # noqa: F401
    BUILT_INS,
    INITIALIZE,
    MCP_ACCEPT,
    audit_events,
    call_fails,
    gateway,
    gateway_backend,
    make_portal,
    names,
    portal,
    text,
)

QUERY = "portal_query_tools"
EXECUTE = "portal_execute"
SEARCH = "portal_codemode_search"
RUN = "portal_codemode_execute"


# Runs a test on each engine: `portal` and `gateway` start their Portico with the marker's
# arguments.
ENGINES = pytest.mark.parametrize(
    "engine",
    [
        pytest.param(engine, marks=pytest.mark.serve_args("--codemode-engine", engine))
        for engine in ("quickjs", "workerd")
    ],
)


def connect(portal, query: str):
    return mcp_client(f"{portal.url}?{query}", portal.token.headers)


async def listed(client) -> dict:
    return {t.name: t for t in (await client.list_tools()).tools}


async def run(client, tool: str, code: str):
    """Runs `code` with a code-mode tool; returns (is_error, text)."""
    result = await client.call_tool(tool, {"code": code})
    return bool(result.is_error), text(result)


def test_each_mode_lists_its_tools(portal):
    async def check():
        async with portal.client() as client:
            full = await listed(client)
        upstream = {n for n in full if n not in BUILT_INS}
        assert {"py_echo", "py_add", "everything_echo"} <= upstream

        async with connect(portal, "optimize_context=minimize_tools") as client:
            tools = await listed(client)
            assert set(tools) == BUILT_INS | upstream | {QUERY}
            for name in upstream:
                assert tools[name].description is None, name
                assert tools[name].input_schema == {"type": "object"}, name
            assert "regular expression" in tools[QUERY].description
            found = json.loads(text(await client.call_tool(QUERY, {"pattern": "^py_(echo|add)$"})))
            assert sorted(t["name"] for t in found["tools"]) == ["py_add", "py_echo"]
            assert found["matched"] == 2
            echo = next(t for t in found["tools"] if t["name"] == "py_echo")
            assert echo["description"] == full["py_echo"].description
            assert echo["inputSchema"]["properties"]["text"]["type"] == "string"
            # Unchanged calls by name still work in this mode.
            assert text(await client.call_tool("py_echo", {"text": "named"})) == "named"

        async with connect(portal, "optimize_context=search_and_execute") as client:
            tools = await listed(client)
            assert set(tools) == BUILT_INS | {QUERY, EXECUTE}
            answer = await client.call_tool(EXECUTE, {"name": "everything_echo", "arguments": {"message": "hi"}})
            assert "hi" in text(answer) and not answer.is_error
            assert "not a regular expression" in await call_fails(client, QUERY, {"pattern": "("})
            assert "`limit`" in await call_fails(client, QUERY, {"pattern": "x", "limit": 0})

        async with connect(portal, "codemode=search_and_execute") as client:
            tools = await listed(client)
            assert set(tools) == BUILT_INS | {SEARCH, RUN}
            assert "codemode.tools()" in tools[SEARCH].description
            assert "Promise.all" in tools[RUN].description
            assert tools[RUN].input_schema["required"] == ["code"]

    anyio.run(check)


@ENGINES
def test_code_mode_finds_tools_and_runs_one_script_across_two_servers(engine, portal):
    async def check():
        async with connect(portal, "codemode=search_and_execute") as client:
            failed, found = await run(
                client,
                SEARCH,
                "async () => (await codemode.tools()).filter((t) => /^(py_add|everything_echo)$/.test(t.name))"
                ".map((t) => ({name: t.name, types: t.types}))",
            )
            assert not failed, found
            found = {t["name"]: t["types"] for t in json.loads(found)}
            assert set(found) == {"py_add", "everything_echo"}
            assert "py_add: (input: PyAddInput) => Promise<PyAddOutput>;" in found["py_add"]
            assert "a: number;" in found["py_add"]

            code = """async () => {
                const [sum, echoed] = await Promise.all([
                    codemode.py_add({a: 2, b: 40}),
                    codemode.everything_echo({message: "from code"}),
                ]);
                const many = await Promise.all([1, 2, 3].map((n) => codemode.py_add({a: n, b: n})));
                console.log("not returned");
                return {sum, echoed, many: many.map((r) => r.sum)};
            }"""
            failed, answer = await run(client, RUN, code)
            assert not failed, answer
            result = json.loads(answer)
            assert result["sum"] == {"sum": 42}
            assert "from code" in json.dumps(result["echoed"])
            assert result["many"] == [2, 4, 6]
            assert "not returned" not in answer

            # A thrown error, a tool's error and an unknown tool come back as isError results.
            failed, answer = await run(client, RUN, "async () => { throw new Error('plain failure') }")
            assert failed and answer == "Error: plain failure"
            failed, answer = await run(client, RUN, "async () => codemode.py_fail({message: 'tool said no'})")
            assert failed and answer == "Error: tool said no"
            failed, answer = await run(client, RUN, "async () => codemode.nope({})")
            assert failed and answer == 'Error: Tool "nope" not found'
            # Code mode's engine has no network and no code from strings.
            failed, answer = await run(client, RUN, "async () => eval('1')")
            assert failed, answer

    anyio.run(check)


@ENGINES
def test_a_forbidden_tool_is_denied_inside_code_mode_and_every_inner_call_is_audited(engine, gateway, portal):
    gateway.add_policy(
        "no destructive calls",
        f'forbid (principal == Portico::ServiceToken::"{portal.token.id}", '
        'action == Portico::Action::"call_tool", resource) when { resource.destructiveHint };',
    )
    code = """async () => {
        const sum = await codemode.py_add({a: 1, b: 2});
        let denied;
        try { await codemode.py_delete_note({id: "1"}); } catch (e) { denied = e.message; }
        return {sum: sum.sum, denied};
    }"""

    async def check():
        async with connect(portal, "codemode=search_and_execute") as client:
            failed, answer = await run(client, RUN, code)
            assert not failed, answer
            result = json.loads(answer)
            assert result["sum"] == 3
            assert "forbidden" in result["denied"], result

    anyio.run(check)
    handled = audit_events(gateway.portico)
    execution = [e for e in handled if e.get("tool_call_name") == RUN]
    assert len(execution) == 1, handled
    execution = execution[0]
    record = execution["code_execution"]
    assert record["code"] == code
    assert record["calls"] == 2 and record["outcome"] == "ok"
    assert record["engine"] == engine
    assert len(record["code_sha256"]) == 64
    inner = [e for e in handled if e.get("execution_id") == record["id"]]
    assert [(e["tool_call_name"], e["status"]) for e in inner] == [
        ("py_add", "ok"),
        ("py_delete_note", "denied"),
    ]
    assert all(e["user_id"] == portal.token.id and e["session_id"] == execution["session_id"] for e in inner)


def test_the_portal_setting_bounds_code_mode(gateway, pyserver):
    portal = make_portal(gateway, {"py": pyserver.url}, portal_id="plain")
    for portal_id, setting in (("off", "off"), ("forced", "enforced"), ("default", "default_on")):
        gateway.add_portal(portal_id, [{"server_id": "py", "on_behalf": False}], code_mode=setting)
        gateway.add_policy(
            f"connect {portal_id}",
            f'permit (principal == Portico::ServiceToken::"{portal.token.id}", '
            f'action == Portico::Action::"connect", resource == Portico::Portal::"{portal_id}");',
        )

    def url(portal_id: str, query: str = "") -> str:
        return gateway.portal_url(portal_id) + (f"?{query}" if query else "")

    headers = dict(portal.token.headers, Accept=MCP_ACCEPT)
    refused = httpx.post(url("off", "codemode=search_and_execute"), json=INITIALIZE, headers=headers, timeout=30)
    assert refused.status_code == 400, refused.text
    assert "code mode is turned off for this portal" in refused.json()["error_description"]
    bad = httpx.post(url("plain", "optimize_context=everything"), json=INITIALIZE, headers=headers, timeout=30)
    assert bad.status_code == 400 and "`optimize_context`" in bad.json()["error_description"], bad.text

    async def tools(portal_id: str, query: str = "") -> set[str]:
        async with mcp_client(url(portal_id, query), portal.token.headers) as client:
            return names(await client.list_tools())

    async def check():
        assert {SEARCH, RUN} <= await tools("forced")
        assert {SEARCH, RUN} <= await tools("forced", "codemode=off")
        assert {SEARCH, RUN} <= await tools("default")
        assert "py_echo" in await tools("default", "codemode=off")
        assert "py_echo" in await tools("off")
        assert "py_echo" in await tools("plain")

    anyio.run(check)


def test_portals_tokens_counts_each_modes_tool_list(portal):
    """`portico portals tokens` counts what each mode's list costs, from the log, while the
    server runs."""

    async def listed_count() -> int:
        async with portal.client() as client:
            return len((await client.list_tools()).tools)

    full_count = anyio.run(listed_count)
    answer = subprocess.run(
        portal.gateway.portico._global_args() + ["portals", "tokens", portal.id, "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    costs = {c["mode"]: c for c in map(json.loads, answer.stdout.splitlines())}
    assert list(costs) == ["full", "minimize_tools", "search_and_execute", "codemode"]
    assert costs["full"]["tools"] == full_count
    assert costs["minimize_tools"]["tools"] == full_count + 1
    assert costs["search_and_execute"]["tools"] == costs["codemode"]["tools"] == 5
    assert costs["minimize_tools"]["tokens"] < costs["full"]["tokens"]
    assert all(0 < c["tokens"] < c["bytes"] for c in costs.values())
    missing = subprocess.run(
        portal.gateway.portico._global_args() + ["portals", "tokens", "nowhere"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "there is no portal `nowhere`" in missing.stderr
