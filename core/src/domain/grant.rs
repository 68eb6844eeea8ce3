//! OAuth grants: what a signed-in person allowed an MCP client to do at one portal.
//!
//! A grant is one stream (`grant-{id}`). It starts when the person finishes the authorization
//! step ([`GrantAuthorized`], with a single-use code), becomes usable when the client redeems
//! the code with its PKCE verifier ([`GrantCodeRedeemed`]: an access token and a refresh
//! token), rotates its refresh token on every refresh ([`GrantRefreshed`]), and ends when
//! revoked ([`GrantRevoked`]) or when its session ends.
//!
//! Tokens and codes never enter the log: only their SHA-256 hashes do (the application layer
//! generates them and hands them to the client once). Replays revoke: a code redeemed twice or
//! a rotated-away refresh token presented again ends the whole grant (OAuth 2.1 §4.1.2 and
//! §4.3.1), so a stolen credential dies with the first legitimate use.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::PortalId;
use super::{Aggregate, DomainError};
use crate::event::Event;

/// How long an authorization code may wait to be redeemed.
pub const CODE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The stream of grant `id`: `grant-{id}`.
pub fn grant_stream(id: &str) -> String {
    format!("grant-{id}")
}

/// The person a grant acts for, as the identity provider described them at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantUser {
    /// Portico's id of the user (stable per identity provider and subject).
    pub id: String,
    pub email: String,
    pub name: String,
    /// The id of the identity provider they signed in with.
    pub idp: String,
    /// Their groups at sign-in (Cedar parents).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The claims their provider's `claims` setting names, as the ID token had them (Cedar
    /// tags on the user).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// A person authorized a client; the code (by hash) waits to be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantAuthorized {
    pub grant_id: String,
    pub portal_id: PortalId,
    pub client_id: String,
    /// The redirect URI the code was sent to; the token request must repeat it exactly.
    pub redirect_uri: String,
    /// The PKCE `S256` challenge.
    pub code_challenge: String,
    pub code_hash: String,
    pub code_expires_at: DateTime<Utc>,
    /// The resource (RFC 8707) the tokens are for: the portal's MCP endpoint.
    pub resource: String,
    #[serde(default)]
    pub scope: Option<String>,
    pub user: GrantUser,
    /// When the grant ends whatever its refreshes (the session duration).
    pub session_expires_at: DateTime<Utc>,
}

/// The client redeemed the code: the first access and refresh tokens (by hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCodeRedeemed {
    pub grant_id: String,
    pub access_token_hash: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token_hash: String,
}

/// The client refreshed: a new access token and a new refresh token; the old refresh token is
/// retired (presenting it again revokes the grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRefreshed {
    pub grant_id: String,
    pub access_token_hash: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token_hash: String,
}

/// Why a grant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The client (or someone holding its token) revoked it (RFC 7009).
    ClientRevoked,
    /// The person signed out of the portal.
    SignedOut,
    /// An admin ended the person's sessions.
    UserRevoked,
    /// The authorization code was presented a second time.
    CodeReplayed,
    /// A refresh token that had been rotated away was presented again.
    RefreshReplayed,
    /// The policies no longer let the person connect to the portal.
    AccessLost,
    /// An admin removed the client.
    ClientRemoved,
}

/// The grant ended; none of its tokens works any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRevoked {
    pub grant_id: String,
    pub reason: RevokeReason,
}

/// Start a grant (the stream must be new).
#[derive(Debug, Clone)]
pub struct AuthorizeGrant(pub GrantAuthorized);

/// Redeem the code (the token request of the `authorization_code` grant).
#[derive(Debug, Clone)]
pub struct RedeemCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_verifier: String,
    pub now: DateTime<Utc>,
    pub access_token_hash: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token_hash: String,
}

/// Rotate the refresh token (the `refresh_token` grant).
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub refresh_token_hash: String,
    pub client_id: String,
    pub now: DateTime<Utc>,
    pub access_token_hash: String,
    pub access_expires_at: DateTime<Utc>,
    pub new_refresh_token_hash: String,
}

/// What may be asked of a grant.
#[derive(Debug, Clone)]
pub enum GrantCommand {
    Authorize(AuthorizeGrant),
    Redeem(RedeemCode),
    Refresh(RefreshGrant),
    Revoke(RevokeReason),
}

/// A grant as its events left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantState {
    pub grant: Option<GrantAuthorized>,
    pub redeemed: bool,
    pub access_token_hash: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_hash: Option<String>,
    /// Refresh tokens rotated away (a replay of one revokes the grant).
    pub retired_refresh_hashes: Vec<String>,
    pub revoked: Option<RevokeReason>,
    pub version: u64,
}

impl GrantState {
    /// Whether the grant's tokens may be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked.is_none() && self.grant.as_ref().is_some_and(|g| g.session_expires_at > now)
    }

    /// Whether the access token is valid at `now`.
    pub fn access_valid(&self, now: DateTime<Utc>) -> bool {
        self.is_live(now) && self.access_expires_at.is_some_and(|at| at > now)
    }
}

/// The OAuth `invalid_grant` refusal (RFC 6749 §5.2), with a reason for the client.
fn invalid_grant(reason: &str) -> DomainError {
    DomainError::InvalidGrant { reason: reason.to_owned() }
}

/// Whether `verifier` is a PKCE code verifier (RFC 7636 §4.1) whose `S256` is `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    // Both are public values derived from the verifier; timing reveals nothing secret.
    expected == challenge
}

/// Whether `challenge` has the shape of an `S256` challenge (43 base64url characters).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Aggregate for GrantState {
    type Command = GrantCommand;
    type Services = ();

    fn apply(&mut self, event: &Event) {
        match event {
            Event::GrantAuthorized(e) => self.grant = Some(e.clone()),
            Event::GrantCodeRedeemed(e) => {
                self.redeemed = true;
                self.access_token_hash = Some(e.access_token_hash.clone());
                self.access_expires_at = Some(e.access_expires_at);
                self.refresh_token_hash = Some(e.refresh_token_hash.clone());
            }
            Event::GrantRefreshed(e) => {
                if let Some(old) = self.refresh_token_hash.replace(e.refresh_token_hash.clone()) {
                    self.retired_refresh_hashes.push(old);
                }
                self.access_token_hash = Some(e.access_token_hash.clone());
                self.access_expires_at = Some(e.access_expires_at);
            }
            Event::GrantRevoked(e) => self.revoked = Some(e.reason),
            _ => return,
        }
        self.version += 1;
    }

    fn decide(&self, command: GrantCommand, _: &()) -> Result<Vec<Event>, DomainError> {
        match command {
            GrantCommand::Authorize(AuthorizeGrant(grant)) => {
                if self.grant.is_some() {
                    return Err(DomainError::AlreadyExists { kind: "grant", id: grant.grant_id });
                }
                if !is_s256_challenge(&grant.code_challenge) {
                    return Err(DomainError::invalid(
                        "code_challenge",
                        "must be the 43-character base64url SHA-256 of the code verifier (S256)",
                    ));
                }
                Ok(vec![Event::GrantAuthorized(grant)])
            }
            GrantCommand::Redeem(redeem) => self.redeem(redeem),
            GrantCommand::Refresh(refresh) => self.refresh(refresh),
            GrantCommand::Revoke(reason) => {
                let Some(grant) = &self.grant else {
                    return Err(DomainError::NotFound { kind: "grant", id: String::new() });
                };
                if self.revoked.is_some() {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::GrantRevoked(GrantRevoked {
                    grant_id: grant.grant_id.clone(),
                    reason,
                })])
            }
        }
    }

    fn version(&self) -> u64 {
        self.version
    }
}

impl GrantState {
    fn redeem(&self, r: RedeemCode) -> Result<Vec<Event>, DomainError> {
        let Some(grant) = &self.grant else { return Err(invalid_grant("unknown code")) };
        if grant.code_hash != r.code_hash {
            return Err(invalid_grant("unknown code"));
        }
        if self.revoked.is_some() {
            return Err(invalid_grant("the grant was revoked"));
        }
        if self.redeemed {
            // A second redemption: someone else holds the code. End what it issued.
            return Ok(vec![revoked(grant, RevokeReason::CodeReplayed)]);
        }
        if grant.client_id != r.client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if grant.redirect_uri != r.redirect_uri {
            return Err(invalid_grant("`redirect_uri` differs from the authorization request's"));
        }
        if grant.code_expires_at <= r.now {
            return Err(invalid_grant("the code expired"));
        }
        if !pkce_matches(&r.code_verifier, &grant.code_challenge) {
            return Err(invalid_grant("`code_verifier` does not match the code challenge"));
        }
        Ok(vec![Event::GrantCodeRedeemed(GrantCodeRedeemed {
            grant_id: grant.grant_id.clone(),
            access_token_hash: r.access_token_hash,
            access_expires_at: r.access_expires_at.min(grant.session_expires_at),
            refresh_token_hash: r.refresh_token_hash,
        })])
    }

    fn refresh(&self, r: RefreshGrant) -> Result<Vec<Event>, DomainError> {
        let Some(grant) = &self.grant else { return Err(invalid_grant("unknown refresh token")) };
        if self.revoked.is_some() {
            return Err(invalid_grant("the grant was revoked"));
        }
        if self.retired_refresh_hashes.contains(&r.refresh_token_hash) {
            return Ok(vec![revoked(grant, RevokeReason::RefreshReplayed)]);
        }
        if self.refresh_token_hash.as_deref() != Some(r.refresh_token_hash.as_str()) {
            return Err(invalid_grant("unknown refresh token"));
        }
        if grant.client_id != r.client_id {
            return Err(invalid_grant("the refresh token was issued to another client"));
        }
        if grant.session_expires_at <= r.now {
            return Err(invalid_grant("the session ended; sign in again"));
        }
        Ok(vec![Event::GrantRefreshed(GrantRefreshed {
            grant_id: grant.grant_id.clone(),
            access_token_hash: r.access_token_hash,
            access_expires_at: r.access_expires_at.min(grant.session_expires_at),
            refresh_token_hash: r.new_refresh_token_hash,
        })])
    }
}

fn revoked(grant: &GrantAuthorized, reason: RevokeReason) -> Event {
    Event::GrantRevoked(GrantRevoked { grant_id: grant.grant_id.clone(), reason })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

impl From<AuthorizeGrant> for GrantCommand {
    fn from(c: AuthorizeGrant) -> Self {
        GrantCommand::Authorize(c)
    }
}

impl From<RedeemCode> for GrantCommand {
    fn from(c: RedeemCode) -> Self {
        GrantCommand::Redeem(c)
    }
}

impl From<RefreshGrant> for GrantCommand {
    fn from(c: RefreshGrant) -> Self {
        GrantCommand::Refresh(c)
    }
}
