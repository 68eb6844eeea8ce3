//! People signing in to a portal, and the MCP clients they let act for them.
//!
//! - A browser session ([`BrowserSessionState`], stream `browser-session-{id}`) starts when a
//!   person proves who they are to a portal's login page ([`UserSignedIn`]) and ends when they
//!   sign out ([`UserSignedOut`]) or it expires. Its cookie is only here as a hash.
//! - An OAuth client registered dynamically (RFC 7591) is [`OAuthClientState`], stream
//!   `oauth-client-{client_id}`. Portico registers public clients only (PKCE, no secret).
//! - Consent ([`ConsentState`], stream `consent-{hash}`) is what a person said when a client
//!   first asked to use a portal as them: asked once per person, client and portal.
//! - A failed sign-in ([`SignInFailed`]) names the reason and never the code or password.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::grant::GrantUser;
use super::ids::PortalId;
use super::{Aggregate, DomainError};
use crate::event::Event;

/// The longest client name kept.
pub const MAX_CLIENT_NAME_LEN: usize = 200;
/// The most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// The longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2_000;

/// The stream of browser session `id`.
pub fn browser_session_stream(id: &str) -> String {
    format!("browser-session-{id}")
}

/// The stream of OAuth client `client_id` (hashed: a client id may be a URL).
pub fn oauth_client_stream(client_id: &str) -> String {
    format!("oauth-client-{}", hex(client_id))
}

/// The stream of one person's consent to one client at one portal.
pub fn consent_stream(user_id: &str, client_id: &str, portal: &PortalId) -> String {
    format!("consent-{}", hex(&format!("{user_id}\n{client_id}\n{portal}")))
}

fn hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A person signed in to a portal's pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignedIn {
    pub session_id: String,
    /// SHA-256 of the session cookie.
    pub session_hash: String,
    pub portal_id: PortalId,
    pub user: GrantUser,
    /// The client's IP address at sign-in.
    #[serde(default)]
    pub ip: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A person signed out of a portal (their grants there are revoked with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignedOut {
    pub session_id: String,
}

/// Why a sign-in failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInFailure {
    /// A one-time PIN that was not the one sent.
    WrongCode,
    /// A one-time PIN presented after it expired.
    ExpiredCode,
    /// Too many wrong codes: the challenge was locked.
    TooManyAttempts,
    /// Too many codes asked for one email or from one address.
    RateLimited,
    /// The identity provider refused or its answer did not verify.
    IdentityProvider,
    /// The person proved who they are but no policy lets them connect to the portal.
    AccessDenied,
}

/// A sign-in failed (no code, token or password is recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInFailed {
    pub portal_id: PortalId,
    #[serde(default)]
    pub email: Option<String>,
    pub reason: SignInFailure,
    #[serde(default)]
    pub ip: Option<String>,
}

/// A public OAuth client registered itself (RFC 7591).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientRegistered {
    pub client_id: String,
    /// The portal whose registration endpoint was used.
    pub portal_id: PortalId,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    /// Registered by an admin through the admin API (not dynamically by the client).
    #[serde(default)]
    pub pre_registered: bool,
}

/// An admin removed a registered client; its grants are revoked with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientRemoved {
    pub client_id: String,
}

/// What may be asked of a registered client.
#[derive(Debug, Clone)]
pub enum OAuthClientCommand {
    Register(OAuthClientRegistered),
    Remove,
}

/// A person let a client use a portal as them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGiven {
    pub user_id: String,
    pub client_id: String,
    pub portal_id: PortalId,
}

/// A browser session as its events left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSessionState {
    pub session: Option<UserSignedIn>,
    pub signed_out: bool,
    pub version: u64,
}

impl BrowserSessionState {
    /// Whether the session is signed in at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.signed_out && self.session.as_ref().is_some_and(|s| s.expires_at > now)
    }
}

/// What may be asked of a browser session.
#[derive(Debug, Clone)]
pub enum BrowserSessionCommand {
    SignIn(Box<UserSignedIn>),
    SignOut,
}

impl Aggregate for BrowserSessionState {
    type Command = BrowserSessionCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        match event {
            Event::UserSignedIn(e) => self.session = Some(e.clone()),
            Event::UserSignedOut(_) => self.signed_out = true,
            _ => return,
        }
        self.version += 1;
    }

    fn decide(&self, command: BrowserSessionCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        match command {
            BrowserSessionCommand::SignIn(e) => {
                if self.session.is_some() {
                    return Err(DomainError::AlreadyExists {
                        kind: "browser session",
                        id: e.session_id,
                    });
                }
                Ok(vec![Event::UserSignedIn(*e)])
            }
            BrowserSessionCommand::SignOut => match &self.session {
                Some(s) if !self.signed_out => Ok(vec![Event::UserSignedOut(UserSignedOut {
                    session_id: s.session_id.clone(),
                })]),
                Some(_) => Ok(Vec::new()),
                None => Err(DomainError::NotFound { kind: "browser session", id: String::new() }),
            },
        }
    }

    fn version(&self) -> u64 {
        self.version
    }
}

/// A registered OAuth client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientState {
    pub client: Option<OAuthClientRegistered>,
    pub removed: bool,
    pub version: u64,
}

/// Whether `uri` may be a redirect URI at all (RFC 8252 and OAuth 2.1 §2.3.1): `https`, `http`
/// on a loopback host, or a private-use scheme (`com.example.app:/cb`); never a fragment.
pub fn check_redirect_uri(uri: &str) -> Result<url::Url, String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!("longer than {MAX_REDIRECT_URI_LEN} characters"));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!("`{uri}` has a fragment"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        "http" => {
            Err(format!("`{uri}` uses http on a host other than localhost or a loopback address"))
        }
        "javascript" | "data" | "file" | "vbscript" => {
            Err(format!("`{uri}` uses the `{}` scheme", url.scheme()))
        }
        _ => Ok(url),
    }
}

/// Whether the URL's host is `localhost` or a loopback address.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Aggregate for OAuthClientState {
    type Command = OAuthClientCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        match event {
            Event::OAuthClientRegistered(e) => self.client = Some(e.clone()),
            Event::OAuthClientRemoved(_) => self.removed = true,
            _ => return,
        }
        self.version += 1;
    }

    fn decide(&self, command: OAuthClientCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        let c = match command {
            OAuthClientCommand::Register(c) => c,
            OAuthClientCommand::Remove => {
                return match &self.client {
                    Some(c) if !self.removed => {
                        Ok(vec![Event::OAuthClientRemoved(OAuthClientRemoved {
                            client_id: c.client_id.clone(),
                        })])
                    }
                    _ => Err(DomainError::NotFound { kind: "OAuth client", id: String::new() }),
                };
            }
        };
        if self.client.is_some() {
            return Err(DomainError::AlreadyExists { kind: "OAuth client", id: c.client_id });
        }
        if c.client_name.chars().count() > MAX_CLIENT_NAME_LEN {
            return Err(DomainError::invalid(
                "client_name",
                format!("longer than {MAX_CLIENT_NAME_LEN} characters"),
            ));
        }
        if c.client_name.chars().any(char::is_control) {
            return Err(DomainError::invalid("client_name", "contains control characters"));
        }
        if c.redirect_uris.is_empty() || c.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(DomainError::invalid(
                "redirect_uris",
                format!("between 1 and {MAX_REDIRECT_URIS} redirect URIs are needed"),
            ));
        }
        for (i, uri) in c.redirect_uris.iter().enumerate() {
            check_redirect_uri(uri)
                .map_err(|m| DomainError::invalid(format!("redirect_uris[{i}]"), m))?;
        }
        Ok(vec![Event::OAuthClientRegistered(c)])
    }

    fn version(&self) -> u64 {
        self.version
    }
}

/// One person's consent to one client at one portal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub given: bool,
    pub version: u64,
}

impl Aggregate for ConsentState {
    type Command = ConsentGiven;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        if let Event::ConsentGiven(_) = event {
            self.given = true;
            self.version += 1;
        }
    }

    fn decide(&self, c: ConsentGiven, _: &()) -> Result<Vec<Event>, DomainError> {
        Ok(if self.given { Vec::new() } else { vec![Event::ConsentGiven(c)] })
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_private_schemes() {
        for ok in [
            "https://app.example.com/callback",
            "http://127.0.0.1:33418/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]:8080/cb",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/callback",
            "https://app.example.com/cb#frag",
            "javascript:alert(1)",
            "/relative",
            "http://127.0.0.1.example.com/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_registers_once_with_valid_redirect_uris() {
        let client = OAuthClientRegistered {
            client_id: "c".into(),
            portal_id: PortalId::parse("team").unwrap(),
            client_name: "Inspector".into(),
            redirect_uris: vec!["http://localhost:6274/oauth/callback".into()],
            client_uri: None,
            pre_registered: false,
        };
        let state = OAuthClientState::default();
        let events = state.decide(OAuthClientCommand::Register(client.clone()), &()).unwrap();
        let state = OAuthClientState::fold(&events);
        assert!(matches!(
            state.decide(OAuthClientCommand::Register(client.clone()), &()),
            Err(DomainError::AlreadyExists { .. })
        ));
        let none = OAuthClientRegistered { redirect_uris: vec![], ..client.clone() };
        assert!(
            OAuthClientState::default().decide(OAuthClientCommand::Register(none), &()).is_err()
        );
        let bad = OAuthClientRegistered {
            redirect_uris: vec!["http://evil.example/cb".into()],
            ..client
        };
        let error =
            OAuthClientState::default().decide(OAuthClientCommand::Register(bad), &()).unwrap_err();
        assert!(error.to_string().starts_with("invalid `redirect_uris[0]`"), "{error}");
    }
}
