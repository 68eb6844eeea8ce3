//! Identity providers: how people sign in to portals, in the shape of Cloudflare Access's
//! identity providers.
//!
//! Two types exist: `onetimepin` (a code sent by email; configured by nothing, at most one per
//! account) and `oidc` (any OpenID Connect provider). An OIDC provider's client secret never
//! enters the log: it goes to the vault under the owner [`vault_owner`], and the events carry
//! only its version ([`OidcConfig::client_secret_version`]).
//!
//! The one-time PIN provider always has the id [`one_time_pin_id`], so that "at most one per
//! account" is the rule of a single stream: of two concurrent creates, one append fails. Every
//! other provider gets a random UUID.
//!
//! [`decide`] holds the rules of [`IdentityProviderCommand`]s; the rule that a provider still
//! allowed by an Access application cannot be deleted looks the applications up through
//! [`IdentityProviderUsage`]. [`IdentityProviderState::apply`] folds one provider's stream
//! (`identity-provider-{id}`) and holds no rules.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DomainError;
use super::ids::{PortalId, derived_uuid, truncate_for_message};
use super::validate;
use crate::event::Event;
use crate::vault::SecretRef;

/// The longest provider name, in characters (Cloudflare's limit).
pub const MAX_NAME_LEN: usize = 350;
/// The longest OAuth client id, in characters.
pub const MAX_CLIENT_ID_LEN: usize = 1024;
/// The longest OAuth client secret, in bytes.
pub const MAX_CLIENT_SECRET_LEN: usize = 4096;
/// The most scopes, and separately custom claims, of one provider.
pub const MAX_SCOPES: usize = 32;
/// The longest scope, in characters.
pub const MAX_SCOPE_LEN: usize = 128;
/// The most custom claims of one provider.
pub const MAX_CLAIMS: usize = 32;
/// The longest claim name, in characters.
pub const MAX_CLAIM_NAME_LEN: usize = 128;
/// The scopes asked for when none are configured.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// The claim that holds the email address unless configured otherwise.
pub const DEFAULT_EMAIL_CLAIM: &str = "email";
/// The claim that holds the user's groups unless configured otherwise (Portico's addition).
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// What the API answers in place of a client secret, as Cloudflare does. Sent back unchanged
/// in an update, it keeps the stored secret.
pub const MASKED_SECRET: &str = "**********";
/// The vault kind of an OIDC provider's client secret.
pub const CLIENT_SECRET_KIND: &str = "client_secret";

/// The id of an identity provider: a UUID, written lowercase with hyphens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdentityProviderId(Uuid);

impl IdentityProviderId {
    /// Parses a lowercase hyphenated UUID; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, DomainError> {
        match Uuid::parse_str(value) {
            Ok(uuid) if uuid.hyphenated().to_string() == value => Ok(IdentityProviderId(uuid)),
            _ => Err(DomainError::invalid(
                field,
                format!("`{}` is not a lowercase UUID", truncate_for_message(value)),
            )),
        }
    }

    /// A fresh random id.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        IdentityProviderId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl TryFrom<String> for IdentityProviderId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse("id", &value)
    }
}

impl From<IdentityProviderId> for String {
    fn from(id: IdentityProviderId) -> String {
        id.to_string()
    }
}

impl std::fmt::Display for IdentityProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The id of the one-time PIN provider, on every Portico instance.
pub fn one_time_pin_id() -> IdentityProviderId {
    IdentityProviderId(derived_uuid("identity-provider:onetimepin"))
}

/// The stream of one provider: `identity-provider-{id}`.
pub fn identity_provider_stream(id: &IdentityProviderId) -> String {
    format!("identity-provider-{id}")
}

/// The vault owner of a provider's secrets: `identity-provider:{id}`.
pub fn vault_owner(id: &IdentityProviderId) -> String {
    format!("identity-provider:{id}")
}

/// The types of identity provider Portico supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdentityProviderType {
    /// A one-time code sent by email.
    #[serde(rename = "onetimepin")]
    OneTimePin,
    /// A generic OpenID Connect provider.
    #[serde(rename = "oidc")]
    Oidc,
}

impl IdentityProviderType {
    /// Every supported type.
    pub const ALL: [IdentityProviderType; 2] =
        [IdentityProviderType::OneTimePin, IdentityProviderType::Oidc];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityProviderType::OneTimePin => "onetimepin",
            IdentityProviderType::Oidc => "oidc",
        }
    }

    /// Parses a wire name; anything else is refused, naming the supported types.
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        Self::ALL.into_iter().find(|t| t.as_str() == value).ok_or_else(|| {
            DomainError::invalid(
                "type",
                format!(
                    "`{}` is not supported; Portico supports the types `onetimepin` and `oidc` \
                     (use `oidc` for any OpenID Connect provider)",
                    truncate_for_message(value)
                ),
            )
        })
    }
}

/// An OpenID Connect provider's configuration, as recorded. The client secret is in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcConfig {
    pub client_id: String,
    /// The provider's `authorization_endpoint`.
    pub auth_url: String,
    /// The provider's `token_endpoint`.
    pub token_url: String,
    /// The provider's `jwks_uri`, whose keys sign its ID tokens.
    pub certs_url: String,
    pub scopes: Vec<String>,
    /// Extra claims to keep from the ID token.
    pub claims: Vec<String>,
    pub email_claim_name: String,
    pub pkce_enabled: bool,
    /// The claim whose values become the user's groups (Portico's addition).
    pub groups_claim_name: String,
    /// The vault version of the client secret (owner [`vault_owner`], kind
    /// [`CLIENT_SECRET_KIND`]).
    pub client_secret_version: u32,
}

impl OidcConfig {
    /// Where the client secret is in the vault.
    pub fn client_secret(&self, id: &IdentityProviderId) -> SecretRef {
        SecretRef::new(vault_owner(id), CLIENT_SECRET_KIND, self.client_secret_version)
    }
}

/// A provider's type and configuration, as recorded: `{"type": "oidc", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum IdentityProviderConfig {
    #[serde(rename = "onetimepin")]
    OneTimePin,
    #[serde(rename = "oidc")]
    Oidc(OidcConfig),
}

impl IdentityProviderConfig {
    pub fn provider_type(&self) -> IdentityProviderType {
        match self {
            IdentityProviderConfig::OneTimePin => IdentityProviderType::OneTimePin,
            IdentityProviderConfig::Oidc(_) => IdentityProviderType::Oidc,
        }
    }
}

/// A provider's settings; an update replaces all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderSettings {
    pub name: String,
    pub config: IdentityProviderConfig,
}

/// An identity provider was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderCreated {
    pub identity_provider_id: IdentityProviderId,
    pub settings: IdentityProviderSettings,
}

/// An identity provider's settings were replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderUpdated {
    pub identity_provider_id: IdentityProviderId,
    pub settings: IdentityProviderSettings,
}

/// An identity provider was deleted; nobody signs in with it any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProviderDeleted {
    pub identity_provider_id: IdentityProviderId,
}

/// An OIDC provider's configuration as a client writes it: optional fields take their
/// defaults (a write replaces the whole configuration).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OidcInput {
    pub client_id: String,
    pub auth_url: String,
    pub token_url: String,
    pub certs_url: String,
    /// `None`: [`DEFAULT_SCOPES`].
    pub scopes: Option<Vec<String>>,
    pub claims: Option<Vec<String>>,
    /// `None`: [`DEFAULT_EMAIL_CLAIM`].
    pub email_claim_name: Option<String>,
    pub pkce_enabled: Option<bool>,
    /// `None`: [`DEFAULT_GROUPS_CLAIM`].
    pub groups_claim_name: Option<String>,
}

/// A provider's type and configuration as a client writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigInput {
    OneTimePin,
    Oidc(OidcInput),
}

impl ConfigInput {
    pub fn provider_type(&self) -> IdentityProviderType {
        match self {
            ConfigInput::OneTimePin => IdentityProviderType::OneTimePin,
            ConfigInput::Oidc(_) => IdentityProviderType::Oidc,
        }
    }
}

/// A provider's settings as a client writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProviderInput {
    pub name: String,
    pub config: ConfigInput,
}

/// Add a provider. The caller chooses the id ([`one_time_pin_id`] for a one-time PIN
/// provider, a random one otherwise) and, for OIDC, stores the client secret in the vault under
/// `client_secret_version` (the state's [`IdentityProviderState::next_client_secret_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIdentityProvider {
    pub identity_provider_id: IdentityProviderId,
    pub input: IdentityProviderInput,
    pub client_secret_version: Option<u32>,
}

/// Replace a provider's settings. `client_secret_version` is the version a new secret was
/// stored under, or `None` to keep the current secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateIdentityProvider {
    pub identity_provider_id: IdentityProviderId,
    pub input: IdentityProviderInput,
    pub client_secret_version: Option<u32>,
}

/// Delete a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteIdentityProvider {
    pub identity_provider_id: IdentityProviderId,
}

/// A command on one provider's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityProviderCommand {
    Create(CreateIdentityProvider),
    Update(UpdateIdentityProvider),
    Delete(DeleteIdentityProvider),
}

macro_rules! command_from {
    ($($variant:ident($command:ty)),*) => {
        $(impl From<$command> for IdentityProviderCommand {
            fn from(command: $command) -> Self {
                IdentityProviderCommand::$variant(command)
            }
        })*
    };
}

command_from!(
    Create(CreateIdentityProvider),
    Update(UpdateIdentityProvider),
    Delete(DeleteIdentityProvider)
);

/// What the rules need to know of the Access applications.
pub trait IdentityProviderUsage {
    /// The portals whose Access application lists provider `id` in its `allowed_idps`.
    fn portals_allowing(&self, id: &IdentityProviderId) -> Vec<PortalId>;
}

/// Provider id -> the portals whose application allows it (tests, and the first start, when
/// no application exists yet).
impl IdentityProviderUsage for BTreeMap<IdentityProviderId, Vec<PortalId>> {
    fn portals_allowing(&self, id: &IdentityProviderId) -> Vec<PortalId> {
        self.get(id).cloned().unwrap_or_default()
    }
}

/// An existing provider, as its events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    pub identity_provider_id: IdentityProviderId,
    pub settings: IdentityProviderSettings,
}

/// The state of one provider's stream. `Default` is a stream without events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdentityProviderState {
    /// The provider as it is now; `None` if it was never created, or was deleted.
    pub provider: Option<IdentityProvider>,
    /// The highest client secret version recorded, kept after a delete so that a provider
    /// created again on the same stream never reuses a version.
    pub last_client_secret_version: u32,
    /// How many events of this provider were folded: the version to expect on the next append.
    pub stream_version: u64,
}

impl IdentityProviderState {
    /// Folds one event. Holds no rules; events of other aggregates are ignored.
    pub fn apply(&mut self, event: &Event) {
        let settings = match event {
            Event::IdentityProviderCreated(e) => {
                self.provider = Some(IdentityProvider {
                    identity_provider_id: e.identity_provider_id,
                    settings: e.settings.clone(),
                });
                &e.settings
            }
            Event::IdentityProviderUpdated(e) => {
                if let Some(provider) = &mut self.provider {
                    provider.settings = e.settings.clone();
                }
                &e.settings
            }
            Event::IdentityProviderDeleted(_) => {
                self.provider = None;
                self.stream_version += 1;
                return;
            }
            _ => return,
        };
        if let IdentityProviderConfig::Oidc(oidc) = &settings.config {
            self.last_client_secret_version =
                self.last_client_secret_version.max(oidc.client_secret_version);
        }
        self.stream_version += 1;
    }

    /// Whether the provider exists now.
    pub fn exists(&self) -> bool {
        self.provider.is_some()
    }

    /// The version a newly sent client secret is stored under.
    pub fn next_client_secret_version(&self) -> u32 {
        self.last_client_secret_version.saturating_add(1)
    }
}

/// The rules of the identity provider commands.
pub fn decide(
    state: &IdentityProviderState,
    command: IdentityProviderCommand,
    usage: &dyn IdentityProviderUsage,
) -> Result<Vec<Event>, DomainError> {
    match command {
        IdentityProviderCommand::Create(c) => {
            let id = c.identity_provider_id;
            let kind = c.input.config.provider_type();
            if state.exists() {
                let kind = match kind {
                    IdentityProviderType::OneTimePin => "`onetimepin` identity provider",
                    IdentityProviderType::Oidc => "identity provider",
                };
                return Err(DomainError::AlreadyExists { kind, id: id.to_string() });
            }
            let is_pin_id = id == one_time_pin_id();
            if (kind == IdentityProviderType::OneTimePin) != is_pin_id {
                return Err(DomainError::invalid(
                    "id",
                    format!(
                        "`{id}` is not the id of a `{}` provider: the `onetimepin` provider, \
                         one per account, always has the id `{}`, and no other provider has it",
                        kind.as_str(),
                        one_time_pin_id()
                    ),
                ));
            }
            let settings = settings(c.input, c.client_secret_version, None, state)?;
            Ok(vec![Event::IdentityProviderCreated(IdentityProviderCreated {
                identity_provider_id: id,
                settings,
            })])
        }
        IdentityProviderCommand::Update(c) => {
            let id = c.identity_provider_id;
            let current = existing(state, &id)?;
            if current.settings.config.provider_type() != c.input.config.provider_type() {
                return Err(DomainError::invalid(
                    "type",
                    format!(
                        "`{}` differs from the provider's type, `{}`: a provider's type cannot \
                         be changed; create a new provider instead",
                        c.input.config.provider_type().as_str(),
                        current.settings.config.provider_type().as_str()
                    ),
                ));
            }
            let kept = match &current.settings.config {
                IdentityProviderConfig::Oidc(oidc) => Some(oidc.client_secret_version),
                IdentityProviderConfig::OneTimePin => None,
            };
            let settings = settings(c.input, c.client_secret_version, kept, state)?;
            Ok(vec![Event::IdentityProviderUpdated(IdentityProviderUpdated {
                identity_provider_id: id,
                settings,
            })])
        }
        IdentityProviderCommand::Delete(c) => {
            let id = c.identity_provider_id;
            existing(state, &id)?;
            let portals = usage.portals_allowing(&id);
            if !portals.is_empty() {
                let names: Vec<String> = portals.iter().map(|p| format!("`{p}`")).collect();
                let (applications, their) = if portals.len() == 1 {
                    ("the Access application of portal", "its")
                } else {
                    ("the Access applications of portals", "their")
                };
                return Err(DomainError::InUse {
                    kind: "identity provider",
                    id: id.to_string(),
                    by: format!(
                        "{applications} {}: remove it from {their} `allowed_idps` first",
                        names.join(", ")
                    ),
                });
            }
            Ok(vec![Event::IdentityProviderDeleted(IdentityProviderDeleted {
                identity_provider_id: id,
            })])
        }
    }
}

fn existing<'a>(
    state: &'a IdentityProviderState,
    id: &IdentityProviderId,
) -> Result<&'a IdentityProvider, DomainError> {
    state
        .provider
        .as_ref()
        .ok_or_else(|| DomainError::NotFound { kind: "identity provider", id: id.to_string() })
}

/// Checks a provider's input and turns it into the settings to record. `new_secret` is the
/// version a sent client secret was stored under; `kept_secret` the current one (an update).
fn settings(
    input: IdentityProviderInput,
    new_secret: Option<u32>,
    kept_secret: Option<u32>,
    state: &IdentityProviderState,
) -> Result<IdentityProviderSettings, DomainError> {
    let name = check_name(&input.name)?;
    let config = match input.config {
        ConfigInput::OneTimePin => {
            if new_secret.is_some() {
                return Err(DomainError::invalid(
                    "config.client_secret",
                    "a `onetimepin` provider has no client secret",
                ));
            }
            IdentityProviderConfig::OneTimePin
        }
        ConfigInput::Oidc(oidc) => {
            let client_secret_version = match (new_secret, kept_secret) {
                (Some(version), _) => {
                    if version <= state.last_client_secret_version {
                        return Err(DomainError::invalid(
                            "config.client_secret",
                            format!(
                                "version {version} was used before; a new secret is stored \
                                 under version {}",
                                state.next_client_secret_version()
                            ),
                        ));
                    }
                    version
                }
                (None, Some(kept)) => kept,
                (None, None) => {
                    return Err(DomainError::invalid("config.client_secret", "is required"));
                }
            };
            IdentityProviderConfig::Oidc(oidc_config(oidc, client_secret_version)?)
        }
    };
    Ok(IdentityProviderSettings { name, config })
}

fn oidc_config(input: OidcInput, client_secret_version: u32) -> Result<OidcConfig, DomainError> {
    let client_id = check_client_id(&input.client_id)?;
    let auth_url = endpoint("config.auth_url", &input.auth_url)?;
    let token_url = endpoint("config.token_url", &input.token_url)?;
    let certs_url = endpoint("config.certs_url", &input.certs_url)?;
    let scopes = match input.scopes {
        None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        Some(scopes) => check_scopes(scopes)?,
    };
    let claims = check_claims(input.claims.unwrap_or_default())?;
    let email_claim_name = match input.email_claim_name {
        None => DEFAULT_EMAIL_CLAIM.to_owned(),
        Some(name) => check_claim_name("config.email_claim_name", name)?,
    };
    let groups_claim_name = match input.groups_claim_name {
        None => DEFAULT_GROUPS_CLAIM.to_owned(),
        Some(name) => check_claim_name("config.groups_claim_name", name)?,
    };
    Ok(OidcConfig {
        client_id,
        auth_url,
        token_url,
        certs_url,
        scopes,
        claims,
        email_claim_name,
        pkce_enabled: input.pkce_enabled.unwrap_or(false),
        groups_claim_name,
        client_secret_version,
    })
}

/// Trims a name and checks it: 1 to [`MAX_NAME_LEN`] characters, no control characters.
fn check_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            "name",
            format!("`{}` is longer than {MAX_NAME_LEN} characters", truncate_for_message(name)),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            format!("`{}` must not contain control characters", truncate_for_message(name)),
        ));
    }
    Ok(name.to_owned())
}

fn check_client_id(client_id: &str) -> Result<String, DomainError> {
    const FIELD: &str = "config.client_id";
    if client_id.trim().is_empty() {
        return Err(DomainError::invalid(FIELD, "must not be empty"));
    }
    if client_id.chars().count() > MAX_CLIENT_ID_LEN {
        return Err(DomainError::invalid(
            FIELD,
            format!("is longer than {MAX_CLIENT_ID_LEN} characters"),
        ));
    }
    if client_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DomainError::invalid(
            FIELD,
            format!(
                "`{}` must not contain spaces or control characters",
                truncate_for_message(client_id)
            ),
        ));
    }
    Ok(client_id.to_owned())
}

/// Checks a client secret before it is stored: 1 to [`MAX_CLIENT_SECRET_LEN`] bytes, no
/// control characters, and not the masked placeholder the API answers. The message never
/// quotes the secret.
pub fn check_client_secret(secret: &str) -> Result<(), DomainError> {
    const FIELD: &str = "config.client_secret";
    if secret.is_empty() {
        return Err(DomainError::invalid(FIELD, "must not be empty"));
    }
    if secret == MASKED_SECRET {
        return Err(DomainError::invalid(
            FIELD,
            "is the masked value the API answers in place of the secret; send the real secret",
        ));
    }
    if secret.len() > MAX_CLIENT_SECRET_LEN {
        return Err(DomainError::invalid(
            FIELD,
            format!("is longer than {MAX_CLIENT_SECRET_LEN} bytes"),
        ));
    }
    if secret.chars().any(char::is_control) {
        return Err(DomainError::invalid(FIELD, "must not contain control characters"));
    }
    Ok(())
}

fn endpoint(field: &str, value: &str) -> Result<String, DomainError> {
    validate::https_url(field, value)?;
    Ok(value.to_owned())
}

/// Scopes are RFC 6749 scope tokens (printable ASCII without space, `"` and `\`); `openid`
/// must be one of them, since without it the provider issues no ID token.
fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, DomainError> {
    if scopes.len() > MAX_SCOPES {
        return Err(DomainError::invalid(
            "config.scopes",
            format!("has {} scopes; at most {MAX_SCOPES} are allowed", scopes.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, scope) in scopes.iter().enumerate() {
        let field = format!("config.scopes[{i}]");
        let quoted = truncate_for_message(scope);
        if scope.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        if scope.chars().count() > MAX_SCOPE_LEN {
            return Err(DomainError::invalid(
                field,
                format!("`{quoted}` is longer than {MAX_SCOPE_LEN} characters"),
            ));
        }
        let token = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        if !scope.bytes().all(token) {
            return Err(DomainError::invalid(
                field,
                format!("`{quoted}` is not a scope: printable ASCII without spaces, `\"` or `\\`"),
            ));
        }
        if !seen.insert(scope.as_str()) {
            return Err(DomainError::invalid(field, format!("`{quoted}` is listed twice")));
        }
    }
    if !seen.contains("openid") {
        return Err(DomainError::invalid(
            "config.scopes",
            "must include `openid`: without it the provider issues no ID token",
        ));
    }
    Ok(scopes)
}

fn check_claims(claims: Vec<String>) -> Result<Vec<String>, DomainError> {
    if claims.len() > MAX_CLAIMS {
        return Err(DomainError::invalid(
            "config.claims",
            format!("has {} claims; at most {MAX_CLAIMS} are allowed", claims.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(claims.len());
    for (i, claim) in claims.into_iter().enumerate() {
        let field = format!("config.claims[{i}]");
        let claim = check_claim_name(&field, claim)?;
        if !seen.insert(claim.clone()) {
            return Err(DomainError::invalid(
                field,
                format!("`{}` is listed twice", truncate_for_message(&claim)),
            ));
        }
        checked.push(claim);
    }
    Ok(checked)
}

/// A claim name: 1 to [`MAX_CLAIM_NAME_LEN`] characters without spaces or control characters
/// (namespaced names such as `https://example.com/groups` are fine).
fn check_claim_name(field: &str, name: String) -> Result<String, DomainError> {
    if name.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_CLAIM_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!(
                "`{}` is longer than {MAX_CLAIM_NAME_LEN} characters",
                truncate_for_message(&name)
            ),
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DomainError::invalid(
            field,
            format!(
                "`{}` must not contain spaces or control characters",
                truncate_for_message(&name)
            ),
        ));
    }
    Ok(name)
}

impl super::Aggregate for IdentityProviderState {
    type Command = IdentityProviderCommand;
    type Services = dyn IdentityProviderUsage;

    fn apply(&mut self, event: &Event) {
        IdentityProviderState::apply(self, event);
    }

    fn decide(
        &self,
        command: IdentityProviderCommand,
        usage: &dyn IdentityProviderUsage,
    ) -> Result<Vec<Event>, DomainError> {
        decide(self, command, usage)
    }

    fn version(&self) -> u64 {
        self.stream_version
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
