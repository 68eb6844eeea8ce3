"""An OAuth-protected upstream MCP server made of real parts, for the tests of Portico's OAuth
client toward upstreams (Portico signs each person in to the upstream):

  - the authorization server: `oauth_as.mjs`, oidc-provider from npm (tests/peers);
  - the resource server: `upstream/oauth_server.py`, the official MCP Python SDK.

`OAuthUpstream(**options).start()` starts both on free ports of 127.0.0.1 and waits until they
answer; `.issuer`, `.mcp_url` (also the resource, the tokens' `aud`), `.stats()`, `.reset()`,
`.revoke(user)`, `.down()`, `.up()`, `.seen()`, `.clear_seen()`, `.stop()`. The options are
`oauth_as.mjs`'s configuration fields (`access_ttl`, `dcr`, `users`, `other_resources`, `clients`,
...; `port` and `resource` are filled in), and `advertise_resource`, a URL the MCP server's
protected-resource metadata names instead of its own (see upstream/oauth_server.py). The fixture
`oauth_upstream` is a factory of started ones, stopped at teardown.

Without a browser: `login(authorize_url, user)` signs `user` in at the authorization server's
form with plain HTTP and returns the redirect to the client's redirect_uri (with the code),
without fetching it; `OAuthUpstream.token(user)` does a whole authorization code flow (dynamic
registration, PKCE, `resource`) and returns the token response.

Environment: PORTICO_OIDC_PROVIDER, the oidc-provider package's directory (scripts/test sets it;
without it the tests fail, or are skipped with PORTICO_SKIP_PEERS=1); PORTICO_NODE22, the Node
binary (`node` from PATH when unset).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx
import pytest

import skips

START_TIMEOUT = 30.0
HERE = Path(__file__).parent
USERS = {
    "alice": {"email": "alice@example.com", "name": "Alice Example"},
    "bob": {"email": "bob@example.com", "name": "Bob Example"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def oidc_provider_package() -> str:
    """The oidc-provider package's directory; fails the test (or skips it with
    PORTICO_SKIP_PEERS=1) when PORTICO_OIDC_PROVIDER is not set."""
    package = os.environ.get("PORTICO_OIDC_PROVIDER")
    if not package:
        skips.skip_or_fail(
            "PORTICO_SKIP_PEERS",
            "oidc-provider is not installed (PORTICO_OIDC_PROVIDER not set): run scripts/test, "
            "which installs tests/peers and sets it",
        )
    return package


class OAuthUpstream:
    def __init__(self, log_dir: Path | None = None, *, advertise_resource: str | None = None, **options) -> None:
        self.package = oidc_provider_package()
        self.advertise_resource = advertise_resource
        self.node = os.environ.get("PORTICO_NODE22") or "node"
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="oauth-upstream-"))
        self.as_port = _free_port()
        self.rs_port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.as_port}"
        self.mcp_url = f"http://127.0.0.1:{self.rs_port}/mcp"
        self.config = {"users": USERS, **options, "port": self.as_port, "resource": self.mcp_url}
        self.as_log = self.log_dir / f"oauth-as-{self.as_port}.log"
        self.rs_log = self.log_dir / f"oauth-server-{self.rs_port}.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def resource(self) -> str:
        return self.mcp_url

    def start(self) -> OAuthUpstream:
        env = dict(os.environ, PORTICO_OIDC_PROVIDER=self.package, OAUTH_AS_CONFIG=json.dumps(self.config))
        self._spawn([self.node, str(HERE / "oauth_as.mjs")], self.as_log, env)
        self._wait(self.as_log, lambda: f"ready {self.issuer}" in self.as_log.read_text(errors="replace"))
        argv = [sys.executable, str(HERE / "upstream" / "oauth_server.py"), str(self.rs_port), self.issuer]
        if self.advertise_resource:
            argv += ["--advertise-resource", self.advertise_resource]
        self._spawn(argv, self.rs_log, dict(os.environ))
        self._wait(self.rs_log, self._rs_answers)
        return self

    def _spawn(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        with open(log_path, "wb") as log:
            self.processes.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            )

    def _rs_answers(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.rs_port}/.well-known/oauth-protected-resource/mcp"
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, log_path: Path, ready) -> None:
        process = self.processes[-1]
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{log_path.name} did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.processes = []

    def _admin(self, method: str, path: str, **params):
        response = httpx.request(method, f"{self.issuer}{path}", params=params, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        """`{"token": {"authorization_code": n, "refresh_token": n}, "token_errors": {...},
        "unavailable": {...}, "registrations": n}` (see oauth_as.mjs)."""
        return self._admin("GET", "/test/stats")

    def reset(self) -> None:
        self._admin("POST", "/test/reset")

    def revoke(self, user: str) -> int:
        """Revokes the user's grants (and refresh tokens) and sign-in sessions; how many grants."""
        return self._admin("POST", "/test/revoke", user=user)["grants"]

    def down(self) -> None:
        self._admin("POST", "/test/down")

    def up(self) -> None:
        self._admin("POST", "/test/up")

    def seen(self) -> list[dict]:
        """The Authorization headers the MCP server received: `{"path", "scheme", "sha256",
        "sub", "valid"}` each (see upstream/oauth_server.py)."""
        response = httpx.get(f"http://127.0.0.1:{self.rs_port}/test/seen", timeout=10.0)
        return response.raise_for_status().json()

    def clear_seen(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.rs_port}/test/seen/clear", timeout=10.0).raise_for_status()

    def register(self, redirect_uri: str = "http://127.0.0.1:1/callback") -> str:
        """A public client registered dynamically; its client_id."""
        response = httpx.post(
            f"{self.issuer}/reg",
            json={
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "test client",
            },
            timeout=10.0,
        )
        assert response.status_code == 201, response.text
        return response.json()["client_id"]

    def token(self, user: str, *, resource: str | None = None, scope: str = "mcp:tools") -> dict:
        """The token response of an authorization code flow for `user` (a new public client,
        PKCE, `resource` the MCP server unless given)."""
        redirect_uri = "http://127.0.0.1:1/callback"
        client_id = self.register(redirect_uri)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        resource = resource or self.mcp_url
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": resource,
        }
        params = parse_qs(urlparse(login(f"{self.issuer}/auth?{urlencode(query)}", user)).query)
        assert params.get("state") == [state] and "code" in params, params
        response = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": resource,
            },
            timeout=10.0,
        )
        assert response.status_code == 200, response.text
        return response.json()


def login(authorize_url: str, user: str) -> str:
    """Signs `user` in at the authorization server `authorize_url` points at, with plain HTTP
    (redirects followed by hand, cookies kept), and returns the URL the server finally redirects
    to outside itself (the client's redirect_uri with `code`, `state` and `iss`, or an error),
    without fetching it."""
    origin = urlparse(authorize_url).netloc
    url, form = authorize_url, None
    with httpx.Client(follow_redirects=False, timeout=10.0) as http:
        for _ in range(20):
            response = http.post(url, data=form) if form is not None else http.get(url)
            form = None
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if urlparse(url).netloc != origin:
                    return url
            elif response.status_code == 200 and (action := re.search(r'<form[^>]*action="([^"]+)"', response.text)):
                url, form = urljoin(url, action.group(1)), {"login": user}
            else:
                raise RuntimeError(f"sign-in at {url} failed: {response.status_code} {response.text[:500]}")
    raise RuntimeError(f"sign-in at {authorize_url} redirected too many times")


@pytest.fixture
def oauth_upstream(tmp_path_factory):
    """A factory: `oauth_upstream(**options)` starts an `OAuthUpstream`, stopped at teardown."""
    started: list[OAuthUpstream] = []

    def start(**options) -> OAuthUpstream:
        upstream = OAuthUpstream(tmp_path_factory.mktemp("oauth-upstream"), **options)
        started.append(upstream)
        return upstream.start()

    yield start
    for upstream in started:
        upstream.stop()
