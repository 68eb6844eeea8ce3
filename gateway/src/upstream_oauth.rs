//! Portico as an OAuth client of upstream MCP servers (MCP authorization, 2025-11-25).
//!
//! MCP forbids passing a client's token on to an upstream: Portico gets tokens of its own. The
//! protocol work is rmcp's OAuth state machine (`rmcp::transport::auth`): discovery from a 401's
//! `WWW-Authenticate` or the protected-resource metadata at both well-known locations,
//! authorization-server metadata (RFC 8414, then OpenID Connect, in the spec's path-insertion
//! order), client identification in the spec's order (a pre-registered client, else a Client
//! ID Metadata Document where the server supports them, else Dynamic Client Registration), PKCE
//! S256 (a server that does not advertise it is refused), `resource` (RFC 8707) on the
//! authorization and token requests, and scope selection from the challenge, then
//! `scopes_supported`. What Portico adds is the network: every one of those requests goes
//! through the same SSRF guard as upstream connections ([`GuardedOAuthHttp`]).

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, AuthorizationRequest,
    AuthorizationSession, OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRedirectPolicy,
    OAuthHttpRequest, OAuthState,
};

use crate::ssrf::UpstreamPolicy;
use crate::transport::http_client;

/// The largest answer of an authorization or resource server that is read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// How long one OAuth request may take when rmcp suggests no limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed for a request that allows them (metadata documents).
const MAX_REDIRECTS: usize = 5;

/// rmcp's OAuth requests, sent through Portico's SSRF guard: the resolver of upstream
/// connections (loopback, private, link-local and metadata addresses refused unless the policy
/// allows private upstreams), no proxy, bounded answers, and redirects followed one hop at a
/// time, each hop checked again.
#[derive(Debug, Clone, Copy)]
pub struct GuardedOAuthHttp {
    policy: UpstreamPolicy,
}

impl GuardedOAuthHttp {
    pub fn new(policy: UpstreamPolicy) -> Self {
        GuardedOAuthHttp { policy }
    }
}

impl OAuthHttpClient for GuardedOAuthHttp {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        Box::pin(async move {
            let timeout = request.timeout.unwrap_or(REQUEST_TIMEOUT).min(REQUEST_TIMEOUT);
            let follow = request.redirect_policy == OAuthHttpRedirectPolicy::Follow;
            let mut next = request.request;
            for _ in 0..=MAX_REDIRECTS {
                let again = follow.then(|| copy(&next)).transpose()?;
                let response =
                    http_client::send(self.policy, next, MAX_ANSWER_BYTES, timeout).await?;
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned);
                match (again, location) {
                    (Some(mut again), Some(location)) if response.status().is_redirection() => {
                        let base = url::Url::parse(&again.uri().to_string())?;
                        let target = base.join(&location)?;
                        *again.uri_mut() = target.as_str().parse()?;
                        next = again;
                    }
                    _ => return Ok(response),
                }
            }
            Err(format!("more than {MAX_REDIRECTS} redirects").into())
        })
    }
}

/// A request to send again at a redirect's location (a GET: rmcp follows redirects only for
/// documents).
fn copy(
    request: &http::Request<Vec<u8>>,
) -> Result<http::Request<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = http::Request::builder().method(request.method()).uri(request.uri());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(request.body().clone())?)
}

/// Who Portico is to an upstream's authorization server, in the order the spec prefers.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// A client the admin registered with the authorization server, and its secret.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The https URL of Portico's Client ID Metadata Document, where it has one.
    pub metadata_url: Option<String>,
    /// The name Portico registers under with Dynamic Client Registration.
    pub client_name: String,
    /// The scopes to ask for (the admin's manual configuration's `scope`); chosen from what
    /// the upstream says when empty.
    pub scopes: Vec<String>,
}

/// Starts an authorization of `resource` (the upstream's MCP endpoint): discovery (seeded by
/// `challenge`, the `WWW-Authenticate` of a 401 from it, when there is one), the client's
/// identification, and the authorization request. The state's authorization URL is where the
/// person authorizing goes; `redirect_uri` is where they come back with a code.
pub async fn start(
    policy: UpstreamPolicy,
    resource: &str,
    identity: &ClientIdentity,
    redirect_uri: &str,
    challenge: Option<&str>,
) -> Result<(OAuthState, String), AuthError> {
    start_with(policy, resource, identity, redirect_uri, challenge, None).await
}

/// [`start`], with the authorization server's endpoints given (`metadata`, an admin's manual
/// OAuth configuration) instead of discovered.
pub async fn start_with(
    policy: UpstreamPolicy,
    resource: &str,
    identity: &ClientIdentity,
    redirect_uri: &str,
    challenge: Option<&str>,
    metadata: Option<AuthorizationMetadata>,
) -> Result<(OAuthState, String), AuthError> {
    let http: Arc<dyn OAuthHttpClient> = Arc::new(GuardedOAuthHttp::new(policy));
    let request = authorization_request(identity, redirect_uri, challenge);
    if let Some(mut metadata) = metadata {
        let mut manager = AuthorizationManager::new_with_oauth_http_client(resource, http).await?;
        // Discovery still runs, for what the upstream says of itself (the scopes its challenge
        // and protected-resource metadata name, the resource it is); its endpoints, if any, are
        // replaced by the given ones, and its failure does not matter. When the given
        // configuration names no issuer, the discovered one is taken if it is the same server
        // (the same token endpoint): a callback's `iss` (RFC 9207) is checked against it.
        match manager.resolve_metadata_from_challenge(challenge).await {
            Ok(found) => {
                if metadata.issuer.is_none()
                    && found.metadata.token_endpoint == metadata.token_endpoint
                {
                    metadata.issuer = found.metadata.issuer;
                }
            }
            Err(error) => tracing::debug!(%error, "no discovery for a manual OAuth configuration"),
        }
        manager.set_metadata(metadata);
        let session =
            AuthorizationSession::new(manager, request).await.map_err(|(_, error)| error)?;
        let url = session.get_authorization_url().to_owned();
        return Ok((OAuthState::Session(session), url));
    }
    let mut state = OAuthState::new_with_oauth_http_client(resource, http).await?;
    state.start_authorization(request).await?;
    let url = state.get_authorization_url().await?;
    Ok((state, url))
}

fn authorization_request(
    identity: &ClientIdentity,
    redirect_uri: &str,
    challenge: Option<&str>,
) -> AuthorizationRequest {
    let mut request =
        AuthorizationRequest::new(redirect_uri).with_client_name(&identity.client_name);
    if let Some(client_id) = &identity.client_id {
        request = request.with_preregistered_client(client_id);
        if let Some(secret) = &identity.client_secret {
            request = request.with_client_secret(secret);
        }
    }
    if let Some(url) = &identity.metadata_url {
        request = request.with_client_metadata_url(url);
    }
    if let Some(challenge) = challenge {
        request = request.with_challenge(challenge);
    }
    if !identity.scopes.is_empty() {
        request = request.with_scopes(identity.scopes.iter().map(String::as_str));
    }
    request
}

/// Ends an authorization with the URL the person came back to (its `code`, `state` and, where
/// the server sends it, `iss`): the code is exchanged for tokens. Returns the authorized
/// manager (which refreshes and upgrades scopes) and the access token.
pub async fn finish(
    mut state: OAuthState,
    callback_url: &str,
) -> Result<(AuthorizationManager, String), AuthError> {
    state.handle_callback_url(callback_url).await?;
    let manager = state.into_authorization_manager().ok_or_else(|| {
        AuthError::InternalError("the authorization ended in no authorized state".to_owned())
    })?;
    let token = manager.get_access_token().await?;
    Ok((manager, token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server on loopback that answers every request 404 and counts the connections.
    async fn counting_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let answer =
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn every_request_goes_through_the_ssrf_guard() {
        let (url, hits) = counting_server().await;
        let identity = ClientIdentity { client_name: "Portico".to_owned(), ..Default::default() };
        let redirect = "http://127.0.0.1:1/callback";
        // The default policy refuses loopback: discovery fails without reaching the server.
        let refused = start(UpstreamPolicy::default(), &url, &identity, redirect, None).await;
        assert!(refused.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // Allowed, the same discovery reaches it (and fails there: it serves no metadata).
        let allowed = UpstreamPolicy { allow_private: true };
        let failed = start(allowed, &url, &identity, redirect, None).await;
        assert!(failed.is_err());
        assert!(hits.load(Ordering::SeqCst) > 0);
    }
}
