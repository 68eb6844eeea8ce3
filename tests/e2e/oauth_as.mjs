// A real OAuth 2.1 authorization server for an OAuth-protected upstream MCP server, as the MCP
// authorization specification (2025-11-25) expects one: `oidc-provider` from npm (tests/peers),
// configured by the test through the environment:
//
//   PORTICO_OIDC_PROVIDER  the installed package's directory (scripts/test exports it)
//   OAUTH_AS_CONFIG        JSON, every field but `port`, `resource` and `users` optional:
//     port             the port to listen on (127.0.0.1)
//     resource         the protected MCP server's URL (its RFC 9728 `resource`): access tokens
//                      are issued for it, with `aud` equal to it
//     other_resources  more resource URLs the server issues tokens for (same scopes), to test
//                      that the MCP server refuses a token meant for another resource (default [])
//     scopes           the resource's scopes (default ["mcp:tools"])
//     offline_access   advertise the `offline_access` scope too (default false; clients that see
//                      it ask for it with prompt=consent, which is granted at once)
//     require_resource refuse an authorization request without `resource` (default false: it
//                      gets `resource`)
//     access_ttl       access tokens' lifetime in seconds (default 3600)
//     refresh_ttl      refresh tokens' (and grants') lifetime in seconds (default 86400)
//     users            {"<id>": {"email", "name", ...}}: who may sign in; the other fields are
//                      claims of the ID token (for `openid` requests)
//     dcr              open Dynamic Client Registration at /reg (default true)
//     clients          pre-registered clients: oidc-provider client metadata (default [])
//     cimd             Client ID Metadata Documents: false (default), true, or a map from an
//                      https prefix of client ids to the URL prefix their documents are fetched
//                      from instead ({"https://portico.test/": "http://127.0.0.1:8123/"}); the
//                      client id itself must be an https URL
//     oauth_metadata   also serve the metadata at /.well-known/oauth-authorization-server (RFC
//                      8414; default false: oidc-provider serves only
//                      /.well-known/openid-configuration, which MCP clients must fall back to)
//
// Authorization code with PKCE (S256) is the only flow. Access tokens are JWTs (RFC 9068, `typ`
// at+jwt) signed with a key generated at start (served at /jwks), `aud` the requested resource
// (RFC 8707): a request for a resource that is neither `resource` nor in `other_resources` is
// refused with `invalid_target`, at the authorization and at the token endpoint. A token
// request without `resource` gets the resource that was authorized. Every authorization code
// grant issues a refresh token (no `offline_access` needed), which is rotated on every use;
// reusing a rotated one revokes the whole grant. Registered clients may be public
// (token_endpoint_auth_method none); left out, grant_types defaults to authorization_code and
// refresh_token. Refresh tokens do not end with the sign-in session.
//
// The sign-in page is a plain form asking for a user id (`POST /interaction/<uid>/login`, field
// `login`); there is no consent screen: what a client asks for is granted. The JWT access tokens
// are not stored: revoking a grant ends its refresh tokens, not the access tokens issued.
//
// Test side channel:
//   POST /test/revoke?user=<id>  revokes every grant of the user (its refresh tokens with it) and
//                                ends the user's sign-in sessions: {"grants": <count>}
//   POST /test/down, /test/up    the token endpoint answers 503 temporarily_unavailable, or again
//   GET  /test/stats             {"token": {"<grant_type>": n}, "token_errors": {...},
//                                "unavailable": {...}, "registrations": n}: the token requests
//                                answered (and of them, with an error), the ones refused with
//                                503 while down, the successful registrations
//   POST /test/reset             sets the counters to zero
//
// Prints `ready <issuer>` once it listens.

import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { login, readBody } from "./provider_login.mjs";

const { default: Provider, errors } = await import(
  pathToFileURL(path.join(process.env.PORTICO_OIDC_PROVIDER, "lib/index.js")).href
);
const config = JSON.parse(process.env.OAUTH_AS_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;
const resourceScopes = config.scopes ?? ["mcp:tools"];
const resources = new Set([config.resource, ...(config.other_resources ?? [])]);
const accessTtl = config.access_ttl ?? 3600;
const refreshTtl = config.refresh_ttl ?? 86400;
const cimdMap = typeof config.cimd === "object" && config.cimd !== null ? config.cimd : {};

const signingKey = {
  ...crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }),
  kid: crypto.randomUUID(),
  alg: "RS256",
  use: "sig",
};

// Grants and sign-in sessions by user, for /test/revoke.
const grants = new Map();
const sessions = new Map();
const remember = (map, accountId, id) => {
  if (!accountId) return;
  if (!map.has(accountId)) map.set(accountId, new Set());
  map.get(accountId).add(id);
};

let down = false;
const emptyStats = () => ({ token: {}, token_errors: {}, unavailable: {}, registrations: 0 });
let stats = emptyStats();
const bump = (counts, key) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  clientDefaults: {
    grant_types: ["authorization_code", "refresh_token"],
    id_token_signed_response_alg: "RS256",
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  },
  responseTypes: ["code"],
  scopes: ["openid", ...(config.offline_access ? ["offline_access"] : []), ...resourceScopes],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTtl,
    RefreshToken: refreshTtl,
    Grant: refreshTtl,
    AuthorizationCode: 60,
    Interaction: 3600,
    Session: refreshTtl,
    IdToken: 3600,
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  rotateRefreshToken: true,
  expiresWithSession: async () => false,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: config.dcr ?? true },
    revocation: { enabled: true },
    clientIdMetadataDocument: config.cimd ? { enabled: true, ack: "draft-02" } : { enabled: false },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        if (config.require_resource) throw new errors.InvalidTarget("a resource indicator is required");
        return config.resource;
      },
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (!resources.has(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: resourceScopes.join(" "),
          audience: resourceIndicator,
          accessTokenTTL: accessTtl,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
  // A client id metadata document is fetched from where `cimd` says its https prefix lives.
  async fetch(url, options) {
    const href = String(url);
    for (const [from, to] of Object.entries(cimdMap)) {
      if (href.startsWith(from)) {
        const { dispatcher, ...rest } = options;
        return globalThis.fetch(to + href.slice(from.length), rest);
      }
    }
    return globalThis.fetch(url, options);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["portico-e2e-oauth-as-cookie-key"] },
  async findAccount(ctx, id) {
    const user = config.users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...user, sub: id, email_verified: user.email_verified ?? true };
      },
    };
  },
  // No consent screen, for any client (registered ones are dynamic): what is asked for is granted.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const existing = oidc.session.grantIdFor(oidc.client.clientId);
    const grant =
      (existing && (await oidc.provider.Grant.find(existing))) ||
      new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    const openid = [...oidc.requestParamOIDCScopes].join(" ");
    if (openid) grant.addOIDCScope(openid);
    for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
      const scope = [...oidc.requestParamScopes].filter((s) => server.scopes.has(s)).join(" ");
      if (scope) grant.addResourceScope(indicator, scope);
    }
    await grant.save();
    return grant;
  },
});

provider.on("grant.saved", (grant) => remember(grants, grant.accountId, grant.jti));
provider.on("session.saved", (session) => remember(sessions, session.accountId, session.jti));

provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if (route === "token") {
    const grantType = ctx.oidc.params?.grant_type ?? "unknown";
    bump(stats.token, grantType);
    if (ctx.status >= 400) bump(stats.token_errors, grantType);
  } else if (route === "registration" && ctx.method === "POST" && ctx.status === 201) {
    stats.registrations += 1;
  }
});

async function revoke(user) {
  const ids = grants.get(user) ?? new Set();
  for (const grantId of ids) {
    await Promise.all([
      provider.AccessToken.revokeByGrantId(grantId),
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AuthorizationCode.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]);
  }
  for (const sessionId of sessions.get(user) ?? []) {
    await provider.Session.adapter.destroy(sessionId);
  }
  grants.delete(user);
  sessions.delete(user);
  return ids.size;
}

function json(res, status, value) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(value));
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === "consent") {
    // Granted at once (a client asked for prompt=consent, e.g. with offline_access).
    const { Grant } = provider;
    const grant = details.grantId
      ? await Grant.find(details.grantId)
      : new Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(" "));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  await login(provider, config.users, details, req, res, {
    title: "Test AS",
    heading: "Test authorization server sign-in",
  });
}

async function sideChannel(req, res, url) {
  if (req.method === "GET" && url.pathname === "/test/stats") return json(res, 200, stats);
  if (req.method !== "POST") return json(res, 405, { error: "method not allowed" });
  switch (url.pathname) {
    case "/test/revoke":
      return json(res, 200, { grants: await revoke(url.searchParams.get("user")) });
    case "/test/down":
      down = true;
      return json(res, 200, { down });
    case "/test/up":
      down = false;
      return json(res, 200, { down });
    case "/test/reset":
      stats = emptyStats();
      return json(res, 200, stats);
    default:
      return json(res, 404, { error: "not found" });
  }
}

async function unavailable(req, res) {
  const grantType = new URLSearchParams(await readBody(req)).get("grant_type") ?? "unknown";
  bump(stats.unavailable, grantType);
  res.writeHead(503, { "Content-Type": "application/json", "Cache-Control": "no-store", "Retry-After": "1" });
  res.end(JSON.stringify({ error: "temporarily_unavailable", error_description: "the token endpoint is down" }));
}

const handle = provider.callback();
http
  .createServer((req, res) => {
    const url = new URL(req.url, issuer);
    let work;
    if (url.pathname.startsWith("/test/")) {
      work = sideChannel(req, res, url);
    } else if (down && req.method === "POST" && url.pathname === "/token") {
      work = unavailable(req, res);
    } else if (url.pathname.startsWith("/interaction/")) {
      work = interaction(req, res);
    } else {
      if (config.oauth_metadata && url.pathname === "/.well-known/oauth-authorization-server") {
        req.url = "/.well-known/openid-configuration";
      }
      handle(req, res);
      return;
    }
    work.catch((error) => {
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(String(error));
    });
  })
  .listen(config.port, "127.0.0.1", () => console.log(`ready ${issuer}`));
