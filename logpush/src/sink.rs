//! Destinations: where a job's objects go, once the worker has encoded a batch.
//!
//! [`open`] turns a job's `destination_conf` (with its secrets from the vault) into a [`Sink`]:
//! [`s3::S3Sink`] for `s3://` (AWS S3, or any S3-compatible store with `endpoint=`),
//! [`http::HttpSink`] for `https://` and `splunk://`. Every request a sink sends goes through
//! an [`HttpSend`] the application gives it: Portico's SSRF-guarded client, so a destination
//! can reach no address an upstream MCP server could not. Only the AWS default credential chain
//! (instance metadata, STS) uses a plain client, since it talks to AWS's own fixed endpoints.
//!
//! An object is named after the range of log positions its batch covers
//! ([`object_name`]), so a batch sent again after a failure or a crash lands under the same
//! name; object stores overwrite it with the same bytes.

pub mod http;
pub mod s3;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use portico_core::Position;
use portico_core::domain::logpush_job::destination::{DATE_PLACEHOLDER, Scheme};
use portico_core::domain::logpush_job::{DeliveredBatch, Destination};
use portico_core::vault::SecretString;

use crate::encode::EncodedObject;
use crate::options::OutputFormat;
use crate::record::Record;

/// Sends one HTTP request and reads the whole answer, whatever its status. The error is a
/// message that names no secret (it may name the host).
#[async_trait::async_trait]
pub trait HttpSend: Send + Sync + fmt::Debug {
    async fn send(
        &self,
        request: ::http::Request<Vec<u8>>,
    ) -> Result<::http::Response<Vec<u8>>, String>;
}

/// One batch, encoded, on its way to a destination.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub job_id: u64,
    /// The log positions the batch covers (every event, kept or not).
    pub first: Position,
    pub last: Position,
    /// The day of the batch's first record: what `{DATE}` becomes.
    pub date: NaiveDate,
    /// The records, as the job's format keeps them (Splunk's events are built from them).
    pub records: &'a [Record],
    pub format: &'a OutputFormat,
    /// The encoded object (the body of S3 objects and HTTP posts).
    pub object: &'a EncodedObject,
}

impl Delivery<'_> {
    /// The file name of the batch's object: `{first}-{last}_{job}.{extension}`.
    pub fn file_name(&self) -> String {
        format!("{}-{}_{}.{}", self.first, self.last, self.job_id, self.object.extension)
    }

    /// What an idempotent receiver can deduplicate the batch by.
    pub fn idempotency_key(&self) -> String {
        format!("portico-logpush-{}-{}-{}", self.job_id, self.first, self.last)
    }

    /// The batch as the job's delivery report records it.
    pub fn report(&self, object: String) -> DeliveredBatch {
        DeliveredBatch {
            first: self.first,
            last: self.last,
            records: self.records.len() as u64,
            bytes: self.object.body.len() as u64,
            object: Some(object),
        }
    }
}

/// The name of a batch's object under `path` (a destination's path; `{DATE}` becomes the
/// batch's `YYYYMMDD`): `{path}/{first}-{last}_{job}.{extension}`.
pub fn object_name(path: &str, delivery: &Delivery<'_>) -> String {
    let dir = path.replace(DATE_PLACEHOLDER, &delivery.date.format("%Y%m%d").to_string());
    let dir = dir.trim_matches('/');
    let file = delivery.file_name();
    if dir.is_empty() { file } else { format!("{dir}/{file}") }
}

/// A destination that takes objects.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// Delivers one batch; returns the object's name once the destination acknowledged it. The
    /// error is a message for `error_message`: it never holds a secret of the destination.
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<String, String>;
}

/// The HTTP clients a sink may use.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Portico's SSRF-guarded client: every request to a destination.
    pub guarded: Arc<dyn HttpSend>,
    /// A plain client for the AWS default credential chain (instance metadata, STS, SSO).
    pub aws_credentials: Arc<dyn HttpSend>,
}

/// A plain HTTP client (no address rules): for the AWS default credential chain only, whose
/// endpoints (instance metadata, STS, SSO) are AWS's own, not a destination's.
#[derive(Debug, Clone)]
pub struct PlainHttp {
    client: reqwest::Client,
}

impl PlainHttp {
    /// A client whose requests each take at most `timeout`.
    pub fn new(timeout: std::time::Duration) -> Result<PlainHttp, String> {
        // reqwest is built without a crypto provider of its own; ring is the workspace's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PlainHttp { client })
    }
}

#[async_trait::async_trait]
impl HttpSend for PlainHttp {
    async fn send(
        &self,
        request: ::http::Request<Vec<u8>>,
    ) -> Result<::http::Response<Vec<u8>>, String> {
        let (parts, body) = request.into_parts();
        let host = parts.uri.host().unwrap_or_default().to_owned();
        let response = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("`{host}` could not be reached: {e}"))?;
        let mut answer = ::http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            headers.extend(response.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let body =
            response.bytes().await.map_err(|e| format!("`{host}` could not be read: {e}"))?;
        answer.body(body.to_vec()).map_err(|e| e.to_string())
    }
}

/// Opens the sink of `destination`, with the values of its secret parameters.
pub async fn open(
    destination: &Destination,
    secrets: &BTreeMap<String, SecretString>,
    clients: &Clients,
) -> Result<Box<dyn Sink>, String> {
    match destination.scheme() {
        Scheme::S3 => Ok(Box::new(s3::S3Sink::open(destination, secrets, clients).await?)),
        Scheme::Https | Scheme::Splunk => {
            Ok(Box::new(http::HttpSink::open(destination, secrets, Arc::clone(&clients.guarded))?))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encode::Encoder;

    #[test]
    fn objects_are_named_after_their_range_under_the_dated_path() {
        let format = OutputFormat::default();
        let object = Encoder::new(format.clone(), 7).encode(&[] as &[Record]).unwrap();
        let delivery = Delivery {
            job_id: 7,
            first: 120,
            last: 250,
            date: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
            records: &[],
            format: &format,
            object: &object,
        };
        assert_eq!(object_name("mcp/{DATE}", &delivery), "mcp/20260309/120-250_7.log.gz");
        assert_eq!(object_name("", &delivery), "120-250_7.log.gz");
        assert_eq!(object_name("a/b/", &delivery), "a/b/120-250_7.log.gz");
        assert_eq!(delivery.idempotency_key(), "portico-logpush-7-120-250");
    }
}
