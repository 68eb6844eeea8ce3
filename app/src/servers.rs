//! MCP servers: register, change, delete and sync upstream MCP servers.
//!
//! A server's write-only credentials (`auth_credentials`, `client_secret`) go to the vault under
//! the version the command names before the events that mention them are appended, and are
//! removed again if the append does not happen: no event ever refers to a missing secret, and
//! no secret outlives a failed write.

use portico_core::Actor;
use portico_core::domain::DomainError;
use portico_core::domain::ids::ServerId;
use portico_core::domain::overrides::CapabilityOverride;
use portico_core::domain::server::{
    AddServer, AuthType, CredentialKind, RemoveServer, ServerCommand, ServerSettings, ServerState,
    UpdateServer, server_stream,
};
use portico_core::vault::{SecretRef, SecretString, VaultError, credential_kind, server_owner};
use portico_gateway::ssrf::SsrfError;
use portico_gateway::sync::{SyncFailure, SyncReport};

use crate::{App, AppError, decide};

/// A server to register.
#[derive(Debug)]
pub struct NewServer {
    pub id: ServerId,
    /// The full URL of the upstream MCP endpoint.
    pub hostname: String,
    pub auth_type: AuthType,
    pub settings: ServerSettings,
    pub credentials: Credentials,
}

/// A `PUT` of a server: every mutable setting is replaced (an omitted one takes its default,
/// except `name`, which keeps its value). `hostname` and `auth_type` are fixed at creation and
/// may only be sent back unchanged.
#[derive(Debug, Default)]
pub struct ServerChanges {
    pub hostname: Option<String>,
    pub auth_type: Option<AuthType>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_shared_oauth_callback_enabled: Option<bool>,
    pub secure_web_gateway: Option<bool>,
    pub updated_tools: Option<Vec<CapabilityOverride>>,
    pub updated_prompts: Option<Vec<CapabilityOverride>>,
    pub credentials: Credentials,
}

/// The write-only secrets a request sent; each is stored under the next version of its kind.
#[derive(Debug, Default)]
pub struct Credentials {
    pub auth_credentials: Option<SecretString>,
    pub client_secret: Option<SecretString>,
}

impl Credentials {
    fn sent(self) -> impl Iterator<Item = (CredentialKind, SecretString)> {
        [
            (CredentialKind::AuthCredentials, self.auth_credentials),
            (CredentialKind::ClientSecret, self.client_secret),
        ]
        .into_iter()
        .filter_map(|(kind, secret)| secret.map(|s| (kind, s)))
    }

    /// The vault version each sent secret gets: the next one of its kind.
    fn versions(&self, current: &ServerState) -> (Option<u32>, Option<u32>) {
        let next = |sent: bool, kind| sent.then(|| current.next_credential_version(kind));
        (
            next(self.auth_credentials.is_some(), CredentialKind::AuthCredentials),
            next(self.client_secret.is_some(), CredentialKind::ClientSecret),
        )
    }
}

impl App {
    /// Registers a server, then syncs it in the background (its status is `waiting` until
    /// then). An upstream URL on an address this deployment may not reach is refused.
    pub async fn create_server(&self, server: NewServer, actor: &Actor) -> Result<(), AppError> {
        let id = server.id.clone();
        self.check_upstream(&server.hostname).await?;
        let current = self.read(|m| m.aggregates.server(&id));
        if current.exists() {
            return Err(DomainError::AlreadyExists { kind: "server", id: id.to_string() }.into());
        }
        let (auth_credentials, client_secret) = server.credentials.versions(&current);
        let command = AddServer {
            server_id: id.clone(),
            hostname: server.hostname,
            auth_type: server.auth_type,
            settings: server.settings,
            auth_credentials,
            client_secret,
        };
        self.write_server(&id, command.into(), server.credentials, actor).await?;
        self.gateway.syncer.request(id);
        Ok(())
    }

    /// Replaces a server's settings (and stores any credentials sent), then syncs it in the
    /// background.
    pub async fn update_server(
        &self,
        id: &ServerId,
        changes: ServerChanges,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let current = self.read(|m| m.aggregates.server(id));
        let Some(existing) = &current.server else {
            return Err(DomainError::NotFound { kind: "server", id: id.to_string() }.into());
        };
        let settings = ServerSettings {
            name: changes.name.unwrap_or_else(|| existing.settings.name.clone()),
            description: changes.description,
            is_shared_oauth_callback_enabled: changes
                .is_shared_oauth_callback_enabled
                .unwrap_or(false),
            secure_web_gateway: changes.secure_web_gateway.unwrap_or(false),
            updated_tools: changes.updated_tools.unwrap_or_default(),
            updated_prompts: changes.updated_prompts.unwrap_or_default(),
        };
        let (auth_credentials, client_secret) = changes.credentials.versions(&current);
        let command = UpdateServer {
            server_id: id.clone(),
            hostname: changes.hostname,
            auth_type: changes.auth_type,
            settings,
            auth_credentials,
            client_secret,
        };
        self.write_server(id, command.into(), changes.credentials, actor).await?;
        self.gateway.syncer.request(id.clone());
        Ok(())
    }

    /// Deletes a server, then its secrets.
    pub async fn delete_server(&self, id: &ServerId, actor: &Actor) -> Result<(), AppError> {
        let command = RemoveServer { server_id: id.clone() };
        self.execute(&server_stream(id), actor, |m| {
            decide(&m.aggregates.server(id), command.into(), &())
        })
        .await?;
        // The server is gone from the log; its secrets follow (a failure here leaves only
        // unreachable ciphertext, which the next delete or re-creation of the id clears).
        if let Err(error) = self.vault.delete_owner(&server_owner(id)).await {
            tracing::warn!(server_id = %id, %error, "could not remove a deleted server's secrets");
        }
        Ok(())
    }

    /// Syncs a server's tools and prompts from its upstream now. A sync that fails upstream is
    /// a report, not an error.
    pub async fn sync_server(&self, id: &ServerId) -> Result<SyncReport, AppError> {
        self.gateway.syncer.sync(id).await.map_err(|e| match e {
            SyncFailure::NoServer(_) => {
                DomainError::NotFound { kind: "server", id: id.to_string() }.into()
            }
            other => AppError::unavailable(other),
        })
    }

    /// Decides `command` against the server's state (its credential versions come from
    /// [`Credentials::versions`] of the same state), stores the sent secrets under those
    /// versions, and appends; if anything fails after the rules passed, the stored secrets go.
    async fn write_server(
        &self,
        id: &ServerId,
        command: ServerCommand,
        credentials: Credentials,
        actor: &Actor,
    ) -> Result<(), AppError> {
        // The rules run before anything reaches the vault; the append expects the version they
        // were decided against, so a concurrent write is a conflict.
        let current = self.read(|m| m.aggregates.server(id));
        let decided = decide(&current, command, &())?;
        let mut staged = Vec::new();
        let result = async {
            for (kind, secret) in credentials.sent() {
                let version = current.next_credential_version(kind);
                staged.push(self.stage(id, kind, version, &secret).await?);
            }
            self.execute(&server_stream(id), actor, |_| Ok(decided)).await
        }
        .await;
        if let Err(error) = result {
            for secret in staged {
                if let Err(error) = self.vault.delete(&secret).await {
                    tracing::warn!(owner = %secret.owner, kind = %secret.kind, %error, "could not remove an unused secret");
                }
            }
            return Err(error);
        }
        Ok(())
    }

    async fn stage(
        &self,
        id: &ServerId,
        kind: CredentialKind,
        version: u32,
        secret: &SecretString,
    ) -> Result<SecretRef, AppError> {
        self.vault
            .put_at(&server_owner(id), credential_kind(kind), version, secret)
            .await
            .map_err(|e| match e {
                VaultError::VersionTaken { .. } => AppError::Conflict(
                    "the server's credentials were changed by another request at the same time; retry"
                        .to_owned(),
                ),
                VaultError::TooLarge { max, .. } => DomainError::InvalidField {
                    field: kind.field().to_owned(),
                    message: format!("is longer than {max} bytes"),
                }
                .into(),
                other => AppError::unavailable(other),
            })
    }

    /// Refuses an upstream URL that resolves to an address this deployment may not reach.
    async fn check_upstream(&self, hostname: &str) -> Result<(), AppError> {
        // A malformed URL is the domain's to reject, with its own message.
        let Ok(url) = url::Url::parse(hostname) else { return Ok(()) };
        match self.gateway.upstreams.config().policy.check_url(&url).await {
            Ok(()) => Ok(()),
            // A name that does not resolve yet may be registered (DNS may come later); the
            // check runs again on the resolved address at every connect.
            Err(SsrfError::Resolve { .. } | SsrfError::NoAddress { .. }) => Ok(()),
            Err(refused) => Err(DomainError::InvalidField {
                field: "hostname".to_owned(),
                message: refused.to_string(),
            }
            .into()),
        }
    }
}
