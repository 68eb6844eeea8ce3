//! A minimal HTTP/1.1 client for `push` and `pull`: one request per connection
//! (`Connection: close`), `http://` URLs only (put a TLS-terminating proxy or an SSH tunnel in
//! front of a remote Portico). It avoids a full HTTP client in the binary for two requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::{ApiArgs, api_error};

/// Sends `method path` with the token and an optional JSON body; the JSON answer of a 2xx.
pub async fn call(
    api: ApiArgs,
    method: &'static str,
    path: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, text) =
        tokio::task::spawn_blocking(move || request(&api, method, &path, body.as_ref()))
            .await
            .context("the HTTP request was cancelled")??;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !(200..300).contains(&status) {
        return Err(api_error(status, &body));
    }
    Ok(body)
}

/// `(host:port, base path)` of an `http://` URL.
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("`{url}`: only http:// URLs are supported (use a tunnel or proxy for https)");
    };
    let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
    if authority.is_empty() {
        bail!("`{url}` has no host");
    }
    let authority =
        if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    Ok((authority, format!("/{}", base.trim_end_matches('/')).replace("//", "/")))
}

fn request(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, String)> {
    let (authority, base) = split_url(&api.url)?;
    let target = format!("{}{path}", base.trim_end_matches('/'));
    let payload = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
    let mut stream =
        TcpStream::connect(&authority).with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        api.token,
        payload.len()
    );
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&payload)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).context("cannot read the answer")?;
    parse_response(&raw)
}

/// Status and body of a raw HTTP/1.1 answer (`Content-Length`, chunked, or until close).
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("malformed HTTP answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").context("malformed chunk")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("malformed chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).context("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_answers_are_parsed() {
        assert_eq!(split_url("http://h:8080").unwrap(), ("h:8080".into(), "/".into()));
        assert_eq!(split_url("http://h/base/").unwrap(), ("h:80".into(), "/base".into()));
        assert!(split_url("https://h").is_err());
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(raw).unwrap(), (200, "{}".into()));
        let raw = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (400, "abcd".into()));
    }
}
