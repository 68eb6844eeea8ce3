//! The Access application of each portal: who may sign in to it and how (Cloudflare Access's
//! application of type `mcp_portal`).
//!
//! An application exists exactly while its portal does, without an event of its own: its id
//! ([`access_app_id`]) and audience tag ([`access_app_aud`]) are derived from the portal id, its
//! name and domain are the portal's. What an admin changes, its [`AccessAppConfiguration`], is
//! recorded on the stream `access-app-{portal_id}` ([`access_app_stream`]) as
//! [`AccessAppUpdated`], decided by [`AccessAppState`]'s rules: the portal must exist, and the
//! identity providers it allows too.
//!
//! Each [`AccessAppUpdated`] names the portal's generation (the stream version of the
//! `PortalAdded` that created the portal), so that a change decided for a portal that was then
//! deleted never applies to a new portal created later with the same id: a new portal starts
//! from the defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::DomainError;
use super::duration::GoDuration;
use super::identity_provider::IdentityProviderId;
use super::ids::{PortalId, derived_uuid, truncate_for_message};
use super::validate::{self, MAX_URL_LEN};
use crate::event::Event;

/// The `type` of every application Portico has.
pub const APP_TYPE: &str = "mcp_portal";
/// How long a sign-in lasts unless configured otherwise.
pub const DEFAULT_SESSION_DURATION: &str = "24h";
/// The message of the block page unless configured otherwise (Cloudflare's).
pub const DEFAULT_DENY_MESSAGE: &str = "That account does not have access";
/// How long an OAuth access token lives unless configured otherwise.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: &str = "15m";
/// The most identity providers one application may list.
pub const MAX_ALLOWED_IDPS: usize = 64;
/// The longest block-page message, in characters.
pub const MAX_DENY_MESSAGE_LEN: usize = 1024;
/// The most redirect URIs dynamic client registration may allow.
pub const MAX_ALLOWED_URIS: usize = 64;
/// The bounds of `session_duration` and `grant.session_duration`: 1 minute to 1 year.
pub const SESSION_BOUNDS: [(Duration, &str); 2] =
    [(Duration::from_secs(60), "1m"), (Duration::from_secs(8760 * 3600), "8760h")];
/// The bounds of `grant.access_token_lifetime`: 1 minute to 1 day.
pub const ACCESS_TOKEN_BOUNDS: [(Duration, &str); 2] =
    [(Duration::from_secs(60), "1m"), (Duration::from_secs(24 * 3600), "24h")];

/// The stream of a portal's application settings: `access-app-{portal_id}`.
pub fn access_app_stream(portal: &PortalId) -> String {
    format!("access-app-{portal}")
}

/// The id of a portal's application: the UUIDv5 of the portal id.
pub fn access_app_id(portal: &PortalId) -> uuid::Uuid {
    derived_uuid(&format!("access-app:{portal}"))
}

/// The audience tag of a portal's application: 64 lowercase hex characters derived from the
/// portal id (the `PortalAUD` of its request logs).
pub fn access_app_aud(portal: &PortalId) -> String {
    let digest = sha2::Sha256::digest(format!("portico access application audience:{portal}"));
    hex::encode(digest)
}

/// Dynamic client registration (RFC 7591) at the portal's authorization server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicClientRegistration {
    pub enabled: bool,
    /// Any redirect URI on `localhost` is allowed.
    pub allow_any_on_localhost: bool,
    /// Any redirect URI on a loopback address (`127.0.0.1`, `[::1]`) is allowed.
    pub allow_any_on_loopback: bool,
    /// Further allowed redirect URIs: `http(s)` ones may end in `/*` to allow every path below;
    /// custom-scheme ones match exactly.
    pub allowed_uris: Vec<String>,
}

/// The lifetimes of what the portal's authorization server issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConfiguration {
    pub access_token_lifetime: GoDuration,
    /// How long a grant (and its refresh tokens) lasts; `None`: the application's
    /// `session_duration`.
    pub session_duration: Option<GoDuration>,
}

/// The portal's OAuth authorization server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthConfiguration {
    pub enabled: bool,
    pub dynamic_client_registration: DynamicClientRegistration,
    pub grant: GrantConfiguration,
}

/// An application's settings as configured; a write replaces all of them, and what it omits
/// takes the default ([`Default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAppConfiguration {
    /// The providers people may sign in with; empty: every provider of the account.
    pub allowed_idps: Vec<IdentityProviderId>,
    /// Skip the choice of provider and go straight to the only allowed one.
    pub auto_redirect_to_identity: bool,
    pub session_duration: GoDuration,
    pub custom_deny_message: String,
    /// Where people who fail an identity rule are sent instead of the block page.
    pub custom_deny_url: Option<String>,
    /// Where people who fail a rule other than identity are sent.
    pub custom_non_identity_deny_url: Option<String>,
    pub oauth_configuration: OAuthConfiguration,
}

impl Default for AccessAppConfiguration {
    /// The defaults let the MCP Inspector and other local clients connect: OAuth on, dynamic
    /// client registration on, with any redirect URI on `localhost` and loopback addresses.
    fn default() -> Self {
        AccessAppConfiguration {
            allowed_idps: Vec::new(),
            auto_redirect_to_identity: false,
            session_duration: GoDuration::known(
                DEFAULT_SESSION_DURATION,
                Duration::from_secs(24 * 3600),
            ),
            custom_deny_message: DEFAULT_DENY_MESSAGE.to_owned(),
            custom_deny_url: None,
            custom_non_identity_deny_url: None,
            oauth_configuration: OAuthConfiguration {
                enabled: true,
                dynamic_client_registration: DynamicClientRegistration {
                    enabled: true,
                    allow_any_on_localhost: true,
                    allow_any_on_loopback: true,
                    allowed_uris: Vec::new(),
                },
                grant: GrantConfiguration {
                    access_token_lifetime: GoDuration::known(
                        DEFAULT_ACCESS_TOKEN_LIFETIME,
                        Duration::from_secs(15 * 60),
                    ),
                    session_duration: None,
                },
            },
        }
    }
}

/// A portal's application settings were replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAppUpdated {
    pub portal_id: PortalId,
    /// The stream version of the `PortalAdded` that created the portal these settings are for.
    pub portal_generation: u64,
    pub configuration: AccessAppConfiguration,
}

/// The settings as a client writes them; `None` and empty lists take the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessAppInput {
    /// Identity provider ids, as sent.
    pub allowed_idps: Vec<String>,
    pub auto_redirect_to_identity: bool,
    pub session_duration: Option<String>,
    pub custom_deny_message: Option<String>,
    /// `None` or `""`: no redirect.
    pub custom_deny_url: Option<String>,
    /// `None` or `""`: no redirect.
    pub custom_non_identity_deny_url: Option<String>,
    pub oauth_configuration: OAuthInput,
}

/// `oauth_configuration` as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OAuthInput {
    pub enabled: Option<bool>,
    pub dynamic_client_registration: DynamicClientRegistrationInput,
    pub grant: GrantInput,
}

/// `oauth_configuration.dynamic_client_registration` as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DynamicClientRegistrationInput {
    pub enabled: Option<bool>,
    pub allow_any_on_localhost: Option<bool>,
    pub allow_any_on_loopback: Option<bool>,
    pub allowed_uris: Vec<String>,
}

/// `oauth_configuration.grant` as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantInput {
    pub access_token_lifetime: Option<String>,
    pub session_duration: Option<String>,
}

/// Replace the settings of portal `portal_id`'s application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAccessApp {
    pub portal_id: PortalId,
    pub input: AccessAppInput,
}

/// A command on an application's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessAppCommand {
    Update(UpdateAccessApp),
}

impl From<UpdateAccessApp> for AccessAppCommand {
    fn from(command: UpdateAccessApp) -> Self {
        AccessAppCommand::Update(command)
    }
}

/// What the rules need to know of the portals and identity providers that exist now.
pub trait AccessAppDirectory {
    /// The generation of portal `id` (the stream version of the `PortalAdded` that created
    /// it), or `None` if it does not exist.
    fn portal_generation(&self, id: &PortalId) -> Option<u64>;
    /// Whether identity provider `id` exists.
    fn identity_provider_exists(&self, id: &IdentityProviderId) -> bool;
}

/// A directory given as data (tests).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticDirectory {
    pub portals: BTreeMap<PortalId, u64>,
    pub identity_providers: BTreeSet<IdentityProviderId>,
}

impl AccessAppDirectory for StaticDirectory {
    fn portal_generation(&self, id: &PortalId) -> Option<u64> {
        self.portals.get(id).copied()
    }

    fn identity_provider_exists(&self, id: &IdentityProviderId) -> bool {
        self.identity_providers.contains(id)
    }
}

/// The state of an application's stream. `Default` is a stream without events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessAppState {
    /// The last settings recorded and the portal generation they are for.
    pub configured: Option<(u64, AccessAppConfiguration)>,
    /// How many events were folded: the version to expect on the next append.
    pub stream_version: u64,
}

impl AccessAppState {
    /// Folds one event. Holds no rules; events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        if let Event::AccessAppUpdated(e) = event {
            self.configured = Some((e.portal_generation, e.configuration.clone()));
            self.stream_version += 1;
        }
    }
}

/// The rules of the application commands.
pub fn decide(
    _state: &AccessAppState,
    command: AccessAppCommand,
    directory: &dyn AccessAppDirectory,
) -> Result<Vec<Event>, DomainError> {
    let AccessAppCommand::Update(UpdateAccessApp { portal_id, input }) = command;
    let Some(portal_generation) = directory.portal_generation(&portal_id) else {
        return Err(DomainError::NotFound { kind: "portal", id: portal_id.into() });
    };
    let configuration = configuration(input, directory)?;
    Ok(vec![Event::AccessAppUpdated(AccessAppUpdated {
        portal_id,
        portal_generation,
        configuration,
    })])
}

/// Checks the input and resolves its defaults.
fn configuration(
    input: AccessAppInput,
    directory: &dyn AccessAppDirectory,
) -> Result<AccessAppConfiguration, DomainError> {
    let defaults = AccessAppConfiguration::default();
    let allowed_idps = allowed_idps(&input.allowed_idps, directory)?;
    if input.auto_redirect_to_identity && allowed_idps.len() != 1 {
        return Err(DomainError::invalid(
            "auto_redirect_to_identity",
            format!(
                "requires exactly one identity provider in `allowed_idps`, which lists {}",
                allowed_idps.len()
            ),
        ));
    }
    let [min, max] = SESSION_BOUNDS;
    let session_duration = match input.session_duration {
        None => defaults.session_duration,
        Some(text) => {
            let duration = GoDuration::parse("session_duration", &text)?;
            duration.check_between("session_duration", min, max)?;
            duration
        }
    };
    let custom_deny_message = match input.custom_deny_message {
        None => defaults.custom_deny_message,
        Some(message) => deny_message(message)?,
    };
    let custom_deny_url = redirect_url("custom_deny_url", input.custom_deny_url)?;
    let custom_non_identity_deny_url =
        redirect_url("custom_non_identity_deny_url", input.custom_non_identity_deny_url)?;
    let oauth_configuration =
        oauth(input.oauth_configuration, &session_duration, defaults.oauth_configuration)?;
    Ok(AccessAppConfiguration {
        allowed_idps,
        auto_redirect_to_identity: input.auto_redirect_to_identity,
        session_duration,
        custom_deny_message,
        custom_deny_url,
        custom_non_identity_deny_url,
        oauth_configuration,
    })
}

fn allowed_idps(
    ids: &[String],
    directory: &dyn AccessAppDirectory,
) -> Result<Vec<IdentityProviderId>, DomainError> {
    if ids.len() > MAX_ALLOWED_IDPS {
        return Err(DomainError::invalid(
            "allowed_idps",
            format!(
                "lists {} identity providers; at most {MAX_ALLOWED_IDPS} are allowed",
                ids.len()
            ),
        ));
    }
    let mut parsed = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let field = format!("allowed_idps[{i}]");
        let id = IdentityProviderId::parse(&field, id)?;
        if parsed.contains(&id) {
            return Err(DomainError::invalid(field, format!("`{id}` is listed twice")));
        }
        if !directory.identity_provider_exists(&id) {
            return Err(DomainError::invalid(
                field,
                format!("identity provider `{id}` does not exist"),
            ));
        }
        parsed.push(id);
    }
    Ok(parsed)
}

fn deny_message(message: String) -> Result<String, DomainError> {
    const FIELD: &str = "custom_deny_message";
    if message.trim().is_empty() {
        return Err(DomainError::invalid(
            FIELD,
            format!("must not be empty; omit it for the default, `{DEFAULT_DENY_MESSAGE}`"),
        ));
    }
    if message.chars().count() > MAX_DENY_MESSAGE_LEN {
        return Err(DomainError::invalid(
            FIELD,
            format!(
                "`{}` is longer than {MAX_DENY_MESSAGE_LEN} characters",
                truncate_for_message(&message)
            ),
        ));
    }
    if message.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            FIELD,
            format!("`{}` must not contain control characters", truncate_for_message(&message)),
        ));
    }
    Ok(message)
}

/// A deny redirect: `None` or `""` for none, else an `https` URL.
fn redirect_url(field: &str, url: Option<String>) -> Result<Option<String>, DomainError> {
    match url {
        None => Ok(None),
        Some(url) if url.is_empty() => Ok(None),
        Some(url) => {
            validate::https_url(field, &url)?;
            Ok(Some(url))
        }
    }
}

fn oauth(
    input: OAuthInput,
    session_duration: &GoDuration,
    default: OAuthConfiguration,
) -> Result<OAuthConfiguration, DomainError> {
    let dcr = input.dynamic_client_registration;
    let default_dcr = default.dynamic_client_registration;
    let dynamic_client_registration = DynamicClientRegistration {
        enabled: dcr.enabled.unwrap_or(default_dcr.enabled),
        allow_any_on_localhost: dcr
            .allow_any_on_localhost
            .unwrap_or(default_dcr.allow_any_on_localhost),
        allow_any_on_loopback: dcr
            .allow_any_on_loopback
            .unwrap_or(default_dcr.allow_any_on_loopback),
        allowed_uris: allowed_uris(dcr.allowed_uris)?,
    };
    let [min, max] = SESSION_BOUNDS;
    const GRANT_SESSION: &str = "oauth_configuration.grant.session_duration";
    let grant_session = match input.grant.session_duration {
        None => None,
        Some(text) => {
            let duration = GoDuration::parse(GRANT_SESSION, &text)?;
            duration.check_between(GRANT_SESSION, min, max)?;
            Some(duration)
        }
    };
    const LIFETIME: &str = "oauth_configuration.grant.access_token_lifetime";
    let access_token_lifetime = match input.grant.access_token_lifetime {
        None => default.grant.access_token_lifetime,
        Some(text) => {
            let [min, max] = ACCESS_TOKEN_BOUNDS;
            let duration = GoDuration::parse(LIFETIME, &text)?;
            duration.check_between(LIFETIME, min, max)?;
            duration
        }
    };
    let (session, session_field) = match &grant_session {
        Some(grant) => (grant, GRANT_SESSION),
        None => (session_duration, "session_duration"),
    };
    if access_token_lifetime.value() > session.value() {
        return Err(DomainError::invalid(
            LIFETIME,
            format!(
                "`{access_token_lifetime}` is longer than the grant's session, `{session}` (from \
                 `{session_field}`): an access token cannot outlive its grant"
            ),
        ));
    }
    Ok(OAuthConfiguration {
        enabled: input.enabled.unwrap_or(default.enabled),
        dynamic_client_registration,
        grant: GrantConfiguration { access_token_lifetime, session_duration: grant_session },
    })
}

/// Redirect URIs dynamic client registration allows: an `https` URL (or `http` on the
/// loopback host), whose path may end in `/*`; or a custom-scheme URI (`com.example.app:/cb`),
/// matched exactly. No fragment, no credentials, no other `*`.
fn allowed_uris(uris: Vec<String>) -> Result<Vec<String>, DomainError> {
    const FIELD: &str = "oauth_configuration.dynamic_client_registration.allowed_uris";
    if uris.len() > MAX_ALLOWED_URIS {
        return Err(DomainError::invalid(
            FIELD,
            format!("lists {} URIs; at most {MAX_ALLOWED_URIS} are allowed", uris.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, uri) in uris.iter().enumerate() {
        let field = format!("{FIELD}[{i}]");
        let quoted = truncate_for_message(uri);
        let invalid = |reason: &str| DomainError::invalid(&field, format!("`{quoted}` {reason}"));
        if uri.is_empty() {
            return Err(DomainError::invalid(&field, "must not be empty"));
        }
        if uri.len() > MAX_URL_LEN {
            return Err(invalid(&format!("is longer than {MAX_URL_LEN} bytes")));
        }
        if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        let web = matches!(scheme.as_deref(), Some("http" | "https"));
        let base = if web { uri.strip_suffix("/*").unwrap_or(uri) } else { uri };
        if base.contains('*') {
            return Err(invalid(if web {
                "may contain `*` only as a final `/*`"
            } else {
                "must not contain `*`: custom-scheme URIs match exactly"
            }));
        }
        let url = match url::Url::parse(base) {
            Ok(url) => url,
            Err(e) => return Err(invalid(&format!("is not a valid URI: {e}"))),
        };
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment (`#...`)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain credentials (`user:password@`)"));
        }
        if web {
            let Some(host) = url.host() else { return Err(invalid("has no host")) };
            if url.scheme() == "http" && !validate::is_loopback_host(&host) {
                return Err(invalid(
                    "must use `https`; `http` is accepted only on the loopback host",
                ));
            }
        }
        if !seen.insert(uri.as_str()) {
            return Err(invalid("is listed twice"));
        }
    }
    Ok(uris)
}

impl super::Aggregate for AccessAppState {
    type Command = AccessAppCommand;
    type Services = dyn AccessAppDirectory;

    fn apply(&mut self, event: &Event) {
        AccessAppState::apply(self, event);
    }

    fn decide(
        &self,
        command: AccessAppCommand,
        directory: &dyn AccessAppDirectory,
    ) -> Result<Vec<Event>, DomainError> {
        decide(self, command, directory)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
