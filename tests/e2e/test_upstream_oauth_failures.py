"""OAuth-protected upstreams that cannot be authorized as usual, and what else goes with a
person's authorization, with the real parts of `test_upstream_oauth_users.py`: oidc-provider as
the upstream's authorization server (`oauth_as.mjs`), the MCP Python SDK as its resource server
(`upstream/oauth_server.py`), Debian's Chromium for the people, the MCP Python SDK and the MCP
Inspector's CLI as the portal's clients.

  - The authorization server has no Dynamic Client Registration and Portico has no client
    there: an admin's authorization is refused with a 4xx naming the problem, a person's ends on
    a clear error page, and the portal's other servers keep working.
  - With DCR off but a client the admin registered at the authorization server (manual OAuth:
    `auth_credentials` and `client_secret`), the admin's authorization uses that client.
  - The resource server advertises a resource other than its URL: the authorization server
    issues tokens the resource server refuses, and sync fails with a clear error (HTTP 401),
    without a loop of refreshes; other servers keep working.
  - The MCP Inspector's CLI, with a person's portal token, calls the upstream as that person.
  - Signing out of the portal deletes the person's upstream authorizations.
  - With an https public URL, Portico identifies itself with its Client ID Metadata Document
    where the authorization server takes them (the server fetches it from Portico), and falls
    back to Dynamic Client Registration where it does not.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
from playwright.async_api import Page

from browser import browser, sign_in
from mcp_peers import mcp_client
from oauth_upstream import OAuthUpstream, login, oauth_upstream  # noqa: F401
from test_mcp_portal import gateway, gateway_backend, text  # noqa: F401
from test_mcp_peers import inspector
from test_pages import OAuthClient, callback, consent_and_get_tokens, heading, origin  # noqa: F401
from test_upstream_oauth_users import (
    ALICE,
    add_oauth_server,
    admin,
    authorize_on_the_page,
    event_types,
    link_in,
    servers_api,
    team_with,
    whoami,
)

NO_REGISTRATION = "Portico could not register itself as a client there"


def admin_authorize(gateway, server_id: str) -> httpx.Response:
    return httpx.post(f"{servers_api(gateway)}/{server_id}/authorize", headers=admin(gateway), timeout=30)


def wait_for_status(gateway, server_id: str, *statuses: str):
    deadline = time.monotonic() + 30
    while (server := gateway.read_server(server_id)).status not in statuses:
        assert time.monotonic() < deadline, server
        time.sleep(0.1)
    return server


def team_with_py(gateway, upstream, pyserver) -> None:
    """Portal `team` with the OAuth server `secure` (each person authorizes it) and the
    unauthenticated upstream `py`; people at example.com may use both."""
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    gateway.add_server("py", pyserver.url)
    gateway.add_portal(
        "team",
        [{"server_id": "secure", "on_behalf": True}, {"server_id": "py", "on_behalf": True}],
    )
    gateway.add_policy(
        "example people connect",
        'permit (principal is Portico::User, action == Portico::Action::"connect", '
        'resource == Portico::Portal::"team") when { principal.email like "*@example.com" };',
    )
    for server_id in ("secure", "py"):
        gateway.add_policy(
            f"example people use {server_id}",
            'permit (principal is Portico::User, action in Portico::Action::"use_server", '
            f'resource in Portico::Server::"{server_id}") when {{ principal.email like "*@example.com" }};',
        )


def ops_portal(gateway):
    """Portal `ops` with `py` only, and a service token allowed to use it."""
    gateway.add_portal("ops", [{"server_id": "py", "on_behalf": False}])
    token = gateway.add_token("ops bot")
    gateway.permit(token, "ops", ["py"])
    return token


async def py_echoes(url: str, headers: dict[str, str], words: str) -> None:
    async with mcp_client(url, headers) as session:
        result = await session.call_tool("py_echo", {"text": words})
        assert not result.is_error and text(result) == words, text(result)


def test_without_registration_and_without_a_client_authorizing_fails_clearly_and_nothing_else_breaks(
    gateway, oauth_upstream, pyserver, chromium, callback
):
    upstream = oauth_upstream(dcr=False)
    team_with_py(gateway, upstream, pyserver)
    token = ops_portal(gateway)

    # The admin's authorization: refused at once, naming the problem.
    answer = admin_authorize(gateway, "secure")
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert NO_REGISTRATION in answer.text, answer.text
    assert "secure" in answer.text, answer.text
    assert upstream.stats()["registrations"] == 0
    server = gateway.read_server("secure")
    assert server.status == "waiting" and server.authentication_status == "required", server

    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            tokens = await consent_and_get_tokens(page, gateway, client, ALICE)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            async with mcp_client(client.resource, headers) as session:
                # No one could authorize `secure`: its tools are not known; the built-in tool
                # hands out the selection link.
                await page.goto(link_in(await session.call_tool("portal_toggle_servers", {})))
                assert await heading(page) == "Portal team: your servers"
                await page.locator('li[data-server-id="secure"]').get_by_role("checkbox").check()
                await page.get_by_role("button", name="Save").click()
                await page.locator("#notice").wait_for()
                async with page.expect_navigation() as navigation:
                    await page.get_by_role("link", name="Authorize").click()
                response = await navigation.value
                assert response.status == 400, response.status
                assert await heading(page) == "Authorization could not start"
                shown = await page.locator("main").inner_text()
                assert "Server `secure`" in shown and NO_REGISTRATION in shown, shown
                # Back to the page: the server still waits for the person's authorization.
                await page.get_by_role("link", name="Back to your servers").click()
                assert "needs your authorization" in await page.locator('li[data-server-id="secure"]').inner_text()
                # The portal's other server works, in the same session.
                result = await session.call_tool("py_echo", {"text": "still here"})
                assert not result.is_error and text(result) == "still here", text(result)
            await py_echoes(client.resource, headers, "new session")
        await py_echoes(gateway.portal_url("ops"), token.headers, "other portal")

    anyio.run(check)
    assert upstream.stats()["registrations"] == 0
    assert event_types(gateway, "UpstreamAuthorized") == []
    assert gateway.read_server("py").status == "ready"


def test_an_admins_preregistered_client_is_used_when_registration_is_closed(gateway, oauth_upstream):
    callback_url = f"http://127.0.0.1:{gateway.portico.port}/servers-callback"
    client_id, client_secret = "portico-manual-client", "manual-client-secret-0123456789"
    upstream = oauth_upstream(
        dcr=False,
        clients=[{
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": [callback_url],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }],
    )
    manual = {
        "auth_mode": "manual",
        "config": {
            "authorization_endpoint": f"{upstream.issuer}/auth",
            "token_endpoint": f"{upstream.issuer}/token",
        },
        "registration_info": {"client_id": client_id, "redirect_uris": [callback_url]},
    }
    created = gateway.servers.create(
        account_id=gateway.account_id, id="secure", name="Server secure", hostname=upstream.mcp_url,
        auth_type="oauth", auth_credentials=json.dumps(manual), client_secret=client_secret,
    )
    assert created.status == "waiting", created

    answer = admin_authorize(gateway, "secure")
    assert answer.status_code == 200, answer.text
    url = answer.json()["result"]["url"]
    assert f"client_id={client_id}" in url, url
    back = login(url, "alice")
    assert back.startswith(f"{callback_url}?") and "code=" in back, back
    done = httpx.get(back, timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text
    server = wait_for_status(gateway, "secure", "ready", "error")
    assert server.status == "ready", server
    assert {t["name"] for t in server.tools} >= {"whoami", "echo"}
    assert upstream.stats()["registrations"] == 0

    gateway.add_portal("ops", [{"server_id": "secure", "on_behalf": False}])
    token = gateway.add_token("ops bot")
    gateway.permit(token, "ops", ["secure"])

    async def check():
        async with mcp_client(gateway.portal_url("ops"), token.headers) as session:
            me = await whoami(session)
            assert me["sub"] == "alice" and me["client_id"] == client_id, me

    anyio.run(check)
    authorized = event_types(gateway, "UpstreamAuthorized")
    assert [(e["owner"], e["client"]) for e in authorized] == [({"kind": "server"}, "preregistered")], authorized
    # The secret went to the token endpoint only (never to the MCP server, never to the log).
    assert client_secret not in gateway.portico.log_tail(lines=100_000)


@pytest.fixture
def misconfigured_upstream(tmp_path_factory):
    """An upstream whose metadata names its origin (`http://127.0.0.1:<port>/`) as the resource
    instead of `/mcp` (a prefix of it, which clients accept): its authorization server issues
    tokens for the origin, which `/mcp` refuses. Yields it and the origin."""
    upstream = OAuthUpstream(tmp_path_factory.mktemp("oauth-upstream"))
    root = f"http://127.0.0.1:{upstream.rs_port}/"
    upstream.advertise_resource = root
    upstream.config["other_resources"] = [root]
    upstream.start()
    yield upstream, root
    upstream.stop()


def test_tokens_for_the_wrong_resource_fail_sync_clearly_without_a_refresh_loop(gateway, misconfigured_upstream, pyserver):
    upstream, root = misconfigured_upstream
    metadata = httpx.get(f"http://127.0.0.1:{upstream.rs_port}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert metadata.json()["resource"] == root, metadata.text
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    gateway.add_server("py", pyserver.url)
    answer = admin_authorize(gateway, "secure")
    assert answer.status_code == 200, answer.text
    back = login(answer.json()["result"]["url"], "alice")
    done = httpx.get(back, timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text
    server = wait_for_status(gateway, "secure", "ready", "error")
    assert server.status == "error", server
    assert "HTTP 401" in (server.error or ""), server.error
    assert "even freshly refreshed" in server.error and "audience" in server.error, server.error
    assert upstream.mcp_url in server.error, server.error
    # The MCP server refused each of Portico's tokens (they were issued for the origin).
    seen = [s for s in upstream.seen() if s["path"] == "/mcp" and s["sub"] == "alice"]
    assert seen and not any(s["valid"] for s in seen), seen
    # One refresh for the refused token, not a loop.
    assert upstream.stats()["token"].get("refresh_token", 0) <= 1, upstream.stats()

    # Sync on demand: the same clear error (one more refresh, refused again).
    refreshes = upstream.stats()["token"].get("refresh_token", 0)
    synced = gateway.servers.sync("secure", account_id=gateway.account_id)
    assert synced.status == "error" and synced.tool_count == 0, synced
    assert synced.error_details.status_code == 401 and "HTTP 401" in synced.error_details.cause, synced
    server = gateway.read_server("secure")
    assert server.status == "error" and "HTTP 401" in (server.error or ""), server
    assert upstream.stats()["token"].get("refresh_token", 0) <= refreshes + 1, upstream.stats()

    # A portal with both servers: `secure` has no tools to offer, `py` works.
    gateway.add_portal("ops", [{"server_id": "secure", "on_behalf": False}, {"server_id": "py", "on_behalf": False}])
    token = gateway.add_token("ops bot")
    gateway.permit(token, "ops", ["secure", "py"])

    async def check():
        async with mcp_client(gateway.portal_url("ops"), token.headers) as session:
            tools = {t.name for t in (await session.list_tools()).tools}
            assert "py_echo" in tools and not any(t.startswith("secure_") for t in tools), tools
            result = await session.call_tool("py_echo", {"text": "fine"})
            assert not result.is_error and text(result) == "fine", text(result)

    anyio.run(check)
    assert gateway.read_server("py").status == "ready"


async def authorized_person(page: Page, gateway, client: OAuthClient, email: str, user: str) -> dict:
    """`email` allows the client, and authorizes `secure` as `user` on the selection page.
    Returns the client's portal tokens."""
    tokens = await consent_and_get_tokens(page, gateway, client, email)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with mcp_client(client.resource, headers) as session:
        link = link_in(await session.call_tool("portal_toggle_servers", {}))
        await authorize_on_the_page(page, link, user)
        assert (await whoami(session))["sub"] == user
    return tokens


def test_the_inspector_cli_calls_the_upstream_as_the_person(gateway, oauth_upstream, node_peers, chromium, callback, tmp_path):
    upstream = oauth_upstream()
    team_with(gateway, upstream)
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            return await authorized_person(await context.new_page(), gateway, client, ALICE, "alice")

    tokens = anyio.run(check)
    bearer = ["--transport", "http", "--header", f"Authorization: Bearer {tokens['access_token']}"]
    listed = inspector(node_peers, client.resource, *bearer, "--method", "tools/list", home=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert {"secure_whoami", "secure_echo"} <= {t["name"] for t in json.loads(listed.stdout)["tools"]}
    called = inspector(node_peers, client.resource, *bearer, "--method", "tools/call", "--tool-name", "secure_whoami", home=tmp_path)
    assert called.returncode == 0, called.stdout + called.stderr
    result = json.loads(called.stdout)
    assert not result.get("isError"), result
    assert json.loads(result["content"][0]["text"])["sub"] == "alice", result
    # The upstream saw Alice's upstream token, never the portal token.
    assert {s["sub"] for s in upstream.seen() if s["valid"]} == {"alice"}


async def sign_in_again(page: Page, gateway, client: OAuthClient, email: str) -> dict:
    """The client sends the person, signed out, to the authorization endpoint again; they sign in
    (and allow the client, if they are asked again). Returns the client's new tokens."""
    auth = client.authorization()
    await page.goto(auth.url)
    await sign_in(page, gateway.portico, email)
    if await heading(page) == "Allow Browser Test Client?":
        async with page.expect_navigation(url=f"{client.callback.url}**"):
            await page.get_by_role("button", name="Allow").click()
    assert await heading(page) == "Back at the client"
    answer = client.callback.queries[-1]
    assert answer["state"] == auth.state, answer
    return client.redeem(answer["code"], auth.verifier)


def test_signing_out_deletes_the_persons_upstream_authorizations(gateway, oauth_upstream, chromium, callback):
    upstream = oauth_upstream()
    team_with(gateway, upstream)
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await authorized_person(page, gateway, client, ALICE, "alice")
            [authorized] = event_types(gateway, "UpstreamAuthorized")

            await page.goto(f"{origin(gateway)}/portals/team/")
            assert await heading(page) == "Portal team"
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("heading", name="Signed out").wait_for()

            revoked = event_types(gateway, "UpstreamAuthorizationRevoked")
            assert len(revoked) == 1, revoked
            assert revoked[0]["server_id"] == "secure" and revoked[0]["reason"] == "signed_out", revoked
            assert revoked[0]["owner"] == authorized["owner"] and authorized["owner"]["kind"] == "user", revoked

            # Signed in again, with new portal tokens: the upstream needs her authorization again.
            tokens = await sign_in_again(page, gateway, client, ALICE)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            async with mcp_client(client.resource, headers) as session:
                refused = await session.call_tool("secure_whoami", {})
                assert refused.is_error and "needs your authorization" in text(refused), text(refused)
                link_in(refused)
                listed = json.loads(text(await session.call_tool("portal_list_servers", {})))
                assert listed["servers"][0]["authorized"] is False, listed

    anyio.run(check)


CLIENT_METADATA = "https://portico.test/oauth/upstream-client.json"


@pytest.mark.serve_args("--public-url", "https://portico.test")
def test_portico_identifies_itself_with_its_client_metadata_document_where_the_server_takes_them(gateway, oauth_upstream):
    # The authorization server fetches https://portico.test/… from this Portico (the test's
    # stand-in for DNS and TLS); registration is closed, so only the document can work.
    upstream = oauth_upstream(dcr=False, cimd={"https://portico.test/": f"http://127.0.0.1:{gateway.portico.port}/"})
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    document = httpx.get(f"http://127.0.0.1:{gateway.portico.port}/oauth/upstream-client.json", timeout=30).json()
    assert document["client_id"] == CLIENT_METADATA, document
    assert f"http://127.0.0.1:{gateway.portico.port}/servers-callback" in document["redirect_uris"], document
    answer = admin_authorize(gateway, "secure")
    assert answer.status_code == 200, answer.text
    url = answer.json()["result"]["url"]
    assert "client_id=https%3A%2F%2Fportico.test%2Foauth%2Fupstream-client.json" in url, url
    done = httpx.get(login(url, "alice"), timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text
    assert wait_for_status(gateway, "secure", "ready", "error").status == "ready"
    (authorized,) = event_types(gateway, "UpstreamAuthorized")
    assert authorized["client"] == "metadata_document", authorized
    assert upstream.stats()["registrations"] == 0


@pytest.mark.serve_args("--public-url", "https://portico.test")
def test_an_authorization_server_without_client_metadata_documents_gets_a_registration(gateway, oauth_upstream):
    upstream = oauth_upstream(cimd=False)
    add_oauth_server(gateway, "secure", upstream.mcp_url)
    answer = admin_authorize(gateway, "secure")
    assert answer.status_code == 200, answer.text
    url = answer.json()["result"]["url"]
    assert "portico.test" not in url, url
    done = httpx.get(login(url, "alice"), timeout=30)
    assert done.status_code == 200 and "Server authorized" in done.text, done.text
    (authorized,) = event_types(gateway, "UpstreamAuthorized")
    assert authorized["client"] == "dynamic_registration", authorized
    assert upstream.stats()["registrations"] == 1


def test_without_an_https_public_url_there_is_no_client_metadata_document(gateway):
    answer = httpx.get(f"http://127.0.0.1:{gateway.portico.port}/oauth/upstream-client.json", timeout=30)
    assert answer.status_code == 404 and "https" in answer.json()["error_description"], answer.text
