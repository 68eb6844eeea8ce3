//! A Logpush job's `destination_conf`: `<scheme>://<address>?<params>`, parsed and checked, and
//! split into the text the log may hold and the secrets that go to the vault.
//!
//! Three schemes are accepted: `s3` (AWS S3, or any S3-compatible store with `endpoint=`),
//! `https` (an HTTP endpoint or SIEM that accepts POST) and `splunk` (Splunk's HTTP Event
//! Collector). Secret parameters are `access-key-id`, `secret-access-key` and every `header_*`
//! (`header_Authorization` carries a Splunk or SIEM token). [`Destination::redacted`] replaces
//! their values with [`MASKED_SECRET`]; that text is what events record and the API answers.
//! A secret sent as [`MASKED_SECRET`] means "keep the stored value".

use std::collections::BTreeMap;

use url::form_urlencoded;

use super::super::DomainError;
use super::super::ids::truncate_for_message;
use crate::vault::SecretString;

/// The field every error names.
pub const FIELD: &str = "destination_conf";
/// The longest `destination_conf` accepted, in bytes.
pub const MAX_DESTINATION_LEN: usize = 4096;
/// What the API answers in place of a secret parameter's value; sent back unchanged in an
/// update, it keeps the stored value.
pub const MASKED_SECRET: &str = "**********";
/// The placeholder a path may hold for the day of the batch (`YYYYMMDD`).
pub const DATE_PLACEHOLDER: &str = "{DATE}";

/// The schemes Portico accepts.
pub const SCHEMES: [&str; 3] = ["s3", "https", "splunk"];
/// Schemes Cloudflare accepts that Portico does not deliver to (yet).
const OTHER_CLOUDFLARE_SCHEMES: [&str; 6] = ["r2", "gs", "azure", "sumo", "datadog", "http"];
/// The parameters of an `s3` destination.
const S3_PARAMS: [&str; 5] = ["region", "endpoint", "access-key-id", "secret-access-key", "sse"];

/// The kind of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    S3,
    Https,
    Splunk,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Https => "https",
            Scheme::Splunk => "splunk",
        }
    }
}

/// Whether a parameter's value is a secret (it goes to the vault, never to the log).
pub fn is_secret_param(name: &str) -> bool {
    name == "access-key-id" || name == "secret-access-key" || name.starts_with("header_")
}

/// One `name=value` of the query, as written and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    raw: String,
    name: String,
    value: String,
}

/// A checked `destination_conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    scheme: Scheme,
    /// `bucket/path` for `s3`, `host[:port]/path` for the others.
    address: String,
    params: Vec<Param>,
}

impl Destination {
    /// Parses and checks `conf`. Errors name [`FIELD`] and never quote a secret's value.
    pub fn parse(conf: &str) -> Result<Destination, DomainError> {
        let invalid = |message: String| DomainError::invalid(FIELD, message);
        if conf.is_empty() {
            return Err(DomainError::invalid(FIELD, "is required"));
        }
        if conf.len() > MAX_DESTINATION_LEN {
            return Err(invalid(format!("is longer than {MAX_DESTINATION_LEN} bytes")));
        }
        if conf.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("must not contain spaces or control characters".into()));
        }
        let Some((scheme, rest)) = conf.split_once("://") else {
            return Err(invalid(
                "must be `<scheme>://<address>`, for example `s3://bucket/logs?region=us-east-1`"
                    .into(),
            ));
        };
        let scheme = match scheme {
            "s3" => Scheme::S3,
            "https" => Scheme::Https,
            "splunk" => Scheme::Splunk,
            other => {
                let shown = truncate_for_message(other);
                let why = if OTHER_CLOUDFLARE_SCHEMES.contains(&other) {
                    "is not supported by Portico"
                } else {
                    "is not a destination scheme"
                };
                return Err(invalid(format!(
                    "scheme `{shown}` {why}; the supported schemes are `s3`, `https` and `splunk`"
                )));
            }
        };
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params = Vec::new();
        for raw in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = form_urlencoded::parse(raw.as_bytes())
                .next()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .unwrap_or_default();
            if name.is_empty() {
                return Err(invalid("has a parameter without a name".into()));
            }
            if params.iter().any(|p: &Param| p.name == name) {
                return Err(invalid(format!(
                    "parameter `{}` is given twice",
                    truncate_for_message(&name)
                )));
            }
            params.push(Param { raw: raw.to_owned(), name, value });
        }
        let destination = Destination { scheme, address: address.to_owned(), params };
        match scheme {
            Scheme::S3 => destination.check_s3()?,
            Scheme::Https | Scheme::Splunk => destination.check_http()?,
        }
        Ok(destination)
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The decoded value of parameter `name`, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|p| p.name == name).map(|p| p.value.as_str())
    }

    /// `bucket/path` of an `s3` destination, `host[:port]/path` of the others.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The address split at its first `/`: the bucket (or `host[:port]`) and the path (`""`
    /// when there is none).
    pub fn split_address(&self) -> (&str, &str) {
        self.address.split_once('/').unwrap_or((&self.address, ""))
    }

    /// The parameters that are not secrets, as written (still URL-encoded), in their order.
    pub fn public_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .filter(|p| !is_secret_param(&p.name))
            .map(|p| (p.name.as_str(), p.raw.as_str()))
    }

    /// Whether creating a job to this destination needs an ownership challenge: AWS S3 does;
    /// an S3-compatible store (`endpoint=`), HTTP and Splunk do not.
    pub fn needs_ownership_challenge(&self) -> bool {
        self.scheme == Scheme::S3 && self.param("endpoint").is_none()
    }

    /// The text the log may hold: every secret parameter's value replaced by
    /// [`MASKED_SECRET`], everything else as written.
    pub fn redacted(&self) -> String {
        let mut out = format!("{}://{}", self.scheme.as_str(), self.address);
        for (i, param) in self.params.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            if is_secret_param(&param.name) {
                let name: String = form_urlencoded::byte_serialize(param.name.as_bytes()).collect();
                out.push_str(&name);
                out.push('=');
                out.push_str(MASKED_SECRET);
            } else {
                out.push_str(&param.raw);
            }
        }
        out
    }

    /// The secret parameters by name, with their values as sent ([`MASKED_SECRET`] included:
    /// the caller resolves it against the stored secrets).
    pub fn secrets(&self) -> BTreeMap<String, SecretString> {
        self.params
            .iter()
            .filter(|p| is_secret_param(&p.name))
            .map(|p| (p.name.clone(), SecretString::from(p.value.as_str())))
            .collect()
    }

    /// The names of the secret parameters.
    pub fn secret_names(&self) -> Vec<String> {
        self.params.iter().filter(|p| is_secret_param(&p.name)).map(|p| p.name.clone()).collect()
    }

    fn check_s3(&self) -> Result<(), DomainError> {
        let (bucket, path) = self.address.split_once('/').unwrap_or((&self.address, ""));
        check_bucket(bucket)?;
        check_path(path, true)?;
        for param in &self.params {
            if !S3_PARAMS.contains(&param.name.as_str()) {
                return Err(DomainError::invalid(
                    FIELD,
                    format!(
                        "unknown `s3` parameter `{}`; the parameters are {}",
                        truncate_for_message(&param.name),
                        S3_PARAMS.map(|p| format!("`{p}`")).join(", ")
                    ),
                ));
            }
            if param.value.is_empty() {
                return Err(DomainError::invalid(
                    FIELD,
                    format!("parameter `{}` must not be empty", param.name),
                ));
            }
        }
        if self.param("region").is_none() {
            return Err(DomainError::invalid(
                FIELD,
                "an `s3` destination needs `region=` (for example `?region=us-east-1`)",
            ));
        }
        if let Some(endpoint) = self.param("endpoint") {
            check_endpoint(endpoint)?;
        }
        match (self.param("access-key-id"), self.param("secret-access-key")) {
            (Some(_), None) => Err(DomainError::invalid(
                FIELD,
                "`access-key-id` is given without `secret-access-key`",
            )),
            (None, Some(_)) => Err(DomainError::invalid(
                FIELD,
                "`secret-access-key` is given without `access-key-id`",
            )),
            _ => Ok(()),
        }
    }

    fn check_http(&self) -> Result<(), DomainError> {
        let (authority, path) = self.address.split_once('/').unwrap_or((&self.address, ""));
        if authority.contains('@') {
            return Err(DomainError::invalid(
                FIELD,
                "must not hold credentials before the host; send them in a header parameter \
                 such as `header_Authorization=`",
            ));
        }
        check_host_port(authority)?;
        check_path(path, false)?;
        for param in &self.params {
            if let Some(header) = param.name.strip_prefix("header_") {
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if header.is_empty() || !header.chars().all(token) {
                    return Err(DomainError::invalid(
                        FIELD,
                        format!(
                            "`{}` does not name an HTTP header",
                            truncate_for_message(&param.name)
                        ),
                    ));
                }
                if param.value.chars().any(char::is_control) {
                    return Err(DomainError::invalid(
                        FIELD,
                        format!("the value of `{}` has control characters", param.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with
/// a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), DomainError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(bucket.chars().next())
        && edge(bucket.chars().last());
    if bucket.is_empty() {
        return Err(DomainError::invalid(
            FIELD,
            "an `s3` destination needs a bucket: `s3://<bucket>/<path>`",
        ));
    }
    if !ok {
        return Err(DomainError::invalid(
            FIELD,
            format!(
                "`{}` is not a bucket name: 3 to 63 lowercase letters, digits, `.` and `-`",
                truncate_for_message(bucket)
            ),
        ));
    }
    Ok(())
}

/// A path: no empty or dot segments; `{DATE}` is the only placeholder, and only where the
/// scheme replaces it (object stores).
fn check_path(path: &str, date_allowed: bool) -> Result<(), DomainError> {
    let without_date = if date_allowed { path.replace(DATE_PLACEHOLDER, "") } else { path.into() };
    if without_date.contains('{') || without_date.contains('}') {
        let allowed = if date_allowed {
            "`{DATE}` is the only placeholder a path may hold"
        } else {
            "placeholders such as `{DATE}` are only replaced in object store paths"
        };
        return Err(DomainError::invalid(
            FIELD,
            format!("the path `{}` has a brace: {allowed}", truncate_for_message(path)),
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if !trimmed.is_empty() && trimmed.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(DomainError::invalid(
            FIELD,
            format!("the path `{}` has an empty, `.` or `..` segment", truncate_for_message(path)),
        ));
    }
    Ok(())
}

/// `host[:port]`, with the host a DNS name or an IP address.
fn check_host_port(authority: &str) -> Result<(), DomainError> {
    let bad = || {
        DomainError::invalid(
            FIELD,
            format!("`{}` is not a host with an optional port", truncate_for_message(authority)),
        )
    };
    if authority.is_empty() {
        return Err(DomainError::invalid(FIELD, "needs a host after `://`"));
    }
    let parsed = url::Url::parse(&format!("https://{authority}/")).map_err(|_| bad())?;
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty() || parsed.path() != "/" || !parsed.username().is_empty() {
        return Err(bad());
    }
    Ok(())
}

/// An S3-compatible endpoint: `host[:port]`, or an `http(s)://` URL without a path (the bucket
/// and path are in the address, never in the endpoint).
fn check_endpoint(endpoint: &str) -> Result<(), DomainError> {
    let authority = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') {
        return Err(DomainError::invalid(
            FIELD,
            format!(
                "`endpoint` `{}` must be a host (with an optional port and scheme), without a \
                 bucket or path",
                truncate_for_message(endpoint)
            ),
        ));
    }
    check_host_port(authority)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn message(conf: &str) -> String {
        match Destination::parse(conf) {
            Err(DomainError::InvalidField { field, message }) => {
                assert_eq!(field, FIELD);
                message
            }
            other => panic!("expected `{conf}` to be refused, got {other:?}"),
        }
    }

    #[test]
    fn s3_compatible_with_keys_is_split_into_text_and_secrets() {
        let conf = "s3://logs-bucket/mcp/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000\
                    &access-key-id=AKIA1&secret-access-key=s3cr%2Ft";
        let d = Destination::parse(conf).unwrap();
        assert_eq!(d.scheme(), Scheme::S3);
        assert!(!d.needs_ownership_challenge());
        assert_eq!(
            d.redacted(),
            "s3://logs-bucket/mcp/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:9000\
             &access-key-id=**********&secret-access-key=**********"
        );
        let secrets = d.secrets();
        assert_eq!(secrets["secret-access-key"].expose_secret(), "s3cr/t");
        assert_eq!(secrets["access-key-id"].expose_secret(), "AKIA1");
        assert_eq!(Destination::parse(&d.redacted()).unwrap().redacted(), d.redacted());
    }

    #[test]
    fn aws_s3_needs_an_ownership_challenge() {
        let d = Destination::parse("s3://logs-bucket/x?region=eu-west-1").unwrap();
        assert!(d.needs_ownership_challenge());
    }

    #[test]
    fn https_headers_are_secrets_and_other_params_stay() {
        let d = Destination::parse(
            "https://siem.example.com:8443/ingest?header_Authorization=Bearer%20abc&tag=mcp",
        )
        .unwrap();
        assert_eq!(
            d.redacted(),
            "https://siem.example.com:8443/ingest?header_Authorization=**********&tag=mcp"
        );
        assert_eq!(d.secrets()["header_Authorization"].expose_secret(), "Bearer abc");
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(message("ftp://x").contains("`ftp` is not a destination scheme"));
        assert!(message("r2://x").contains("`r2` is not supported by Portico"));
        assert!(message("http://x").contains("`s3`, `https` and `splunk`"));
        assert!(message("bucket/path").contains("<scheme>://"));
        assert!(message("s3://logs-bucket/x").contains("`region=`"));
        assert!(message("s3://Bad_Bucket/x?region=a").contains("bucket name"));
        assert!(message("s3://logs-bucket/{YEAR}?region=a").contains("`{DATE}`"));
        assert!(message("s3://logs-bucket/x?region=a&acl=x").contains("unknown `s3` parameter"));
        assert!(message("s3://logs-bucket/x?region=a&access-key-id=k").contains("without"));
        assert!(message("https://u:p@h/x").contains("header_Authorization"));
        assert!(message("https://h/x?header_Bad%20Name=1").contains("HTTP header"));
        assert!(message("s3://logs-bucket/?region=a&endpoint=h/b").contains("without a bucket"));
    }

    #[test]
    fn a_refusal_never_quotes_a_secret() {
        let m = message("s3://logs-bucket/x?region=a&secret-access-key=TOPSECRET");
        assert!(!m.contains("TOPSECRET"), "{m}");
    }
}
