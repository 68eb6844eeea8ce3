"""Signing in with an OpenID Connect identity provider, in a real browser against a real
OpenID provider: `oidc-provider` from npm (tests/peers), started by the test with
`oidc_provider.mjs` (a client for Portico, users with a `groups` claim, PKCE required).

Playwright drives Debian's Chromium (`browser.py`) from a portal's login page to the provider's
sign-in form and back. The person's groups reach Cedar (policies on `Portico::Group::"..."` let
them connect and see a server, which the home page lists); a person whose groups no policy
names gets the block page; an address the provider has not verified signs no one in; a callback
whose `state` was tampered with is refused; with instant auth the login page goes straight to the
provider. An MCP client gets its tokens for a person
who signs in at the provider, and its calls are audited as that person.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page

import anyio
import skips
from browser import browser
from conftest import free_port
from mcp_peers import mcp_client
from test_mcp_portal import audit_events, gateway, gateway_backend, portico_events, text  # noqa: F401
from test_pages import OAuthClient, callback  # noqa: F401

START_TIMEOUT = 30.0
USERS = {
    "alice": {
        "email": "alice@example.com",
        "name": "Alice Example",
        "groups": ["engineers", "staff"],
        "department": "research",
    },
    "bob": {"email": "bob@example.com", "name": "Bob Example", "groups": ["sales"]},
    # The provider says Mallory's address is not verified: it must not sign her in as its owner.
    "mallory": {"email": "carol@example.com", "name": "Mallory", "groups": ["engineers"], "email_verified": False},
}


class OpenIdProvider:
    """A running oidc-provider with one client, `portico`, whose redirect URI is the portal's
    callback."""

    def __init__(self, node: str, package: str, redirect_uri: str, log_dir: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = secrets.token_urlsafe(32)
        config = {
            "port": self.port,
            "client": {
                "client_id": "portico",
                "client_secret": self.client_secret,
                "redirect_uris": [redirect_uri],
            },
            "users": USERS,
        }
        self.log_path = log_dir / "oidc-provider.log"
        script = Path(__file__).with_name("oidc_provider.mjs")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [node, str(script)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PORTICO_OIDC_PROVIDER=package, OIDC_TEST_CONFIG=json.dumps(config)),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while f"ready {self.issuer}" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"oidc-provider did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def team(gateway, pyserver):
    """Portal `team` with two servers; the `engineers` group may connect and use `py`."""
    gateway.add_server("py", pyserver.url)
    gateway.add_server("notes", pyserver.url)
    gateway.add_portal(
        "team",
        [{"server_id": "py", "on_behalf": True}, {"server_id": "notes", "on_behalf": True}],
    )
    gateway.add_policy(
        "engineers connect",
        'permit (principal in Portico::Group::"engineers", action == Portico::Action::"connect", '
        'resource == Portico::Portal::"team");',
    )
    gateway.add_policy(
        "engineers use py",
        'permit (principal in Portico::Group::"engineers", action in Portico::Action::"use_server", '
        'resource in Portico::Server::"py");',
    )
    return gateway


@pytest.fixture
def provider(team, tmp_path_factory):
    node = os.environ.get("PORTICO_NODE22") or None
    package = os.environ.get("PORTICO_OIDC_PROVIDER") or None
    if node is None or package is None:
        skips.skip_or_fail(
            "PORTICO_SKIP_PEERS",
            "oidc-provider is not installed (PORTICO_NODE22 or PORTICO_OIDC_PROVIDER not set): "
            "run scripts/test, which installs tests/peers and sets them",
        )
    redirect_uri = f"{home(team)}login/oidc/callback"
    running = OpenIdProvider(node, package, redirect_uri, tmp_path_factory.mktemp("oidc"))
    yield running
    running.kill()


@pytest.fixture
def idp(team, provider) -> str:
    """The provider registered in Portico as an `oidc` identity provider; its id."""
    created = team.client.zero_trust.identity_providers.create(
        account_id=team.account_id,
        name="Test IdP",
        type="oidc",
        config={
            "client_id": "portico",
            "client_secret": provider.client_secret,
            "auth_url": f"{provider.issuer}/auth",
            "token_url": f"{provider.issuer}/token",
            "certs_url": f"{provider.issuer}/jwks",
            "scopes": ["openid", "email", "profile", "groups"],
            "pkce_enabled": True,
            "claims": ["department"],
        },
    )
    return created.id


def home(gateway) -> str:
    return f"http://127.0.0.1:{gateway.portico.port}/portals/team/"


async def heading(page: Page) -> str:
    return await page.locator("h1").inner_text()


async def at_provider(page: Page, provider: OpenIdProvider, user: str) -> None:
    """On the provider's sign-in form: signs in as `user` and waits for the next page."""
    await page.get_by_role("heading", name="Test IdP sign-in").wait_for()
    assert page.url.startswith(f"{provider.issuer}/interaction/"), page.url
    await page.get_by_label("User").fill(user)
    # The provider sends the browser back to Portico's callback, which goes on to the portal.
    async with page.expect_navigation(url="http://127.0.0.1:*/portals/team/**"):
        await page.get_by_role("button", name="Continue").click()


def events(portico, kind: str) -> list[dict]:
    recorded = [json.loads(line) for line in portico_events(portico).splitlines() if line.strip()]
    return [r["event"] for r in recorded if r["event"]["type"] == kind]


def test_a_person_signs_in_with_the_provider_and_their_groups_reach_cedar(team, provider, idp, chromium):
    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(home(team))
            assert await heading(page) == "Sign in to Portal team"
            # Both providers of the account are offered: the PIN form and a button for the IdP.
            assert await page.get_by_label("Email").count() == 1
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await at_provider(page, provider, "alice")
            await page.get_by_role("heading", name="Portal team").wait_for()
            assert page.url == home(team)
            assert "Signed in as alice@example.com." in await page.locator("main").inner_text()
            # `py` only: the group policy lets engineers use it, nothing lets them use `notes`.
            assert await page.locator("#servers li").all_inner_texts() == ["Server py"]

    anyio.run(check)
    (signed_in,) = events(team.portico, "UserSignedIn")
    user = signed_in["user"]
    assert user["email"] == "alice@example.com"
    assert user["name"] == "Alice Example"
    assert user["idp"] == idp
    assert sorted(user["groups"]) == ["engineers", "staff"]
    assert provider.client_secret not in team.portico.log_tail(10_000)


def test_a_person_no_policy_lets_in_gets_the_block_page(team, provider, idp, chromium):
    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(home(team))
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await at_provider(page, provider, "bob")
            assert await heading(page) == "Access denied"
            assert "That account does not have access" in await page.locator("main").inner_text()

    anyio.run(check)
    assert events(team.portico, "UserSignedIn") == []
    (failed,) = events(team.portico, "SignInFailed")
    assert failed["reason"] == "access_denied" and failed["email"] == "bob@example.com", failed


def test_an_address_the_provider_has_not_verified_signs_no_one_in(team, provider, idp, chromium):
    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(home(team))
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await at_provider(page, provider, "mallory")
            assert await heading(page) == "Sign-in stopped"
            assert "has not verified your email address" in await page.locator("main").inner_text()
            assert "portico_session" not in {c["name"] for c in await context.cookies()}

    anyio.run(check)
    assert events(team.portico, "UserSignedIn") == []
    (failed,) = events(team.portico, "SignInFailed")
    assert failed["reason"] == "identity_provider", failed


def test_an_mcp_client_gets_tokens_for_a_person_signed_in_at_the_provider(team, provider, idp, chromium, callback):
    client = OAuthClient(team, callback)
    # A custom claim the provider keeps (`claims: ["department"]`) is a tag Cedar reads.
    team.add_policy(
        "research uses notes",
        'permit (principal is Portico::User, action in Portico::Action::"use_server", '
        'resource in Portico::Server::"notes") '
        'when { principal.hasTag("department") && principal.getTag("department") == "research" };',
    )

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            auth = client.authorization()
            await page.goto(auth.url)
            assert await heading(page) == "Sign in to Portal team"
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await at_provider(page, provider, "alice")
            # Back from the provider, the authorization goes on where it stopped: consent.
            assert await heading(page) == "Allow Browser Test Client?"
            assert "as you (alice@example.com)" in await page.locator("main").inner_text()
            async with page.expect_navigation(url=f"{callback.url}**"):
                await page.get_by_role("button", name="Allow").click()
        answer = callback.queries[-1]
        assert answer["state"] == auth.state, answer
        tokens = client.redeem(answer["code"], auth.verifier)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with mcp_client(client.resource, headers) as session:
            # The person's groups and claims decide what the client sees: `py` for engineers,
            # `notes` for the research department.
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"py_echo", "notes_echo"} <= tools, tools
            assert "hello" in text(await session.call_tool("py_echo", {"text": "hello"}))

    anyio.run(check)
    (call,) = [e for e in audit_events(team.portico) if e.get("method") == "tools/call"]
    assert call["user_email"] == "alice@example.com", call
    assert call["user_id"], call
    (signed_in,) = events(team.portico, "UserSignedIn")
    assert signed_in["user"]["claims"] == {"department": "research"}, signed_in


def test_a_callback_with_a_tampered_state_is_refused(team, provider, idp):
    # Over HTTP, to hold the provider's answer before it reaches Portico (a browser follows
    # redirects out of a test's reach).
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        answer = http.get(f"{home(team)}login/oidc", params={"idp": idp, "next": "/portals/team/"})
        assert answer.status_code == 302, answer.text
        url = answer.headers["location"]
        assert url.startswith(f"{provider.issuer}/auth?"), url
        # At the provider, up to its sign-in form, then signing in as alice.
        while not url.startswith(home(team)):
            if "/interaction/" in url and not url.endswith("/login"):
                uid = url.rstrip("/").rsplit("/", 1)[1]
                answer = http.post(f"{provider.issuer}/interaction/{uid}/login", data={"login": "alice"})
            else:
                answer = http.get(url)
            assert answer.status_code in (302, 303), (url, answer.status_code, answer.text)
            url = httpx.URL(url).join(answer.headers["location"]).__str__()
        callback = httpx.URL(url)
        assert callback.path == "/portals/team/login/oidc/callback", url
        state = callback.params["state"]
        tampered = http.get(callback.copy_set_param("state", state[:-2] + "xx"))
        assert tampered.status_code == 400, tampered.text
        assert "Sign-in stopped" in tampered.text and "unknown or expired" in tampered.text
        assert "portico_session" not in tampered.cookies
        # The same answer with its own state signs alice in: only the state differed.
        genuine = http.get(callback)
        assert genuine.status_code == 303, genuine.text
        assert genuine.headers["location"] == "/portals/team/"
        assert genuine.cookies.get("portico_session")

    (failed,) = events(team.portico, "SignInFailed")
    assert failed["reason"] == "identity_provider", failed
    (signed_in,) = events(team.portico, "UserSignedIn")
    assert signed_in["user"]["email"] == "alice@example.com"


def test_instant_auth_goes_straight_to_the_provider(team, provider, idp, chromium):
    applications = team.client.zero_trust.access.applications
    (app,) = list(applications.list(account_id=team.account_id))
    applications.update(
        app.id,
        account_id=team.account_id,
        type="mcp_portal",
        allowed_idps=[idp],
        auto_redirect_to_identity=True,
    )

    async def check():
        async with browser(chromium) as context:
            page = await context.new_page()
            await page.goto(home(team))
            # No login page of Portico's in between: the provider's own form.
            await at_provider(page, provider, "alice")
            await page.get_by_role("heading", name="Portal team").wait_for()
            assert await page.locator("#servers li").all_inner_texts() == ["Server py"]

    anyio.run(check)
