//! Identity providers: add, change and delete the ways people sign in, and the built-in
//! one-time PIN provider every account starts with.
//!
//! An OIDC provider's client secret goes to the vault (owner `identity-provider:{id}`) under the
//! next version before the event that names the version is appended, and is removed again if
//! the append does not happen; a deleted provider's secrets are removed after its delete.

use std::collections::BTreeMap;

use portico_core::domain::DomainError;
use portico_core::domain::identity_provider::{
    self, CLIENT_SECRET_KIND, ConfigInput, CreateIdentityProvider, DeleteIdentityProvider,
    IdentityProviderCommand, IdentityProviderId, IdentityProviderInput, IdentityProviderState,
    UpdateIdentityProvider, identity_provider_stream, one_time_pin_id, vault_owner,
};
use portico_core::domain::ids::PortalId;
use portico_core::vault::{SecretRef, SecretString, VaultError};
use portico_core::{Actor, EventLog};

use crate::{App, AppError, decide};

/// The name of the one-time PIN provider a fresh account starts with.
pub const BUILT_IN_PIN_NAME: &str = "One-time PIN";

impl App {
    /// Adds an identity provider and returns its id: [`one_time_pin_id`] for a one-time PIN
    /// provider (there is at most one), a fresh random UUID otherwise. An OIDC provider needs
    /// its `client_secret`.
    pub async fn create_identity_provider(
        &self,
        input: IdentityProviderInput,
        client_secret: Option<SecretString>,
        actor: &Actor,
    ) -> Result<IdentityProviderId, AppError> {
        let id = match input.config {
            ConfigInput::OneTimePin => one_time_pin_id(),
            ConfigInput::Oidc(_) => new_id()?,
        };
        let state = self.read(|m| m.identity_providers.state(&id));
        let version = client_secret.as_ref().map(|_| state.next_client_secret_version());
        let command = CreateIdentityProvider {
            identity_provider_id: id,
            input,
            client_secret_version: version,
        };
        self.write_identity_provider(&id, state, command.into(), client_secret, actor).await?;
        Ok(id)
    }

    /// Replaces a provider's settings. Without `client_secret` an OIDC provider keeps its
    /// secret; with one, the new secret replaces it.
    pub async fn update_identity_provider(
        &self,
        id: &IdentityProviderId,
        input: IdentityProviderInput,
        client_secret: Option<SecretString>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let state = self.read(|m| m.identity_providers.state(id));
        let version = client_secret.as_ref().map(|_| state.next_client_secret_version());
        let command = UpdateIdentityProvider {
            identity_provider_id: *id,
            input,
            client_secret_version: version,
        };
        self.write_identity_provider(id, state, command.into(), client_secret, actor).await
    }

    /// Deletes a provider (refused while an Access application allows it), then its secrets.
    pub async fn delete_identity_provider(
        &self,
        id: &IdentityProviderId,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let command = DeleteIdentityProvider { identity_provider_id: *id };
        self.execute(&identity_provider_stream(id), actor, |m| {
            decide(&m.identity_providers.state(id), command.into(), m)
        })
        .await?;
        // The provider is gone from the log; its secrets follow (a failure leaves only
        // ciphertext no event names).
        if let Err(error) = self.vault.delete_owner(&vault_owner(id)).await {
            tracing::warn!(identity_provider_id = %id, %error, "could not remove a deleted identity provider's secrets");
        }
        Ok(())
    }

    /// Decides `command` against `state` (whose next secret version the command names), stores
    /// the sent secret under that version, and appends; if anything fails after the rules
    /// passed, the stored secret goes.
    async fn write_identity_provider(
        &self,
        id: &IdentityProviderId,
        state: IdentityProviderState,
        command: IdentityProviderCommand,
        client_secret: Option<SecretString>,
        actor: &Actor,
    ) -> Result<(), AppError> {
        if let Some(secret) = &client_secret {
            identity_provider::check_client_secret(secret.expose_secret())?;
        }
        // The rules run before anything reaches the vault; the append expects the version they
        // were decided against, so a concurrent write is a conflict.
        let decided = self.read(|m| decide(&state, command, m))?;
        let mut staged = None;
        let result = async {
            if let Some(secret) = &client_secret {
                let version = state.next_client_secret_version();
                staged = Some(self.stage_client_secret(id, version, secret).await?);
            }
            self.execute(&identity_provider_stream(id), actor, |_| Ok(decided)).await
        }
        .await;
        if let Err(error) = result {
            if let Some(secret) = staged {
                if let Err(error) = self.vault.delete(&secret).await {
                    tracing::warn!(owner = %secret.owner, kind = %secret.kind, %error, "could not remove an unused secret");
                }
            }
            return Err(error);
        }
        Ok(())
    }

    async fn stage_client_secret(
        &self,
        id: &IdentityProviderId,
        version: u32,
        secret: &SecretString,
    ) -> Result<SecretRef, AppError> {
        self.vault.put_at(&vault_owner(id), CLIENT_SECRET_KIND, version, secret).await.map_err(
            |e| match e {
                VaultError::VersionTaken { .. } => AppError::Conflict(
                    "the identity provider's client secret was changed by another request at \
                     the same time; retry"
                        .to_owned(),
                ),
                VaultError::TooLarge { max, .. } => DomainError::InvalidField {
                    field: "config.client_secret".to_owned(),
                    message: format!("is longer than {max} bytes"),
                }
                .into(),
                other => AppError::unavailable(other),
            },
        )
    }
}

fn new_id() -> Result<IdentityProviderId, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(AppError::internal)?;
    Ok(IdentityProviderId::from_random_bytes(bytes))
}

/// Creates the built-in one-time PIN provider unless its stream has events (it exists, or an
/// admin deleted it: a deleted one is not brought back). Runs at start-up, before the read
/// models: nothing can refer to a provider that never existed, so no usage is looked up.
/// Returns whether it was created now.
pub async fn ensure_one_time_pin(log: &dyn EventLog, actor: &Actor) -> Result<bool, AppError> {
    let id = one_time_pin_id();
    let stream = identity_provider_stream(&id);
    let state: IdentityProviderState = crate::load(log, &stream).await?;
    if state.stream_version > 0 {
        return Ok(false);
    }
    let command = CreateIdentityProvider {
        identity_provider_id: id,
        input: IdentityProviderInput {
            name: BUILT_IN_PIN_NAME.to_owned(),
            config: ConfigInput::OneTimePin,
        },
        client_secret_version: None,
    };
    let no_usage: BTreeMap<IdentityProviderId, Vec<PortalId>> = BTreeMap::new();
    let created = crate::execute_on_log::<IdentityProviderState>(
        log,
        &stream,
        command.into(),
        &no_usage,
        actor,
    )
    .await;
    match created {
        Ok(_) => Ok(true),
        // Another instance created it at the same moment.
        Err(AppError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
