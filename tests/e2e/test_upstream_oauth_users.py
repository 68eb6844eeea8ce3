"""People authorizing an OAuth-protected upstream through a portal, with real parts on every
side: the upstream is an MCP server of the official Python SDK acting as an OAuth resource
server (`upstream/oauth_server.py`, it answers `whoami` with the subject of the token it got),
its authorization server is `oidc-provider` from npm (`oauth_as.mjs`), the portal's MCP client
is the official Python SDK with tokens of Portico's own authorization server, and the people
use Debian's Chromium (Playwright) to sign in to the portal, open the server-selection page the
client is handed, and sign in at the upstream.

Each person's calls carry their own upstream token (the upstream sees their subject), tokens
are refreshed silently (once for 50 calls at once), a refused refresh asks that person only to
authorize again, the client's own token never reaches the upstream, and no upstream token
appears in Portico's log. An admin's authorization of the server's own credential goes through
`POST …/servers/{id}/authorize` and `/servers-callback`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitResult
from playwright.async_api import Page

from browser import browser, sign_in
from mcp_peers import mcp_client
from oauth_upstream import login, oauth_upstream  # noqa: F401
from test_mcp_portal import gateway, gateway_backend, portico_events, text  # noqa: F401
from test_pages import OAuthClient, callback, consent_and_get_tokens, heading  # noqa: F401

ALICE = "alice@example.com"
BOB = "bob@example.com"
LINK = re.compile(r"https?://\S+/authorize\?elicitationId=[0-9a-f]{32}")


def add_oauth_server(gateway, server_id: str, url: str) -> None:
    created = gateway.servers.create(
        account_id=gateway.account_id, id=server_id, name=f"Server {server_id}", hostname=url,
        auth_type="oauth",
    )
    # No one authorized it yet: it waits (nothing to sync with), and says so.
    assert created.status == "waiting", created


def allow_example_people(gateway, server: str | None) -> None:
    """People at example.com may connect to portal `team` and use `server` (every server when
    `None`)."""
    resource = "resource" if server is None else f'resource in Portico::Server::"{server}"'
    gateway.add_policy(
        "example people connect",
        'permit (principal is Portico::User, action == Portico::Action::"connect", '
        'resource == Portico::Portal::"team") when { principal.email like "*@example.com" };',
    )
    gateway.add_policy(
        f"example people use {server or 'everything'}",
        f'permit (principal is Portico::User, action in Portico::Action::"use_server", {resource}) '
        'when { principal.email like "*@example.com" };',
    )


def team_with(gateway, upstream, *, on_behalf: bool = True) -> None:
    """Portal `team` with the OAuth server `secure`; people at example.com may use it."""
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    gateway.add_portal("team", [{"server_id": "secure", "on_behalf": on_behalf}])
    allow_example_people(gateway, "secure")


def admin_authorizes(gateway, upstream_user: str) -> None:
    """An admin authorizes `secure`'s own credential, signing in at the upstream as
    `upstream_user`."""
    answer = httpx.post(f"{servers_api(gateway)}/secure/authorize", headers=admin(gateway), timeout=30)
    assert answer.status_code == 200, answer.text
    done = httpx.get(login(answer.json()["result"]["url"], upstream_user), timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text


def servers_api(gateway) -> str:
    return f"{gateway.portico.base_url}/accounts/{gateway.account_id}/access/ai-controls/mcp/servers"


def admin(gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.portico.admin_token}"}


def ops_portal(gateway):
    """Portal `ops` using `secure`'s own credential, and a service token allowed to use it."""
    gateway.add_portal("ops", [{"server_id": "secure", "on_behalf": False}])
    token = gateway.add_token("ops bot")
    gateway.permit(token, "ops", ["secure"])
    return token


async def accept(context, params):
    return ElicitResult(action="accept")


def link_in(result) -> str:
    found = LINK.search(text(result))
    assert found, text(result)
    return found.group(0)


async def authorize_on_the_page(page: Page, link: str, upstream_user: str) -> None:
    """The person opens the selection link (already signed in to the portal in this browser),
    keeps `secure` on, saves, authorizes it at the upstream and comes back."""
    await page.goto(link)
    assert await heading(page) == "Portal team: your servers"
    row = page.locator('li[data-server-id="secure"]')
    assert "needs your authorization" in await row.inner_text()
    await row.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Save").click()
    await page.get_by_role("link", name="Authorize").click()
    # At the upstream's authorization server: its own sign-in form.
    await page.get_by_label("User").fill(upstream_user)
    await page.get_by_role("button", name="Continue").click()
    # Back at the portal's page, with every server done.
    await page.locator("#done").wait_for()
    assert "authorized" in await page.locator('li[data-server-id="secure"]').inner_text()


async def whoami(session) -> dict:
    result = await session.call_tool("secure_whoami", {})
    assert not result.is_error, text(result)
    return json.loads(text(result))


def events_text(gateway) -> str:
    return portico_events(gateway.portico)


def event_types(gateway, kind: str) -> list[dict]:
    recorded = [json.loads(line) for line in events_text(gateway).splitlines() if line.strip()]
    return [r["event"] for r in recorded if r["event"]["type"] == kind]


def test_two_people_each_authorize_the_upstream_and_call_it_as_themselves(gateway, oauth_upstream, chromium, callback):
    upstream = oauth_upstream()
    team_with(gateway, upstream)
    client = OAuthClient(gateway, callback)

    async def check():
        portal_tokens = {}
        for email, upstream_user in [(ALICE, "alice"), (BOB, "bob")]:
            async with browser(chromium) as context:
                page = await context.new_page()
                tokens = await consent_and_get_tokens(page, gateway, client, email)
                portal_tokens[email] = tokens["access_token"]
                headers = {"Authorization": f"Bearer {tokens['access_token']}"}
                async with mcp_client(client.resource, headers) as session:
                    if email == ALICE:
                        # No one authorized the server yet: its tools are not known.
                        tools = {t.name for t in (await session.list_tools()).tools}
                        assert not any(t.startswith("secure_") for t in tools), tools
                    else:
                        # Not authorized yet: the call fails with the selection link.
                        refused = await session.call_tool("secure_whoami", {})
                        assert refused.is_error, text(refused)
                        assert "needs your authorization" in text(refused)
                        link_in(refused)
                        # A client that takes URL elicitations gets MCP's
                        # URL-elicitation-required error, the link in its data.
                        async with mcp_client(client.resource, headers, elicitation_callback=accept) as capable:
                            with pytest.raises(MCPError) as required:
                                await capable.call_tool("secure_whoami", {})
                        assert required.value.error.code == -32042, required.value.error
                        (elicitation,) = required.value.error.data["elicitations"]
                        assert elicitation["mode"] == "url" and LINK.fullmatch(elicitation["url"]), elicitation
                        assert elicitation["url"].endswith(elicitation["elicitationId"])
                    listed = json.loads(text(await session.call_tool("portal_list_servers", {})))
                    assert listed["servers"][0]["authorized"] is False, listed
                    # The built-in tool hands out a link too (no URL elicitation in this client).
                    link = link_in(await session.call_tool("portal_toggle_servers", {}))
                    await authorize_on_the_page(page, link, upstream_user)
                    assert (await whoami(session))["sub"] == upstream_user
                    listed = json.loads(text(await session.call_tool("portal_list_servers", {})))
                    assert listed["servers"][0] == {"id": "secure", "name": "Server secure", "enabled": True, "authorized": True}
                # A new session of the same person uses the same grant.
                async with mcp_client(client.resource, headers) as session:
                    assert (await whoami(session))["sub"] == upstream_user
        return portal_tokens

    portal_tokens = anyio.run(check)
    seen = upstream.seen()
    # The upstream only ever got its own tokens, for the two people; never a portal token.
    assert {s["sub"] for s in seen if s["valid"]} == {"alice", "bob"}, seen
    portal_hashes = {hashlib.sha256(t.encode()).hexdigest() for t in portal_tokens.values()}
    assert not portal_hashes & {s["sha256"] for s in seen}
    authorized = event_types(gateway, "UpstreamAuthorized")
    assert [(e["owner"], e["client"]) for e in authorized] == [
        ({"kind": "user", "id": e["owner"]["id"]}, "dynamic_registration") for e in authorized
    ]
    assert len({e["owner"]["id"] for e in authorized}) == 2
    # Upstream tokens are JWTs (`eyJ…`): none is in the event log, Portico's own log or the
    # server as the admin API shows it.
    assert "eyJ" not in events_text(gateway)
    assert "eyJ" not in gateway.portico.log_tail(lines=100_000)
    assert "eyJ" not in gateway.read_server("secure").to_json()
    # The first person's grant synced the server (no admin authorized it).
    assert gateway.read_server("secure").status == "ready"


def test_tokens_refresh_silently_once_for_concurrent_calls_and_a_refused_refresh_asks_that_person_only(gateway, oauth_upstream, chromium, callback):
    upstream = oauth_upstream(access_ttl=4)
    team_with(gateway, upstream)
    client = OAuthClient(gateway, callback)

    async def check():
        sessions = {}
        async with browser(chromium) as alice_browser, browser(chromium) as bob_browser:
            for email, user, context in [(ALICE, "alice", alice_browser), (BOB, "bob", bob_browser)]:
                page = await context.new_page()
                tokens = await consent_and_get_tokens(page, gateway, client, email)
                sessions[user] = {"Authorization": f"Bearer {tokens['access_token']}"}
                async with mcp_client(client.resource, sessions[user]) as session:
                    link = link_in(await session.call_tool("portal_toggle_servers", {}))
                    await authorize_on_the_page(page, link, user)
        async with mcp_client(client.resource, sessions["alice"]) as alice, mcp_client(client.resource, sessions["bob"]) as bob:
            assert (await whoami(alice))["sub"] == "alice"
            refreshes = upstream.stats()["token"].get("refresh_token", 0)
            # Past the access token's lifetime: 50 calls at once share one refresh.
            await anyio.sleep(4.5)
            results = []

            async def one():
                results.append((await whoami(alice))["sub"])

            async with anyio.create_task_group() as group:
                for _ in range(50):
                    group.start_soon(one)
            assert results == ["alice"] * 50
            assert upstream.stats()["token"].get("refresh_token") == refreshes + 1, upstream.stats()
            # Alice's grant is revoked at the upstream: once her token expires, her refresh is
            # refused and she is asked to authorize again; Bob keeps working.
            upstream.revoke("alice")
            await anyio.sleep(4.5)
            refused = await alice.call_tool("secure_whoami", {})
            assert refused.is_error and "needs your authorization" in text(refused), text(refused)
            link_in(refused)
            assert (await whoami(bob))["sub"] == "bob"
            # The authorization server is down: Bob's expired token cannot be refreshed, and
            # he gets a clear error; once it is back, his calls work again.
            await anyio.sleep(4.5)
            upstream.down()
            with pytest.raises(MCPError, match="is unavailable: the token of `secure` could not be refreshed.*temporarily_unavailable"):
                await bob.call_tool("secure_whoami", {})
            upstream.up()
            assert (await whoami(bob))["sub"] == "bob"

    anyio.run(check)
    failed = event_types(gateway, "UpstreamAuthorizationFailed")
    assert [e["owner"]["kind"] for e in failed] == ["user"], failed
    assert len(event_types(gateway, "UpstreamTokenRefreshed")) >= 2
    assert "eyJ" not in events_text(gateway)


def test_an_admin_authorizes_the_servers_own_credential_for_portals_that_do_not_act_on_behalf(gateway, oauth_upstream):
    upstream = oauth_upstream()
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    assert gateway.read_server("secure").authentication_status == "required"
    answer = httpx.post(f"{servers_api(gateway)}/secure/authorize", headers=admin(gateway), timeout=30)
    assert answer.status_code == 200, answer.text
    url = answer.json()["result"]["url"]
    back = login(url, "alice")
    assert back.startswith(f"http://127.0.0.1:{gateway.portico.port}/servers-callback?"), back
    done = httpx.get(back, timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text
    # A callback is used once.
    again = httpx.get(back, timeout=30)
    assert again.status_code == 400 and "unknown or expired" in again.text, again.text
    deadline = time.monotonic() + 30
    while gateway.read_server("secure").status != "ready":
        assert time.monotonic() < deadline, gateway.read_server("secure")
        time.sleep(0.1)
    server = gateway.read_server("secure")
    assert server.authentication_status == "connected"
    assert {t["name"] for t in server.tools} >= {"whoami", "echo"}
    # A service token reaches it through a portal that uses the server's own credential.
    token = ops_portal(gateway)

    async def check():
        async with mcp_client(gateway.portal_url("ops"), token.headers) as session:
            assert (await whoami(session))["sub"] == "alice"

    anyio.run(check)
    # An unknown server cannot be authorized.
    missing = httpx.post(f"{servers_api(gateway)}/nope/authorize", headers=admin(gateway), timeout=30)
    assert missing.status_code == 404, missing.text



def test_an_admin_credential_that_can_no_longer_be_refreshed_is_stale_and_says_so(gateway, oauth_upstream):
    upstream = oauth_upstream(access_ttl=3)
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    admin_authorizes(gateway, "alice")
    assert gateway.read_server("secure").authentication_status == "connected"
    token = ops_portal(gateway)

    async def check():
        async with mcp_client(gateway.portal_url("ops"), token.headers) as session:
            assert (await whoami(session))["sub"] == "alice"
            # The admin's grant is revoked at the upstream; once the token expires, the refresh
            # is refused: the server is stale, calls say an admin must authorize it again.
            upstream.revoke("alice")
            await anyio.sleep(3.5)
            with pytest.raises(MCPError, match="an admin must authorize it"):
                await session.call_tool("secure_whoami", {})
            listed = json.loads(text(await session.call_tool("portal_list_servers", {})))
            (entry,) = listed["servers"]
            assert "cannot be refreshed" in entry["unavailable"], entry

    anyio.run(check)
    assert gateway.read_server("secure").authentication_status == "stale"
    (failed,) = event_types(gateway, "UpstreamAuthorizationFailed")
    assert failed["owner"] == {"kind": "server"} and "refused to refresh" in failed["reason"], failed
    assert "eyJ" not in events_text(gateway)

def test_a_stateless_clients_server_toggles_are_kept_per_portal_grant(gateway, pyserver, chromium, callback):
    gateway.add_server("py", pyserver.url)
    gateway.add_portal("team", [{"server_id": "py", "on_behalf": True}])
    allow_example_people(gateway, "py")
    client = OAuthClient(gateway, callback)

    async def tool_names(session) -> set[str]:
        return {t.name for t in (await session.list_tools()).tools}

    async def check():
        # Two grants of the same person: two client registrations (consent is remembered per
        # client), each from its own browser.
        grants = []
        for registered in [client, OAuthClient(gateway, callback)]:
            async with browser(chromium) as context:
                page = await context.new_page()
                grants.append(await consent_and_get_tokens(page, gateway, registered, ALICE))
        first, second = grants
        headers = {"Authorization": f"Bearer {first['access_token']}"}
        async with mcp_client(client.resource, headers, mode="auto") as session:
            assert session.protocol_version == "2026-07-28"
            assert "py_echo" in await tool_names(session)
            await session.call_tool("portal_toggle_single_server", {"server_id": "py", "action": "untoggle"})
            # Every request of a stateless client stands alone: the toggle holds for the grant.
            assert "py_echo" not in await tool_names(session)
        async with mcp_client(client.resource, headers, mode="auto") as session:
            assert "py_echo" not in await tool_names(session)
        # Another grant of the same person, and a session of this grant, start from the
        # portal's defaults.
        other = {"Authorization": f"Bearer {second['access_token']}"}
        async with mcp_client(client.resource, other, mode="auto") as session:
            assert "py_echo" in await tool_names(session)
        async with mcp_client(client.resource, headers) as session:
            assert "py_echo" in await tool_names(session)

    anyio.run(check)


def test_a_server_added_to_the_portal_is_one_url_elicitation_on_the_next_call(gateway, oauth_upstream, pyserver, chromium, callback):
    upstream = oauth_upstream()
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    gateway.add_server("py", pyserver.url)
    team_servers = [{"server_id": "py", "on_behalf": True}]
    gateway.add_portal("team", team_servers)
    allow_example_people(gateway, None)
    client = OAuthClient(gateway, callback)
    prompts = []

    async def on_elicit(context, params):
        prompts.append(params)
        return ElicitResult(action="accept")

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            tokens = await consent_and_get_tokens(page, gateway, client, ALICE)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            async with mcp_client(client.resource, headers, elicitation_callback=on_elicit) as session:
                assert text(await session.call_tool("py_echo", {"text": "one"})) == "one"
                assert prompts == []
                # An admin adds the OAuth server to the portal: the next call brings one prompt.
                gateway.portals.update(
                    "team", account_id=gateway.account_id, name="Portal team",
                    hostname="team.mcp.example.com",
                    servers=team_servers + [{"server_id": "secure", "on_behalf": True}],
                )
                assert text(await session.call_tool("py_echo", {"text": "two"})) == "two"
                for _ in range(100):
                    if prompts:
                        break
                    await anyio.sleep(0.05)
                (prompt,) = prompts
                assert prompt.mode == "url" and "Server secure" in prompt.message, prompt
                assert LINK.fullmatch(prompt.url) and prompt.url.endswith(prompt.elicitation_id), prompt
                # No second prompt for the same server.
                assert text(await session.call_tool("py_echo", {"text": "three"})) == "three"
                await anyio.sleep(0.3)
                assert len(prompts) == 1
                # The link is the selection page: authorizing there makes the server usable.
                await authorize_on_the_page(page, prompt.url, "alice")
                assert (await whoami(session))["sub"] == "alice"

    anyio.run(check)


@pytest.mark.parametrize("gateway_backend", ["postgres"], indirect=True)
def test_two_instances_on_one_database_share_a_grant_without_replaying_its_refresh_token(gateway, oauth_upstream, tmp_path_factory):
    """The authorization server rotates refresh tokens and treats a rotated one used again as a
    replay (it revokes the whole grant): an instance must take up what another one refreshed
    (the vault is shared) instead of refreshing with the refresh token it held."""
    upstream = oauth_upstream(access_ttl=4)
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    admin_authorizes(gateway, "alice")
    token = ops_portal(gateway)
    first = gateway.portico
    second = first.sibling(tmp_path_factory.mktemp("second") / "data")
    second.start()
    urls = [f"http://127.0.0.1:{p.port}/portals/ops/mcp" for p in (first, second)]

    async def call(url: str) -> str:
        async with mcp_client(url, token.headers) as session:
            return (await whoami(session))["sub"]

    async def check():
        # Both instances hold the grant (the second read it from the vault).
        assert [await call(url) for url in urls] == ["alice", "alice"]
        refreshes = upstream.stats()["token"].get("refresh_token", 0)
        await anyio.sleep(4.5)
        # The first refreshes; the second, whose copy is due too, finds the new tokens.
        assert await call(urls[0]) == "alice"
        assert await call(urls[1]) == "alice"
        assert upstream.stats()["token"].get("refresh_token", 0) == refreshes + 1, upstream.stats()
        assert upstream.stats()["token_errors"] == {}, upstream.stats()

    try:
        anyio.run(check)
    finally:
        assert second.stop() == 0, second.log_tail()
