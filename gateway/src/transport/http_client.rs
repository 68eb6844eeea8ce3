//! The HTTP client every upstream connection goes through.
//!
//! One `reqwest::Client` per (policy, connect timeout), built once and shared by all upstreams:
//! a `reqwest::Client` is a handle to one connection pool, so sharing it is what makes
//! connections pooled and reused (keep-alive, and HTTP/2 multiplexing where the upstream offers
//! it). Nothing upstream-specific lives in the client: credentials are per-request headers
//! (rmcp's `custom_headers`), so one pool serves every upstream safely.
//!
//! rmcp's own default client sets `pool_max_idle_per_host(0)` (no pooling) to dodge delayed-ACK
//! stalls on connections whose previous body was not fully read; we keep pooling and set
//! `TCP_NODELAY`, which removes the Nagle half of that stall.
//!
//! The client has no total request timeout: streamable HTTP and legacy SSE keep long-lived
//! event streams open on it. Request deadlines are applied per request or per handshake.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::ssrf::{self, UpstreamPolicy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    policy: UpstreamPolicy,
    connect_timeout: Duration,
}

static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, reqwest::Client>>> = OnceLock::new();

/// The shared upstream client for `policy` and `connect_timeout`.
pub(crate) fn upstream_client(
    policy: UpstreamPolicy,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let key = ClientKey { policy, connect_timeout };
    let clients = CLIENTS.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while inserting; the map is intact.
    let mut clients = clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = build(policy, connect_timeout)?;
    clients.insert(key, client.clone());
    Ok(client)
}

thread_local! {
    /// This thread's clients: their connections are served by the thread's own runtime.
    static THREAD_CLIENTS: std::cell::RefCell<HashMap<ClientKey, reqwest::Client>> =
        std::cell::RefCell::default();
}

/// An upstream client of this thread for `policy` and `connect_timeout`: as
/// [`upstream_client`], but with a pool of its own, so that a request made on this thread is
/// served on it from end to end (a connection is served by the runtime that opened it).
pub(crate) fn thread_client(
    policy: UpstreamPolicy,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let key = ClientKey { policy, connect_timeout };
    THREAD_CLIENTS.with(|clients| {
        if let Some(client) = clients.borrow().get(&key) {
            return Ok(client.clone());
        }
        let client = build(policy, connect_timeout)?;
        clients.borrow_mut().insert(key, client.clone());
        Ok(client)
    })
}

/// Forgets the shared clients (the process is stopping): once the connections that still hold
/// one have closed, their pools go and with them the idle keep-alive connections, which would
/// otherwise hold a graceful stop of a server they point at (the demo's own upstream) open. A
/// later upstream connection builds a new client.
pub(crate) fn release_pools() {
    if let Some(clients) = CLIENTS.get() {
        clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

fn build(
    policy: UpstreamPolicy,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built with `rustls-no-provider`; it panics when building a TLS client with no
    // process-wide provider. Installing ring fails harmlessly if one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .dns_resolver(ssrf::resolver(policy))
        // A redirect would move the request to a host nobody checked (IP literals skip the
        // resolver) and replay the credential headers there.
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the upstream's name itself, out of the resolver's sight.
        .no_proxy()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Refused(#[from] ssrf::SsrfError),
    #[error("{0}")]
    Failed(String),
}

/// Fetches a small JSON document from `url` through the SSRF guard (the same resolver and
/// policy as upstream connections, no redirects, no proxy), within `timeout` and `max_bytes`.
pub async fn fetch_json(
    policy: UpstreamPolicy,
    url: &url::Url,
    max_bytes: usize,
    timeout: Duration,
) -> Result<serde_json::Value, FetchError> {
    let shown = ssrf::redact_url(url);
    let request = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| FetchError::Failed(format!("`{shown}` is not a valid request: {e}")))?;
    let response = send(policy, request, max_bytes, timeout).await?;
    if !response.status().is_success() {
        return Err(FetchError::Failed(format!("`{shown}` answered {}", response.status())));
    }
    serde_json::from_slice(response.body())
        .map_err(|e| FetchError::Failed(format!("`{shown}` is not JSON: {e}")))
}

/// Sends one small HTTP request through the SSRF guard (the same resolver and policy as
/// upstream connections, no redirects, no proxy) and reads the whole answer, whatever its
/// status, within `timeout` and `max_bytes`. This is the HTTP client of Portico's calls to
/// identity providers (the OpenID Connect library's requests are handed to it as they are).
pub async fn send(
    policy: UpstreamPolicy,
    request: http::Request<Vec<u8>>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<http::Response<Vec<u8>>, FetchError> {
    let url = url::Url::parse(&request.uri().to_string())
        .map_err(|e| FetchError::Failed(format!("not a URL: {e}")))?;
    policy.check_literal_host(&url)?;
    let client = upstream_client(policy, timeout).map_err(|e| FetchError::Failed(e.to_string()))?;
    let shown = ssrf::redact_url(&url);
    let (parts, body) = request.into_parts();
    let exchange = async {
        let mut response = client
            .request(parts.method, url.clone())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| FetchError::Failed(format!("`{shown}` could not be reached: {e}")))?;
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            headers.extend(response.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(format!("`{shown}` could not be read: {e}")))?
        {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::Failed(format!(
                    "`{shown}` is larger than {max_bytes} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        answer.body(body).map_err(|e| FetchError::Failed(format!("`{shown}`: {e}")))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::Failed(format!("`{shown}` did not answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_policy_and_timeout() {
        let a = upstream_client(UpstreamPolicy::default(), Duration::from_secs(5)).unwrap();
        let b = upstream_client(UpstreamPolicy::default(), Duration::from_secs(5)).unwrap();
        let _c = upstream_client(UpstreamPolicy { allow_private: true }, Duration::from_secs(5))
            .unwrap();
        // Clones share one pool; the map holds exactly one per key.
        drop((a, b));
        let map = CLIENTS.get().unwrap().lock().unwrap();
        assert!(map.contains_key(&ClientKey {
            policy: UpstreamPolicy::default(),
            connect_timeout: Duration::from_secs(5)
        }));
    }
}
