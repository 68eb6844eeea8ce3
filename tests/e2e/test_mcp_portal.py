"""The MCP data plane end to end: real MCP clients talk to a portal, which talks to real upstreams.

    pytest tests/e2e/test_mcp_portal.py          # with PORTICO_BIN and the peers' env (mcp_peers.py)

Upstreams: `tests/e2e/upstream/pyserver.py` (official MCP Python SDK, registered as `py`) and
`@modelcontextprotocol/server-everything` (registered as `everything`, over streamable HTTP, and
over the legacy SSE transport). Clients: the official MCP Python SDK, the MCP Inspector's CLI
and the MCP conformance suite. Admin set-up goes through the official Cloudflare SDK (servers,
portals, service tokens) and Portico's Cedar policy API.

SQLite by default: the storage backends are covered by the rest of the suite; the tests that
lean on the log (audit events, change notifications, concurrent sessions) run on PostgreSQL as
well (`BOTH_BACKENDS`).
"""

from __future__ import annotations

import json
import secrets
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import cloudflare
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from conftest import Portico, postgres_database
from mcp_peers import mcp_client

CONFORMANCE_RUN = Path(__file__).parent.parent / "conformance" / "run.sh"
BUILT_INS = {"portal_list_servers", "portal_toggle_single_server", "portal_toggle_servers"}
PY_TOOLS = {"echo", "add", "fail", "large", "sleep", "progress", "whoami", "delete_note", "crash"}

# The SDK's JSON-RPC `Accept` for streamable HTTP, for the raw requests below.
MCP_ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "portico-e2e", "version": "0"},
    },
}


@dataclass
class Token:
    id: str
    client_id: str
    client_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"CF-Access-Client-Id": self.client_id, "CF-Access-Client-Secret": self.client_secret}


@dataclass
class Gateway:
    """A Portico with the data plane allowed to reach 127.0.0.1, and its admin clients."""

    portico: Portico
    client: object = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.portico.client()

    @property
    def account_id(self) -> str:
        return self.portico.account_id

    @property
    def servers(self):
        return self.client.zero_trust.access.ai_controls.mcp.servers

    @property
    def portals(self):
        return self.client.zero_trust.access.ai_controls.mcp.portals

    def add_server(self, id: str, url: str, **fields):
        """Registers a server and waits for the sync that creation starts in the background."""
        fields.setdefault("auth_type", "unauthenticated")
        created = self.servers.create(
            account_id=self.account_id,
            id=id,
            name=f"Server {id}",
            hostname=url,
            **fields,
        )
        assert created.status == "waiting", created
        deadline = time.monotonic() + 30
        while self.read_server(id).status == "waiting":
            assert time.monotonic() < deadline, f"server {id} was not synced within 30 s"
            time.sleep(0.05)
        return created

    def read_server(self, id: str):
        return self.servers.read(id, account_id=self.account_id)

    def add_portal(self, id: str, servers: list[dict], **fields):
        return self.portals.create(
            account_id=self.account_id,
            id=id,
            name=f"Portal {id}",
            hostname=f"{id}.mcp.example.com",
            servers=servers,
            **fields,
        )

    def add_token(self, name: str) -> Token:
        created = self.client.zero_trust.access.service_tokens.create(
            account_id=self.account_id, name=name
        )
        assert created.id and created.client_id and created.client_secret
        return Token(created.id, created.client_id, created.client_secret)

    def add_policy(self, name: str, policy: str) -> dict:
        answer = httpx.post(
            f"{self.portico.base_url}/accounts/{self.account_id}/cedar/policies",
            headers={"Authorization": f"Bearer {self.portico.admin_token}"},
            json={"name": name, "policy": policy},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    def permit(self, token: Token, portal_id: str, server_ids: list[str]) -> dict[str, str]:
        """Lets `token` connect to the portal and use each of `server_ids` (default deny).
        Returns the id of each server's `use_server` policy."""
        self.add_policy(
            f"connect {portal_id} {token.id}",
            f'permit (principal == Portico::ServiceToken::"{token.id}", '
            f'action == Portico::Action::"connect", resource == Portico::Portal::"{portal_id}");',
        )
        use = {}
        for server_id in server_ids:
            use[server_id] = self.add_policy(
                f"use {server_id} {token.id}",
                f'permit (principal == Portico::ServiceToken::"{token.id}", '
                f'action in Portico::Action::"use_server", '
                f'resource in Portico::Server::"{server_id}");',
            )["id"]
        return use

    def portal_url(self, portal_id: str) -> str:
        return f"http://127.0.0.1:{self.portico.port}/portals/{portal_id}/mcp"


@pytest.fixture
def gateway_backend(request, postgres) -> str | None:
    """The database of the test's Portico: SQLite unless the test parametrizes this fixture
    (indirectly) with `"postgres"`, as the tests that lean on the log do."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return postgres_database(postgres)


BOTH_BACKENDS = pytest.mark.parametrize(
    "gateway_backend", ["sqlite", "postgres"], indirect=True
)


@pytest.fixture
def gateway(request, gateway_backend, tmp_path_factory):
    """A Portico allowed to reach upstreams on 127.0.0.1; `@pytest.mark.serve_args(...)` adds
    arguments to its `portico serve`."""
    data_dir = tmp_path_factory.mktemp("portico") / "data"
    server = Portico(data_dir, gateway_backend)
    server.serve_args = ["--allow-private-upstreams"]
    marker = request.node.get_closest_marker("serve_args")
    if marker is not None:
        server.serve_args += list(marker.args)
    server.start()
    yield Gateway(server)
    try:
        if server.process is not None:
            code = server.stop()
            assert code == 0, f"portico exited with {code}:\n{server.log_tail()}"
    finally:
        server.kill()


@dataclass
class Portal:
    gateway: Gateway
    id: str
    token: Token
    # The id of the `use_server` policy of each server.
    use_policies: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.portal_url(self.id)

    def client(self, **options):
        return mcp_client(self.url, self.token.headers, **options)


def make_portal(gateway: Gateway, upstreams: dict[str, str], portal_id: str = "main", **mapping) -> Portal:
    """Registers each upstream (`server id -> url`), one portal with all of them, a service
    token, and policies letting the token connect and use every server."""
    for server_id, url in upstreams.items():
        gateway.add_server(server_id, url)
    gateway.add_portal(
        portal_id,
        [{"server_id": s, "on_behalf": False, **mapping.get(s, {})} for s in upstreams],
    )
    token = gateway.add_token(f"{portal_id}-client")
    use_policies = gateway.permit(token, portal_id, list(upstreams))
    return Portal(gateway, portal_id, token, use_policies)


@pytest.fixture
def py_portal(gateway, pyserver) -> Portal:
    """A portal with the Python SDK upstream only (needs no Node peer)."""
    return make_portal(gateway, {"py": pyserver.url})


@pytest.fixture
def portal(gateway, pyserver, everything_http) -> Portal:
    """A portal with the Python SDK upstream (`py`) and server-everything (`everything`)."""
    return make_portal(gateway, {"py": pyserver.url, "everything": everything_http.url})


def names(tools) -> set[str]:
    return {t.name for t in tools.tools}


def text(result) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


async def call_fails(client, name: str, arguments: dict) -> str:
    """Calls a tool that must fail: a JSON-RPC error, or a result with isError true. Returns
    the error text."""
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as e:
        return str(e)
    assert result.is_error is True, f"{name} succeeded: {result}"
    return text(result)


# --- Authentication -----------------------------------------------------------------------


def test_a_request_without_a_service_token_gets_401(py_portal):
    answer = httpx.post(
        py_portal.url, json=INITIALIZE, headers={"Accept": MCP_ACCEPT}, timeout=30
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers.get("WWW-Authenticate")


def test_a_portal_is_reached_by_its_hostname_at_mcp(py_portal):
    """`https://<portal hostname>/mcp`: the `Host` header picks the portal."""
    base = py_portal.url.split("/portals/")[0]
    headers = dict(py_portal.token.headers, Host=f"{py_portal.id}.mcp.example.com")

    async def check():
        async with mcp_client(f"{base}/mcp", headers) as client:
            assert text(await client.call_tool("py_echo", {"text": "by host"})) == "by host"

    anyio.run(check)
    # A host no portal is served at is 404, before any credential is looked at.
    answer = httpx.post(
        f"{base}/mcp",
        json=INITIALIZE,
        headers=dict(py_portal.token.headers, Host="nobody.example.com", Accept=MCP_ACCEPT),
        timeout=30,
    )
    assert answer.status_code == 404, answer.text


def test_a_foreign_origin_is_403(py_portal):
    headers = dict(py_portal.token.headers, Accept=MCP_ACCEPT, Origin="https://evil.example.net")
    answer = httpx.post(py_portal.url, json=INITIALIZE, headers=headers, timeout=30)
    assert answer.status_code == 403, answer.text
    # The portal's own origin, and a local tool's, are accepted.
    for origin in (f"https://{py_portal.id}.mcp.example.com", "http://localhost:6274"):
        answer = httpx.post(py_portal.url, json=INITIALIZE, headers=dict(headers, Origin=origin), timeout=30)
        assert answer.status_code == 200, (origin, answer.text)


@BOTH_BACKENDS
def test_a_bearer_servers_stored_credential_reaches_the_upstream_and_nowhere_else(gateway, pyserver):
    """The credential goes to the vault on registration and comes out only as the upstream
    request's header: a raw token as `Authorization: Bearer`, a `{"headers": ...}` object
    verbatim. It is in no event and no API answer."""
    token = "tok-" + secrets.token_hex(16)
    api_key = "key-" + secrets.token_hex(16)
    gateway.add_server("bear", pyserver.url, auth_type="bearer", auth_credentials=token)
    gateway.add_server(
        "hdrs", pyserver.url, auth_type="bearer", auth_credentials=json.dumps({"headers": {"X-Api-Key": api_key}})
    )
    gateway.add_portal("creds", [{"server_id": s, "on_behalf": False} for s in ("bear", "hdrs")])
    client_token = gateway.add_token("creds-client")
    portal = Portal(gateway, "creds", client_token, gateway.permit(client_token, "creds", ["bear", "hdrs"]))

    async def check():
        async with portal.client() as client:
            seen = json.loads(text(await client.call_tool("bear_whoami", {})))
            assert seen == {"authorization": f"Bearer {token}", "x-api-key": None}
            seen = json.loads(text(await client.call_tool("hdrs_whoami", {})))
            assert seen == {"authorization": None, "x-api-key": api_key}

    anyio.run(check)
    for server_id in ("bear", "hdrs"):
        answer = json.dumps(gateway.read_server(server_id).to_dict(), default=str)
        assert token not in answer and api_key not in answer
    log = portico_events(gateway.portico)
    assert token not in log and api_key not in log


def test_a_wrong_secret_is_refused(py_portal):
    headers = dict(py_portal.token.headers, **{"CF-Access-Client-Secret": "0" * 64})
    answer = httpx.post(
        py_portal.url, json=INITIALIZE, headers={"Accept": MCP_ACCEPT, **headers}, timeout=30
    )
    assert answer.status_code in (401, 403), answer.text


def test_a_token_without_a_connect_permit_is_refused(gateway, pyserver):
    make_portal(gateway, {"py": pyserver.url})
    stranger = gateway.add_token("stranger")
    answer = httpx.post(
        gateway.portal_url("main"),
        json=INITIALIZE,
        headers={"Accept": MCP_ACCEPT, **stranger.headers},
        timeout=30,
    )
    assert answer.status_code in (401, 403), answer.text


# --- Sync -----------------------------------------------------------------------------------


def test_a_server_is_synced_on_creation_and_on_demand(gateway, pyserver):
    created = gateway.add_server("py", pyserver.url)
    read = gateway.read_server("py")
    assert read.status == "ready", (created, read)
    assert {t["name"] for t in read.tools} == PY_TOOLS
    assert {p["name"] for p in read.prompts} == {"greet"}

    gateway.servers.sync("py", account_id=gateway.account_id)
    again = gateway.read_server("py")
    assert again.status == "ready"
    assert {t["name"] for t in again.tools} == PY_TOOLS


# --- Tools ----------------------------------------------------------------------------------


def test_tools_list_is_the_namespaced_union_and_the_built_ins(portal):
    async def check():
        async with portal.client() as client:
            listed = (await client.list_tools()).tools
            by_name = {t.name: t for t in listed}
            assert {f"py_{t}" for t in PY_TOOLS} <= set(by_name)
            assert {"everything_echo", "everything_get-sum"} <= set(by_name)
            assert BUILT_INS <= set(by_name)
            upstream_names = {n for n in by_name if n not in BUILT_INS}
            assert all(n.startswith(("py_", "everything_")) for n in upstream_names), upstream_names
            # Descriptions, schemas and annotations come through.
            assert by_name["py_echo"].description == "Returns the text it is given"
            assert by_name["py_echo"].input_schema["properties"]["text"]["type"] == "string"
            assert by_name["py_echo"].annotations.read_only_hint is True
            assert by_name["py_add"].output_schema["properties"]["sum"]["type"] == "integer"
            toggle = by_name["portal_toggle_single_server"].input_schema["properties"]
            assert "server_id" in toggle and set(toggle["action"]["enum"]) == {"toggle", "untoggle"}

    anyio.run(check)


def test_tool_calls_pass_through_unchanged(portal):
    async def check():
        async with portal.client() as client:
            echoed = await client.call_tool("py_echo", {"text": "héllo wörld"})
            assert [(c.type, c.text) for c in echoed.content] == [("text", "héllo wörld")]
            assert not echoed.is_error

            added = await client.call_tool("py_add", {"a": 2, "b": 40})
            assert added.structured_content == {"sum": 42}
            assert json.loads(text(added)) == {"sum": 42}

            failed = await client.call_tool("py_fail", {"message": "boom"})
            assert failed.is_error is True
            assert text(failed) == "boom"

            large = await client.call_tool("py_large", {"size": 2 * 1024 * 1024})
            assert len(text(large).encode()) == 2 * 1024 * 1024
            assert text(large).startswith("0123456789abcdef")

            everything = await client.call_tool("everything_echo", {"message": "hi"})
            assert text(everything) == "Echo: hi"

    anyio.run(check)


def test_errors_leave_the_session_usable(py_portal):
    async def check():
        async with py_portal.client() as client:
            with pytest.raises(MCPError):
                await client.call_tool("py_no_such_tool", {})
            with pytest.raises(MCPError):
                await client.call_tool("nobody_echo", {"text": "x"})
            message = await call_fails(client, "py_add", {"a": "not a number", "b": 1})
            assert message
            assert text(await client.call_tool("py_echo", {"text": "still here"})) == "still here"

    anyio.run(check)


def test_progress_notifications_reach_the_caller(py_portal):
    async def check():
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total, message))

        async with py_portal.client() as client:
            done = await client.call_tool("py_progress", {"steps": 3}, progress_callback=on_progress)
            assert text(done) == "done 3"
        assert [(p, t) for p, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
        assert seen[0][2] == "step 1 of 3"

    anyio.run(check)


def test_concurrent_progress_on_two_servers_reaches_each_caller(gateway, pyserver):
    """Two servers (the same upstream, registered twice: two connections whose request
    counters both start at 0) report progress at the same time: each caller gets its own
    notifications, all of them, in order."""
    portal = make_portal(gateway, {"py": pyserver.url, "twin": pyserver.url})

    async def check():
        seen: dict[str, list] = {"py": [], "twin": []}
        done: dict[str, str] = {}

        async def run(server: str):
            async def on_progress(progress, total, message):
                seen[server].append((progress, total))

            async with portal.client() as client:
                result = await client.call_tool(
                    f"{server}_progress", {"steps": 5}, progress_callback=on_progress
                )
                done[server] = text(result)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run, "py")
                tasks.start_soon(run, "twin")
        assert done == {"py": "done 5", "twin": "done 5"}
        expected = [(step, 5) for step in range(1, 6)]
        assert seen == {"py": expected, "twin": expected}

    anyio.run(check)


def test_the_stateless_client_mode_works_too(py_portal):
    """The SDK's default `mode="auto"` (2026-07-28 `server/discover`, falling back to the
    initialize handshake) gets the same tools and results."""

    async def check():
        async with py_portal.client(mode="auto") as client:
            assert "py_echo" in names(await client.list_tools())
            assert text(await client.call_tool("py_echo", {"text": "auto"})) == "auto"

    anyio.run(check)


# --- Overrides and policies -------------------------------------------------------------


def test_server_and_portal_overrides_rename_describe_and_hide_tools(gateway, pyserver):
    gateway.add_server(
        "py",
        pyserver.url,
        updated_tools=[
            {"name": "echo", "alias": "say", "description": "Says it back"},
            {"name": "crash", "enabled": False},
        ],
    )
    gateway.add_portal(
        "main",
        [
            {
                "server_id": "py",
                "on_behalf": False,
                "updated_tools": [
                    {"name": "add", "description": "Portal-level text"},
                    {"name": "sleep", "enabled": False},
                ],
            }
        ],
    )
    token = gateway.add_token("client")
    gateway.permit(token, "main", ["py"])

    async def check():
        async with mcp_client(gateway.portal_url("main"), token.headers) as client:
            by_name = {t.name: t for t in (await client.list_tools()).tools}
            assert "py_say" in by_name and "py_echo" not in by_name
            assert by_name["py_say"].description == "Says it back"
            assert by_name["py_add"].description == "Portal-level text"
            assert "py_crash" not in by_name and "py_sleep" not in by_name
            assert {"py_fail", "py_large"} <= set(by_name)
            # The alias reaches the upstream tool; a hidden tool cannot be called.
            assert text(await client.call_tool("py_say", {"text": "aliased"})) == "aliased"
            await call_fails(client, "py_sleep", {"seconds": 0})

    anyio.run(check)


def test_a_forbid_on_destructive_tools_hides_them(gateway, pyserver):
    portal = make_portal(gateway, {"py": pyserver.url})
    gateway.add_policy(
        "no destructive tools",
        f'forbid (principal == Portico::ServiceToken::"{portal.token.id}", '
        'action in [Portico::Action::"list_tool", Portico::Action::"call_tool"], resource) '
        "when { resource.destructiveHint };",
    )

    async def check():
        async with portal.client() as client:
            listed = names(await client.list_tools())
            # `delete_note` says destructiveHint true; `crash` has no annotations, and MCP's
            # default for destructiveHint is true.
            assert "py_delete_note" not in listed and "py_crash" not in listed
            assert {"py_echo", "py_add", "py_fail", "py_large", "py_sleep", "py_progress"} <= listed
            await call_fails(client, "py_delete_note", {"id": "1"})
            assert text(await client.call_tool("py_echo", {"text": "ok"})) == "ok"

    anyio.run(check)


def test_default_deny_shows_only_the_permitted_servers(gateway, pyserver, everything_http):
    make_portal(gateway, {"py": pyserver.url, "everything": everything_http.url})
    narrow = gateway.add_token("narrow")
    gateway.permit(narrow, "main", ["py"])

    async def check():
        async with mcp_client(gateway.portal_url("main"), narrow.headers) as client:
            listed = names(await client.list_tools())
            assert "py_echo" in listed
            assert not any(n.startswith("everything_") for n in listed), listed
            await call_fails(client, "everything_echo", {"message": "x"})

    anyio.run(check)


# --- Prompts and resources --------------------------------------------------------------


def test_prompts_and_resources_through_the_portal(py_portal):
    async def check():
        async with py_portal.client() as client:
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
            assert "py_greet" in prompts
            assert [a.name for a in prompts["py_greet"].arguments] == ["name"]
            greeting = await client.get_prompt("py_greet", {"name": "Ada"})
            assert greeting.messages[0].content.text == "Say hello to Ada."

            resources = (await client.list_resources()).resources
            first = [r for r in resources if r.uri.endswith("notes/1")]
            assert len(first) == 1, resources
            read = await client.read_resource(first[0].uri)
            assert read.contents[0].text == "The first note."

            templates = (await client.list_resource_templates()).resource_templates
            assert len([t for t in templates if "notes/{id}" in t.uri_template]) == 1, templates

    anyio.run(check)


# --- The built-in tools -----------------------------------------------------------------


def test_portal_list_servers_names_the_servers(portal):
    async def check():
        async with portal.client() as client:
            listed = await client.call_tool("portal_list_servers", {})
            assert not listed.is_error
            body = text(listed) + json.dumps(listed.structured_content or {})
            assert "py" in body and "everything" in body

    anyio.run(check)


def test_toggling_a_server_off_and_on_changes_the_tools_and_notifies(portal):
    """`untoggle` takes a server's tools out of this session, `toggle` brings them back; each
    change sends `notifications/tools/list_changed`."""

    async def check():
        changed = anyio.Event()
        notifications = []

        async def on_message(message):
            method = getattr(getattr(message, "root", message), "method", None)
            notifications.append(method)
            if method == "notifications/tools/list_changed":
                changed.set()

        async with portal.client(message_handler=on_message) as client:
            assert "py_echo" in names(await client.list_tools())

            off = await client.call_tool(
                "portal_toggle_single_server", {"server_id": "py", "action": "untoggle"}
            )
            assert not off.is_error, text(off)
            with anyio.fail_after(10):
                await changed.wait()
            listed = names(await client.list_tools())
            assert not any(n.startswith("py_") for n in listed), listed
            assert "everything_echo" in listed
            await call_fails(client, "py_echo", {"text": "x"})

            changed = anyio.Event()
            on = await client.call_tool(
                "portal_toggle_single_server", {"server_id": "py", "action": "toggle"}
            )
            assert not on.is_error, text(on)
            with anyio.fail_after(10):
                await changed.wait()
            assert "py_echo" in names(await client.list_tools())

    anyio.run(check)


def test_a_default_disabled_server_appears_once_toggled(gateway, pyserver, everything_http):
    portal = make_portal(
        gateway,
        {"py": pyserver.url, "everything": everything_http.url},
        everything={"default_disabled": True, "updated_tools": [{"name": "echo", "enabled": True}]},
    )

    async def check():
        async with portal.client() as client:
            listed = names(await client.list_tools())
            assert "py_echo" in listed
            assert not any(n.startswith("everything_") for n in listed), listed
            on = await client.call_tool(
                "portal_toggle_single_server", {"server_id": "everything", "action": "toggle"}
            )
            assert not on.is_error, text(on)
            # `default_disabled` is also an allowlist: only tools enabled by an override show.
            listed = names(await client.list_tools())
            assert "everything_echo" in listed
            assert "everything_get-sum" not in listed, listed

    anyio.run(check)


# --- Transports and failures ------------------------------------------------------------


def test_a_legacy_sse_upstream(gateway, everything_sse):
    assert everything_sse.url.endswith("/sse")
    portal = make_portal(gateway, {"legacy": everything_sse.url})
    assert gateway.read_server("legacy").status == "ready"
    assert "echo" in {t["name"] for t in gateway.read_server("legacy").tools}

    async def check():
        async with portal.client() as client:
            assert "legacy_echo" in names(await client.list_tools())
            assert text(await client.call_tool("legacy_echo", {"message": "old"})) == "Echo: old"

    anyio.run(check)


def test_an_upstream_crash_mid_call(gateway, portal, pyserver):
    async def check():
        async with portal.client() as client:
            # A clean error, soon: not a hang until some timeout of the client's.
            with anyio.fail_after(30):
                await call_fails(client, "py_crash", {})
            # The other server is untouched, in the same session.
            assert text(await client.call_tool("everything_echo", {"message": "alive"})) == "Echo: alive"

    anyio.run(check)
    pyserver.process.wait(timeout=10)
    assert pyserver.process.returncode == 17

    try:
        gateway.servers.sync("py", account_id=gateway.account_id)
    except cloudflare.APIError:  # a failed sync may answer with an error; the status counts
        pass
    assert gateway.read_server("py").status == "error"

    async def after():
        async with portal.client() as client:
            listed = names(await client.list_tools())
            assert "everything_echo" in listed
            assert text(await client.call_tool("everything_echo", {"message": "still"})) == "Echo: still"

    anyio.run(after)


@pytest.mark.serve_args("--upstream-call-timeout", "2")
def test_a_hanging_upstream_times_out_cleanly_and_blocks_nothing_else(portal):
    """With `--upstream-call-timeout 2`, a tool that sleeps 30 s ends in a JSON-RPC error
    naming the timeout, well before the sleep would; another server answers meanwhile in the
    same session, and the session keeps working afterwards."""

    async def check():
        async with portal.client() as client:
            finished: list[str] = []
            outcome: dict[str, object] = {}

            async def hang():
                try:
                    outcome["sleep"] = await client.call_tool("py_sleep", {"seconds": 30})
                except MCPError as e:
                    outcome["sleep"] = e
                finished.append("sleep")

            async def echo():
                # Started once the sleep is in flight.
                await anyio.sleep(0.2)
                outcome["echo"] = await client.call_tool("everything_echo", {"message": "meanwhile"})
                finished.append("echo")

            # Far less than the 30 s sleep: only the portal's timeout can end the call in time.
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(hang)
                    tasks.start_soon(echo)

            assert finished == ["echo", "sleep"], finished
            assert text(outcome["echo"]) == "Echo: meanwhile"
            error = outcome["sleep"]
            assert isinstance(error, MCPError), f"py_sleep answered: {error}"
            assert "did not answer within 2 s" in str(error), str(error)
            assert "`py`" in str(error)

            assert text(await client.call_tool("py_echo", {"text": "after"})) == "after"

    anyio.run(check)
    statuses = {e["tool_call_name"]: e["status"] for e in audit_events(portal.gateway.portico)}
    assert statuses == {"py_sleep": "timeout", "everything_echo": "ok", "py_echo": "ok"}


def test_a_cancelled_call_is_relayed_and_audited_as_cancelled(py_portal):
    """The client gives up on `py_sleep` (the SDK sends `notifications/cancelled`): the portal
    stops waiting, tells the upstream, records the call as `cancelled`, and the session goes on."""

    async def check():
        async with py_portal.client() as client:
            with anyio.move_on_after(1):
                await client.call_tool("py_sleep", {"seconds": 30})
                raise AssertionError("py_sleep answered before it was cancelled")
            assert text(await client.call_tool("py_echo", {"text": "after"})) == "after"

    anyio.run(check)
    deadline = time.monotonic() + 20
    while True:
        statuses = {e["tool_call_name"]: e["status"] for e in audit_events(py_portal.gateway.portico)}
        if "py_sleep" in statuses or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert statuses == {"py_sleep": "cancelled", "py_echo": "ok"}, statuses


@BOTH_BACKENDS
def test_concurrent_sessions_each_get_their_own_answers(py_portal):
    sessions = 20
    answers: dict[int, str] = {}

    async def one(n: int):
        async with py_portal.client() as client:
            answers[n] = text(await client.call_tool("py_echo", {"text": f"session {n} says hi"}))

    async def check():
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tasks:
                for n in range(sessions):
                    tasks.start_soon(one, n)

    anyio.run(check)
    assert answers == {n: f"session {n} says hi" for n in range(sessions)}
    # One audit event per call, each in its own session (the calls share group commits).
    handled = audit_events(py_portal.gateway.portico)
    assert [(e["tool_call_name"], e["status"]) for e in handled] == [("py_echo", "ok")] * sessions
    assert len({e["session_id"] for e in handled}) == sessions


# --- Bad input at the HTTP and JSON-RPC level ------------------------------------------------


def sse_messages(response: httpx.Response) -> list[dict]:
    """The JSON-RPC messages of a streamable HTTP answer, whether plain JSON or an SSE stream."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = response.json()
        return body if isinstance(body, list) else [body]
    messages, data = [], []
    for line in response.text.splitlines() + [""]:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            payload = "\n".join(data)
            data = []
            if payload.strip():
                messages.append(json.loads(payload))
    return messages


class RawSession:
    """An MCP session driven with raw HTTP requests, to send what an SDK never would."""

    def __init__(self, portal: Portal) -> None:
        self.url = portal.url
        self.http = httpx.Client(timeout=30)
        self.headers = {
            "Accept": MCP_ACCEPT,
            "Content-Type": "application/json",
            **portal.token.headers,
        }
        answer = self.http.post(self.url, json=INITIALIZE, headers=self.headers)
        assert answer.status_code == 200, answer.text
        session_id = answer.headers.get("mcp-session-id")
        assert session_id, answer.headers
        [initialized] = [m for m in sse_messages(answer) if m.get("id") == 1]
        version = initialized["result"]["protocolVersion"]
        self.headers.update({"Mcp-Session-Id": session_id, "MCP-Protocol-Version": version})
        sent = self.post(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        assert sent.status_code in (200, 202), sent.text
        self.next_id = 100

    def post(self, body: str | bytes) -> httpx.Response:
        return self.http.post(self.url, content=body, headers=self.headers)

    def answer(self, response: httpx.Response, id: int) -> dict:
        assert response.status_code == 200, (response.status_code, response.text[:500])
        found = [m for m in sse_messages(response) if m.get("id") == id]
        assert len(found) == 1, sse_messages(response)
        return found[0]

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        return self.answer(self.post(json.dumps(body)), self.next_id)

    def still_lists_tools(self) -> None:
        listed = self.request("tools/list")
        assert "py_echo" in {t["name"] for t in listed["result"]["tools"]}, listed

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def raw_session(py_portal):
    session = RawSession(py_portal)
    yield session
    session.close()


def test_a_malformed_json_body_is_400_parse_error_and_the_session_survives(raw_session):
    """400 with a JSON-RPC parse error (rmcp alone answers 415 Unsupported Media Type, though
    the body was sent as application/json)."""
    for body in [b'{"jsonrpc": "2.0", "id": 7, "method": "tools/list"', b"not json", b"[}"]:
        answer = raw_session.post(body)
        assert answer.status_code == 400, (answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == -32700, answer.text
        raw_session.still_lists_tools()
    # A body that is not sent as JSON is still 415.
    plain = raw_session.http.post(
        raw_session.url,
        content=b'{"jsonrpc": "2.0", "id": 8, "method": "tools/list"}',
        headers=dict(raw_session.headers, **{"Content-Type": "text/plain"}),
    )
    assert plain.status_code == 415, (plain.status_code, plain.text)


def test_an_unknown_method_is_method_not_found(raw_session):
    answer = raw_session.request("no/such/method", {})
    assert answer["error"]["code"] == -32601, answer
    assert "no/such/method" in answer["error"]["message"], answer
    raw_session.still_lists_tools()


def test_tool_arguments_that_are_not_an_object_are_invalid_params(py_portal, raw_session):
    """-32602, not -32601 ("method not found", which rmcp answers by default for a known method
    whose params it cannot parse), and audited as an invalid call."""
    for arguments in ["just text", [1, 2], 42]:
        answer = raw_session.request("tools/call", {"name": "py_echo", "arguments": arguments})
        assert answer["error"]["code"] == -32602, answer
        assert "tools/call" in answer["error"]["message"], answer
        raw_session.still_lists_tools()
    # Sane arguments still work.
    echoed = raw_session.request("tools/call", {"name": "py_echo", "arguments": {"text": "ok"}})
    assert echoed["result"]["content"][0]["text"] == "ok", echoed

    handled = audit_events(py_portal.gateway.portico)
    assert [(e["tool_call_name"], e["status"]) for e in handled] == [
        ("py_echo", "invalid"),
        ("py_echo", "invalid"),
        ("py_echo", "invalid"),
        ("py_echo", "ok"),
    ]


def test_a_body_over_4_mib_is_413(raw_session):
    raw_session.next_id += 1
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": raw_session.next_id,
            "method": "tools/call",
            "params": {"name": "py_echo", "arguments": {"text": "x" * (4 * 1024 * 1024)}},
        }
    )
    assert len(body.encode()) > 4 * 1024 * 1024
    answer = raw_session.post(body)
    assert answer.status_code == 413, (answer.status_code, answer.text[:500])
    raw_session.still_lists_tools()


# --- Change notifications -----------------------------------------------------------------


class ListChanges:
    """Counts `notifications/tools/list_changed` a client receives."""

    def __init__(self) -> None:
        self.changed = anyio.Event()

    async def __call__(self, message) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/tools/list_changed":
            self.changed.set()

    async def wait(self, seconds: float = 15) -> None:
        with anyio.fail_after(seconds):
            await self.changed.wait()
        self.changed = anyio.Event()


@BOTH_BACKENDS
def test_an_admin_disabling_a_tool_notifies_the_session(gateway, py_portal):
    async def check():
        changes = ListChanges()
        async with py_portal.client(message_handler=changes) as client:
            assert "py_echo" in names(await client.list_tools())
            await anyio.to_thread.run_sync(
                lambda: gateway.servers.update(
                    "py",
                    account_id=gateway.account_id,
                    name="Server py",
                    updated_tools=[{"name": "echo", "enabled": False}],
                )
            )
            await changes.wait()
            listed = names(await client.list_tools())
            assert "py_echo" not in listed, listed
            assert "py_add" in listed
            await call_fails(client, "py_echo", {"text": "x"})

    anyio.run(check)


@BOTH_BACKENDS
def test_a_new_forbid_policy_notifies_the_session(gateway, py_portal):
    async def check():
        changes = ListChanges()
        async with py_portal.client(message_handler=changes) as client:
            assert "py_delete_note" in names(await client.list_tools())
            await anyio.to_thread.run_sync(
                lambda: gateway.add_policy(
                    "no destructive tools",
                    f'forbid (principal == Portico::ServiceToken::"{py_portal.token.id}", '
                    'action == Portico::Action::"list_tool", resource) '
                    "when { resource.destructiveHint };",
                )
            )
            await changes.wait()
            listed = names(await client.list_tools())
            assert "py_delete_note" not in listed and "py_crash" not in listed, listed
            assert "py_echo" in listed

    anyio.run(check)


# --- Audit ------------------------------------------------------------------------------------


def portico_events(portico: Portico) -> str:
    """`portico events --json` on the test's storage: one recorded event per line."""
    return subprocess.run(
        portico._global_args() + ["events", "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, RUST_LOG="warn"),
    ).stdout


def audit_events(portico: Portico) -> list[dict]:
    """The `PortalRequestHandled` events in the log, oldest first."""
    recorded = [json.loads(line) for line in portico_events(portico).splitlines() if line.strip()]
    return [r["event"] for r in recorded if r["event"]["type"] == "PortalRequestHandled"]


@BOTH_BACKENDS
def test_every_call_is_audited_once_with_its_outcome_and_no_secret(gateway, py_portal):
    forbid = gateway.add_policy(
        "no destructive calls",
        f'forbid (principal == Portico::ServiceToken::"{py_portal.token.id}", '
        'action == Portico::Action::"call_tool", resource) when { resource.destructiveHint };',
    )["id"]

    async def calls():
        async with py_portal.client() as client:
            assert text(await client.call_tool("py_echo", {"text": "audited"})) == "audited"
            failed = await client.call_tool("py_fail", {"message": "boom"})
            assert failed.is_error is True
            with pytest.raises(MCPError):
                await client.call_tool("py_no_such_tool", {})
            # Listed (the forbid is on `call_tool` only), but not callable.
            assert "py_delete_note" in names(await client.list_tools())
            with pytest.raises(MCPError) as denied:
                await client.call_tool("py_delete_note", {"id": "1"})
            assert forbid in str(denied.value), str(denied.value)

    anyio.run(calls)

    out = portico_events(gateway.portico)
    recorded = [json.loads(line) for line in out.splitlines() if line.strip()]
    handled = [r["event"] for r in recorded if r["event"]["type"] == "PortalRequestHandled"]
    by_name = {e["tool_call_name"]: e for e in handled}
    assert len(handled) == 4 and len(by_name) == 4, handled
    expected = {
        "py_echo": ("ok", "py"),
        "py_fail": ("tool_error", "py"),
        "py_no_such_tool": ("not_found", None),
        "py_delete_note": ("denied", "py"),
    }
    assert {n: (e["status"], e.get("server_id")) for n, e in by_name.items()} == expected
    for event in handled:
        assert event["portal_id"] == py_portal.id
        assert event["method"] == "tools/call"
        assert event["user_id"] == py_portal.token.id
        assert event.get("session_id")
    assert len({e["session_id"] for e in handled}) == 1
    assert by_name["py_echo"]["upstream_name"] == "echo"
    assert py_portal.use_policies["py"] in by_name["py_echo"]["policies"]
    assert py_portal.use_policies["py"] in by_name["py_fail"]["policies"]
    assert by_name["py_delete_note"]["policies"] == [forbid]
    assert forbid in by_name["py_delete_note"]["error"]
    assert by_name["py_echo"].get("server_response_duration_ms") is not None
    assert "server_response_duration_ms" not in by_name["py_delete_note"]
    # The actor of each is the service token.
    actors = [r["actor"] for r in recorded if r["event"]["type"] == "PortalRequestHandled"]
    assert all(py_portal.token.id in json.dumps(a) for a in actors), actors

    # The client secret is nowhere: not in the log (either rendering), not in the server's log.
    secret = py_portal.token.client_secret
    plain = subprocess.run(
        gateway.portico._global_args() + ["events"],
        check=True, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, RUST_LOG="warn"),
    ).stdout
    assert secret not in out and secret not in plain
    assert secret not in gateway.portico.log_tail(lines=100_000)


# --- Other clients ----------------------------------------------------------------------


def inspector(node_peers, portal: Portal, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    headers = [f"{k}: {v}" for k, v in portal.token.headers.items()]
    return subprocess.run(
        [node_peers.node22, node_peers.inspector, "--cli", portal.url,
         "--transport", "http", "--header", *headers, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOME=str(home)),
    )


def test_the_inspector_cli_lists_and_calls(node_peers, portal, tmp_path):
    listed = inspector(node_peers, portal, "--method", "tools/list", home=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    tool_names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert {"py_echo", "everything_echo"} | BUILT_INS <= tool_names

    called = inspector(
        node_peers, portal,
        "--method", "tools/call", "--tool-name", "py_add", "--tool-arg", "a=20", "b=22",
        home=tmp_path,
    )
    assert called.returncode == 0, called.stdout + called.stderr
    assert json.loads(called.stdout)["structuredContent"] == {"sum": 42}


def test_the_conformance_suite_matches_the_baseline(node_peers, portal, tmp_path):
    """Every scenario passes, or fails as tests/conformance/baseline.yml expects (the suite also
    fails on a baseline entry that now passes)."""
    run = subprocess.run(
        [str(CONFORMANCE_RUN), portal.url, str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(
            os.environ,
            PORTICO_NODE22=node_peers.node22,
            PORTICO_MCP_CONFORMANCE=node_peers.conformance,
            PORTICO_PYTHON=sys.executable,
            CF_ACCESS_CLIENT_ID=portal.token.client_id,
            CF_ACCESS_CLIENT_SECRET=portal.token.client_secret,
        ),
    )
    assert run.returncode == 0, run.stdout + run.stderr
