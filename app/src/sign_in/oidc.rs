//! Signing in with an OpenID Connect identity provider (type `oidc`): the authorization code
//! flow, with `state`, `nonce`, and PKCE when the provider's `pkce_enabled`.
//!
//! [`App::start_oidc_login`] keeps a pending login in memory (bounded, [`LOGIN_LIFETIME`]) and
//! answers the provider's authorization URL; [`App::finish_oidc_login`] takes the pending login
//! back by its `state` (once), exchanges the code at the provider's `token_url` with the client
//! secret from the vault, verifies the ID token (signature against the `certs_url` keys,
//! `iss`, `aud`, `exp`, `nonce`) and answers the person: email from `email_claim_name` (refused
//! when the provider says `email_verified: false`), groups from `groups_claim_name`, and the
//! custom claims the provider's `claims` setting names (Cedar tags on the user). Every request to the provider goes through the gateway's SSRF
//! guard. The pending login is bound to the browser that started it (a cookie value whose hash
//! it keeps), so a callback URL carried to another browser signs no one in there.
//!
//! The provider configuration has no issuer field (Cloudflare's shape), so the `iss` of an ID
//! token must have the origin of `token_url`: the endpoint that handed the token over.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKeySetUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use portico_core::domain::grant::GrantUser;
use portico_core::domain::identity_provider::{IdentityProviderId, OidcConfig};
use portico_core::domain::ids::PortalId;
use portico_core::domain::sign_in::SignInFailure;
use portico_gateway::transport::http_client::{self, FetchError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Secret, SignInError, normalize_email};
use crate::api_tokens::hash;
use crate::{App, AppError};

/// How long a person has to come back from the provider.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The most pending logins kept at once (expired ones are dropped first).
pub const MAX_PENDING_LOGINS: usize = 10_000;
/// How long one request to the provider may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider (a token response or a key set).
pub const MAX_PROVIDER_ANSWER: usize = 256 * 1024;
/// The most groups kept from the groups claim.
pub const MAX_GROUPS: usize = 256;
/// The longest group name kept.
pub const MAX_GROUP_LEN: usize = 256;
/// The longest value kept of a custom claim.
pub const MAX_CLAIM_VALUE_LEN: usize = 256;
/// The path of the callback under a portal's base URL.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

/// The ID token claims beyond the standard ones (the groups claim, a custom email claim).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdTokenFields = openidconnect::IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The library's client with [`OtherClaims`], and the authorization and token endpoints set.
type OidcClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<IdTokenFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// The signature algorithms accepted on ID tokens: the asymmetric ones, whose keys are at
/// `certs_url`.
const SIGNING_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

#[derive(Debug)]
struct PendingLogin {
    portal_id: PortalId,
    provider: IdentityProviderId,
    nonce: Secret,
    pkce_verifier: Option<Secret>,
    redirect_uri: String,
    next: String,
    browser_hash: String,
    expires_at: Instant,
}

/// The OpenID Connect logins in flight, by the hash of their `state`, in memory.
#[derive(Debug, Default)]
pub struct OidcLogins(Mutex<HashMap<String, PendingLogin>>);

impl OidcLogins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingLogin>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, state_hash: String, login: PendingLogin) -> Result<(), SignInError> {
        let mut map = self.lock();
        if map.len() >= MAX_PENDING_LOGINS {
            let now = Instant::now();
            map.retain(|_, l| l.expires_at > now);
        }
        if map.len() >= MAX_PENDING_LOGINS {
            return Err(SignInError::App(AppError::unavailable(
                "too many sign-ins are in progress",
            )));
        }
        map.insert(state_hash, login);
        Ok(())
    }

    /// Takes the pending login of `state` out (a `state` is good for one callback).
    fn take(&self, state: &str) -> Option<PendingLogin> {
        self.lock().remove(&hash(state))
    }
}

/// Where to send the browser to sign in at the provider, and the value of the cookie that
/// binds the login to that browser.
#[derive(Debug)]
pub struct OidcStart {
    pub authorize_url: String,
    pub browser_binding: Secret,
}

/// What the provider sent back to the callback.
#[derive(Debug, Default)]
pub struct OidcCallback<'a> {
    pub state: &'a str,
    pub code: Option<&'a str>,
    /// The provider's `error` (the person refused, or the provider did).
    pub error: Option<&'a str>,
    /// The binding cookie of this browser, if it sent one.
    pub browser_binding: Option<&'a str>,
}

/// A person the provider vouched for, and where their sign-in was headed.
#[derive(Debug)]
pub struct OidcSignIn {
    pub user: GrantUser,
    pub next: String,
}

/// Portico's id of the person with subject `sub` at provider `provider`: stable, shaped as a
/// UUID.
pub fn oidc_user_id(provider: &IdentityProviderId, sub: &str) -> String {
    let digest = Sha256::digest(format!("oidc\n{provider}\n{sub}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// The groups in a groups claim: an array of strings (or one string), bounded in number and
/// length; other values give no group.
pub fn groups_of(claim: Option<&serde_json::Value>) -> Vec<String> {
    let usable = |g: &&str| {
        !g.trim().is_empty() && g.len() <= MAX_GROUP_LEN && !g.chars().any(char::is_control)
    };
    let mut groups: Vec<String> = match claim {
        Some(serde_json::Value::Array(values)) => values
            .iter()
            .filter_map(serde_json::Value::as_str)
            .filter(usable)
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(one)) if usable(&one.as_str()) => vec![one.clone()],
        _ => Vec::new(),
    };
    groups.sort();
    groups.dedup();
    groups.truncate(MAX_GROUPS);
    groups
}

/// The custom claims of `names` (the provider's `claims` setting) the ID token has, as strings:
/// a string as it is, a number or a boolean in its JSON form. Other values (objects, arrays,
/// null), values over [`MAX_CLAIM_VALUE_LEN`] and values with control characters are left out.
pub fn kept_claims(
    names: &[String],
    token: &serde_json::Map<String, serde_json::Value>,
) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|name| {
            let value = match token.get(name)? {
                serde_json::Value::String(s) => s.clone(),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
                _ => return None,
            };
            let usable = value.len() <= MAX_CLAIM_VALUE_LEN && !value.chars().any(char::is_control);
            usable.then(|| (name.clone(), value))
        })
        .collect()
}

/// Whether `iss` has the origin of the provider's `token_url` (the provider configuration
/// names no issuer; the token came from that endpoint).
pub fn issuer_matches(iss: &str, token_url: &str) -> bool {
    match (url::Url::parse(iss), url::Url::parse(token_url)) {
        (Ok(iss), Ok(token)) => {
            matches!(iss.scheme(), "https" | "http")
                && iss.origin() == token.origin()
                && iss.username().is_empty()
                && iss.query().is_none()
                && iss.fragment().is_none()
        }
        _ => false,
    }
}

/// A failure at the provider: logged with its cause (never a secret), shown as `shown`.
fn provider_error(
    provider: &IdentityProviderId,
    cause: impl std::fmt::Display,
    shown: &str,
) -> SignInError {
    tracing::info!(identity_provider = %provider, cause = %cause, "an OpenID Connect sign-in failed");
    SignInError::IdentityProvider(shown.to_owned())
}

fn client(
    config: &OidcConfig,
    redirect_uri: &str,
    secret: Option<ClientSecret>,
    jwks: CoreJsonWebKeySet,
) -> Result<OidcClient, String> {
    // The configuration names no issuer: the library's issuer check is off and
    // [`issuer_matches`] replaces it, so this value is never compared.
    let issuer = IssuerUrl::new(config.token_url.clone()).map_err(|e| e.to_string())?;
    let client = openidconnect::Client::new(ClientId::new(config.client_id.clone()), issuer, jwks)
        .set_auth_uri(AuthUrl::new(config.auth_url.clone()).map_err(|e| e.to_string())?)
        .set_token_uri(
            openidconnect::TokenUrl::new(config.token_url.clone()).map_err(|e| e.to_string())?,
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?);
    Ok(match secret {
        Some(secret) => client.set_client_secret(secret),
        None => client,
    })
}

impl App {
    /// The OIDC configuration of `provider` if it exists and `portal` allows it.
    fn allowed_oidc(&self, portal: &PortalId, provider: &IdentityProviderId) -> Option<OidcConfig> {
        self.read(|m| {
            let allowed =
                m.access_apps.settings(portal).as_ref().is_none_or(|app| app.allows(provider));
            m.identity_providers.get(provider).filter(|_| allowed)?.oidc().cloned()
        })
    }

    /// Starts signing in to `portal` with OIDC provider `provider`; the callback is
    /// `redirect_uri` (`<portal base>/login/oidc/callback`) and the person goes on to `next`.
    pub fn start_oidc_login(
        &self,
        portal: &PortalId,
        provider: &IdentityProviderId,
        redirect_uri: &str,
        next: &str,
    ) -> Result<OidcStart, SignInError> {
        let config = self.allowed_oidc(portal, provider).ok_or_else(|| {
            SignInError::InvalidRequest(
                "this portal does not offer that identity provider".to_owned(),
            )
        })?;
        let state = Secret(crate::random_hex::<32>()?);
        let nonce = Secret(crate::random_hex::<32>()?);
        let binding = Secret(crate::random_hex::<32>()?);
        let client = client(&config, redirect_uri, None, CoreJsonWebKeySet::new(Vec::new()))
            .map_err(|cause| {
                provider_error(provider, cause, "the identity provider is misconfigured")
            })?;
        let (state_value, nonce_value) = (state.0.clone(), nonce.0.clone());
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_value.clone()),
                move || Nonce::new(nonce_value.clone()),
            )
            // The library asks for `openid` itself.
            .add_scopes(
                config.scopes.iter().filter(|s| s.as_str() != "openid").cloned().map(Scope::new),
            );
        let pkce_verifier = if config.pkce_enabled {
            let verifier = PkceCodeVerifier::new(crate::random_hex::<32>()?);
            request =
                request.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
            Some(Secret(verifier.secret().clone()))
        } else {
            None
        };
        let (url, _, _) = request.url();
        self.oidc_logins.insert(
            hash(&state.0),
            PendingLogin {
                portal_id: portal.clone(),
                provider: *provider,
                nonce,
                pkce_verifier,
                redirect_uri: redirect_uri.to_owned(),
                next: next.to_owned(),
                browser_hash: hash(&binding.0),
                expires_at: Instant::now() + LOGIN_LIFETIME,
            },
        )?;
        Ok(OidcStart { authorize_url: url.to_string(), browser_binding: binding })
    }

    /// Finishes an OIDC sign-in at `portal` from the provider's answer. A failure is recorded
    /// (`SignInFailed`, reason `IdentityProvider`) and its message is safe to show.
    pub async fn finish_oidc_login(
        &self,
        portal: &PortalId,
        callback: OidcCallback<'_>,
        ip: Option<IpAddr>,
    ) -> Result<OidcSignIn, SignInError> {
        let outcome = self.oidc_sign_in(portal, callback).await;
        if let Err(SignInError::IdentityProvider(_)) = &outcome {
            self.record_failure(portal, None, SignInFailure::IdentityProvider, ip).await;
        }
        outcome
    }

    async fn oidc_sign_in(
        &self,
        portal: &PortalId,
        callback: OidcCallback<'_>,
    ) -> Result<OidcSignIn, SignInError> {
        let stale = || {
            SignInError::IdentityProvider(
                "this sign-in is unknown or expired; start again from the sign-in page".to_owned(),
            )
        };
        let login = self.oidc_logins.take(callback.state).ok_or_else(stale)?;
        let same_browser = callback
            .browser_binding
            .is_some_and(|b| crate::api_tokens::hashes_match(&login.browser_hash, &hash(b)));
        if &login.portal_id != portal || login.expires_at <= Instant::now() || !same_browser {
            return Err(stale());
        }
        let provider = login.provider;
        if let Some(error) = callback.error {
            return Err(provider_error(
                &provider,
                format!("the provider answered `{error}`"),
                "the identity provider did not sign you in",
            ));
        }
        let code = callback.code.filter(|c| !c.is_empty()).ok_or_else(|| {
            provider_error(&provider, "no code", "the identity provider sent no code")
        })?;
        let config = self.allowed_oidc(portal, &provider).ok_or_else(|| {
            provider_error(
                &provider,
                "no longer allowed",
                "this portal no longer offers that identity provider",
            )
        })?;
        let secret_ref =
            self.read(|m| m.identity_providers.get(&provider).and_then(|p| p.client_secret()));
        let secret = match secret_ref {
            Some(r) => self.vault.get(&r).await.map_err(|e| {
                AppError::unavailable(format!(
                    "the provider's client secret cannot be read from the vault: {e}"
                ))
            })?,
            None => {
                return Err(SignInError::App(AppError::internal(
                    "an OIDC provider has no client secret",
                )));
            }
        };
        let policy = self.gateway.upstreams.config().policy;
        let http = move |request: openidconnect::HttpRequest| {
            http_client::send(policy, request, MAX_PROVIDER_ANSWER, PROVIDER_TIMEOUT)
        };
        let unverified = "the identity provider's answer could not be verified";
        let jwks_url = JsonWebKeySetUrl::new(config.certs_url.clone())
            .map_err(|e| provider_error(&provider, e, unverified))?;
        let jwks = CoreJsonWebKeySet::fetch_async(&jwks_url, &http)
            .await
            .map_err(|e| provider_error(&provider, format!("keys: {e}"), unverified))?;
        let client = client(
            &config,
            &login.redirect_uri,
            Some(ClientSecret::new(secret.expose_secret().to_owned())),
            jwks,
        )
        .map_err(|cause| {
            provider_error(&provider, cause, "the identity provider is misconfigured")
        })?;
        let mut exchange = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = &login.pkce_verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(verifier.0.clone()));
        }
        let tokens = exchange.request_async(&http).await.map_err(|e| {
            provider_error(&provider, token_error(&e), "the identity provider refused the sign-in")
        })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| provider_error(&provider, "no ID token", unverified))?;
        let verifier =
            client.id_token_verifier().require_issuer_match(false).set_allowed_algs(SIGNING_ALGS);
        let claims = id_token
            .claims(&verifier, &Nonce::new(login.nonce.0.clone()))
            .map_err(|e| provider_error(&provider, format!("ID token: {e}"), unverified))?;
        if !issuer_matches(claims.issuer().as_str(), &config.token_url) {
            return Err(provider_error(
                &provider,
                format!(
                    "ID token issuer `{}` is not at the token endpoint's origin",
                    claims.issuer().as_str()
                ),
                unverified,
            ));
        }
        let other = &claims.additional_claims().claims;
        let email = match config.email_claim_name.as_str() {
            "email" => {
                // An address the provider itself says is unverified names nobody: whoever typed
                // it in would pass policies written for its owner.
                if claims.email_verified() == Some(false) {
                    return Err(provider_error(
                        &provider,
                        "`email_verified` is false",
                        "the identity provider has not verified your email address",
                    ));
                }
                claims.email().map(|e| e.as_str().to_owned())
            }
            name => other.get(name).and_then(|v| v.as_str()).map(str::to_owned),
        };
        let email = email.and_then(|e| normalize_email(&e).ok()).ok_or_else(|| {
            provider_error(
                &provider,
                format!("no usable `{}` claim", config.email_claim_name),
                "the identity provider did not give an email address",
            )
        })?;
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .filter(|n| !n.trim().is_empty() && n.chars().count() <= 200)
            .unwrap_or_else(|| email.clone());
        let groups = groups_of(other.get(&config.groups_claim_name));
        let kept = kept_claims(&config.claims, other);
        let user = GrantUser {
            id: oidc_user_id(&provider, claims.subject().as_str()),
            email,
            name,
            idp: provider.to_string(),
            groups,
            claims: kept,
        };
        Ok(OidcSignIn { user, next: login.next })
    }
}

/// A token request's failure, for the log: the provider's error code and description, or the
/// transport's cause (neither holds the client secret or the code).
fn token_error(
    e: &openidconnect::RequestTokenError<FetchError, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => {
            format!("token endpoint: {}", r)
        }
        openidconnect::RequestTokenError::Request(e) => format!("token endpoint: {e}"),
        // The path only: a parse error's message may quote a value of the answer (a token).
        openidconnect::RequestTokenError::Parse(e, _) => {
            format!("token endpoint answer: unexpected value at `{}`", e.path())
        }
        openidconnect::RequestTokenError::Other(e) => format!("token endpoint: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_come_from_an_array_or_a_string_and_are_bounded() {
        assert_eq!(groups_of(Some(&json!(["eng", "ops", "eng", 3, ""]))), ["eng", "ops"]);
        assert_eq!(groups_of(Some(&json!("eng"))), ["eng"]);
        assert!(groups_of(Some(&json!({"eng": true}))).is_empty());
        assert!(groups_of(None).is_empty());
        let many: Vec<String> = (0..1000).map(|i| format!("g{i:04}")).collect();
        assert_eq!(groups_of(Some(&json!(many))).len(), MAX_GROUPS);
        assert!(groups_of(Some(&json!(["x".repeat(MAX_GROUP_LEN + 1)]))).is_empty());
        assert!(groups_of(Some(&json!(["a\nb"]))).is_empty());
    }

    #[test]
    fn named_claims_are_kept_as_strings_and_others_are_not() {
        let token = json!({
            "department": "research", "level": 3, "admin": false, "roles": ["a"],
            "manager": null, "note": "a\nb", "long": "x".repeat(MAX_CLAIM_VALUE_LEN + 1),
            "unnamed": "kept only when named",
        });
        let names: Vec<String> =
            ["department", "level", "admin", "roles", "manager", "note", "long", "absent"]
                .map(str::to_owned)
                .into();
        let kept = kept_claims(&names, token.as_object().unwrap());
        assert_eq!(
            kept,
            BTreeMap::from([
                ("admin".to_owned(), "false".to_owned()),
                ("department".to_owned(), "research".to_owned()),
                ("level".to_owned(), "3".to_owned()),
            ])
        );
    }

    #[test]
    fn the_issuer_must_be_at_the_token_endpoints_origin() {
        let token = "https://idp.example.com/oauth2/v1/token";
        assert!(issuer_matches("https://idp.example.com", token));
        assert!(issuer_matches("https://idp.example.com/oauth2/default", token));
        assert!(!issuer_matches("https://evil.example.com", token));
        assert!(!issuer_matches("http://idp.example.com", token), "another scheme");
        assert!(!issuer_matches("https://idp.example.com:8443", token), "another port");
        assert!(!issuer_matches("https://idp.example.com/?x=1", token));
        assert!(!issuer_matches("not a url", token));
        assert!(issuer_matches("http://127.0.0.1:4000", "http://127.0.0.1:4000/token"));
    }

    #[test]
    fn user_ids_are_stable_per_provider_and_subject() {
        let a = IdentityProviderId::parse("id", "5b0b3f1e-8f7a-4c6e-9d2b-1a2b3c4d5e6f").unwrap();
        let b = IdentityProviderId::parse("id", "6c0b3f1e-8f7a-4c6e-9d2b-1a2b3c4d5e6f").unwrap();
        assert_eq!(oidc_user_id(&a, "alice"), oidc_user_id(&a, "alice"));
        assert_ne!(oidc_user_id(&a, "alice"), oidc_user_id(&b, "alice"));
        assert_ne!(oidc_user_id(&a, "alice"), oidc_user_id(&a, "bob"));
        assert!(uuid::Uuid::parse_str(&oidc_user_id(&a, "alice")).is_ok());
    }

    #[test]
    fn a_state_is_taken_once() {
        let logins = OidcLogins::default();
        let login = || PendingLogin {
            portal_id: PortalId::try_from("team".to_owned()).unwrap(),
            provider: IdentityProviderId::from_random_bytes([7; 16]),
            nonce: Secret("n".into()),
            pkce_verifier: None,
            redirect_uri: "https://p.example/login/oidc/callback".into(),
            next: "/".into(),
            browser_hash: hash("b"),
            expires_at: Instant::now() + LOGIN_LIFETIME,
        };
        logins.insert(hash("s1"), login()).unwrap();
        assert!(logins.take("s1").is_some());
        assert!(logins.take("s1").is_none(), "a second callback with the same state");
        assert!(logins.take("s2").is_none());
    }
}
