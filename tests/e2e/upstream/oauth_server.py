"""An OAuth-protected upstream MCP server for the end-to-end suite, written with the official MCP
Python SDK: a protected resource as MCP authorization (2025-11-25) describes it, its tokens issued
by `tests/e2e/oauth_as.mjs` (oidc-provider).

Streamable HTTP at `http://127.0.0.1:<port>/mcp`, the port from the first argument or `PORT`,
the authorization server's issuer from the second argument or `OAUTH_ISSUER`:

    python tests/e2e/upstream/oauth_server.py 8124 http://127.0.0.1:8125

`/mcp` is the resource (its RFC 8707 identifier, exactly that URL). Its RFC 9728 metadata, at
`/.well-known/oauth-protected-resource/mcp` and at `/.well-known/oauth-protected-resource`, names
the issuer and the scope `mcp:tools`; `--advertise-resource URL` makes it name another resource
(a misconfigured server: clients then get tokens for that resource, which `/mcp` still refuses,
as it only takes tokens meant for itself). A request to `/mcp` without a bearer token gets 401 with
`WWW-Authenticate: Bearer resource_metadata="...", scope="mcp:tools"`; with a token that is not
valid, the same plus `error="invalid_token"`; with a valid token lacking the scope, 403
`error="insufficient_scope"`. A token is valid when it is a JWT access token (`typ` at+jwt)
signed by a key of the issuer's JWKS (found through its OpenID metadata), its `iss` the issuer,
its `aud` this resource, not expired, with `sub` and `client_id`.

Tools: `whoami()` (JSON `{"sub", "client_id", "scope"}` of the token the call came with) and
`echo(text)`.

`GET /test/seen` lists every Authorization header the server received, on any path, in order:
`{"path", "scheme", "sha256" (of the credentials after the scheme, hex), "sub" (the JWT's subject,
read without verification; null when not a JWT), "valid" (whether `/mcp` accepted it; null on
other paths)}`. `POST /test/seen/clear` empties the list.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import anyio
import httpx
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE = "mcp:tools"
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)

server = MCPServer(name="portico-test-oauth-server", version="1.0.0", log_level="WARNING")
seen: list[dict] = []


@server.tool(description="The subject, client and scope of the access token of this call", annotations=READ_ONLY)
def whoami() -> str:
    token = get_access_token()
    assert token is not None, "the bearer guard lets no call through without a token"
    return json.dumps({"sub": token.subject, "client_id": token.client_id, "scope": " ".join(token.scopes)})


@server.tool(description="Returns the text it is given", annotations=READ_ONLY)
def echo(text: str) -> str:
    return text


@server.custom_route("/test/seen", methods=["GET"])
async def seen_list(request: Request) -> JSONResponse:
    return JSONResponse(seen)


@server.custom_route("/test/seen/clear", methods=["POST"])
async def seen_clear(request: Request) -> JSONResponse:
    seen.clear()
    return JSONResponse(seen)


class JwtVerifier:
    """The SDK's `TokenVerifier` for the authorization server's JWT access tokens (RFC 9068)."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self._keys: jwt.PyJWKSet | None = None
        self._lock = anyio.Lock()

    async def _fetch_keys(self) -> jwt.PyJWKSet:
        async with httpx.AsyncClient(timeout=10.0) as http:
            metadata = (await http.get(f"{self.issuer}/.well-known/openid-configuration")).raise_for_status().json()
            return jwt.PyJWKSet.from_dict((await http.get(metadata["jwks_uri"])).raise_for_status().json())

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            for attempt in range(2):
                if self._keys is None or attempt == 1:
                    self._keys = await self._fetch_keys()
                try:
                    return self._keys[kid]
                except KeyError:
                    continue
        raise jwt.InvalidTokenError(f"no key {kid!r} in the issuer's JWKS")

    async def check(self, token: str) -> AccessToken:
        """The token's access, or `jwt.InvalidTokenError` saying why it is not valid here."""
        header = jwt.get_unverified_header(token)
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise jwt.InvalidTokenError(f"not a JWT access token (typ {header.get('typ')!r})")
        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidTokenError(f"algorithm {header.get('alg')!r} not accepted")
        key = await self._key(header.get("kid"))
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[header["alg"]],
            audience=self.resource,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "client_id"], "strict_aud": True},
        )
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims["exp"],
            resource=self.resource,
            subject=claims["sub"],
            claims=claims,
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self.check(token)
        except jwt.InvalidTokenError:
            return None


class BearerGuard:
    """Records every Authorization header; lets a request reach `/mcp` only with a valid token
    carrying the scope, its access then in `scope["user"]` and in the SDK's auth context (so
    `get_access_token()` works in tools)."""

    def __init__(self, app: ASGIApp, verifier: JwtVerifier, path: str, metadata_url: str) -> None:
        self.app = AuthContextMiddleware(app)
        self.verifier = verifier
        self.path = path
        self.metadata_url = metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        entry = record(scope["path"], authorization) if authorization is not None else None
        if scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            await self.refuse(send, 401)
            return
        try:
            access = await self.verifier.check(credentials.strip())
        except jwt.InvalidTokenError as error:
            entry["valid"] = False
            await self.refuse(send, 401, "invalid_token", str(error))
            return
        if SCOPE not in access.scopes:
            entry["valid"] = False
            await self.refuse(send, 403, "insufficient_scope", f"the token lacks the scope {SCOPE}")
            return
        entry["valid"] = True
        scope["user"] = AuthenticatedUser(access)
        scope["auth"] = AuthCredentials(access.scopes)
        await self.app(scope, receive, send)

    async def refuse(self, send: Send, status: int, error: str | None = None, description: str | None = None) -> None:
        challenge = [f'resource_metadata="{self.metadata_url}"', f'scope="{SCOPE}"']
        body: dict[str, str] = {"error": error or "unauthorized"}
        if error is not None:
            description = (description or "").replace('"', "'")
            challenge += [f'error="{error}"', f'error_description="{description}"']
            body["error_description"] = description
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"www-authenticate", ("Bearer " + ", ".join(challenge)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def record(path: str, authorization: str) -> dict:
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    try:
        sub = jwt.decode(credentials, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        sub = None
    entry = {
        "path": path,
        "scheme": scheme,
        "sha256": hashlib.sha256(credentials.encode()).hexdigest(),
        "sub": sub,
        "valid": None,
    }
    seen.append(entry)
    return entry


def app(port: int, issuer: str, advertised_resource: str | None = None) -> ASGIApp:
    origin = f"http://127.0.0.1:{port}"
    resource = f"{origin}/mcp"
    metadata = {
        "resource": advertised_resource or resource,
        "authorization_servers": [issuer],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Portico test OAuth MCP server",
    }

    async def protected_resource(request: Request) -> JSONResponse:
        return JSONResponse(metadata)

    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        server.custom_route(path, methods=["GET"])(protected_resource)
    inner = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    return BearerGuard(
        inner, JwtVerifier(issuer, resource), "/mcp", f"{origin}/.well-known/oauth-protected-resource/mcp"
    )


def main() -> None:
    args = sys.argv[1:]
    advertised_resource = None
    if "--advertise-resource" in args:
        at = args.index("--advertise-resource")
        advertised_resource = args[at + 1]
        del args[at : at + 2]
    port = int(args[0] if len(args) > 0 else os.environ["PORT"])
    issuer = (args[1] if len(args) > 1 else os.environ["OAUTH_ISSUER"]).rstrip("/")
    uvicorn.run(app(port, issuer, advertised_resource), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
