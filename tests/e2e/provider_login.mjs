// The sign-in step shared by the end-to-end suite's two `oidc-provider` servers
// (`oidc_provider.mjs`, an OpenID provider for people signing in to portals, and `oauth_as.mjs`,
// an upstream MCP server's authorization server): a plain form asking for a user id, as the
// `interactions` of oidc-provider.

export const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The request's whole body, as text. */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

/**
 * The login prompt of an interaction (`details` from `provider.interactionDetails`): GET shows
 * the form (`title` and `heading`), POST signs in the user it names if `users` has them.
 */
export async function login(provider, users, details, req, res, { title, heading }) {
  if (req.method === "GET") {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><title>${escape(title)}</title><h1>${escape(heading)}</h1>
<form method="post" action="/interaction/${escape(details.uid)}/login">
<label for="login">User</label> <input id="login" name="login" autofocus>
<button type="submit">Continue</button></form>`);
    return;
  }
  const user = new URLSearchParams(await readBody(req)).get("login");
  if (!users[user]) {
    res.writeHead(400, { "Content-Type": "text/plain" });
    res.end("unknown user");
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
}
