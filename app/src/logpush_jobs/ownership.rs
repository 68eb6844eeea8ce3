//! Ownership challenges: the token that proves an AWS S3 destination belongs to whoever
//! creates a job for it.
//!
//! A challenge is a JWT-shaped string `header.claims.signature` (base64url, HMAC-SHA256): the
//! claims bind the destination (its text with secrets masked), a fingerprint of its bucket and
//! path, and an expiry [`CHALLENGE_LIFETIME`] after it was issued. The signing key is 32 random
//! bytes Portico keeps in its vault (owner [`KEY_OWNER`], kind [`KEY_KIND`], version 1), made the
//! first time a challenge is issued.
//!
//! As Cloudflare does, [`App::write_ownership_challenge`] writes the challenge into the bucket
//! (`<path>/ownership-challenge-<8 hex digits>.txt`), so that only who can read the bucket gets
//! it; [`App::issue_ownership_challenge`] makes the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use portico_core::domain::logpush_job::Destination;
use portico_core::vault::{SecretString, VaultError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use portico_core::domain::DomainError;
use portico_core::domain::logpush_job::destination::{DATE_PLACEHOLDER, Scheme};
use portico_logpush::sink::s3::S3Sink;

use super::DestinationConf;
use crate::{App, AppError};

/// How long a challenge is valid.
pub const CHALLENGE_LIFETIME: TimeDelta = TimeDelta::days(7);
/// The vault owner of the signing key.
pub const KEY_OWNER: &str = "logpush";
/// The vault kind of the signing key.
pub const KEY_KIND: &str = "ownership_challenge_key";

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The destination, secrets masked.
    destination_conf: String,
    /// SHA-256 of `bucket/path` (hex).
    fingerprint: String,
    iat: i64,
    exp: i64,
}

/// What the rules need to check a challenge: the key (if one was ever made) and the time.
pub(crate) struct ChallengeVerifier {
    key: Option<SecretString>,
    now: DateTime<Utc>,
}

impl std::fmt::Debug for ChallengeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeVerifier").field("now", &self.now).finish_non_exhaustive()
    }
}

impl ChallengeVerifier {
    /// Checks `challenge` against the masked destination `conf`; the error says why it is
    /// refused, never quoting the token.
    pub(crate) fn verify(&self, conf: &str, challenge: &str) -> Result<(), String> {
        let refused =
            || "is not an ownership challenge Portico issued for this destination".to_owned();
        let key = self.key.as_ref().ok_or_else(refused)?;
        let mut parts = challenge.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused());
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| refused())?;
        let mut mac = mac(key)?;
        mac.update(format!("{header}.{claims}").as_bytes());
        mac.verify_slice(&signature).map_err(|_| refused())?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(claims)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(refused)?;
        if claims.destination_conf != conf || claims.fingerprint != fingerprint(conf) {
            return Err("was issued for another destination".to_owned());
        }
        if self.now.timestamp() >= claims.exp {
            return Err(
                "has expired: a challenge is valid for 7 days; ask for a new one".to_owned()
            );
        }
        Ok(())
    }
}

fn mac(key: &SecretString) -> Result<Hmac<Sha256>, String> {
    Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
        .map_err(|_| "the signing key cannot be used".to_owned())
}

/// SHA-256 of the destination's address (`bucket/path`), hex.
fn fingerprint(conf: &str) -> String {
    let address = conf.split_once("://").map_or(conf, |(_, rest)| rest);
    let address = address.split_once('?').map_or(address, |(a, _)| a);
    hex::encode(Sha256::digest(address.as_bytes()))
}

impl App {
    /// A challenge for `destination_conf`, valid for [`CHALLENGE_LIFETIME`].
    pub async fn issue_ownership_challenge(
        &self,
        destination_conf: &DestinationConf,
    ) -> Result<String, AppError> {
        let conf = Destination::parse(destination_conf.0.expose_secret())?.redacted();
        let key = self.ownership_key(true).await?.ok_or_else(|| AppError::internal("no key"))?;
        let now = self.clock.now();
        let claims = Claims {
            fingerprint: fingerprint(&conf),
            destination_conf: conf,
            iat: now.timestamp(),
            exp: (now + CHALLENGE_LIFETIME).timestamp(),
        };
        let claims = serde_json::to_vec(&claims).map_err(AppError::internal)?;
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = mac(&key).map_err(AppError::internal)?;
        mac.update(signed.as_bytes());
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
    }

    /// Writes a new challenge for an `s3` destination into its bucket, as
    /// `<path>/ownership-challenge-<8 hex digits>.txt` (`{DATE}` is today), with the keys the
    /// destination gives or the AWS default credential chain: only who can read the bucket
    /// gets the token. Returns the object's key.
    pub async fn write_ownership_challenge(
        &self,
        destination_conf: &DestinationConf,
    ) -> Result<String, AppError> {
        let destination = Destination::parse(destination_conf.0.expose_secret())?;
        if destination.scheme() != Scheme::S3 {
            return Err(AppError::Rule(DomainError::InvalidField {
                field: "destination_conf".to_owned(),
                message: "ownership challenges are written to `s3` destinations only; HTTP and \
                          Splunk destinations need none"
                    .to_owned(),
            }));
        }
        let challenge = self.issue_ownership_challenge(destination_conf).await?;
        let clients = super::worker::clients(self).map_err(AppError::unavailable)?;
        let sink = S3Sink::open(&destination, &destination.secrets(), &clients)
            .await
            .map_err(AppError::unavailable)?;
        let today = self.clock.now().format("%Y%m%d").to_string();
        let dir = sink.path().replace(DATE_PLACEHOLDER, &today);
        let mut suffix = [0u8; 4];
        getrandom::getrandom(&mut suffix).map_err(AppError::internal)?;
        let file = format!("ownership-challenge-{}.txt", hex::encode(suffix));
        let key = match dir.trim_matches('/') {
            "" => file,
            dir => format!("{dir}/{file}"),
        };
        sink.put(&key, "text/plain; charset=utf-8", challenge.into_bytes())
            .await
            .map_err(|e| AppError::Invalid(format!("the challenge could not be written: {e}")))?;
        Ok(key)
    }

    /// Whether `challenge` is valid for `destination_conf` now (`ownership/validate`).
    pub async fn ownership_challenge_is_valid(
        &self,
        destination_conf: &DestinationConf,
        challenge: &str,
    ) -> Result<bool, AppError> {
        let conf = Destination::parse(destination_conf.0.expose_secret())?.redacted();
        Ok(self.challenge_verifier().await?.verify(&conf, challenge).is_ok())
    }

    /// The verifier of challenges, with the key if one was ever made (none is made here).
    pub(crate) async fn challenge_verifier(&self) -> Result<ChallengeVerifier, AppError> {
        Ok(ChallengeVerifier { key: self.ownership_key(false).await?, now: self.clock.now() })
    }

    /// The signing key; made (once, whichever instance is first) when `create` is set.
    async fn ownership_key(&self, create: bool) -> Result<Option<SecretString>, AppError> {
        if let Some(secret) =
            self.vault.latest(KEY_OWNER, KEY_KIND).await.map_err(AppError::unavailable)?
        {
            return self.vault.get(&secret).await.map(Some).map_err(AppError::unavailable);
        }
        if !create {
            return Ok(None);
        }
        let key = SecretString::new(crate::random_hex::<32>()?);
        match self.vault.put_at(KEY_OWNER, KEY_KIND, 1, &key).await {
            Ok(_) => Ok(Some(key)),
            // Another request made it first: use that one.
            Err(VaultError::VersionTaken { .. }) => Box::pin(self.ownership_key(false)).await,
            Err(e) => Err(AppError::unavailable(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(key: &str, claims: &Claims) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let mut mac = mac(&SecretString::from(key)).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_challenge_is_bound_to_its_key_destination_and_time() {
        let conf = "s3://logs-bucket/x?region=us-east-1";
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = |conf: &str, exp: i64| Claims {
            destination_conf: conf.into(),
            fingerprint: fingerprint(conf),
            iat: 0,
            exp,
        };
        let verifier = ChallengeVerifier { key: Some("k1".into()), now };
        let later = now.timestamp() + 60;
        assert_eq!(verifier.verify(conf, &token("k1", &claims(conf, later))), Ok(()));
        assert!(verifier.verify(conf, &token("k2", &claims(conf, later))).is_err());
        let other = "s3://logs-bucket/y?region=us-east-1";
        let message = verifier.verify(conf, &token("k1", &claims(other, later))).unwrap_err();
        assert!(message.contains("another destination"), "{message}");
        let message =
            verifier.verify(conf, &token("k1", &claims(conf, now.timestamp()))).unwrap_err();
        assert!(message.contains("expired"), "{message}");
        assert!(verifier.verify(conf, "a.b").is_err());
        let keyless = ChallengeVerifier { key: None, now };
        assert!(keyless.verify(conf, &token("k1", &claims(conf, later))).is_err());
    }
}
