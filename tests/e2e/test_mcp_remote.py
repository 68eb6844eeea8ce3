"""`mcp-remote` (npm) signs a person in to a portal through a real browser, then calls its tools.

mcp-remote is what a desktop MCP client that only starts local (stdio) servers runs to reach a
remote one: it finds Portico's authorization server from the portal's 401, registers itself
dynamically (RFC 7591), listens on a loopback port for the OAuth redirect, and opens the
authorization URL in the person's browser. Its browser here is `browser_handoff.sh` (set as
`BROWSER`, which the `open` package's `xdg-open` runs when there is no desktop), which hands the
URL to this test; Playwright opens it in headless Chromium (`browser.py`), where the person signs
in with the PIN from Portico's log and allows mcp-remote. mcp-remote then redeems the code, and
the official MCP Python SDK, talking to mcp-remote over stdio as a desktop client would, lists
and calls the portal's tools as that person.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from browser import browser, sign_in
from conftest import free_port
from test_mcp_portal import audit_events, gateway, gateway_backend, names, text  # noqa: F401
from test_sign_in import people_portal  # noqa: F401

HANDOFF = Path(__file__).parent / "browser_handoff.sh"
FLOW_TIMEOUT = 120.0


async def opened_url(opened: Path, mcp_remote_log: Path) -> str:
    """The first URL mcp-remote asked the browser to open."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = opened.read_text().splitlines()
        if lines:
            return lines[0]
        await anyio.sleep(0.05)
    raise AssertionError(f"mcp-remote opened no browser:\n{mcp_remote_log.read_text(errors='replace')[-4000:]}")


def test_mcp_remote_signs_a_person_in_through_the_browser_and_calls_tools_as_them(
    people_portal, node_peers, chromium, tmp_path
):
    gateway = people_portal
    url = gateway.portal_url("team")
    issuer = f"http://127.0.0.1:{gateway.portico.port}/portals/team"
    email = "dana@example.com"
    callback_port = free_port()
    callback = f"http://localhost:{callback_port}/oauth/callback"
    opened = tmp_path / "opened-urls"
    opened.touch()
    mcp_remote_log = tmp_path / "mcp-remote.log"
    params = StdioServerParameters(
        command=node_peers.node22,
        args=[node_peers.mcp_remote, url, str(callback_port), "--auth-timeout", "90"],
        env={
            "BROWSER": str(HANDOFF),
            "PORTICO_E2E_OPENED_URLS": str(opened),
            # Its client registration and tokens, kept out of the home directory.
            "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-auth"),
        },
    )
    seen: dict[str, str] = {}

    async def person():
        authorization = await opened_url(opened, mcp_remote_log)
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization).query).items()}
        assert authorization.startswith(f"{issuer}/oauth/authorize?"), authorization
        assert query["code_challenge_method"] == "S256" and query["resource"] == url, query
        assert query["redirect_uri"] == callback, query
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(authorization)
            await sign_in(page, gateway.portico, email)
            seen["consent"] = await page.locator("main").inner_text()
            # mcp-remote's page closes its window by script: wait for its answer, not a load.
            async with page.expect_response(lambda r: r.url.startswith(f"{callback}?")) as answer:
                await page.get_by_role("button", name="Allow").click()
            response = await answer.value
            assert response.status == 200
            assert "Authorization successful" in await response.text()

    async def check():
        with anyio.fail_after(FLOW_TIMEOUT), open(mcp_remote_log, "w") as errlog:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(person)
                transport = stdio_client(params, errlog=errlog)
                async with Client(transport, mode="legacy", cache=None) as client:
                    assert "py_echo" in names(await client.list_tools())
                    result = await client.call_tool("py_echo", {"text": "through mcp-remote"})
                    assert text(result) == "through mcp-remote"

    try:
        anyio.run(check)
    except BaseException:
        print(f"mcp-remote's log:\n{mcp_remote_log.read_text(errors='replace')[-6000:]}")
        raise
    assert f"MCP CLI Proxy at localhost wants to use portal Portal team as you ({email})" in seen["consent"], seen
    [call] = [e for e in audit_events(gateway.portico) if e.get("method") == "tools/call"]
    assert call["user_email"] == email, call
    assert call["tool_call_name"] == "py_echo" and call["status"] == "ok", call
