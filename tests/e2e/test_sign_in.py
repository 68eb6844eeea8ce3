"""People sign in: the official MCP Python SDK's OAuth client provider connects to a portal as a
person, against the real `portico serve` with nothing else configured.

The SDK discovers everything from the portal's 401 (protected-resource metadata, then the
authorization-server metadata), registers itself dynamically (RFC 7591), sends the person to the
authorization endpoint with PKCE S256 and `resource`, and redeems the code. The person's part
(the sign-in page, the one-time PIN, the consent page) is driven over HTTP by the redirect
handler below, as a browser would submit the forms. With no SMTP server configured Portico writes
the PIN to its log, which is where this test reads it: the same path the README's first command
gives a person.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from aiosmtpd.controller import Controller

from conftest import Portico, free_port
from test_mcp_portal import Gateway, audit_events, gateway, gateway_backend, text  # noqa: F401

REDIRECT = "http://127.0.0.1:33418/callback"


class Forms(HTMLParser):
    """The forms of a page: action and fields (hidden and named submit buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}, "buttons": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1]["buttons"][a.get("value")] = a["name"]


def forms(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


class Person:
    """A person at a browser: signs in with the PIN from Portico's log and answers consent."""

    def __init__(self, gateway, email: str, consent: str = "allow", inbox=None) -> None:
        self.gateway = gateway
        self.email = email
        self.inbox = inbox
        self.consent = consent
        self.result: AuthorizationCodeResult | None = None
        self.pages: list[str] = []

    def pins(self) -> list[str]:
        """The PINs sent to this person so far: from the SMTP server's inbox when Portico has
        one, else from Portico's log."""
        if self.inbox is not None:
            return [
                re.search(r"is (\d{6})\.", body).group(1)
                for to, body in list(self.inbox.messages)
                if self.email in to
            ]
        log = self.gateway.portico.stderr_path.read_text(errors="replace")
        return re.findall(rf"to={re.escape(self.email)}.*?code=(\d{{6}})", log)

    def pin(self, seen: int) -> str:
        """The PIN mailed after the first `seen` ones."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = self.pins()
            if len(found) > seen:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no PIN for {self.email} in the log:\n{self.gateway.portico.log_tail()}")

    def authorize(self, url: str) -> None:
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            page = browser.get(url)
            assert page.status_code == 200, page.text
            login = forms(page.text)[0]
            seen = len(self.pins())
            page = browser.post(urljoin(url, login["action"]), data={**login["fields"], "email": self.email})
            assert page.status_code == 200, page.text
            pin = forms(page.text)[0]
            page = browser.post(urljoin(url, pin["action"]), data={**pin["fields"], "code": self.pin(seen)})
            if page.status_code == 403:
                # No policy lets this person connect: the block page, and no session.
                self.pages.append(page.text)
                assert "portico_session" not in browser.cookies
                return
            assert page.status_code == 303, page.text
            page = browser.get(urljoin(url, page.headers["location"]))
            self.pages.append(page.text)
            self.result = None
            if page.status_code == 200:
                consent = forms(page.text)[0]
                name = consent["buttons"][self.consent]
                page = browser.post(urljoin(url, consent["action"]), data={**consent["fields"], name: self.consent})
            # Consent given before: the code comes at once.
            assert page.status_code == 302, page.text
            location = page.headers["location"]
            assert location.startswith(REDIRECT), location
            query = parse_qs(urlparse(location).query)
            if "code" in query:
                self.result = AuthorizationCodeResult(
                    code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
                )
            else:
                self.result = None
                self.error = query.get("error", [None])[0]

    async def redirect_handler(self, url: str) -> None:
        await anyio.to_thread.run_sync(self.authorize, url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None, f"no code: {getattr(self, 'error', None)} {self.pages[-1:]}"
        return self.result


def provider(url: str, person: Person, storage: MemoryStorage) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Portico e2e",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
    )


async def connect(url: str, auth: OAuthClientProvider):
    http = httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30.0, read=60.0))
    return http, Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None)


@pytest.fixture
def people_portal(gateway, pyserver):
    gateway.add_server("py", pyserver.url)
    gateway.add_portal("team", [{"server_id": "py", "on_behalf": True}])
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


def test_the_python_sdk_signs_a_person_in_and_calls_tools_as_them(people_portal):
    gateway = people_portal
    url = gateway.portal_url("team")
    person = Person(gateway, "alice@example.com")
    storage = MemoryStorage()

    async def check():
        http, client = await connect(url, provider(url, person, storage))
        async with http, client:
            tools = await client.list_tools()
            assert "py_echo" in {t.name for t in tools.tools}, tools
            result = await client.call_tool("py_echo", {"text": "hello"})
            assert "hello" in text(result)

    anyio.run(check)
    assert storage.client is not None and storage.client.client_id
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert "wants to use portal" in person.pages[0]
    calls = [e for e in audit_events(gateway.portico) if e.get("method") == "tools/call"]
    assert calls, "the call was audited"
    assert calls[-1]["user_email"] == "alice@example.com", calls[-1]


def test_a_person_no_policy_lets_connect_gets_the_block_page_and_no_tokens(people_portal):
    gateway = people_portal
    url = gateway.portal_url("team")
    person = Person(gateway, "mallory@elsewhere.test")
    storage = MemoryStorage()

    async def check():
        http, client = await connect(url, provider(url, person, storage))
        async with http:
            with pytest.raises(Exception):
                async with client:
                    pass

    anyio.run(check)
    assert "That account does not have access" in person.pages[-1]
    assert storage.tokens is None


def test_the_sdk_refreshes_with_a_rotated_refresh_token(people_portal):
    gateway = people_portal
    url = gateway.portal_url("team")
    person = Person(gateway, "bob@example.com")
    storage = MemoryStorage()
    auth = provider(url, person, storage)

    async def connect_once():
        http, client = await connect(url, auth)
        async with http, client:
            await client.list_tools()

    anyio.run(connect_once)
    old_refresh = storage.tokens.refresh_token
    pins_before = len(person.pins())
    # The access token's lifetime has passed, as the SDK counts it: it refreshes first.
    auth.context.token_expiry_time = time.time() - 1
    anyio.run(connect_once)
    assert storage.tokens.refresh_token != old_refresh, "the refresh token rotated"
    assert len(person.pins()) == pins_before, "a refresh, not a new sign-in"
    answer = httpx.post(
        f"http://127.0.0.1:{gateway.portico.port}/portals/team/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": storage.client.client_id},
        timeout=30,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
    # The replay revoked the grant: the SDK's current tokens no longer work.
    check = httpx.post(
        url,
        headers={"Authorization": f"Bearer {storage.tokens.access_token}", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=30,
    )
    assert check.status_code == 401, check.text


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_with_an_smtp_server_the_pin_is_mailed_and_not_logged(smtp, pyserver, tmp_path_factory):
    controller, inbox = smtp
    server = Portico(tmp_path_factory.mktemp("portico") / "data", None)
    server.serve_args = [
        "--allow-private-upstreams",
        "--smtp-url", f"smtp://127.0.0.1:{controller.port}",
        "--smtp-from", "Portal sign-in <signin@portico.test>",
    ]
    server.start()
    try:
        gateway = Gateway(server)
        gateway.add_server("py", pyserver.url)
        gateway.add_portal("team", [{"server_id": "py", "on_behalf": True}])
        gateway.add_policy(
            "example people connect",
            'permit (principal is Portico::User, action == Portico::Action::"connect", '
            'resource == Portico::Portal::"team") when { principal.email like "*@example.com" };',
        )
        url = gateway.portal_url("team")
        person = Person(gateway, "carol@example.com", inbox=inbox)
        storage = MemoryStorage()

        async def check():
            http, client = await connect(url, provider(url, person, storage))
            async with http, client:
                await client.list_tools()

        anyio.run(check)
        [(to, body)] = inbox.messages
        assert to == ["carol@example.com"]
        assert "From: \"Portal sign-in\" <signin@portico.test>" in body
        assert "Subject: Your sign-in code for Portal team" in body
        code = person.pins()[0]
        assert code not in server.stderr_path.read_text(errors="replace"), "the PIN is not logged"
    finally:
        assert server.stop() == 0, server.log_tail()
