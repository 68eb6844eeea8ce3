//! Service tokens: the credentials of machine clients (`CF-Access-Client-Id` and
//! `CF-Access-Client-Secret`). The client secret is generated here from the OS random source,
//! handed back once (on create and on each rotate), and stored only as its SHA-256.

use portico_core::Actor;
use portico_core::domain::DomainError;
use portico_core::domain::service_token::{
    CreateServiceToken, DEFAULT_DURATION, DeleteServiceToken, RefreshServiceToken,
    RotateServiceToken, ServiceTokenCommand, TokenLifetime, UpdateServiceToken,
    service_token_stream,
};

use crate::api_tokens::hash;
use crate::{App, AppError, decide};

/// A client secret, shown once. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// A token just created: its id, and its secret to show once.
#[derive(Debug)]
pub struct CreatedServiceToken {
    pub id: String,
    pub client_secret: ClientSecret,
}

/// 256 random bits as 64 lowercase hex characters (the shape of Cloudflare's secrets), and
/// their hash.
fn new_secret() -> Result<(ClientSecret, String), AppError> {
    let secret = crate::random_hex::<32>()?;
    let hash = hash(&secret);
    Ok((ClientSecret(secret), hash))
}

fn new_token_id() -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(AppError::internal)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string())
}

fn not_found(id: &str) -> AppError {
    DomainError::NotFound { kind: "service token", id: id.to_owned() }.into()
}

impl App {
    /// Creates a service token named `name` that lives `duration` (`8760h` by default).
    pub async fn create_service_token(
        &self,
        name: String,
        duration: Option<String>,
        actor: &Actor,
    ) -> Result<CreatedServiceToken, AppError> {
        let duration = duration.unwrap_or_else(|| DEFAULT_DURATION.to_owned());
        let expires_at = TokenLifetime::parse(&duration)?.expires_at(self.clock.now());
        let id = new_token_id()?;
        let client_id = format!("{}.access", crate::random_hex::<16>()?);
        let (client_secret, secret_hash) = new_secret()?;
        let command = CreateServiceToken {
            token_id: id.clone(),
            client_id,
            name,
            secret_hash,
            duration,
            expires_at,
        };
        self.execute_service_token(&id, command.into(), actor).await?;
        Ok(CreatedServiceToken { id, client_secret })
    }

    /// Changes a token's name or duration; an omitted one keeps its value, and a new duration
    /// counts from now.
    pub async fn update_service_token(
        &self,
        id: &str,
        name: Option<String>,
        duration: Option<String>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let token = self.read(|m| m.service_tokens.state(id).token);
        let Some(token) = token else { return Err(not_found(id)) };
        let (duration, expires_at) = match duration {
            Some(duration) if duration != token.duration => {
                let expires_at = TokenLifetime::parse(&duration)?.expires_at(self.clock.now());
                (duration, expires_at)
            }
            _ => (token.duration, token.expires_at),
        };
        let command = UpdateServiceToken {
            token_id: id.to_owned(),
            name: name.unwrap_or(token.name),
            duration,
            expires_at,
        };
        self.execute_service_token(id, command.into(), actor).await
    }

    /// Deletes a token: it stops authenticating at once.
    pub async fn delete_service_token(&self, id: &str, actor: &Actor) -> Result<(), AppError> {
        let command = DeleteServiceToken { token_id: id.to_owned() };
        self.execute_service_token(id, command.into(), actor).await
    }

    /// Gives a token a new client secret, returned once; the old one stops working.
    pub async fn rotate_service_token(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<ClientSecret, AppError> {
        let (secret, secret_hash) = new_secret()?;
        let command = RotateServiceToken { token_id: id.to_owned(), secret_hash };
        self.execute_service_token(id, command.into(), actor).await?;
        Ok(secret)
    }

    /// Extends a token's life: it now expires one `duration` from now.
    pub async fn refresh_service_token(&self, id: &str, actor: &Actor) -> Result<(), AppError> {
        let token = self.read(|m| m.service_tokens.state(id).token);
        let Some(token) = token else { return Err(not_found(id)) };
        let expires_at = TokenLifetime::parse(&token.duration)?.expires_at(self.clock.now());
        let command = RefreshServiceToken { token_id: id.to_owned(), expires_at };
        self.execute_service_token(id, command.into(), actor).await
    }

    async fn execute_service_token(
        &self,
        id: &str,
        command: ServiceTokenCommand,
        actor: &Actor,
    ) -> Result<(), AppError> {
        self.execute(&service_token_stream(id), actor, |m| {
            decide(&m.service_tokens.state(id), command, &())
        })
        .await?;
        Ok(())
    }
}
