"""The MCP peers themselves, without Portico: each upstream answers the official clients.

These pin down what the portal tests rely on (tool names, annotations, transports, the
Inspector's flags, the conformance runner), so that a portal test failing means Portico, not
a peer.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from mcp_peers import mcp_client

CONFORMANCE_RUN = Path(__file__).parent.parent / "conformance" / "run.sh"

PY_TOOLS = {"echo", "add", "fail", "large", "sleep", "progress", "whoami", "delete_note", "crash"}


def test_pyserver_tools_prompts_and_resources(pyserver):
    async def check():
        async with mcp_client(pyserver.url) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == PY_TOOLS
            assert tools["echo"].annotations.read_only_hint is True
            assert tools["delete_note"].annotations.destructive_hint is True
            assert tools["crash"].annotations is None
            assert tools["add"].output_schema["properties"]["sum"]["type"] == "integer"

            echoed = await client.call_tool("echo", {"text": "hello"})
            assert [c.text for c in echoed.content] == ["hello"] and not echoed.is_error
            added = await client.call_tool("add", {"a": 2, "b": 40})
            assert added.structured_content == {"sum": 42}
            failed = await client.call_tool("fail", {"message": "boom"})
            assert failed.is_error is True and failed.content[0].text == "boom"
            large = await client.call_tool("large", {"size": 2_000_000})
            assert len(large.content[0].text.encode()) == 2_000_000

            seen = []

            async def on_progress(progress, total, message):
                seen.append((progress, total))

            done = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
            assert done.content[0].text == "done 3"
            assert seen == [(1, 3), (2, 3), (3, 3)]

            prompt = await client.get_prompt("greet", {"name": "Ada"})
            assert prompt.messages[0].content.text == "Say hello to Ada."
            assert [r.uri for r in (await client.list_resources()).resources] == ["py://notes/1"]
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["py://notes/{id}"]
            note = await client.read_resource("py://notes/2")
            assert note.contents[0].text == "The second note."

    anyio.run(check)


def test_pyserver_crash_kills_the_process(pyserver):
    async def check():
        async with mcp_client(pyserver.url, read_timeout_seconds=20) as client:
            with pytest.raises(Exception):
                await client.call_tool("crash", {})

    anyio.run(check)
    pyserver.process.wait(timeout=10)
    assert pyserver.process.returncode == 17


def test_pyserver_speaks_the_stateless_revision_too(pyserver):
    async def check():
        async with mcp_client(pyserver.url, mode="auto") as client:
            assert client.protocol_version == "2026-07-28"
            assert (await client.call_tool("echo", {"text": "x"})).content[0].text == "x"

    anyio.run(check)


def test_everything_over_streamable_http(everything_http):
    async def check():
        async with mcp_client(everything_http.url) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"echo", "get-sum"} <= names
            result = await client.call_tool("echo", {"message": "hi"})
            assert result.content[0].text == "Echo: hi"

    anyio.run(check)


def test_everything_over_legacy_sse(everything_sse):
    assert everything_sse.url.endswith("/sse")

    async def check():
        async with Client(sse_client(everything_sse.url), mode="legacy", cache=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "echo" in names
            result = await client.call_tool("echo", {"message": "over sse"})
            assert result.content[0].text == "Echo: over sse"

    anyio.run(check)


def inspector(node_peers, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The MCP Inspector's CLI mode, with `home` as HOME (where it keeps its catalog)."""
    return subprocess.run(
        [node_peers.node22, node_peers.inspector, "--cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOME=str(home)),
    )


def test_inspector_cli_lists_and_calls(node_peers, everything_http, tmp_path):
    listed = inspector(node_peers, everything_http.url, "--method", "tools/list", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "echo" in {t["name"] for t in json.loads(listed.stdout)["tools"]}
    called = inspector(
        node_peers, everything_http.url, "--transport", "http",
        "--header", "X-Ignored: yes",
        "--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=1", "b=2",
        home=tmp_path,
    )
    assert called.returncode == 0, called.stderr
    assert "3" in json.loads(called.stdout)["content"][0]["text"]


def test_conformance_runner_against_everything(node_peers, everything_http, tmp_path):
    """run.sh drives the suite and writes its results; server-everything passes the basics."""
    out = tmp_path / "results"
    run = subprocess.run(
        [str(CONFORMANCE_RUN), everything_http.url, str(out), "--scenario", "tools-list"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PORTICO_NODE22": node_peers.node22,
            "PORTICO_MCP_CONFORMANCE": node_peers.conformance,
            "CONFORMANCE_BASELINE": "",
        },
    )
    assert run.returncode == 0, run.stdout + run.stderr
    checks = [json.loads(p.read_text()) for p in out.glob("server-tools-list-*/checks.json")]
    assert len(checks) == 1 and [c["status"] for c in checks[0]] == ["SUCCESS"]
