"""The sign-in pages in a real browser: Playwright drives Debian's Chromium against the real
`portico serve` (`browser.py`).

A person signs in with a one-time PIN (read from Portico's log: no SMTP server is configured),
sees the portal's home page with exactly the servers Cedar lets them use, allows or denies an
OAuth client on the consent page, is shown the block page when no policy lets them connect (with
the portal's own message, or sent to its deny URL), and signs out, which ends the access of the
clients they allowed. Forms whose CSRF token was tampered with are refused, and one whole flow
runs with JavaScript disabled.

The OAuth client is the test itself: it registers dynamically (RFC 7591), sends the browser to
the authorization endpoint with PKCE S256, and its redirect URI is a real listener (`Callback`)
from which it takes the code and redeems it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from playwright.async_api import Page

from browser import Callback, browser, pin_after, pins, sign_in
from mcp_peers import mcp_client
from test_mcp_portal import MCP_ACCEPT, audit_events, gateway, gateway_backend, names, text  # noqa: F401

ALICE = "alice@example.com"


@pytest.fixture
def team(gateway, pyserver):
    """Portal `team` with two servers; people at example.com may connect, and use `py` only."""
    gateway.add_server("py", pyserver.url)
    gateway.add_server("notes", pyserver.url)
    gateway.add_portal(
        "team",
        [{"server_id": "py", "on_behalf": True}, {"server_id": "notes", "on_behalf": True}],
    )
    gateway.add_policy(
        "example people connect",
        'permit (principal is Portico::User, action == Portico::Action::"connect", '
        'resource == Portico::Portal::"team") when { principal.email like "*@example.com" };',
    )
    gateway.add_policy(
        "example people use py",
        'permit (principal is Portico::User, action in Portico::Action::"use_server", '
        'resource in Portico::Server::"py") when { principal.email like "*@example.com" };',
    )
    return gateway


@pytest.fixture
def callback():
    listener = Callback()
    yield listener
    listener.close()


def origin(gateway) -> str:
    return f"http://127.0.0.1:{gateway.portico.port}"


@dataclass
class Authorization:
    url: str
    state: str
    verifier: str


class OAuthClient:
    """An MCP client application, registered with the portal by DCR, its redirect URI a real
    listener."""

    def __init__(self, gateway, callback: Callback, name: str = "Browser Test Client") -> None:
        self.gateway = gateway
        self.callback = callback
        self.issuer = f"{origin(gateway)}/portals/team"
        self.resource = gateway.portal_url("team")
        answer = httpx.post(
            f"{self.issuer}/oauth/register",
            json={
                "client_name": name,
                "redirect_uris": [callback.url],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        self.client_id = answer.json()["client_id"]

    def authorization(self) -> Authorization:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = urlencode({
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.callback.url,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "resource": self.resource,
        })
        return Authorization(f"{self.issuer}/oauth/authorize?{query}", state, verifier)

    def redeem(self, code: str, verifier: str) -> dict:
        answer = httpx.post(
            f"{self.issuer}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.callback.url,
                "client_id": self.client_id,
                "code_verifier": verifier,
                "resource": self.resource,
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def refresh(self, refresh_token: str) -> httpx.Response:
        return httpx.post(
            f"{self.issuer}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id},
            timeout=30,
        )

    async def tool_names(self, access_token: str) -> set[str]:
        """The portal's tools, listed by the official MCP Python SDK with the access token."""
        async with mcp_client(self.resource, {"Authorization": f"Bearer {access_token}"}) as session:
            return names(await session.list_tools())

    def ping(self, access_token: str) -> httpx.Response:
        """A raw `ping` at the portal with the access token."""
        return httpx.post(
            self.resource,
            headers={"Authorization": f"Bearer {access_token}", "Accept": MCP_ACCEPT},
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            timeout=30,
        )


async def heading(page: Page) -> str:
    return await page.locator("h1").inner_text()


async def consent_and_get_tokens(page: Page, gateway, client: OAuthClient, email: str) -> dict:
    """From a fresh browser: the client sends the person to the authorization endpoint, they sign
    in and allow it; the client redeems the code it gets. Returns the tokens."""
    auth = client.authorization()
    await page.goto(auth.url)
    await sign_in(page, gateway.portico, email)
    assert await heading(page) == "Allow Browser Test Client?"
    shown = await page.locator("main").inner_text()
    assert f"Browser Test Client at 127.0.0.1 wants to use portal Portal team as you ({email})" in shown
    async with page.expect_navigation(url=f"{client.callback.url}**"):
        await page.get_by_role("button", name="Allow").click()
    assert await heading(page) == "Back at the client"
    answer = client.callback.queries[-1]
    assert answer["state"] == auth.state, answer
    assert answer["iss"] == client.issuer, answer
    return client.redeem(answer["code"], auth.verifier)


@pytest.mark.parametrize("address", ["path", "host"])
def test_a_person_signs_in_with_a_pin_and_the_home_page_lists_exactly_their_servers(team, chromium, address):
    gateway = team
    port = gateway.portico.port
    if address == "path":
        home = f"{origin(gateway)}/portals/team/"
        mcp_url = gateway.portal_url("team")
    else:
        # The portal's own hostname, resolved to this Portico by the browser.
        home = f"http://team.mcp.example.com:{port}/"
        mcp_url = f"http://team.mcp.example.com:{port}/mcp"

    async def check():
        async with browser(chromium, hosts={"team.mcp.example.com": "127.0.0.1"}) as context:
            page = await context.new_page()
            await page.goto(home)
            assert await heading(page) == "Sign in to Portal team"
            await sign_in(page, gateway.portico, ALICE)
            assert page.url == home
            assert await heading(page) == "Portal team"
            assert f"Signed in as {ALICE}." in await page.locator("main").inner_text()
            servers = page.locator("#servers li")
            assert await servers.all_inner_texts() == ["Server py"]
            assert [await s.get_attribute("data-server-id") for s in await servers.all()] == ["py"]
            assert await page.locator("#mcp-url").inner_text() == mcp_url
            configs = await page.locator("pre").all_inner_texts()
            assert any(f'"{mcp_url}"' in c and "mcp-remote" in c for c in configs), configs
            cookies = {c["name"]: c for c in await context.cookies()}
            session, csrf = cookies["portico_session"], cookies["portico_csrf"]
            assert session["httpOnly"] and session["sameSite"] == "Lax", session
            assert csrf["httpOnly"] and csrf["sameSite"] == "Strict", csrf
            path = "/portals/team/" if address == "path" else "/"
            assert session["path"] == path and csrf["path"] == path

    anyio.run(check)


@pytest.mark.parametrize("java_script", [True, False], ids=["javascript", "no-javascript"])
def test_consent_allowed_gives_the_client_a_code_that_calls_the_portal(team, chromium, callback, java_script):
    gateway = team
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium, java_script=java_script) as context:
            page = await context.new_page()
            tokens = await consent_and_get_tokens(page, gateway, client, ALICE)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            async with mcp_client(client.resource, headers) as session:
                tools = names(await session.list_tools())
                assert "py_echo" in tools and not any(t.startswith("notes_") for t in tools), tools
                assert text(await session.call_tool("py_echo", {"text": "from the browser"})) == "from the browser"

            # Consent is remembered: the next authorization comes back at once,
            again = client.authorization()
            await page.goto(again.url)
            assert page.url.startswith(f"{callback.url}?"), page.url
            assert "code" in callback.queries[-1] and callback.queries[-1]["state"] == again.state
            # and after signing in anew, straight from the PIN form to the client.
            await context.clear_cookies()
            later = client.authorization()
            await page.goto(later.url)
            async with page.expect_navigation(url=f"{callback.url}**"):
                await sign_in(page, gateway.portico, ALICE)
            assert "code" in callback.queries[-1] and callback.queries[-1]["state"] == later.state
            client.redeem(callback.queries[-1]["code"], later.verifier)

    anyio.run(check)
    [call] = [e for e in audit_events(gateway.portico) if e.get("method") == "tools/call"]
    assert call["user_email"] == ALICE, call


def test_a_client_on_the_ipv6_loopback_gets_its_code_through_the_consent_form(team, chromium):
    gateway = team
    listener = Callback("::1")
    try:
        client = OAuthClient(gateway, listener)

        async def check():
            async with browser(chromium) as context:
                page = await context.new_page()
                auth = client.authorization()
                await page.goto(auth.url)
                await sign_in(page, gateway.portico, ALICE)
                assert await heading(page) == "Allow Browser Test Client?"
                # The consent form's answer redirects to `http://[::1]:<port>`, which the page's
                # CSP `form-action` must let through.
                async with page.expect_navigation(url=f"{listener.url}**"):
                    await page.get_by_role("button", name="Allow").click()
                assert await heading(page) == "Back at the client"
                answer = listener.queries[-1]
                assert answer["state"] == auth.state, answer
                tokens = client.redeem(answer["code"], auth.verifier)
                assert "py_echo" in await client.tool_names(tokens["access_token"])

        anyio.run(check)
    finally:
        listener.close()


def test_consent_denied_sends_the_client_access_denied_and_no_code(team, chromium, callback):
    gateway = team
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            auth = client.authorization()
            await page.goto(auth.url)
            await sign_in(page, gateway.portico, ALICE)
            assert await heading(page) == "Allow Browser Test Client?"
            async with page.expect_navigation(url=f"{callback.url}**"):
                await page.get_by_role("button", name="Deny").click()
            [answer] = callback.queries
            assert answer["error"] == "access_denied", answer
            assert answer["state"] == auth.state and "code" not in answer, answer

            # The refusal is not remembered as consent: the next request asks again.
            await page.goto(client.authorization().url)
            assert await heading(page) == "Allow Browser Test Client?"
            assert len(callback.queries) == 1

    anyio.run(check)


def test_a_person_no_policy_lets_connect_gets_the_block_page(team, chromium, callback):
    gateway = team
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(f"{origin(gateway)}/portals/team/")
            seen = len(pins(gateway.portico, "mallory@elsewhere.test"))
            await page.get_by_label("Email").fill("mallory@elsewhere.test")
            await page.get_by_role("button", name="Send code").click()
            await page.get_by_role("heading", name="Check your email").wait_for()
            await page.get_by_label("Code").fill(await pin_after(gateway.portico, "mallory@elsewhere.test", seen))
            async with page.expect_navigation() as navigation:
                await page.get_by_role("button", name="Sign in").click()
            response = await navigation.value
            assert response.status == 403
            assert await heading(page) == "Access denied"
            assert "That account does not have access" in await page.locator("main").inner_text()
            assert "portico_session" not in {c["name"] for c in await context.cookies()}

            # An OAuth client gets no code for them either: the same page, nothing at the client.
            await page.goto(client.authorization().url)
            assert await heading(page) == "Sign in to Portal team"
            await sign_in(page, gateway.portico, "mallory@elsewhere.test")
            assert await heading(page) == "Access denied"
            assert callback.queries == []

    anyio.run(check)


def test_the_block_page_shows_the_portal_s_own_message_or_sends_people_to_its_page(team, chromium):
    gateway = team
    applications = gateway.client.zero_trust.access.applications
    (app,) = list(applications.list(account_id=gateway.account_id))
    applications.update(
        app.id,
        account_id=gateway.account_id,
        type="mcp_portal",
        custom_deny_message="Ask the platform team for access to Team.",
    )
    help_desk = "https://help.example.test/denied"

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(f"{origin(gateway)}/portals/team/")
            await sign_in(page, gateway.portico, "mallory@elsewhere.test")
            assert await heading(page) == "Access denied"
            shown = await page.locator("main").inner_text()
            assert "Ask the platform team for access to Team." in shown, shown
            assert "That account does not have access" not in shown, shown

        applications.update(
            app.id,
            account_id=gateway.account_id,
            type="mcp_portal",
            custom_deny_message="Ask the platform team for access to Team.",
            custom_deny_url=help_desk,
        )
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(f"{origin(gateway)}/portals/team/")
            seen = len(pins(gateway.portico, "mallory@elsewhere.test"))
            await page.get_by_label("Email").fill("mallory@elsewhere.test")
            await page.get_by_role("button", name="Send code").click()
            await page.get_by_role("heading", name="Check your email").wait_for()
            await page.get_by_label("Code").fill(await pin_after(gateway.portico, "mallory@elsewhere.test", seen))
            # The deny URL's host does not resolve here: what is checked is that the browser
            # went there, straight from the PIN form (its CSP lets the form end there).
            async with page.expect_request(f"{help_desk}*") as denied:
                await page.get_by_role("button", name="Sign in").click()
            request = await denied.value
            assert request.url == help_desk
            assert request.redirected_from is not None
            assert request.redirected_from.url == f"{origin(gateway)}/portals/team/login/pin", request.redirected_from.url
            assert "portico_session" not in {c["name"] for c in await context.cookies()}

    anyio.run(check)


def test_signing_out_ends_the_access_of_the_clients_the_person_allowed(team, chromium, callback):
    gateway = team
    client = OAuthClient(gateway, callback)

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            tokens = await consent_and_get_tokens(page, gateway, client, ALICE)
            assert "py_echo" in await client.tool_names(tokens["access_token"])

            await page.goto(f"{origin(gateway)}/portals/team/")
            assert await heading(page) == "Portal team"
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("heading", name="Signed out").wait_for()
            assert "portico_session" not in {c["name"] for c in await context.cookies()}

            answer = client.ping(tokens["access_token"])
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"].startswith("Bearer resource_metadata="), answer.headers
            refreshed = client.refresh(tokens["refresh_token"])
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant", refreshed.text

            await page.get_by_role("link", name="Sign in again").click()
            assert await heading(page) == "Sign in to Portal team"

    anyio.run(check)


async def tamper_csrf(page: Page, form: str) -> None:
    """Replaces the CSRF token of the page's `form` with another well-formed one."""
    field = page.locator(f"{form} input[name=csrf]")
    token = await field.get_attribute("value")
    assert token and re.fullmatch(r"[0-9a-f]{64}", token), token
    forged = secrets.token_hex(32)
    await field.evaluate("(input, value) => { input.value = value; }", forged)


async def refused(page: Page, click) -> None:
    async with page.expect_navigation() as navigation:
        await click
    response = await navigation.value
    assert response.status == 400
    assert await heading(page) == "Sign-in stopped"
    assert "security token is missing or stale" in await page.locator("main").inner_text()


def test_a_form_with_a_tampered_csrf_token_is_refused(team, chromium, callback):
    gateway = team
    client = OAuthClient(gateway, callback)
    home = f"{origin(gateway)}/portals/team/"

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            # Sign-in: no PIN is sent.
            await page.goto(home)
            await tamper_csrf(page, "form")
            await page.get_by_label("Email").fill(ALICE)
            await refused(page, page.get_by_role("button", name="Send code").click())
            assert pins(gateway.portico, ALICE) == []

            # Consent: nothing reaches the client.
            await page.goto(client.authorization().url)
            await sign_in(page, gateway.portico, ALICE)
            assert await heading(page) == "Allow Browser Test Client?"
            await tamper_csrf(page, "form")
            await refused(page, page.get_by_role("button", name="Allow").click())
            assert callback.queries == []

            # Sign-out: the person stays signed in.
            await page.goto(home)
            assert await heading(page) == "Portal team"
            await tamper_csrf(page, "form")
            await refused(page, page.get_by_role("button", name="Sign out").click())
            await page.goto(home)
            assert await heading(page) == "Portal team"
            assert f"Signed in as {ALICE}." in await page.locator("main").inner_text()

            # The untouched form still works.
            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("heading", name="Signed out").wait_for()

    anyio.run(check)
