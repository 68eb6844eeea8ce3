//! Which upstream addresses Portico may connect to.
//!
//! An upstream URL is admin input, so without a policy an admin (or anyone who can register a
//! server) could make Portico call its own loopback services, the cloud metadata endpoint or the
//! private network it runs in. The policy is enforced twice:
//!
//! - at registration, [`UpstreamPolicy::check_url`] resolves the host and refuses the URL if
//!   *any* address is forbidden, with a message the admin can act on;
//! - at connect time, [`SsrfResolver`] is the upstream HTTP client's DNS resolver: it drops the
//!   forbidden addresses, so the address the socket connects to is the one that was checked
//!   (a DNS answer that changes between the two checks, "DNS rebinding", gains nothing).
//!   IP-literal hosts never reach a resolver, so [`UpstreamPolicy::check_literal_host`] checks
//!   them before connecting. Redirects are disabled on the upstream client, so a redirect cannot
//!   move a request to a host that was never checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Why an address is forbidden, or `None` when Portico may connect to it.
///
/// The reason reads after the address: "10.0.0.5, a private address". IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) addresses are judged by the IPv4 address they carry.
pub fn is_forbidden(ip: IpAddr) -> Option<&'static str> {
    classify(ip).map(Forbidden::reason)
}

/// A forbidden address class. Metadata addresses stay forbidden even with `allow_private`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forbidden {
    Metadata,
    Unspecified,
    Loopback,
    Private,
    CarrierGradeNat,
    LinkLocal,
    UniqueLocal,
    SiteLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
    Tunnel,
}

impl Forbidden {
    fn reason(self) -> &'static str {
        match self {
            Forbidden::Metadata => "a cloud metadata address",
            Forbidden::Unspecified => "an unspecified address",
            Forbidden::Loopback => "a loopback address",
            Forbidden::Private => "a private address",
            Forbidden::CarrierGradeNat => "a carrier-grade NAT address",
            Forbidden::LinkLocal => "a link-local address",
            Forbidden::UniqueLocal => "a unique-local address",
            Forbidden::SiteLocal => "a site-local address",
            Forbidden::Multicast => "a multicast address",
            Forbidden::Broadcast => "the broadcast address",
            Forbidden::Documentation => "a documentation address",
            Forbidden::Benchmarking => "a benchmarking address",
            Forbidden::Reserved => "a reserved address",
            Forbidden::Tunnel => "a tunnelling (Teredo) address",
        }
    }
}

fn classify(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Forbidden> {
    // Most specific first: the metadata and broadcast addresses sit inside wider ranges.
    const TABLE: &[([u8; 4], u32, Forbidden)] = &[
        ([169, 254, 169, 254], 32, Forbidden::Metadata), // AWS, GCP, Azure, OpenStack
        ([100, 100, 100, 200], 32, Forbidden::Metadata), // Alibaba Cloud
        ([255, 255, 255, 255], 32, Forbidden::Broadcast),
        ([0, 0, 0, 0], 8, Forbidden::Unspecified), // "this network"; 0.0.0.0 reaches loopback
        ([10, 0, 0, 0], 8, Forbidden::Private),
        ([100, 64, 0, 0], 10, Forbidden::CarrierGradeNat),
        ([127, 0, 0, 0], 8, Forbidden::Loopback),
        ([169, 254, 0, 0], 16, Forbidden::LinkLocal),
        ([172, 16, 0, 0], 12, Forbidden::Private),
        ([192, 0, 0, 0], 24, Forbidden::Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, Forbidden::Documentation),
        ([192, 88, 99, 0], 24, Forbidden::Reserved), // 6to4 relay anycast
        ([192, 168, 0, 0], 16, Forbidden::Private),
        ([198, 18, 0, 0], 15, Forbidden::Benchmarking),
        ([198, 51, 100, 0], 24, Forbidden::Documentation),
        ([203, 0, 113, 0], 24, Forbidden::Documentation),
        ([224, 0, 0, 0], 4, Forbidden::Multicast),
        ([240, 0, 0, 0], 4, Forbidden::Reserved),
    ];
    TABLE.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Option<Forbidden> {
    if ip.is_unspecified() {
        return Some(Forbidden::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Forbidden::Loopback);
    }
    let bits = u128::from(ip);
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if bits >> 32 == 0 {
        return classify_v4(low32); // IPv4-compatible, `::a.b.c.d` (deprecated)
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(low32); // NAT64 well-known prefix
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32)); // 6to4
    }
    const TABLE: &[(Ipv6Addr, u32, Forbidden)] = &[
        (Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128, Forbidden::Metadata), // AWS
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Forbidden::Private), // local NAT64
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Forbidden::Reserved),    // discard-only
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Forbidden::Tunnel),     // Teredo
        (Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48, Forbidden::Benchmarking),
        (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, Forbidden::Reserved), // ORCHID
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, Forbidden::Documentation),
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Forbidden::Documentation),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Forbidden::UniqueLocal),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Forbidden::LinkLocal),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Forbidden::SiteLocal),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Forbidden::Multicast),
    ];
    TABLE.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)).map(|(_, _, class)| *class)
}

/// Which upstream addresses this deployment accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UpstreamPolicy {
    /// `allow_private_upstreams`: accept private, loopback, link-local and every other
    /// non-public address except cloud metadata endpoints, which stay forbidden.
    pub allow_private: bool,
}

/// Why an upstream URL or address was refused.
#[derive(Debug, thiserror::Error)]
pub enum SsrfError {
    /// Only `http` and `https` upstreams exist.
    #[error(
        "upstream URL `{url}` has scheme `{scheme}`; Portico connects only to http and https upstreams"
    )]
    UnsupportedScheme { url: String, scheme: String },
    /// The URL has no host to connect to.
    #[error("upstream URL `{url}` has no host")]
    MissingHost { url: String },
    /// The host name did not resolve.
    #[error("upstream host `{host}` could not be resolved: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address at all.
    #[error("upstream host `{host}` resolves to no address")]
    NoAddress { host: String },
    /// The host is or resolves to an address the policy forbids.
    #[error("upstream URL `{url}` resolves to {ip}, {reason}; {}", refusal_advice(*.metadata))]
    Forbidden { url: String, ip: IpAddr, reason: &'static str, metadata: bool },
}

fn refusal_advice(metadata: bool) -> &'static str {
    if metadata {
        "Portico never connects to cloud metadata addresses"
    } else {
        "Portico refuses private, loopback, link-local and metadata addresses unless \
         `allow_private_upstreams` is set"
    }
}

/// The URL as it may appear in messages and logs: no user info, query or fragment, which is
/// where credentials hide in URLs.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

impl UpstreamPolicy {
    /// The reason this policy refuses `ip`, if it does.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        match classify(ip)? {
            Forbidden::Metadata => Some(Forbidden::Metadata.reason()),
            _ if self.allow_private => None,
            class => Some(class.reason()),
        }
    }

    fn forbidden(&self, url: &Url, ip: IpAddr) -> Result<(), SsrfError> {
        match self.refusal(ip) {
            None => Ok(()),
            Some(reason) => Err(SsrfError::Forbidden {
                url: redact_url(url),
                ip,
                reason,
                metadata: classify(ip) == Some(Forbidden::Metadata),
            }),
        }
    }

    /// Registration-time check: scheme `http` or `https`, a host, and every address the host
    /// resolves to allowed. Resolution uses the system resolver (tokio's `lookup_host`).
    pub async fn check_url(&self, url: &Url) -> Result<(), SsrfError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SsrfError::UnsupportedScheme {
                url: redact_url(url),
                scheme: url.scheme().to_owned(),
            });
        }
        let Some(host) = url.host() else {
            return Err(SsrfError::MissingHost { url: redact_url(url) });
        };
        let domain = match host {
            Host::Ipv4(ip) => return self.forbidden(url, IpAddr::V4(ip)),
            Host::Ipv6(ip) => return self.forbidden(url, IpAddr::V6(ip)),
            Host::Domain(domain) => domain,
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((domain, port))
            .await
            .map_err(|source| SsrfError::Resolve { host: domain.to_owned(), source })?
            .collect();
        if addrs.is_empty() {
            return Err(SsrfError::NoAddress { host: domain.to_owned() });
        }
        addrs.iter().try_for_each(|addr| self.forbidden(url, addr.ip()))
    }

    /// Connect-time check for IP-literal hosts, which bypass [`SsrfResolver`]. Host names
    /// pass here: the resolver checks the addresses they resolve to.
    pub fn check_literal_host(&self, url: &Url) -> Result<(), SsrfError> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.forbidden(url, IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.forbidden(url, IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
            None => Err(SsrfError::MissingHost { url: redact_url(url) }),
        }
    }
}

/// A DNS resolver for the upstream HTTP client that never returns a forbidden address.
///
/// It resolves with the system resolver and keeps only the addresses the policy allows; if
/// none is left the lookup fails, so the connection fails before any byte is sent.
#[derive(Debug, Clone, Copy)]
pub struct SsrfResolver {
    policy: UpstreamPolicy,
}

impl SsrfResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: UpstreamPolicy) -> Self {
        Self { policy }
    }
}

/// Every address of a host was forbidden.
#[derive(Debug)]
pub(crate) struct AllForbidden {
    host: String,
    refused: Vec<(IpAddr, &'static str)>,
}

impl fmt::Display for AllForbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream host `{}` resolves only to forbidden addresses (", self.host)?;
        for (i, (ip, reason)) in self.refused.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{ip}, {reason}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for AllForbidden {}

impl AllForbidden {
    /// The advice to append: what the admin can do about it.
    pub(crate) fn advice(&self) -> &'static str {
        let metadata =
            self.refused.iter().all(|(ip, _)| classify(*ip) == Some(Forbidden::Metadata));
        refusal_advice(metadata)
    }
}

impl reqwest::dns::Resolve for SsrfResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is a placeholder: the connector replaces it with the URL's port.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|addr| policy.refusal(addr.ip()).is_none());
            if allowed.is_empty() {
                let refused = refused
                    .iter()
                    .filter_map(|addr| policy.refusal(addr.ip()).map(|reason| (addr.ip(), reason)))
                    .collect();
                return Err(Box::new(AllForbidden { host, refused })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            if !refused.is_empty() {
                tracing::warn!(host = %host, refused = refused.len(), "upstream host resolves to some forbidden addresses; skipping them");
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver as reqwest takes it.
pub(crate) fn resolver(policy: UpstreamPolicy) -> Arc<SsrfResolver> {
    Arc::new(SsrfResolver::new(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("104.16.0.1", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
            ("127.0.0.1", Some("a loopback address")),
            ("127.255.0.9", Some("a loopback address")),
            ("::1", Some("a loopback address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("0.1.2.3", Some("an unspecified address")),
            ("::", Some("an unspecified address")),
            ("10.0.0.5", Some("a private address")),
            ("172.16.0.1", Some("a private address")),
            ("172.31.255.255", Some("a private address")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("a private address")),
            ("100.64.0.1", Some("a carrier-grade NAT address")),
            ("100.127.255.255", Some("a carrier-grade NAT address")),
            ("100.128.0.1", None),
            ("169.254.1.1", Some("a link-local address")),
            ("169.254.169.254", Some("a cloud metadata address")),
            ("100.100.100.200", Some("a cloud metadata address")),
            ("fd00:ec2::254", Some("a cloud metadata address")),
            ("fe80::1", Some("a link-local address")),
            ("fc00::1", Some("a unique-local address")),
            ("fd12:3456::1", Some("a unique-local address")),
            ("fec0::1", Some("a site-local address")),
            ("224.0.0.1", Some("a multicast address")),
            ("239.255.255.250", Some("a multicast address")),
            ("ff02::1", Some("a multicast address")),
            ("255.255.255.255", Some("the broadcast address")),
            ("240.0.0.1", Some("a reserved address")),
            ("192.0.0.8", Some("a reserved address")),
            ("192.0.2.1", Some("a documentation address")),
            ("198.51.100.7", Some("a documentation address")),
            ("203.0.113.9", Some("a documentation address")),
            ("2001:db8::1", Some("a documentation address")),
            ("3fff::1", Some("a documentation address")),
            ("198.18.0.1", Some("a benchmarking address")),
            ("2001::1", Some("a tunnelling (Teredo) address")),
            // IPv6 forms carrying an IPv4 address are judged by it.
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("::ffff:10.1.2.3", Some("a private address")),
            ("::ffff:169.254.169.254", Some("a cloud metadata address")),
            ("::ffff:8.8.8.8", None),
            ("::10.0.0.1", Some("a private address")),
            ("64:ff9b::a9fe:a9fe", Some("a cloud metadata address")),
            ("64:ff9b::808:808", None),
            ("2002:7f00:1::", Some("a loopback address")),
            ("2002:0808:0808::", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(is_forbidden(ip(addr)), *expected, "{addr}");
        }
    }

    #[test]
    fn allow_private_still_refuses_metadata() {
        let open = UpstreamPolicy { allow_private: true };
        assert_eq!(open.refusal(ip("127.0.0.1")), None);
        assert_eq!(open.refusal(ip("10.0.0.5")), None);
        assert_eq!(open.refusal(ip("fe80::1")), None);
        assert_eq!(open.refusal(ip("169.254.169.254")), Some("a cloud metadata address"));
        assert_eq!(open.refusal(ip("::ffff:169.254.169.254")), Some("a cloud metadata address"));
        assert_eq!(open.refusal(ip("fd00:ec2::254")), Some("a cloud metadata address"));
        let strict = UpstreamPolicy::default();
        assert_eq!(strict.refusal(ip("10.0.0.5")), Some("a private address"));
        assert_eq!(strict.refusal(ip("93.184.215.14")), None);
    }

    #[tokio::test]
    async fn check_url_ip_literals() {
        let strict = UpstreamPolicy::default();
        let err = strict.check_url(&Url::parse("https://10.0.0.5/mcp").unwrap()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "upstream URL `https://10.0.0.5/mcp` resolves to 10.0.0.5, a private address; Portico \
             refuses private, loopback, link-local and metadata addresses unless \
             `allow_private_upstreams` is set"
        );
        for url in [
            "http://127.0.0.1:8080/mcp",
            "http://127.1/mcp",
            "http://2130706433/mcp",
            "http://[::1]/mcp",
            "http://[::ffff:127.0.0.1]/mcp",
            "http://0.0.0.0/mcp",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let err = strict.check_url(&Url::parse(url).unwrap()).await.unwrap_err();
            assert!(matches!(err, SsrfError::Forbidden { .. }), "{url}: {err}");
        }
        strict.check_url(&Url::parse("https://8.8.8.8/mcp").unwrap()).await.unwrap();
        strict.check_url(&Url::parse("https://[2606:4700:4700::1111]/mcp").unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn check_url_resolves_localhost() {
        let strict = UpstreamPolicy::default();
        let err =
            strict.check_url(&Url::parse("http://localhost:3001/mcp").unwrap()).await.unwrap_err();
        assert!(matches!(err, SsrfError::Forbidden { reason: "a loopback address", .. }), "{err}");
        let open = UpstreamPolicy { allow_private: true };
        open.check_url(&Url::parse("http://localhost:3001/mcp").unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn check_url_scheme_host_and_redaction() {
        let strict = UpstreamPolicy::default();
        let err = strict.check_url(&Url::parse("ftp://example.com/x").unwrap()).await.unwrap_err();
        assert!(matches!(err, SsrfError::UnsupportedScheme { .. }), "{err}");
        let err = strict.check_url(&Url::parse("file:///etc/passwd").unwrap()).await.unwrap_err();
        assert!(matches!(err, SsrfError::UnsupportedScheme { .. }), "{err}");
        let url = Url::parse("https://user:hunter2@10.1.1.1/mcp?token=s3cret").unwrap();
        let message = strict.check_url(&url).await.unwrap_err().to_string();
        assert!(!message.contains("hunter2") && !message.contains("s3cret"), "{message}");
        let open = UpstreamPolicy { allow_private: true };
        let err =
            open.check_url(&Url::parse("http://169.254.169.254/").unwrap()).await.unwrap_err();
        assert!(
            err.to_string().ends_with("Portico never connects to cloud metadata addresses"),
            "{err}"
        );
    }

    #[test]
    fn literal_host_check() {
        let strict = UpstreamPolicy::default();
        assert!(strict.check_literal_host(&Url::parse("http://127.0.0.1:1/mcp").unwrap()).is_err());
        assert!(strict.check_literal_host(&Url::parse("http://example.com/mcp").unwrap()).is_ok());
        let open = UpstreamPolicy { allow_private: true };
        assert!(open.check_literal_host(&Url::parse("http://127.0.0.1:1/mcp").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn resolver_filters_forbidden_addresses() {
        use reqwest::dns::Resolve;
        let strict = SsrfResolver::new(UpstreamPolicy::default());
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must not resolve under the strict policy"),
            Err(err) => err,
        };
        assert!(err.to_string().contains("resolves only to forbidden addresses"), "{err}");
        let open = SsrfResolver::new(UpstreamPolicy { allow_private: true });
        let addrs: Vec<_> = open.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
