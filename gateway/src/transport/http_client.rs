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
        let response = client
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
        let body = bounded_body(response, max_bytes).await.map_err(|e| match e {
            BodyError::TooLarge => {
                FetchError::Failed(format!("`{shown}` is larger than {max_bytes} bytes"))
            }
            BodyError::Read(e) => FetchError::Failed(format!("`{shown}` could not be read: {e}")),
        })?;
        answer.body(body).map_err(|e| FetchError::Failed(format!("`{shown}`: {e}")))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::Failed(format!("`{shown}` did not answer within {timeout:?}")))?
}

/// Why a response's body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is longer than the limit, as declared or as it arrived.
    TooLarge,
    /// Reading it failed.
    Read(reqwest::Error),
}

/// `response`'s body, of at most `max` bytes: one declared longer is refused before it is read,
/// and one that grows longer as it arrives is refused there.
pub(crate) async fn bounded_body(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > max as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if chunk.len() > max - body.len() {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves `answers` (whole HTTP responses, each closing its connection) to one request
    /// each. A scripted peer, not a real server: the point is the exact framing of a body
    /// (with and without a declared length), which no server can be made to send on demand.
    async fn scripted(answers: Vec<String>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if socket.read(&mut byte).await.unwrap() == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        url
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_declared_or_as_it_arrives() {
        let chunked = |chunks: &[usize]| {
            let mut answer = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
                              connection: close\r\n\r\n"
                .to_owned();
            for &n in chunks {
                answer += &format!("{n:x}\r\n{}\r\n", "x".repeat(n));
            }
            answer + "0\r\n\r\n"
        };
        let declared = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 65\r\nconnection: close\r\n\r\n{}",
            "x".repeat(65)
        );
        let url = scripted(vec![declared, chunked(&[40, 40]), chunked(&[40, 24])]).await;
        let client = build(UpstreamPolicy { allow_private: true }, Duration::from_secs(2)).unwrap();
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let response = client.get(&url).send().await.unwrap();
            bodies.push(bounded_body(response, 64).await);
        }
        assert!(matches!(bodies[0], Err(BodyError::TooLarge)), "{:?}", bodies[0]);
        assert!(matches!(bodies[1], Err(BodyError::TooLarge)), "{:?}", bodies[1]);
        assert_eq!(bodies[2].as_ref().unwrap().len(), 64);
    }

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
