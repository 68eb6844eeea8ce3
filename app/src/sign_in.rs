//! People signing in to portals, and Portico as the OAuth 2.1 authorization server of each
//! portal's MCP endpoint.
//!
//! - One-time PINs ([`OneTimePins`]): a 6-digit code mailed to an address, valid for
//!   [`PIN_LIFETIME`], [`PIN_ATTEMPTS`] tries, rate-limited per address and per client IP. The
//!   challenges live in memory only (a restart asks people for a new code), bounded in number.
//! - Browser sessions of the portal's pages: [`App::sign_in`] after a person proved who they
//!   are, [`App::sign_out`] (which also revokes their grants at the portal).
//! - OAuth: client registration (RFC 7591, public clients with PKCE), the authorization code
//!   (after consent), the token endpoint's two grants, revocation (RFC 7009), and the bearer
//!   check of the MCP endpoint. Every code, token, cookie and PIN is random, handed out once
//!   and stored only as its SHA-256.
//!
//! - OpenID Connect login ([`oidc`]): the authorization code flow with an `oidc` identity
//!   provider, its pending logins in memory like the PIN challenges.
//!
//! Cedar's `connect` is asked at every authorization, every refresh and (by the MCP endpoint)
//! every request, so a policy change takes effect at once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use portico_core::domain::Aggregate;
use portico_core::domain::DomainError;
use portico_core::domain::grant::{
    AuthorizeGrant, CODE_LIFETIME, GrantAuthorized, GrantCommand, GrantUser, RedeemCode,
    RefreshGrant, RevokeReason, grant_stream,
};
use portico_core::domain::identity_provider::{IdentityProviderId, IdentityProviderType};
use portico_core::domain::ids::PortalId;
use portico_core::domain::sign_in::{
    BrowserSessionCommand, ConsentGiven, OAuthClientCommand, OAuthClientRegistered,
    OAuthClientState, SignInFailed, SignInFailure, UserSignedIn, browser_session_stream,
    check_redirect_uri, consent_stream, is_loopback_host, oauth_client_stream,
};
use portico_core::{Actor, Event, EventMetadata, ExpectedVersion, NewEvent};
use portico_policies::{Principal, RequestContext};
use sha2::{Digest, Sha256};

use crate::api_tokens::hash;
use crate::{App, AppError, decide};

pub mod oidc;

/// How long a one-time PIN is valid.
pub const PIN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How many wrong PINs one challenge allows.
pub const PIN_ATTEMPTS: u32 = 5;
/// How many PINs one address may be sent per [`RATE_WINDOW`].
pub const PINS_PER_EMAIL: usize = 5;
/// How many PINs one client IP may ask for per [`RATE_WINDOW`].
pub const PINS_PER_IP: usize = 20;
/// The window of the PIN rate limits.
pub const RATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The most PIN challenges kept at once (expired ones are dropped first).
pub const MAX_CHALLENGES: usize = 10_000;
/// How many clients one IP address may register per [`RATE_WINDOW`].
pub const REGISTRATIONS_PER_IP: usize = 20;
/// The identity provider of one-time PINs.
pub const ONE_TIME_PIN_IDP: &str = "onetimepin";
/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A secret handed out once (a token, a code, a cookie); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How a portal signs people in: its Access application's settings, every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInSettings {
    /// Whether MCP clients may use the portal's OAuth authorization server.
    pub oauth_enabled: bool,
    pub access_token_lifetime: TimeDelta,
    /// How long a grant lives, refreshes included.
    pub session_duration: TimeDelta,
    /// How long a browser session of the portal's pages lives.
    pub browser_session_duration: TimeDelta,
    pub dynamic_client_registration: DcrSettings,
    /// Whether the one-time-PIN provider exists and the portal allows it.
    pub one_time_pin: bool,
    /// The providers the login page offers, oldest first (the one-time PIN among them when
    /// [`Self::one_time_pin`]).
    pub providers: Vec<LoginProvider>,
    /// Instant auth: the login page goes straight to the only provider.
    pub auto_redirect: bool,
    /// The block page's message.
    pub deny_message: String,
    /// Where people no policy lets in are sent instead of the block page.
    pub deny_url: Option<String>,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings {
            oauth_enabled: true,
            access_token_lifetime: TimeDelta::minutes(15),
            session_duration: TimeDelta::hours(24),
            browser_session_duration: TimeDelta::hours(24),
            dynamic_client_registration: DcrSettings::default(),
            one_time_pin: true,
            providers: Vec::new(),
            auto_redirect: false,
            deny_message: portico_core::domain::access_app::DEFAULT_DENY_MESSAGE.to_owned(),
            deny_url: None,
        }
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// A provider a login page offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProvider {
    pub id: IdentityProviderId,
    /// Shown on the login page.
    pub name: String,
    pub kind: IdentityProviderType,
}

impl App {
    /// How `portal` signs people in now (the defaults when it has no application yet).
    pub fn sign_in_settings(&self, portal: &PortalId) -> SignInSettings {
        self.read(|m| {
            let app = m.access_apps.settings(portal);
            let providers: Vec<LoginProvider> = m
                .identity_providers
                .iter()
                .filter(|p| app.as_ref().is_none_or(|app| app.allows(&p.id)))
                .map(|p| LoginProvider { id: p.id, name: p.name.clone(), kind: p.provider_type() })
                .collect();
            let Some(app) = app else {
                return SignInSettings { providers, ..SignInSettings::default() };
            };
            let pin = portico_core::domain::identity_provider::one_time_pin_id();
            let dcr = &app.oauth.dynamic_client_registration;
            SignInSettings {
                oauth_enabled: app.oauth.enabled,
                access_token_lifetime: delta(app.oauth.access_token_lifetime),
                session_duration: delta(app.oauth.grant_session_duration),
                browser_session_duration: delta(app.session_duration),
                dynamic_client_registration: DcrSettings {
                    enabled: dcr.enabled,
                    allow_any_on_localhost: dcr.allow_any_on_localhost,
                    allow_any_on_loopback: dcr.allow_any_on_loopback,
                    allowed_uris: dcr.allowed_uris.clone(),
                },
                one_time_pin: m.identity_providers.get(&pin).is_some() && app.allows(&pin),
                auto_redirect: app.auto_redirect_to_identity && providers.len() == 1,
                providers,
                deny_message: app.custom_deny_message.clone(),
                deny_url: app.custom_deny_url.clone(),
            }
        })
    }
}

/// Which redirect URIs dynamic client registration accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcrSettings {
    pub enabled: bool,
    /// Any `http://localhost:<port>/...` redirect URI.
    pub allow_any_on_localhost: bool,
    /// Any redirect URI on a loopback address (`127.0.0.1`, `[::1]`).
    pub allow_any_on_loopback: bool,
    /// Other accepted redirect URIs: exact, or a prefix when ending in `/*`.
    pub allowed_uris: Vec<String>,
}

impl Default for DcrSettings {
    /// Local MCP clients (the Inspector, `mcp-remote`, desktop apps) register out of the box.
    fn default() -> Self {
        DcrSettings {
            enabled: true,
            allow_any_on_localhost: true,
            allow_any_on_loopback: true,
            allowed_uris: Vec::new(),
        }
    }
}

impl DcrSettings {
    /// Whether a client may register `uri` (already checked with [`check_redirect_uri`]).
    pub fn allows(&self, uri: &url::Url) -> bool {
        let localhost =
            matches!(uri.host(), Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost"));
        if localhost && self.allow_any_on_localhost {
            return true;
        }
        if !localhost && is_loopback_host(uri) && self.allow_any_on_loopback {
            return true;
        }
        self.allowed_uris.iter().any(|allowed| match allowed.strip_suffix("/*") {
            // A prefix matches whole path segments only: `https://a/cb/*` allows
            // `https://a/cb/x`, not `https://a/cbx`.
            Some(prefix) if matches!(uri.scheme(), "http" | "https") => {
                uri.as_str().strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
            }
            _ => allowed == uri.as_str(),
        })
    }
}

/// Why a sign-in or an OAuth request was refused, in OAuth's vocabulary (RFC 6749 §5.2, RFC
/// 7591 §3.2.2) or the login page's.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// RFC 6749 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// RFC 6749 `invalid_client`: unknown client.
    #[error("{0}")]
    InvalidClient(String),
    /// RFC 6749 `invalid_grant`.
    #[error("{0}")]
    InvalidGrant(String),
    /// RFC 6749 `access_denied`: the policies do not let the person connect.
    #[error("{0}")]
    AccessDenied(String),
    /// RFC 7591 `invalid_redirect_uri`.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 `invalid_client_metadata`.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// Too many requests from one address: retry later.
    #[error("{0}")]
    RateLimited(String),
    /// A wrong, expired or locked one-time PIN, or too many asked.
    #[error("{message}")]
    Pin { reason: SignInFailure, message: String },
    /// An OpenID Connect sign-in failed at or with the identity provider (the message is safe
    /// to show; the cause was logged).
    #[error("{0}")]
    IdentityProvider(String),
    /// Storage or a bug: the frontend answers `server_error` / 5xx.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<DomainError> for SignInError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidGrant { reason } => SignInError::InvalidGrant(reason),
            DomainError::InvalidField { field, message } if field.starts_with("redirect_uris") => {
                SignInError::InvalidRedirectUri(format!("invalid `{field}`: {message}"))
            }
            DomainError::InvalidField { .. } => SignInError::InvalidClientMetadata(e.to_string()),
            other => SignInError::App(other.into()),
        }
    }
}

/// What a client sends to register (RFC 7591 §2, the fields Portico uses).
#[derive(Debug, Clone, Default)]
pub struct ClientRegistration {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub client_uri: Option<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
}

/// A client as the authorization endpoint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
}

/// The largest Client ID Metadata Document read.
pub const CIMD_MAX_BYTES: usize = 16 * 1024;
/// How long fetching one may take.
pub const CIMD_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is trusted.
pub const CIMD_CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// The most documents cached.
pub const CIMD_CACHE_SIZE: usize = 1_000;

/// The URL of a Client ID Metadata Document, if `client_id` is one: `https` with a path (and,
/// only when private upstreams are allowed, for local development, `http` on loopback).
pub fn cimd_url(client_id: &str, allow_loopback_http: bool) -> Option<url::Url> {
    let url = url::Url::parse(client_id).ok()?;
    let scheme_ok = url.scheme() == "https"
        || (allow_loopback_http && url.scheme() == "http" && is_loopback_host(&url));
    let has_path = url.path() != "/" && !url.path().is_empty();
    (scheme_ok && has_path && url.fragment().is_none() && url.username().is_empty()).then_some(url)
}

/// Checks a Client ID Metadata Document: a JSON object whose `client_id` is exactly its URL,
/// with a `client_name` and valid `redirect_uris`, for a public client.
pub fn client_from_document(
    client_id: &str,
    document: &serde_json::Value,
) -> Result<OAuthClient, SignInError> {
    let bad = |m: &str| SignInError::InvalidClient(format!("the client's metadata document {m}"));
    let object = document.as_object().ok_or_else(|| bad("is not a JSON object"))?;
    if object.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
        return Err(bad("has a `client_id` other than its own URL"));
    }
    let name = object
        .get("client_name")
        .and_then(|v| v.as_str())
        .filter(|n| {
            !n.trim().is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
        })
        .ok_or_else(|| bad("has no usable `client_name`"))?;
    let uris: Vec<String> = object
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("has no `redirect_uris`"))?
        .iter()
        .map(|u| {
            u.as_str().map(str::to_owned).ok_or_else(|| bad("has a redirect URI that is not text"))
        })
        .collect::<Result<_, _>>()?;
    if uris.is_empty() || uris.len() > portico_core::domain::sign_in::MAX_REDIRECT_URIS {
        return Err(bad("must list between 1 and 10 redirect URIs"));
    }
    for uri in &uris {
        check_redirect_uri(uri).map_err(|m| bad(&format!("lists an invalid redirect URI: {m}")))?;
    }
    match object.get("token_endpoint_auth_method").and_then(|v| v.as_str()) {
        None | Some("none") => {}
        Some(other) => {
            return Err(bad(&format!(
                "asks for `token_endpoint_auth_method` `{other}`; Portico serves public clients (`none`)"
            )));
        }
    }
    Ok(OAuthClient {
        client_id: client_id.to_owned(),
        client_name: name.to_owned(),
        redirect_uris: uris,
    })
}

/// Fetched Client ID Metadata Documents, bounded in number and age.
#[derive(Debug, Default)]
pub struct CimdCache(Mutex<HashMap<String, (Instant, OAuthClient)>>);

impl CimdCache {
    fn get(&self, client_id: &str) -> Option<OAuthClient> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(client_id).filter(|(at, _)| at.elapsed() < CIMD_CACHE_TTL).map(|(_, c)| c.clone())
    }

    fn put(&self, client: OAuthClient) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CIMD_CACHE_SIZE {
            map.retain(|_, (at, _)| at.elapsed() < CIMD_CACHE_TTL);
        }
        if map.len() >= CIMD_CACHE_SIZE {
            // Still full of fresh entries: the oldest goes.
            if let Some(oldest) = map.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(client.client_id.clone(), (Instant::now(), client));
    }
}

/// An authorization the person allowed: where the code goes and what binds it.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub portal_id: PortalId,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: Option<String>,
}

/// What the token endpoint hands out.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_in: i64,
    pub scope: Option<String>,
}

/// A one-time PIN to mail.
#[derive(Debug, Clone)]
pub struct PinMail {
    pub to: String,
    pub portal_name: String,
    pub code: Secret,
}

/// Sends one-time PINs.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    fn send<'a>(
        &'a self,
        mail: &'a PinMail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The mailer when no SMTP server is configured: the PIN goes to Portico's own log (a warning
/// at start-up says so), so that `portico serve` alone lets someone sign in.
#[derive(Debug, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send<'a>(
        &'a self,
        mail: &'a PinMail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        tracing::warn!(
            to = %mail.to,
            portal = %mail.portal_name,
            code = %mail.code.0,
            "one-time PIN (no SMTP server is configured, so it is logged instead of mailed)"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

#[derive(Debug)]
struct Challenge {
    portal_id: PortalId,
    email: String,
    code_hash: String,
    expires_at: Instant,
    attempts_left: u32,
}

/// The one-time PIN challenges in flight and the rate limits, in memory.
#[derive(Debug)]
pub struct OneTimePins {
    mailer: RwLock<Arc<dyn Mailer>>,
    state: Mutex<PinState>,
}

#[derive(Debug, Default)]
struct PinState {
    challenges: HashMap<String, Challenge>,
    sent_to: HashMap<String, VecDeque<Instant>>,
    sent_from: HashMap<IpAddr, VecDeque<Instant>>,
    /// Dynamic client registrations by address (each one is an event: bounded like PINs).
    registered_from: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Default for OneTimePins {
    fn default() -> Self {
        OneTimePins { mailer: RwLock::new(Arc::new(LogMailer)), state: Mutex::default() }
    }
}

impl OneTimePins {
    /// Sends PINs with `mailer` from now on.
    pub fn set_mailer(&self, mailer: Arc<dyn Mailer>) {
        *self.mailer.write().unwrap_or_else(std::sync::PoisonError::into_inner) = mailer;
    }

    fn mailer(&self) -> Arc<dyn Mailer> {
        Arc::clone(&self.mailer.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PinState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts one more event in `window` for `key`; false when `limit` is reached.
fn within_limit<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, VecDeque<Instant>>,
    key: K,
    limit: usize,
    now: Instant,
) -> bool {
    // The maps are bounded: keys with no recent event go first.
    if map.len() >= MAX_CHALLENGES {
        map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < RATE_WINDOW));
    }
    let times = map.entry(key).or_default();
    while times.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
        times.pop_front();
    }
    if times.len() >= limit {
        return false;
    }
    times.push_back(now);
    true
}

/// Normalises and checks an email address: trimmed, lowercase, one `@` with text on both
/// sides, no spaces or control characters, at most [`MAX_EMAIL_LEN`] characters.
pub fn normalize_email(email: &str) -> Result<String, SignInError> {
    let email = email.trim().to_ascii_lowercase();
    let bad = || SignInError::InvalidRequest("enter a valid email address".to_owned());
    if email.len() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err(bad()),
    }
}

/// Portico's id of the person with `email` at the one-time-PIN provider: stable, derived from
/// the address, shaped as a UUID.
pub fn pin_user_id(email: &str) -> String {
    let digest = Sha256::digest(format!("{ONE_TIME_PIN_IDP}\n{email}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// A random secret with a recognisable prefix: `prefix` and 256 bits as hex.
fn new_secret(prefix: &str) -> Result<Secret, AppError> {
    Ok(Secret(format!("{prefix}{}", crate::random_hex::<32>()?)))
}

fn new_id() -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(AppError::internal)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string())
}

/// The Cedar principal of a signed-in person.
pub fn principal_of(user: &GrantUser) -> Principal {
    Principal::User {
        id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        idp: user.idp.clone(),
        groups: user.groups.clone(),
        claims: user.claims.clone(),
    }
}

fn user_actor(user: &GrantUser) -> Actor {
    Actor::User { id: user.id.clone(), email: user.email.clone() }
}

impl App {
    // ---- one-time PINs ----

    /// Mails a one-time PIN to `email` for signing in to `portal`; returns the challenge id
    /// the PIN must be entered with.
    pub async fn send_one_time_pin(
        &self,
        portal: &PortalId,
        portal_name: &str,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<String, SignInError> {
        let email = normalize_email(email)?;
        let now = Instant::now();
        let prepared = {
            let mut state = self.pins.lock();
            let limited = !within_limit(&mut state.sent_to, email.clone(), PINS_PER_EMAIL, now)
                || ip.is_some_and(|ip| !within_limit(&mut state.sent_from, ip, PINS_PER_IP, now));
            if limited { None } else { Some(new_challenge(&mut state, portal, &email, now)?) }
        };
        let Some((challenge_id, code)) = prepared else {
            self.record_failure(portal, Some(&email), SignInFailure::RateLimited, ip).await;
            return Err(SignInError::Pin {
                reason: SignInFailure::RateLimited,
                message: "too many codes were asked for; wait a few minutes and try again"
                    .to_owned(),
            });
        };
        let mail = PinMail { to: email, portal_name: portal_name.to_owned(), code };
        if let Err(error) = self.pins.mailer().send(&mail).await {
            self.pins.lock().challenges.remove(&challenge_id);
            return Err(SignInError::App(AppError::unavailable(format!(
                "the one-time PIN could not be mailed: {error}"
            ))));
        }
        Ok(challenge_id)
    }

    /// Checks the PIN entered for `challenge_id` at `portal`; the verified address on success.
    /// A wrong PIN uses one attempt; the last one locks the challenge.
    pub async fn verify_one_time_pin(
        &self,
        portal: &PortalId,
        challenge_id: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<String, SignInError> {
        let now = Instant::now();
        let presented = hash(code.trim());
        let outcome = {
            let mut state = self.pins.lock();
            match state.challenges.get_mut(challenge_id) {
                Some(c) if &c.portal_id != portal => Err((None, SignInFailure::WrongCode)),
                None => Err((None, SignInFailure::ExpiredCode)),
                Some(c) if c.expires_at <= now => {
                    let email = c.email.clone();
                    state.challenges.remove(challenge_id);
                    Err((Some(email), SignInFailure::ExpiredCode))
                }
                Some(c) if crate::api_tokens::hashes_match(&c.code_hash, &presented) => {
                    let email = c.email.clone();
                    state.challenges.remove(challenge_id);
                    Ok(email)
                }
                Some(c) => {
                    c.attempts_left = c.attempts_left.saturating_sub(1);
                    let email = c.email.clone();
                    if c.attempts_left == 0 {
                        state.challenges.remove(challenge_id);
                        Err((Some(email), SignInFailure::TooManyAttempts))
                    } else {
                        Err((Some(email), SignInFailure::WrongCode))
                    }
                }
            }
        };
        match outcome {
            Ok(email) => Ok(email),
            Err((email, reason)) => {
                self.record_failure(portal, email.as_deref(), reason, ip).await;
                let message = match reason {
                    SignInFailure::WrongCode => "that code is not the one we sent; try again",
                    SignInFailure::TooManyAttempts => "too many wrong codes; ask for a new code",
                    _ => "that code expired; ask for a new code",
                };
                Err(SignInError::Pin { reason, message: message.to_owned() })
            }
        }
    }

    /// Records a failed sign-in (best effort: a failure to record is logged, the person still
    /// gets their answer).
    pub async fn record_failure(
        &self,
        portal: &PortalId,
        email: Option<&str>,
        reason: SignInFailure,
        ip: Option<IpAddr>,
    ) {
        let event = Event::SignInFailed(SignInFailed {
            portal_id: portal.clone(),
            email: email.map(str::to_owned),
            reason,
            ip: ip.map(|ip| ip.to_string()),
        });
        let metadata = EventMetadata::new(Actor::system("sign-in"));
        let stream = format!("sign-in-failures-{portal}");
        if let Err(error) = self
            .log
            .append(&stream, ExpectedVersion::Any, vec![NewEvent::new(event)], &metadata)
            .await
        {
            tracing::warn!(%error, "a failed sign-in could not be recorded");
        }
    }

    // ---- browser sessions ----

    /// Starts a browser session at `portal` for `user`; returns its cookie value.
    pub async fn sign_in(
        &self,
        portal: &PortalId,
        user: GrantUser,
        ip: Option<IpAddr>,
        duration: TimeDelta,
    ) -> Result<Secret, AppError> {
        let cookie = new_secret("ps_")?;
        let session_id = new_id()?;
        let actor = user_actor(&user);
        let event = UserSignedIn {
            session_id: session_id.clone(),
            session_hash: hash(&cookie.0),
            portal_id: portal.clone(),
            user,
            ip: ip.map(|ip| ip.to_string()),
            expires_at: self.clock.now() + duration,
        };
        self.execute(&browser_session_stream(&session_id), &actor, |m| {
            decide(
                &m.sign_ins.session_state(&session_id),
                BrowserSessionCommand::SignIn(Box::new(event)),
                &(),
            )
        })
        .await?;
        Ok(cookie)
    }

    /// The signed-in session with this cookie at `portal`, if any.
    pub fn signed_in(&self, portal: &PortalId, cookie: &str) -> Option<UserSignedIn> {
        self.read(|m| {
            m.sign_ins
                .live_session(&hash(cookie), self.clock.now())
                .filter(|s| &s.portal_id == portal)
                .cloned()
        })
    }

    /// Ends the session with this cookie and revokes every grant its person holds at the
    /// portal (the product's sign-out: the MCP clients lose access too).
    pub async fn sign_out(&self, portal: &PortalId, cookie: &str) -> Result<(), AppError> {
        let Some(session) = self.signed_in(portal, cookie) else { return Ok(()) };
        let actor = user_actor(&session.user);
        self.execute(&browser_session_stream(&session.session_id), &actor, |m| {
            decide(
                &m.sign_ins.session_state(&session.session_id),
                BrowserSessionCommand::SignOut,
                &(),
            )
        })
        .await?;
        self.revoke_grants_of(&session.user, Some(portal), RevokeReason::SignedOut, &actor).await?;
        // The person's upstream authorizations go too, everywhere (they are theirs, not the
        // portal's), with the connections that carried them and their selection links.
        let user_id = &session.user.id;
        self.gateway.selections.remove_user(user_id);
        self.gateway.upstreams.remove_owner(
            &portico_core::domain::upstream_auth::UpstreamGrantOwner::User { id: user_id.clone() },
        );
        self.gateway.grants.revoke_user(user_id, actor).await.map_err(AppError::unavailable)?;
        Ok(())
    }

    /// Revokes every grant of `user` (at `portal`, or everywhere) and ends their browser
    /// sessions there.
    pub async fn revoke_grants_of(
        &self,
        user: &GrantUser,
        portal: Option<&PortalId>,
        reason: RevokeReason,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let ids: Vec<String> = self.read(|m| match portal {
            Some(p) => m.grants.of_user(&user.id, p).map(str::to_owned).collect(),
            None => m.grants.of_user_anywhere(&user.id).map(str::to_owned).collect(),
        });
        for id in ids {
            self.execute_grant(&id, GrantCommand::Revoke(reason), actor).await?;
        }
        Ok(())
    }

    /// Ends every session and revokes every grant of the person with `email`, at every portal
    /// (the product's `revoke_user`). `false` when no one with that address ever signed in.
    pub async fn revoke_user(&self, email: &str, actor: &Actor) -> Result<bool, AppError> {
        let email = email.trim().to_ascii_lowercase();
        let Some((user, sessions)) = self.read(|m| {
            let user = m.sign_ins.user_by_email(&email)?;
            let sessions: Vec<UserSignedIn> =
                m.sign_ins.sessions_of_user(&user.id, self.clock.now()).cloned().collect();
            Some((user.clone(), sessions))
        }) else {
            return Ok(false);
        };
        for session in sessions {
            self.execute(&browser_session_stream(&session.session_id), actor, |m| {
                decide(
                    &m.sign_ins.session_state(&session.session_id),
                    BrowserSessionCommand::SignOut,
                    &(),
                )
            })
            .await?;
        }
        let grants: Vec<String> =
            self.read(|m| m.grants.of_user_anywhere(&user.id).map(str::to_owned).collect());
        for id in grants {
            self.execute_grant(&id, GrantCommand::Revoke(RevokeReason::UserRevoked), actor).await?;
        }
        Ok(true)
    }

    // ---- clients and consent ----

    /// Registers a public client at `portal` (RFC 7591) under its DCR settings.
    pub async fn register_client(
        &self,
        portal: &PortalId,
        registration: ClientRegistration,
        settings: &DcrSettings,
        ip: Option<IpAddr>,
    ) -> Result<OAuthClientRegistered, SignInError> {
        if let Some(ip) = ip {
            let mut state = self.pins.lock();
            if !within_limit(&mut state.registered_from, ip, REGISTRATIONS_PER_IP, Instant::now()) {
                return Err(SignInError::RateLimited(
                    "too many client registrations from this address; retry in a few minutes"
                        .to_owned(),
                ));
            }
        }
        if !settings.enabled {
            return Err(SignInError::InvalidClientMetadata(
                "dynamic client registration is disabled for this portal".to_owned(),
            ));
        }
        if registration.redirect_uris.is_empty() {
            return Err(SignInError::InvalidRedirectUri("`redirect_uris` is required".to_owned()));
        }
        for (i, uri) in registration.redirect_uris.iter().enumerate() {
            let url = check_redirect_uri(uri).map_err(|m| {
                SignInError::InvalidRedirectUri(format!("invalid `redirect_uris[{i}]`: {m}"))
            })?;
            if !settings.allows(&url) {
                return Err(SignInError::InvalidRedirectUri(format!(
                    "`{uri}` is not a redirect URI this portal accepts for dynamic registration"
                )));
            }
        }
        if let Some(t) = registration
            .grant_types
            .iter()
            .find(|t| !matches!(t.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(SignInError::InvalidClientMetadata(format!(
                "grant type `{t}` is not supported: only `authorization_code` and `refresh_token`"
            )));
        }
        if let Some(t) = registration.response_types.iter().find(|t| t.as_str() != "code") {
            return Err(SignInError::InvalidClientMetadata(format!(
                "response type `{t}` is not supported: only `code`"
            )));
        }
        let client = OAuthClientRegistered {
            client_id: new_id()?,
            portal_id: portal.clone(),
            client_name: registration.client_name.unwrap_or_else(|| "MCP client".to_owned()),
            redirect_uris: registration.redirect_uris,
            client_uri: registration.client_uri,
            pre_registered: false,
        };
        self.execute_client(client.clone(), &Actor::system("oauth")).await?;
        Ok(client)
    }

    /// Registers a public client at `portal` as an admin: any valid redirect URIs, whatever the
    /// portal's rules for dynamic registration.
    pub async fn pre_register_client(
        &self,
        portal: &PortalId,
        client_name: String,
        redirect_uris: Vec<String>,
        actor: &Actor,
    ) -> Result<OAuthClientRegistered, AppError> {
        if self.read(|m| m.portals.get(portal).is_none()) {
            return Err(DomainError::NotFound { kind: "portal", id: portal.to_string() }.into());
        }
        let client = OAuthClientRegistered {
            client_id: new_id()?,
            portal_id: portal.clone(),
            client_name,
            redirect_uris,
            client_uri: None,
            pre_registered: true,
        };
        self.execute_client(client.clone(), actor).await.map_err(|e| match e {
            SignInError::App(e) => e,
            SignInError::InvalidRedirectUri(m) | SignInError::InvalidClientMetadata(m) => {
                AppError::Invalid(m)
            }
            other => AppError::Invalid(other.to_string()),
        })?;
        Ok(client)
    }

    /// Removes a registered client of `portal` and revokes every grant it holds.
    pub async fn remove_client(
        &self,
        portal: &PortalId,
        client_id: &str,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let state = self.read(|m| {
            m.sign_ins
                .client(client_id)
                .filter(|c| &c.portal_id == portal)
                .map(|c| OAuthClientState::fold([Event::OAuthClientRegistered(c.clone())]))
        });
        let Some(state) = state else {
            return Err(
                DomainError::NotFound { kind: "OAuth client", id: client_id.to_owned() }.into()
            );
        };
        self.execute(&oauth_client_stream(client_id), actor, |_| {
            decide(&state, OAuthClientCommand::Remove, &())
        })
        .await?;
        let grants: Vec<String> =
            self.read(|m| m.grants.of_client(client_id).map(str::to_owned).collect());
        for id in grants {
            self.execute_grant(&id, GrantCommand::Revoke(RevokeReason::ClientRemoved), actor)
                .await?;
        }
        Ok(())
    }

    async fn execute_client(
        &self,
        client: OAuthClientRegistered,
        actor: &Actor,
    ) -> Result<(), SignInError> {
        let client_id = client.client_id.clone();
        self.execute(&oauth_client_stream(&client_id), actor, |_| {
            decide(&OAuthClientState::default(), OAuthClientCommand::Register(client), &())
        })
        .await
        .map_err(|e| match e {
            AppError::Rule(rule) => SignInError::from(rule),
            other => SignInError::App(other),
        })?;
        Ok(())
    }

    /// The resource (RFC 8707) the grant of this code or refresh token was issued for.
    pub fn resource_of(&self, code_or_refresh_token: &str) -> Option<String> {
        let token_hash = hash(code_or_refresh_token);
        self.read(|m| {
            let id = m
                .grants
                .by_code_hash(&token_hash)
                .or_else(|| m.grants.by_refresh_token_hash(&token_hash))?;
            Some(m.grants.state(id).grant?.resource)
        })
    }

    /// The client `client_id` as `portal` may use it: one registered there, or one whose id is
    /// the URL of its Client ID Metadata Document (fetched through the SSRF guard, checked, and
    /// cached for [`CIMD_CACHE_TTL`]).
    pub async fn oauth_client(
        &self,
        client_id: &str,
        portal: &PortalId,
    ) -> Result<Option<OAuthClient>, SignInError> {
        if let Some(url) = cimd_url(client_id, self.gateway.upstreams.config().policy.allow_private)
        {
            return self.metadata_document_client(client_id, &url).await.map(Some);
        }
        Ok(self.read(|m| {
            m.sign_ins.client(client_id).filter(|c| &c.portal_id == portal).map(|c| OAuthClient {
                client_id: c.client_id.clone(),
                client_name: c.client_name.clone(),
                redirect_uris: c.redirect_uris.clone(),
            })
        }))
    }

    async fn metadata_document_client(
        &self,
        client_id: &str,
        url: &url::Url,
    ) -> Result<OAuthClient, SignInError> {
        if let Some(client) = self.cimd_cache.get(client_id) {
            return Ok(client);
        }
        let policy = self.gateway.upstreams.config().policy;
        let document = portico_gateway::transport::http_client::fetch_json(
            policy,
            url,
            CIMD_MAX_BYTES,
            CIMD_FETCH_TIMEOUT,
        )
        .await
        .map_err(|e| SignInError::InvalidClient(format!("the client's metadata document: {e}")))?;
        let client = client_from_document(client_id, &document)?;
        self.cimd_cache.put(client.clone());
        Ok(client)
    }

    /// Whether `user` already let `client_id` use `portal` as them.
    pub fn has_consent(&self, user: &GrantUser, client_id: &str, portal: &PortalId) -> bool {
        self.read(|m| m.sign_ins.has_consent(&user.id, client_id, portal))
    }

    /// Remembers that `user` let `client_id` use `portal` as them.
    pub async fn give_consent(
        &self,
        user: &GrantUser,
        client_id: &str,
        portal: &PortalId,
    ) -> Result<(), AppError> {
        let stream = consent_stream(&user.id, client_id, portal);
        let given = self.has_consent(user, client_id, portal);
        let state =
            portico_core::domain::sign_in::ConsentState { given, version: u64::from(given) };
        let command = ConsentGiven {
            user_id: user.id.clone(),
            client_id: client_id.to_owned(),
            portal_id: portal.clone(),
        };
        self.execute(&stream, &user_actor(user), |_| decide(&state, command, &())).await?;
        Ok(())
    }

    // ---- Cedar ----

    /// Whether the policies let `user` connect to `portal` now, from `ip`.
    pub fn may_connect(
        &self,
        user: &GrantUser,
        portal: &PortalId,
        ip: Option<IpAddr>,
    ) -> Result<bool, AppError> {
        let context = RequestContext::new(
            self.clock.now(),
            ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        );
        self.read(|m| self.authz.access(m, &principal_of(user), portal, &context))
            .map(|access| access.visibility.portal.allowed)
            .map_err(AppError::internal)
    }

    // ---- grants ----

    /// Issues an authorization code for `request`, which `user` allowed; the policies must let
    /// them connect to the portal.
    pub async fn authorize_grant(
        &self,
        request: AuthorizationRequest,
        user: GrantUser,
        settings: &SignInSettings,
        ip: Option<IpAddr>,
    ) -> Result<Secret, SignInError> {
        if !self.may_connect(&user, &request.portal_id, ip)? {
            return Err(SignInError::AccessDenied(
                "no policy lets you connect to this portal".to_owned(),
            ));
        }
        let code = new_secret("pc_")?;
        let grant_id = new_id()?;
        let now = self.clock.now();
        let actor = user_actor(&user);
        let grant = GrantAuthorized {
            grant_id: grant_id.clone(),
            portal_id: request.portal_id,
            client_id: request.client_id,
            redirect_uri: request.redirect_uri,
            code_challenge: request.code_challenge,
            code_hash: hash(&code.0),
            code_expires_at: now + CODE_LIFETIME,
            resource: request.resource,
            scope: request.scope,
            user,
            session_expires_at: now + settings.session_duration,
        };
        self.execute_grant(&grant_id, GrantCommand::Authorize(AuthorizeGrant(grant)), &actor)
            .await
            .map_err(grant_error)?;
        Ok(code)
    }

    /// The `authorization_code` grant: redeems `code` for tokens.
    pub async fn redeem_code(
        &self,
        portal: &PortalId,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        settings: &SignInSettings,
    ) -> Result<IssuedTokens, SignInError> {
        let code_hash = hash(code);
        let Some((grant_id, grant)) = self.read(|m| {
            let id = m.grants.by_code_hash(&code_hash)?;
            Some((id.to_owned(), m.grants.state(id)))
        }) else {
            return Err(SignInError::InvalidGrant("unknown code".to_owned()));
        };
        if grant.grant.as_ref().is_some_and(|g| &g.portal_id != portal) {
            return Err(SignInError::InvalidGrant(
                "the code was issued for another portal".to_owned(),
            ));
        }
        let actor =
            grant.grant.as_ref().map_or_else(|| Actor::system("oauth"), |g| user_actor(&g.user));
        let access = new_secret("pa_")?;
        let refresh = new_secret("pr_")?;
        let now = self.clock.now();
        let command = RedeemCode {
            code_hash,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_verifier: code_verifier.to_owned(),
            now,
            access_token_hash: hash(&access.0),
            access_expires_at: now + settings.access_token_lifetime,
            refresh_token_hash: hash(&refresh.0),
        };
        let events = self
            .execute_grant(&grant_id, GrantCommand::Redeem(command), &actor)
            .await
            .map_err(grant_error)?;
        self.issued(&grant_id, events, access, refresh, now)
    }

    /// The `refresh_token` grant: rotates the refresh token. The policies must still let the
    /// person connect; if they do not, the grant is revoked.
    pub async fn refresh_grant(
        &self,
        portal: &PortalId,
        refresh_token: &str,
        client_id: &str,
        settings: &SignInSettings,
        ip: Option<IpAddr>,
    ) -> Result<IssuedTokens, SignInError> {
        let refresh_hash = hash(refresh_token);
        let Some((grant_id, state)) = self.read(|m| {
            let id = m.grants.by_refresh_token_hash(&refresh_hash)?;
            Some((id.to_owned(), m.grants.state(id)))
        }) else {
            return Err(SignInError::InvalidGrant("unknown refresh token".to_owned()));
        };
        let Some(grant) = state.grant.clone() else {
            return Err(SignInError::InvalidGrant("unknown refresh token".to_owned()));
        };
        if &grant.portal_id != portal {
            return Err(SignInError::InvalidGrant(
                "the refresh token was issued for another portal".to_owned(),
            ));
        }
        let actor = user_actor(&grant.user);
        let current = state.refresh_token_hash.as_deref() == Some(refresh_hash.as_str());
        if current
            && state.revoked.is_none()
            && !self.may_connect(&grant.user, &grant.portal_id, ip)?
        {
            self.execute_grant(&grant_id, GrantCommand::Revoke(RevokeReason::AccessLost), &actor)
                .await?;
            return Err(SignInError::InvalidGrant(
                "the policies no longer let this person connect to the portal".to_owned(),
            ));
        }
        let access = new_secret("pa_")?;
        let refresh = new_secret("pr_")?;
        let now = self.clock.now();
        let command = RefreshGrant {
            refresh_token_hash: refresh_hash,
            client_id: client_id.to_owned(),
            now,
            access_token_hash: hash(&access.0),
            access_expires_at: now + settings.access_token_lifetime,
            new_refresh_token_hash: hash(&refresh.0),
        };
        let events = self
            .execute_grant(&grant_id, GrantCommand::Refresh(command), &actor)
            .await
            .map_err(grant_error)?;
        self.issued(&grant_id, events, access, refresh, now)
    }

    /// Revokes the grant of an access or refresh token (RFC 7009: an unknown token is not an
    /// error).
    pub async fn revoke_token(&self, token: &str) -> Result<(), AppError> {
        let token_hash = hash(token);
        let found = self.read(|m| {
            let id = m
                .grants
                .by_access_token_hash(&token_hash)
                .or_else(|| m.grants.by_refresh_token_hash(&token_hash))?;
            let state = m.grants.state(id);
            Some((id.to_owned(), state.grant?.user))
        });
        let Some((grant_id, user)) = found else { return Ok(()) };
        self.execute_grant(
            &grant_id,
            GrantCommand::Revoke(RevokeReason::ClientRevoked),
            &user_actor(&user),
        )
        .await?;
        Ok(())
    }

    /// The person an access token acts for at `portal`, if the token is valid now. A token
    /// issued for another portal is refused.
    pub fn user_of_access_token(&self, token: &str, portal: &PortalId) -> Option<GrantUser> {
        self.grant_of_access_token(token, portal).map(|(user, _)| user)
    }

    /// The person a live access token of `portal` acts for, and the id of its grant.
    pub fn grant_of_access_token(
        &self,
        token: &str,
        portal: &PortalId,
    ) -> Option<(GrantUser, String)> {
        let token_hash = hash(token);
        self.read(|m| {
            let live = m.grants.live_access_token(&token_hash, self.clock.now())?;
            (&live.grant.portal_id == portal)
                .then(|| (live.grant.user.clone(), live.grant.grant_id.clone()))
        })
    }

    /// Decides and appends a grant command; the events it appended.
    async fn execute_grant(
        &self,
        grant_id: &str,
        command: GrantCommand,
        actor: &Actor,
    ) -> Result<Vec<Event>, AppError> {
        let mut decided_events = Vec::new();
        self.execute(&grant_stream(grant_id), actor, |m| {
            let decided = decide(&m.grants.state(grant_id), command, &())?;
            decided_events = decided.events.clone();
            Ok(decided)
        })
        .await?;
        Ok(decided_events)
    }

    /// The tokens just issued, unless the command revoked the grant (a replay).
    fn issued(
        &self,
        grant_id: &str,
        events: Vec<Event>,
        access: Secret,
        refresh: Secret,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, SignInError> {
        match events.first() {
            Some(Event::GrantCodeRedeemed(e)) => {
                Ok(tokens(access, refresh, e.access_expires_at, now, grant_id, self))
            }
            Some(Event::GrantRefreshed(e)) => {
                Ok(tokens(access, refresh, e.access_expires_at, now, grant_id, self))
            }
            Some(Event::GrantRevoked(e)) => {
                tracing::warn!(grant = grant_id, reason = ?e.reason, "a replayed OAuth credential revoked its grant");
                Err(SignInError::InvalidGrant(
                    match e.reason {
                        RevokeReason::CodeReplayed => {
                            "the code was already used; the tokens issued for it are revoked"
                        }
                        _ => "the refresh token was already used; the grant is revoked",
                    }
                    .to_owned(),
                ))
            }
            _ => Err(SignInError::App(AppError::internal("a grant command decided nothing"))),
        }
    }
}

fn tokens(
    access: Secret,
    refresh: Secret,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    grant_id: &str,
    app: &App,
) -> IssuedTokens {
    let scope = app.read(|m| m.grants.state(grant_id).grant.and_then(|g| g.scope));
    IssuedTokens {
        access_token: access,
        refresh_token: refresh,
        expires_in: (expires_at - now).num_seconds().max(0),
        scope,
    }
}

fn grant_error(e: AppError) -> SignInError {
    match e {
        AppError::Rule(rule) => SignInError::from(rule),
        other => SignInError::App(other),
    }
}

/// Stores a new challenge for `email`; its id and PIN.
fn new_challenge(
    state: &mut PinState,
    portal: &PortalId,
    email: &str,
    now: Instant,
) -> Result<(String, Secret), SignInError> {
    if state.challenges.len() >= MAX_CHALLENGES {
        state.challenges.retain(|_, c| c.expires_at > now);
    }
    if state.challenges.len() >= MAX_CHALLENGES {
        return Err(SignInError::App(AppError::unavailable("too many sign-ins are in progress")));
    }
    let code = random_pin()?;
    let challenge_id = crate::random_hex::<16>()?;
    state.challenges.insert(
        challenge_id.clone(),
        Challenge {
            portal_id: portal.clone(),
            email: email.to_owned(),
            code_hash: hash(&code.0),
            expires_at: now + PIN_LIFETIME,
            attempts_left: PIN_ATTEMPTS,
        },
    );
    Ok((challenge_id, code))
}

/// A uniformly random 6-digit PIN.
fn random_pin() -> Result<Secret, AppError> {
    loop {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).map_err(AppError::internal)?;
        let n = u32::from_le_bytes(bytes);
        // Rejection sampling: the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return Ok(Secret(format!("{:06}", n % 1_000_000)));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "https://app.example.com/oauth/client.json";

    fn document() -> serde_json::Value {
        json!({
            "client_id": ID,
            "client_name": "Example app",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
            "token_endpoint_auth_method": "none",
        })
    }

    #[test]
    fn a_metadata_document_url_is_https_with_a_path() {
        assert!(cimd_url(ID, false).is_some());
        assert!(cimd_url("https://app.example.com", false).is_none(), "no path");
        assert!(cimd_url("https://app.example.com/", false).is_none(), "root path");
        assert!(cimd_url("http://app.example.com/c.json", false).is_none(), "http");
        assert!(
            cimd_url("http://127.0.0.1:9/c.json", false).is_none(),
            "loopback http, not allowed"
        );
        assert!(cimd_url("http://127.0.0.1:9/c.json", true).is_some(), "loopback http, allowed");
        assert!(cimd_url("http://evil.example/c.json", true).is_none());
        assert!(cimd_url("https://u:p@app.example.com/c.json", false).is_none(), "user info");
        assert!(
            cimd_url("0f8e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", false).is_none(),
            "a registered id"
        );
    }

    #[test]
    fn a_metadata_document_must_name_itself_and_list_valid_redirect_uris() {
        let client = client_from_document(ID, &document()).unwrap();
        assert_eq!(client.client_name, "Example app");
        let cases = [
            (json!({"client_id": "https://other.example.com/c.json"}), "other than its own URL"),
            (json!({"client_name": ""}), "no usable `client_name`"),
            (json!({"redirect_uris": []}), "between 1 and 10"),
            (json!({"redirect_uris": ["http://evil.example/cb"]}), "invalid redirect URI"),
            (json!({"token_endpoint_auth_method": "client_secret_basic"}), "public clients"),
        ];
        for (patch, phrase) in cases {
            let mut doc = document();
            for (k, v) in patch.as_object().unwrap() {
                doc[k] = v.clone();
            }
            let error = client_from_document(ID, &doc).unwrap_err().to_string();
            assert!(error.contains(phrase), "{patch}: {error}");
        }
        assert!(client_from_document(ID, &json!([1])).is_err());
    }
}
