//! Field rules shared by the server and portal aggregates: display names, descriptions, the
//! upstream URL of a server and the host name of a portal.
//!
//! Each check takes the wire name of the field (with its path, for nested values) so that the
//! error tells the client exactly what to fix, and quotes the offending value in backticks.

use super::DomainError;
use super::ids::truncate_for_message;

/// The longest display name (`name`) of a server or portal, in characters.
pub const MAX_NAME_LEN: usize = 255;
/// The longest description of a server or portal, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// The longest upstream URL (`hostname` of a server), in bytes. 2048 is what browsers and most
/// proxies reliably carry.
pub const MAX_SERVER_URL_LEN: usize = 2048;
/// The longest portal host name, in bytes (RFC 1035, without the trailing dot).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// The longest label (the part between dots) of a portal host name, in bytes (RFC 1035).
pub const MAX_HOSTNAME_LABEL_LEN: usize = 63;

/// `name`: required (not blank), at most [`MAX_NAME_LEN`] characters, no control characters.
/// The value is kept as sent.
pub(crate) fn name(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("`{}` is longer than {MAX_NAME_LEN} characters", truncate_for_message(value)),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("`{}` must not contain control characters", truncate_for_message(value)),
        ));
    }
    Ok(())
}

/// `description`: optional, at most `max` characters; line breaks and tabs are allowed, other
/// control characters are not.
pub(crate) fn description(field: &str, value: Option<&str>, max: usize) -> Result<(), DomainError> {
    let Some(value) = value else { return Ok(()) };
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("`{}` is longer than {max} characters", truncate_for_message(value)),
        ));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(DomainError::invalid(
            field,
            format!(
                "`{}` must not contain control characters other than line breaks and tabs",
                truncate_for_message(value)
            ),
        ));
    }
    Ok(())
}

/// A server's `hostname`: the full absolute URL of the upstream MCP endpoint
/// (`https://example.com/mcp`). `http` or `https`, with a host, without user info (credentials
/// in the URL would be written to the log) and without a fragment; at most
/// [`MAX_SERVER_URL_LEN`] bytes. The value is kept as sent: it is checked, not normalised.
pub(crate) fn server_url(field: &str, value: &str) -> Result<(), DomainError> {
    let quoted = truncate_for_message(value);
    let invalid = |reason: &str| DomainError::invalid(field, format!("`{quoted}` {reason}"));
    if value.is_empty() {
        return Err(DomainError::invalid(
            field,
            "must not be empty: send the full URL of the MCP endpoint, e.g. `https://example.com/mcp`",
        ));
    }
    if value.len() > MAX_SERVER_URL_LEN {
        return Err(invalid(&format!("is longer than {MAX_SERVER_URL_LEN} bytes")));
    }
    // The URL parser silently drops surrounding spaces and embedded tabs and newlines; a value
    // that would be stored differently from what is used is refused instead.
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(invalid(
            "is not a full URL: send the URL of the MCP endpoint, e.g. `https://example.com/mcp`",
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(invalid(&format!(
            "must use the `https` or `http` scheme, not `{}`",
            truncate_for_message(scheme)
        )));
    }
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The URL parser reads `https:///mcp` as `https://mcp/`; refuse what it would reinterpret.
    if authority.is_empty() {
        return Err(invalid("has no host"));
    }
    if authority.contains('@') {
        return Err(invalid(
            "must not contain credentials (`user:password@`): the URL is stored in the log; \
             send them in `auth_credentials` instead",
        ));
    }
    if value.contains('#') {
        return Err(invalid("must not have a fragment (`#...`)"));
    }
    let url = match url::Url::parse(value) {
        Ok(url) => url,
        Err(e) => return Err(invalid(&format!("is not a valid URL: {e}"))),
    };
    // INVARIANT: `http` and `https` URLs always have a host once parsed; checked anyway so
    // that a parser change cannot let a host-less URL through.
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    Ok(())
}

/// A portal's `hostname`: a bare DNS host name (`mcp.example.com`), without scheme, path or
/// port. Labels are 1 to [`MAX_HOSTNAME_LABEL_LEN`] letters, digits and hyphens, and neither
/// start nor end with a hyphen; the whole name is at most [`MAX_HOSTNAME_LEN`] bytes.
/// Returns the name lowercased, since host names are case-insensitive.
pub(crate) fn portal_hostname(field: &str, value: &str) -> Result<String, DomainError> {
    let quoted = truncate_for_message(value);
    let invalid = |reason: &str| DomainError::invalid(field, format!("`{quoted}` {reason}"));
    if value.is_empty() {
        return Err(DomainError::invalid(
            field,
            "must not be empty: send a host name such as `mcp.example.com`",
        ));
    }
    if let Some((_, rest)) = value.split_once("://") {
        let host = rest.split(['/', '?', '#', ':']).next().unwrap_or_default();
        let hint = if host.is_empty() {
            "such as `mcp.example.com`".to_owned()
        } else {
            format!("such as `{}`", truncate_for_message(host))
        };
        return Err(invalid(&format!(
            "must be a bare host name {hint}, without a scheme: the portal is served at \
             `https://{{hostname}}/mcp`"
        )));
    }
    if value.contains('/') {
        return Err(invalid(
            "must be a bare host name without a path: the portal is served at `https://{hostname}/mcp`",
        ));
    }
    if value.contains(':') {
        return Err(invalid("must be a bare host name without a port"));
    }
    if value.len() > MAX_HOSTNAME_LEN {
        return Err(invalid(&format!("is longer than {MAX_HOSTNAME_LEN} characters")));
    }
    if value.ends_with('.') {
        return Err(invalid("must not end with `.`"));
    }
    for label in value.split('.') {
        if label.is_empty() {
            return Err(invalid("has an empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > MAX_HOSTNAME_LABEL_LEN {
            return Err(invalid(&format!(
                "has a label longer than {MAX_HOSTNAME_LABEL_LEN} characters"
            )));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid("may contain only letters, digits, hyphens and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(&format!(
                "has the label `{}`, which starts or ends with `-`",
                truncate_for_message(label)
            )));
        }
    }
    Ok(value.to_ascii_lowercase())
}

/// The longest URL of an identity provider endpoint or a redirect target, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Whether `host` (as the URL parser gives it) is the local machine: `localhost`, a
/// `*.localhost` name, an IPv4 address in `127.0.0.0/8`, or `[::1]`.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An absolute URL Portico sends people or requests to (an identity provider's endpoints, a
/// deny page): `https`, or `http` on the loopback host only (an IdP on the same machine, in
/// development and tests). No user info, no fragment, at most [`MAX_URL_LEN`] bytes, no spaces
/// or control characters. The value is kept as sent.
pub(crate) fn https_url(field: &str, value: &str) -> Result<url::Url, DomainError> {
    let quoted = truncate_for_message(value);
    let invalid = |reason: &str| DomainError::invalid(field, format!("`{quoted}` {reason}"));
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty: send an `https` URL"));
    }
    if value.len() > MAX_URL_LEN {
        return Err(invalid(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    let url = url::Url::parse(value).map_err(|e| invalid(&format!("is not a valid URL: {e}")))?;
    let Some(host) = url.host() else { return Err(invalid("has no host")) };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err(invalid(
                "must use `https`; `http` is accepted only on the loopback host (`localhost`,                  `127.0.0.1`, `[::1]`)",
            ));
        }
        other => {
            return Err(invalid(&format!(
                "must use the `https` scheme, not `{}`",
                truncate_for_message(other)
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials (`user:password@`)"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment (`#...`)"));
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn message(result: Result<impl std::fmt::Debug, DomainError>) -> String {
        match result.unwrap_err() {
            DomainError::InvalidField { field, message } => {
                assert_eq!(field, "f");
                message
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn name_bounds() {
        assert!(name("f", "My server").is_ok());
        assert!(name("f", &"é".repeat(MAX_NAME_LEN)).is_ok());
        assert!(message(name("f", &"a".repeat(MAX_NAME_LEN + 1))).contains("longer than 255"));
        assert_eq!(message(name("f", "")), "must not be empty");
        assert_eq!(message(name("f", "  \t")), "must not be empty");
        assert!(message(name("f", "a\nb")).contains("control characters"));
        assert!(message(name("f", "a\u{7}b")).contains("control characters"));
    }

    #[test]
    fn description_bounds() {
        assert!(description("f", None, 10).is_ok());
        assert!(description("f", Some(""), 10).is_ok());
        assert!(description("f", Some("line\nline\ttab\r\n"), 100).is_ok());
        assert!(description("f", Some(&"x".repeat(10)), 10).is_ok());
        assert!(message(description("f", Some(&"x".repeat(11)), 10)).contains("longer than 10"));
        assert!(message(description("f", Some("a\u{0}b"), 10)).contains("control characters"));
    }

    #[test]
    fn server_url_accepts_http_and_https_endpoints() {
        for ok in [
            "https://example.com/mcp",
            "http://localhost:8080/mcp",
            "https://127.0.0.1/mcp",
            "https://[::1]:3000/mcp",
            "HTTPS://Example.COM/mcp",
            "https://example.com",
            "https://example.com/mcp?tenant=a",
            "https://bücher.example/mcp",
        ] {
            assert!(server_url("f", ok).is_ok(), "{ok}");
        }
        let longest = format!("https://example.com/{}", "a".repeat(MAX_SERVER_URL_LEN - 20));
        assert_eq!(longest.len(), MAX_SERVER_URL_LEN);
        assert!(server_url("f", &longest).is_ok());
    }

    #[test]
    fn server_url_rejects_what_it_must() {
        let cases = [
            ("", "must not be empty"),
            ("example.com/mcp", "is not a full URL"),
            ("/mcp", "is not a full URL"),
            ("https:example.com", "is not a full URL"),
            ("ftp://example.com/mcp", "`https` or `http` scheme, not `ftp`"),
            ("ws://example.com/mcp", "not `ws`"),
            ("https://user:pw@example.com/mcp", "auth_credentials"),
            ("https://token@example.com/mcp", "auth_credentials"),
            ("https://example.com/mcp#frag", "fragment"),
            ("https://example.com/mcp#", "fragment"),
            ("https://", "has no host"),
            ("https:///mcp", "has no host"),
            ("https://?q", "has no host"),
            ("https://exa mple.com", "spaces"),
            (" https://example.com", "spaces"),
            ("https://example.com/\tmcp", "spaces"),
            ("https://example.com:99999/mcp", "not a valid URL"),
        ];
        for (value, expected) in cases {
            let message = message(server_url("f", value));
            assert!(message.contains(expected), "{value}: {message}");
        }
        let too_long = format!("https://example.com/{}", "a".repeat(MAX_SERVER_URL_LEN));
        assert!(message(server_url("f", &too_long)).contains("longer than 2048 bytes"));
    }

    #[test]
    fn server_url_quotes_the_value_but_not_a_huge_one() {
        let quoted = message(server_url("f", "ftp://example.com"));
        assert!(quoted.starts_with("`ftp://example.com`"), "{quoted}");
        let huge = format!("ftp://{}", "a".repeat(5000));
        assert!(message(server_url("f", &huge)).len() < 400);
    }

    #[test]
    fn portal_hostname_accepts_and_lowercases() {
        assert_eq!(portal_hostname("f", "mcp.example.com").unwrap(), "mcp.example.com");
        assert_eq!(portal_hostname("f", "MCP.Example.COM").unwrap(), "mcp.example.com");
        assert_eq!(portal_hostname("f", "localhost").unwrap(), "localhost");
        assert_eq!(portal_hostname("f", "a-1.b2.example").unwrap(), "a-1.b2.example");
        let label = "a".repeat(MAX_HOSTNAME_LABEL_LEN);
        assert!(portal_hostname("f", &format!("{label}.example.com")).is_ok());
        // 4 labels of 63 plus 3 dots = 255; trim to exactly 253.
        let longest = format!("{label}.{label}.{label}.{}", "a".repeat(61));
        assert_eq!(longest.len(), MAX_HOSTNAME_LEN);
        assert!(portal_hostname("f", &longest).is_ok());
    }

    #[test]
    fn portal_hostname_rejects_what_it_must() {
        let label = "a".repeat(MAX_HOSTNAME_LABEL_LEN);
        let too_long = format!("{label}.{label}.{label}.{}", "a".repeat(62));
        let cases = [
            ("", "must not be empty"),
            ("https://mcp.example.com", "such as `mcp.example.com`, without a scheme"),
            ("https://mcp.example.com:443/mcp", "such as `mcp.example.com`, without a scheme"),
            ("http://", "without a scheme"),
            ("mcp.example.com/mcp", "without a path"),
            ("mcp.example.com:8443", "without a port"),
            ("mcp.example.com.", "must not end with `.`"),
            (".example.com", "empty label"),
            ("mcp..example.com", "empty label"),
            ("-mcp.example.com", "label `-mcp`"),
            ("mcp-.example.com", "label `mcp-`"),
            ("mcp_portal.example.com", "only letters, digits, hyphens and dots"),
            ("mcp example.com", "only letters, digits, hyphens and dots"),
            ("bücher.example", "only letters, digits, hyphens and dots"),
            ("user@example.com", "only letters, digits, hyphens and dots"),
        ];
        for (value, expected) in cases {
            let message = message(portal_hostname("f", value));
            assert!(message.contains(expected), "{value}: {message}");
        }
        assert!(message(portal_hostname("f", &too_long)).contains("longer than 253"));
        let long_label = format!("{}.example.com", "a".repeat(MAX_HOSTNAME_LABEL_LEN + 1));
        assert!(message(portal_hostname("f", &long_label)).contains("longer than 63"));
    }
}
