"""The OAuth-protected upstream of `oauth_upstream.py` works with a real OAuth client: the official
MCP Python SDK's `OAuthClientProvider`, signed in headless (`login`). No Portico here: these tests
hold the fixture to the MCP authorization specification so that the tests of Portico's own OAuth
client toward upstreams can rely on it.

The SDK finds the protected-resource metadata from the 401's challenge, the authorization server
from it, registers dynamically, authorizes with PKCE and `resource`, and refreshes an expired
token; the MCP server sees the user, and refuses a token issued for another resource.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlparse

import anyio
import httpx
import httpx2
import jwt
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from oauth_upstream import login, oauth_upstream  # noqa: F401

REDIRECT_URI = "http://127.0.0.1:1/callback"
OTHER_RESOURCE = "http://127.0.0.1:1/other"


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@asynccontextmanager
async def signed_in_client(url: str, user: str, storage: MemoryStorage) -> AsyncIterator[Client]:
    """An MCP client session on `url` whose OAuth sign-in, when the server asks for it, is `user`
    at the authorization server's form."""
    redirected: list[str] = []

    async def redirect_handler(authorization_url: str) -> None:
        redirected.append(await anyio.to_thread.run_sync(login, authorization_url, user))

    async def callback_handler() -> AuthorizationCodeResult:
        params = {k: v[0] for k, v in parse_qs(urlparse(redirected.pop()).query).items()}
        assert "code" in params, params
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="fixture test client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
            yield client


async def whoami(client: Client) -> dict:
    result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return json.loads("".join(c.text for c in result.content if c.type == "text"))


def test_without_a_token_the_server_answers_401_with_its_metadata(oauth_upstream):
    upstream = oauth_upstream()
    response = httpx.post(upstream.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = f"{upstream.mcp_url.removesuffix('/mcp')}/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in challenge
    assert 'scope="mcp:tools"' in challenge
    metadata = httpx.get(metadata_url).json()
    assert metadata["resource"] == upstream.mcp_url
    assert metadata["authorization_servers"] == [upstream.issuer]
    assert metadata["scopes_supported"] == ["mcp:tools"]
    server = httpx.get(f"{upstream.issuer}/.well-known/openid-configuration").json()
    assert server["code_challenge_methods_supported"] == ["S256"]
    assert server["registration_endpoint"] == f"{upstream.issuer}/reg"
    # A token that is not one gets the challenge too, with invalid_token.
    response = httpx.post(upstream.mcp_url, json={}, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_the_sdk_discovers_registers_and_signs_the_user_in(oauth_upstream):
    upstream = oauth_upstream()
    storage = MemoryStorage()

    async def session() -> dict:
        async with signed_in_client(upstream.mcp_url, "alice", storage) as client:
            assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"
            return await whoami(client)

    assert anyio.run(session) == {"sub": "alice", "client_id": storage.client_info.client_id, "scope": "mcp:tools"}
    stats = upstream.stats()
    assert stats["registrations"] == 1
    assert stats["token"] == {"authorization_code": 1}
    # Every bearer token the server received was Alice's and valid (the first request had none).
    seen = upstream.seen()
    assert seen and {entry["sub"] for entry in seen} == {"alice"}
    assert all(entry["valid"] for entry in seen)


def test_an_expired_token_is_refreshed_once(oauth_upstream):
    upstream = oauth_upstream(access_ttl=2)
    storage = MemoryStorage()
    tokens, refreshes = [], []

    async def session() -> None:
        async with signed_in_client(upstream.mcp_url, "bob", storage) as client:
            assert (await whoami(client))["sub"] == "bob"
            tokens.append(storage.tokens)
            refreshes.append(upstream.stats()["token"].get("refresh_token", 0))
            await anyio.sleep(2.5)
            assert (await whoami(client))["sub"] == "bob"
            tokens.append(storage.tokens)
            refreshes.append(upstream.stats()["token"].get("refresh_token", 0))

    anyio.run(session)
    first, second = tokens
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated
    # One refresh after the expiry (none before it, unless this machine is very slow).
    assert refreshes[1] - refreshes[0] == 1, refreshes
    assert upstream.stats()["token_errors"] == {}


def test_a_token_for_another_resource_is_refused(oauth_upstream):
    upstream = oauth_upstream(other_resources=[OTHER_RESOURCE])
    other = upstream.token("alice", resource=OTHER_RESOURCE)["access_token"]
    headers = {"Authorization": f"Bearer {other}", "Accept": "application/json, text/event-stream"}
    response = httpx.post(upstream.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert upstream.seen()[-1]["valid"] is False
    # A resource the authorization server does not know is refused there.
    client_id = upstream.register(REDIRECT_URI)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "mcp:tools",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "resource": "http://127.0.0.1:1/unknown",
    }
    refused = login(f"{upstream.issuer}/auth?{urlencode(query)}", "alice")
    assert parse_qs(urlparse(refused).query)["error"] == ["invalid_target"]


def test_the_side_channel_takes_the_token_endpoint_down_and_revokes(oauth_upstream):
    upstream = oauth_upstream()
    first = upstream.token("alice")
    refresh = {"grant_type": "refresh_token", "client_id": _client_id(first["access_token"])}
    upstream.down()
    response = httpx.post(f"{upstream.issuer}/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    upstream.up()
    response = httpx.post(f"{upstream.issuer}/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert upstream.revoke("alice") == 1
    response = httpx.post(f"{upstream.issuer}/token", data={**refresh, "refresh_token": second["refresh_token"]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    stats = upstream.stats()
    assert stats["unavailable"] == {"refresh_token": 1}
    assert stats["token"] == {"authorization_code": 1, "refresh_token": 2}
    assert stats["token_errors"] == {"refresh_token": 1}


def test_registration_can_be_closed(oauth_upstream):
    upstream = oauth_upstream(dcr=False)
    server = httpx.get(f"{upstream.issuer}/.well-known/openid-configuration").json()
    assert "registration_endpoint" not in server
    response = httpx.post(f"{upstream.issuer}/reg", json={"redirect_uris": [REDIRECT_URI]})
    assert response.status_code == 404


def _client_id(access_token: str) -> str:
    return jwt.decode(access_token, options={"verify_signature": False})["client_id"]
