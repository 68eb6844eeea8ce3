//! `https://` and `splunk://` destinations: one POST per batch.
//!
//! `https://host[:port]/path?…`: the batch's object as the body (gzipped NDJSON or CSV with
//! `Content-Encoding: gzip`, or a Parquet file), every `header_<Name>=<value>` parameter as a
//! header, the other parameters kept in the URL's query. Delivery is at-least-once: a batch
//! whose answer was lost is posted again, with the same `Idempotency-Key` (the job and the
//! range of log positions), so a receiver can drop the copy.
//!
//! `splunk://host[:port]/path?…`: Splunk's HTTP Event Collector, in its event format: one JSON
//! object per record, `{"time": <seconds>, "event": <the record>}` (plus `"sourcetype"` when
//! the destination names one), gzipped, posted to `https://host[:port]/path` (by default
//! `/services/collector/event`); `channel=` becomes `X-Splunk-Request-Channel`. A Splunk
//! destination needs `ndjson` output: each record must be a JSON object.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use portico_core::domain::logpush_job::Destination;
use portico_core::domain::logpush_job::destination::Scheme;
use portico_core::vault::SecretString;

use super::{Delivery, HttpSend, Sink};
use crate::encode::text;
use crate::options::{OutputFormat, OutputType};
use crate::record::Row;

/// The HEC path used when a `splunk://` destination gives none.
pub const SPLUNK_DEFAULT_PATH: &str = "services/collector/event";
/// How much of an error answer's body `error_message` quotes.
const QUOTED_ANSWER: usize = 200;

/// A POST destination.
pub struct HttpSink {
    url: String,
    /// `host[:port]/path`, for messages (the query may hold tokens of other kinds).
    shown: String,
    headers: Vec<(::http::HeaderName, ::http::HeaderValue)>,
    splunk: Option<Splunk>,
    send: Arc<dyn HttpSend>,
}

#[derive(Debug, Clone)]
struct Splunk {
    sourcetype: Option<String>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The headers hold the destination's secrets.
        f.debug_struct("HttpSink").field("url", &self.shown).finish_non_exhaustive()
    }
}

impl HttpSink {
    /// The sink of an `https` or `splunk` destination, with its secret headers.
    pub fn open(
        destination: &Destination,
        secrets: &BTreeMap<String, SecretString>,
        send: Arc<dyn HttpSend>,
    ) -> Result<HttpSink, String> {
        let splunk = destination.scheme() == Scheme::Splunk;
        let (authority, path) = destination.split_address();
        let path =
            if splunk && path.trim_matches('/').is_empty() { SPLUNK_DEFAULT_PATH } else { path };
        let shown = format!("{authority}/{path}");
        let mut headers = Vec::new();
        for (name, value) in secrets {
            let Some(header) = name.strip_prefix("header_") else { continue };
            let header = ::http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("`{name}` does not name an HTTP header"))?;
            let mut value = ::http::HeaderValue::from_str(value.expose_secret())
                .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        let mut query = Vec::new();
        let mut channel = None;
        let mut sourcetype = None;
        for (name, raw) in destination.public_params() {
            match name {
                "channel" if splunk => channel = destination.param(name).map(str::to_owned),
                "sourcetype" if splunk => sourcetype = destination.param(name).map(str::to_owned),
                // Portico always verifies the destination's certificate.
                "insecure-skip-verify" if splunk => {}
                _ => query.push(raw),
            }
        }
        if let Some(channel) = channel {
            let value = ::http::HeaderValue::from_str(&channel)
                .map_err(|_| "`channel` is not a valid header value".to_owned())?;
            headers.push((::http::HeaderName::from_static("x-splunk-request-channel"), value));
        }
        let mut url = format!("https://{shown}");
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(HttpSink { url, shown, headers, splunk: splunk.then_some(Splunk { sourcetype }), send })
    }

    fn request(&self, delivery: &Delivery<'_>) -> Result<::http::Request<Vec<u8>>, String> {
        let mut request = ::http::Request::post(&self.url)
            .header("idempotency-key", delivery.idempotency_key())
            .header("x-portico-logpush-job", delivery.job_id.to_string())
            .header("x-portico-logpush-batch", format!("{}-{}", delivery.first, delivery.last));
        let body = match &self.splunk {
            Some(splunk) => {
                request = request
                    .header(::http::header::CONTENT_TYPE, "application/json")
                    .header(::http::header::CONTENT_ENCODING, "gzip");
                splunk_events(delivery, splunk.sourcetype.as_deref())?
            }
            None => {
                let object = delivery.object;
                request = request.header(::http::header::CONTENT_TYPE, object.content_type);
                if let Some(encoding) = object.content_encoding {
                    request = request.header(::http::header::CONTENT_ENCODING, encoding);
                }
                object.body.clone()
            }
        };
        let mut request = request.body(body).map_err(|e| format!("bad request: {e}"))?;
        request.headers_mut().extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(request)
    }
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    async fn deliver(&self, delivery: &Delivery<'_>) -> Result<String, String> {
        let request = self.request(delivery)?;
        let response = self.send.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            let body = String::from_utf8_lossy(response.body());
            let quoted: String = body.chars().take(QUOTED_ANSWER).collect();
            return Err(format!("`{}` answered {status}: {}", self.shown, quoted.trim()));
        }
        Ok(delivery.file_name())
    }
}

/// The batch as HEC events, gzipped.
fn splunk_events(delivery: &Delivery<'_>, sourcetype: Option<&str>) -> Result<Vec<u8>, String> {
    if delivery.format.output_type != OutputType::Ndjson {
        return Err(format!(
            "a Splunk destination takes `ndjson` output, not `{}`",
            delivery.format.output_type.as_str()
        ));
    }
    // Each record alone, without the batch's prefix and suffix nor a delimiter.
    let mut single: OutputFormat = delivery.format.clone();
    single.layout.batch_prefix.clear();
    single.layout.batch_suffix.clear();
    single.layout.record_delimiter.clear();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    for record in delivery.records {
        let line = text::encode(&single, std::slice::from_ref(record));
        let line = String::from_utf8_lossy(&line);
        let event: serde_json::Value = serde_json::from_str(line.trim_end())
            .map_err(|e| format!("a record is not a JSON object for Splunk: {e}"))?;
        let time = record.datetime().timestamp_micros() as f64 / 1e6;
        let mut hec = serde_json::json!({"time": time, "event": event});
        if let Some(sourcetype) = sourcetype {
            hec["sourcetype"] = sourcetype.into();
        }
        serde_json::to_writer(&mut gzip, &hec).map_err(|e| e.to_string())?;
        gzip.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    gzip.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use chrono::NaiveDate;

    use super::*;
    use crate::encode::{Encoder, text::gunzip};
    use crate::record::Record;
    use crate::testing::tool_call;

    /// Keeps the requests it is given and answers `status`: the sink's transport, so that the
    /// request the sink builds can be read (no Splunk server runs here).
    #[derive(Debug)]
    struct Recorder {
        status: u16,
        requests: Mutex<Vec<::http::Request<Vec<u8>>>>,
    }

    #[async_trait::async_trait]
    impl HttpSend for Recorder {
        async fn send(
            &self,
            request: ::http::Request<Vec<u8>>,
        ) -> Result<::http::Response<Vec<u8>>, String> {
            self.requests.lock().unwrap().push(request);
            Ok(::http::Response::builder().status(self.status).body(b"busy".to_vec()).unwrap())
        }
    }

    async fn deliver(
        conf: &str,
        status: u16,
    ) -> (Result<String, String>, ::http::Request<Vec<u8>>) {
        let destination = Destination::parse(conf).unwrap();
        let secrets = destination.secrets();
        let recorder = Arc::new(Recorder { status, requests: Mutex::default() });
        let sink = HttpSink::open(&destination, &secrets, recorder.clone()).unwrap();
        let format = OutputFormat::default();
        let records = [Record::Call(tool_call())];
        let object = Encoder::new(format.clone(), 3).encode(&records).unwrap();
        let delivery = Delivery {
            job_id: 3,
            first: 5,
            last: 9,
            date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            records: &records,
            format: &format,
            object: &object,
        };
        let result = sink.deliver(&delivery).await;
        let request = recorder.requests.lock().unwrap().pop().unwrap();
        (result, request)
    }

    #[tokio::test]
    async fn splunk_gets_hec_events_with_its_channel_and_token() {
        let (result, request) = deliver(
            "splunk://hec.example.com:8088?channel=chan-1&sourcetype=mcp&header_Authorization=Splunk%20tok",
            200,
        )
        .await;
        assert_eq!(result.unwrap(), "5-9_3.log.gz");
        assert_eq!(request.uri(), "https://hec.example.com:8088/services/collector/event");
        let headers = request.headers();
        assert_eq!(headers["authorization"], "Splunk tok");
        assert_eq!(headers["x-splunk-request-channel"], "chan-1");
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["idempotency-key"], "portico-logpush-3-5-9");
        let body = String::from_utf8(gunzip(request.body()).unwrap()).unwrap();
        let event: serde_json::Value = serde_json::from_str(body.trim_end()).unwrap();
        assert_eq!(event["sourcetype"], "mcp");
        assert_eq!(event["time"], 1_772_368_200.0);
        assert_eq!(event["event"]["ToolCallName"], "github_search_issues");
        assert_eq!(event["event"]["Success"], false);
    }

    #[tokio::test]
    async fn an_error_answer_is_quoted_without_the_secret_headers() {
        let (result, request) =
            deliver("https://siem.example.com/in?tag=a&header_X-Token=hush", 503).await;
        let message = result.unwrap_err();
        assert_eq!(message, "`siem.example.com/in` answered 503 Service Unavailable: busy");
        assert_eq!(request.uri(), "https://siem.example.com/in?tag=a");
        assert_eq!(request.headers()["x-token"], "hush");
        assert_eq!(request.headers()["content-type"], "application/x-ndjson");
    }
}
