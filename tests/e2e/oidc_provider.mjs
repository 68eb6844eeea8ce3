// A real OpenID provider for the end-to-end suite: `oidc-provider` from npm (a certified
// implementation, pinned in tests/peers), configured by the test through the environment:
//
//   PORTICO_OIDC_PROVIDER  the installed package's directory (scripts/test exports it)
//   OIDC_TEST_CONFIG       JSON: {"port", "client": {"client_id", "client_secret",
//                          "redirect_uris"}, "users": {"<id>": {"email", "name", "groups",
//                          "department", "email_verified" (true when left out)}}}
//
// It issues ID tokens signed with its own keys (served at /jwks) for the authorization code
// flow, requires PKCE, and puts the `email`, `name`, `groups` and `department` claims in the ID
// token. Its sign-in page (the `interactions` of oidc-provider) is a plain form asking for a user
// id; the consent step is skipped for the one client. Prints `ready <issuer>` once it listens.

import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { login } from "./provider_login.mjs";

const { default: Provider } = await import(
  pathToFileURL(path.join(process.env.PORTICO_OIDC_PROVIDER, "lib/index.js")).href
);
const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      ...config.client,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  scopes: ["openid", "email", "profile", "groups"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups", "department"] },
  // The scopes' claims go in the ID token, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["portico-e2e-cookie-key"] },
  async findAccount(ctx, id) {
    const user = config.users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: user.email,
          email_verified: user.email_verified ?? true,
          name: user.name,
          groups: user.groups,
          department: user.department,
        };
      },
    };
  },
  // The one client is first-party: no consent screen.
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const existing = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) return Grant.find(existing);
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile groups");
    await grant.save();
    return grant;
  },
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  await login(provider, config.users, details, req, res, { title: "Test IdP", heading: "Test IdP sign-in" });
}

const handle = provider.callback();
http
  .createServer((req, res) => {
    if (req.url.startsWith("/interaction/")) {
      interaction(req, res).catch((error) => {
        res.writeHead(500, { "Content-Type": "text/plain" });
        res.end(String(error));
      });
    } else {
      handle(req, res);
    }
  })
  .listen(config.port, "127.0.0.1", () => console.log(`ready ${issuer}`));
