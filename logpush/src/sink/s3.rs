//! `s3://bucket/path?region=…` destinations, with the AWS SDK.
//!
//! With `endpoint=` the store is S3-compatible (MinIO, Ceph, R2, moto…): path-style requests to
//! that endpoint. Without it, AWS S3 itself. With `access-key-id` and `secret-access-key` those
//! keys sign the requests; without them the AWS default credential chain finds them
//! (environment, shared files, web identity, ECS and EC2 metadata). `sse=` asks for
//! server-side encryption (`AES256` or `aws:kms`).
//!
//! The SDK sends its requests through the sink's [`HttpSend`]: Portico's SSRF-guarded client,
//! so an S3 endpoint obeys the same address rules as an upstream. Objects above
//! [`MULTIPART_THRESHOLD`] go up in parts of [`PART_SIZE`]; a failed multipart upload is
//! aborted, and the whole object is sent again on the next attempt.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use portico_core::domain::logpush_job::Destination;
use portico_core::vault::SecretString;

use super::{Clients, Delivery, HttpSend, Sink, object_name};

/// Objects larger than this go up as a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// An S3 bucket and path.
#[derive(Debug)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    path: String,
    sse: Option<ServerSideEncryption>,
    /// `bucket` at the endpoint, for messages.
    shown: String,
}

impl S3Sink {
    /// The sink of an `s3` destination.
    pub async fn open(
        destination: &Destination,
        secrets: &BTreeMap<String, SecretString>,
        clients: &Clients,
    ) -> Result<S3Sink, String> {
        let (bucket, path) = destination.split_address();
        let region = Region::new(destination.param("region").unwrap_or("us-east-1").to_owned());
        let http = SharedHttpClient::new(SdkClient(Arc::clone(&clients.guarded)));
        let keys = secrets.get("access-key-id").zip(secrets.get("secret-access-key"));
        let mut config = match keys {
            Some((id, secret)) => aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .credentials_provider(Credentials::new(
                    id.expose_secret(),
                    secret.expose_secret(),
                    None,
                    None,
                    "logpush-destination",
                )),
            None => {
                let credentials_http =
                    SharedHttpClient::new(SdkClient(Arc::clone(&clients.aws_credentials)));
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(region)
                    .http_client(credentials_http)
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        config = config.http_client(http);
        let shown = match destination.param("endpoint") {
            Some(endpoint) => {
                let url = if endpoint.contains("://") {
                    endpoint.to_owned()
                } else {
                    format!("https://{endpoint}")
                };
                config = config.endpoint_url(url).force_path_style(true);
                format!("bucket `{bucket}` at {endpoint}")
            }
            None => format!("bucket `{bucket}`"),
        };
        let sse = destination.param("sse").map(ServerSideEncryption::from);
        Ok(S3Sink {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            path: path.to_owned(),
            sse,
            shown,
        })
    }

    /// The destination's path, with `{DATE}` as given (object names replace it).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes one object `key` (under the bucket) with `body`; returns its `s3://` name.
    pub async fn put(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<String, String> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_server_side_encryption(self.sse.clone())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn put_multipart(&self, key: &str, delivery: &Delivery<'_>) -> Result<(), String> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(delivery.object.content_type)
            .set_server_side_encryption(self.sse.clone())
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
        let Some(upload_id) = upload.upload_id() else {
            return Err(format!("{} started a multipart upload without an id", self.shown));
        };
        let result = self.upload_parts(key, upload_id, delivery).await;
        if result.is_err() {
            // Best effort: a store that keeps the parts charges for them until they expire.
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
            if let Err(error) = abort {
                tracing::warn!(key, error = %self.error("AbortMultipartUpload", key, error), "could not abort a multipart upload");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        delivery: &Delivery<'_>,
    ) -> Result<(), String> {
        let mut parts = Vec::new();
        for (i, chunk) in delivery.object.body.chunks(PART_SIZE).enumerate() {
            let number = i32::try_from(i + 1).map_err(|_| "too many parts".to_owned())?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("CompleteMultipartUpload", key, e))
    }

    /// A message for `error_message`: the operation, the key and what the store said.
    fn error<E>(&self, operation: &str, key: &str, error: aws_sdk_s3::error::SdkError<E>) -> String
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_s3::error::SdkError;
        let why = match &error {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let code = e.code().unwrap_or("error");
                let message = e.message().unwrap_or_default();
                format!("{code} (HTTP {}): {message}", service.raw().status().as_u16())
            }
            SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
                Some(connector) => connector.to_string(),
                None => "the request could not be sent".to_owned(),
            },
            SdkError::TimeoutError(_) => "timed out".to_owned(),
            SdkError::ResponseError(_) => "the answer could not be read".to_owned(),
            SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
            _ => "failed".to_owned(),
        };
        format!("{operation} of `{key}` to {} failed: {}", self.shown, why.trim())
    }
}

#[async_trait::async_trait]
impl Sink for S3Sink {
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<String, String> {
        let key = object_name(&self.path, delivery);
        let object = delivery.object;
        if object.body.len() <= MULTIPART_THRESHOLD {
            return self.put(&key, object.content_type, object.body.clone()).await;
        }
        self.put_multipart(&key, delivery).await?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }
}

/// The AWS SDK's HTTP client, over an [`HttpSend`].
#[derive(Debug, Clone)]
struct SdkClient(Arc<dyn HttpSend>);

impl HttpConnector for SdkClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let send = Arc::clone(&self.0);
        HttpConnectorFuture::new(async move {
            let request =
                request.try_into_http1x().map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            let Some(bytes) = body.bytes() else {
                return Err(ConnectorError::other("a streaming body cannot be sent".into(), None));
            };
            let request = ::http::Request::from_parts(parts, bytes.to_vec());
            let response = send.send(request).await.map_err(|e| ConnectorError::io(e.into()))?;
            let (parts, body) = response.into_parts();
            HttpResponse::try_from(::http::Response::from_parts(parts, SdkBody::from(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for SdkClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
