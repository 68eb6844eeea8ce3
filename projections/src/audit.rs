//! The audit trail of admin changes: who changed what, when, with the value before and after.
//!
//! Every admin event becomes one [`AuditEntry`]. Values are the resource as the admin API shows
//! it, built from the events alone, so they can never hold a secret (events never do): a
//! credential change shows as `"auth_credentials_version": 3`, a token as its name and scope.

use chrono::{DateTime, Utc};
use portico_core::domain::access_app::access_app_id;
use portico_core::domain::policy::{PolicyCreated, PolicyUpdated};
use portico_core::{Actor, Event, Position, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Projection;

portico_core::wire_enum! {
    /// What kind of change an entry records (`action.type` in the audit-log API).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum AuditAction {
        Create = "create",
        Update = "update",
        Delete = "delete",
        Revoke = "revoke",
    }
}

portico_core::wire_enum! {
    /// The kind of resource an entry is about (`resource.type` in the audit-log API). The
    /// API's `resource.type` filter and its OpenAPI enum are both built from
    /// [`ResourceType::ALL`], so every kind an entry carries is a kind a client can ask for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ResourceType {
        McpServer = "mcp_server",
        McpPortal = "mcp_portal",
        ApiToken = "api_token",
        Account = "account",
        CedarPolicy = "cedar_policy",
        CedarPolicySet = "cedar_policy_set",
        ServiceToken = "service_token",
        IdentityProvider = "identity_provider",
        AccessApplication = "access_application",
        LogpushJob = "logpush_job",
    }
}

/// One admin change. The values before and after are not kept here (the trail would grow with
/// every change to every resource): [`resource_values`] folds them from the resource's stream
/// when an entry is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The id of the event that recorded the change.
    pub id: Uuid,
    pub position: Position,
    pub when: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub stream_id: String,
    pub stream_version: u64,
}

/// Every admin change, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditTrail {
    entries: Vec<AuditEntry>,
}

impl AuditTrail {
    /// Every entry, oldest first.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }
}

/// What an admin event did to which resource; `None` for what is not an admin change (syncs,
/// which Portico does on its own, and calls through portals, which have their own logs).
fn classify(event: &Event) -> Option<(AuditAction, ResourceType, &str)> {
    use AuditAction::{Create, Delete, Revoke, Update};
    use ResourceType::{
        Account, ApiToken, CedarPolicy, CedarPolicySet, McpPortal, McpServer, ServiceToken,
    };
    match event {
        Event::ServerAdded(e) => Some((Create, McpServer, e.server_id.as_str())),
        Event::ServerUpdated(e) => Some((Update, McpServer, e.server_id.as_str())),
        Event::ServerCredentialSet(e) => Some((Update, McpServer, e.server_id.as_str())),
        Event::ServerRemoved(e) => Some((Delete, McpServer, e.server_id.as_str())),
        Event::PortalAdded(e) => Some((Create, McpPortal, e.portal_id.as_str())),
        Event::PortalUpdated(e) => Some((Update, McpPortal, e.portal_id.as_str())),
        Event::PortalRemoved(e) => Some((Delete, McpPortal, e.portal_id.as_str())),
        Event::AccountCreated(e) => Some((Create, Account, e.account_id.as_str())),
        Event::ApiTokenCreated(e) => Some((Create, ApiToken, &e.token_id)),
        Event::ApiTokenRevoked(e) => Some((Revoke, ApiToken, &e.token_id)),
        Event::PolicyCreated(e) => Some((Create, CedarPolicy, e.policy.id.as_str())),
        Event::PolicyUpdated(e) => Some((Update, CedarPolicy, e.policy.id.as_str())),
        Event::PolicyDeleted(e) => Some((Delete, CedarPolicy, e.policy_id.as_str())),
        Event::PolicySetReplaced(_) => Some((Update, CedarPolicySet, "policies")),
        Event::ServiceTokenCreated(e) => Some((Create, ServiceToken, &e.token_id)),
        Event::ServiceTokenUpdated(e) => Some((Update, ServiceToken, &e.token_id)),
        Event::ServiceTokenRotated(e) => Some((Update, ServiceToken, &e.token_id)),
        Event::ServiceTokenDeleted(e) => Some((Delete, ServiceToken, &e.token_id)),
        // Hostname claims are the bookkeeping of a portal write, which is recorded itself;
        // sign-ins and grants are people using portals, not admin changes.
        Event::ServerSynced(_)
        | Event::ServerSyncFailed(_)
        | Event::PortalRequestHandled(_)
        | Event::PortalHostnameClaimed(_)
        | Event::PortalHostnameReleased(_)
        | Event::GrantAuthorized(_)
        | Event::GrantCodeRedeemed(_)
        | Event::GrantRefreshed(_)
        | Event::GrantRevoked(_)
        | Event::UserSignedIn(_)
        | Event::UserSignedOut(_)
        | Event::SignInFailed(_)
        | Event::OAuthClientRegistered(_)
        | Event::OAuthClientRemoved(_)
        | Event::ConsentGiven(_)
        | Event::LogpushJobIdReserved(_)
        | Event::LogpushJobDelivered(_)
        | Event::LogpushJobFailed(_)
        | Event::LogpushJobBatchPlanned(_)
        // Upstream authorizations are tokens Portico obtained, not settings anyone changed.
        | Event::UpstreamAuthorized(_)
        | Event::UpstreamTokenRefreshed(_)
        | Event::UpstreamAuthorizationFailed(_)
        | Event::UpstreamAuthorizationRevoked(_) => None,
        // Their resource ids are not strings in the event: see `classify_owned`.
        Event::IdentityProviderCreated(_)
        | Event::IdentityProviderUpdated(_)
        | Event::IdentityProviderDeleted(_)
        | Event::AccessAppUpdated(_)
        | Event::LogpushJobCreated(_)
        | Event::LogpushJobUpdated(_)
        | Event::LogpushJobDeleted(_) => None,
    }
}

/// [`classify`] for the events whose resource id is derived (a UUID, or an application's id
/// from its portal's).
fn classify_owned(event: &Event) -> Option<(AuditAction, ResourceType, String)> {
    use AuditAction::{Create, Delete, Update};
    use ResourceType::{AccessApplication, IdentityProvider, LogpushJob};
    match event {
        Event::IdentityProviderCreated(e) => {
            Some((Create, IdentityProvider, e.identity_provider_id.to_string()))
        }
        Event::IdentityProviderUpdated(e) => {
            Some((Update, IdentityProvider, e.identity_provider_id.to_string()))
        }
        Event::IdentityProviderDeleted(e) => {
            Some((Delete, IdentityProvider, e.identity_provider_id.to_string()))
        }
        Event::AccessAppUpdated(e) => {
            Some((Update, AccessApplication, access_app_id(&e.portal_id).to_string()))
        }
        Event::LogpushJobCreated(e) => Some((Create, LogpushJob, e.job_id.to_string())),
        Event::LogpushJobUpdated(e) => Some((Update, LogpushJob, e.job_id.to_string())),
        Event::LogpushJobDeleted(e) => Some((Delete, LogpushJob, e.job_id.to_string())),
        _ => classify(event).map(|(action, kind, id)| (action, kind, id.to_owned())),
    }
}

impl Projection for AuditTrail {
    const NAME: &'static str = "audit_trail";
    const VERSION: u32 = 2;

    fn apply(&mut self, recorded: &RecordedEvent) {
        if let Some(entry) = audit_entry(recorded) {
            self.entries.push(entry);
        }
    }
}

/// The entry of `recorded`, if it is an admin change.
pub fn audit_entry(recorded: &RecordedEvent) -> Option<AuditEntry> {
    let (action, resource_type, resource_id) = classify_owned(&recorded.event)?;
    Some(AuditEntry {
        id: recorded.event_id,
        position: recorded.position,
        when: recorded.recorded_at,
        actor: recorded.actor.clone(),
        action,
        resource_type,
        resource_id,
        stream_id: recorded.stream_id.clone(),
        stream_version: recorded.stream_version,
    })
}

/// The value of resource `resource_id` before and after the last of `events` (its stream, from
/// version 1 up to the entry's version), as the admin API shows resources. Secrets cannot
/// appear: the events hold none. The policy stream holds every policy, so for a policy only the
/// events about it count; for the set (`policies`) the value is the whole set.
pub fn resource_values<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    resource_id: &str,
) -> (Option<Value>, Option<Value>) {
    let mut before = None;
    let mut current: Option<Value> = None;
    let mut policy_set: std::collections::BTreeMap<String, Value> =
        std::collections::BTreeMap::new();
    for event in events {
        before = current.clone();
        current = next_value(current, event, resource_id, &mut policy_set);
    }
    (before, current)
}

fn next_value(
    current: Option<Value>,
    event: &Event,
    resource_id: &str,
    policy_set: &mut std::collections::BTreeMap<String, Value>,
) -> Option<Value> {
    let with = |base: Option<Value>, patch: Value| {
        let mut value = base.unwrap_or_else(|| json!({}));
        merge(&mut value, patch);
        Some(value)
    };
    // The set's value: every policy, by id, after this event.
    let whole_set = resource_id == "policies";
    match event {
        Event::ServerAdded(e) => with(
            Some(json!({"id": e.server_id, "hostname": e.hostname, "auth_type": e.auth_type})),
            to_value(&e.settings),
        ),
        Event::ServerUpdated(e) => with(current, to_value(&e.settings)),
        Event::ServerSynced(_)
        | Event::ServerSyncFailed(_)
        | Event::PortalRequestHandled(_)
        | Event::PortalHostnameClaimed(_)
        | Event::PortalHostnameReleased(_)
        | Event::GrantAuthorized(_)
        | Event::GrantCodeRedeemed(_)
        | Event::GrantRefreshed(_)
        | Event::GrantRevoked(_)
        | Event::UserSignedIn(_)
        | Event::UserSignedOut(_)
        | Event::SignInFailed(_)
        | Event::OAuthClientRegistered(_)
        | Event::OAuthClientRemoved(_)
        | Event::ConsentGiven(_)
        | Event::LogpushJobIdReserved(_)
        | Event::UpstreamAuthorized(_)
        | Event::UpstreamTokenRefreshed(_)
        | Event::UpstreamAuthorizationFailed(_)
        | Event::UpstreamAuthorizationRevoked(_) => current,
        // The worker's reports change the job's status, not its settings.
        Event::LogpushJobDelivered(_)
        | Event::LogpushJobFailed(_)
        | Event::LogpushJobBatchPlanned(_) => current,
        Event::LogpushJobCreated(e) => with(
            Some(json!({"id": e.job_id, "dataset": e.dataset, "kind": e.kind})),
            to_value(&e.settings),
        ),
        Event::LogpushJobUpdated(e) => with(current, to_value(&e.settings)),
        Event::ServerCredentialSet(e) => {
            with(current, json!({ format!("{}_version", e.credential.field()): e.version }))
        }
        Event::PortalAdded(e) => with(Some(json!({"id": e.portal_id})), to_value(&e.settings)),
        Event::PortalUpdated(e) => with(Some(json!({"id": e.portal_id})), to_value(&e.settings)),
        Event::AccountCreated(e) => Some(json!({"id": e.account_id})),
        Event::ApiTokenCreated(e) => {
            Some(json!({"id": e.token_id, "name": e.name, "scope": e.scope}))
        }
        Event::PolicyCreated(PolicyCreated { policy })
        | Event::PolicyUpdated(PolicyUpdated { policy }) => {
            policy_set.insert(policy.id.to_string(), to_value(policy));
            if whole_set {
                Some(Value::Array(policy_set.values().cloned().collect()))
            } else if policy.id.as_str() == resource_id {
                Some(to_value(policy))
            } else {
                current
            }
        }
        Event::PolicyDeleted(e) => {
            policy_set.remove(e.policy_id.as_str());
            if whole_set {
                Some(Value::Array(policy_set.values().cloned().collect()))
            } else if e.policy_id.as_str() == resource_id {
                None
            } else {
                current
            }
        }
        Event::PolicySetReplaced(e) => {
            *policy_set = e.policies.iter().map(|p| (p.id.to_string(), to_value(p))).collect();
            if whole_set {
                Some(Value::Array(policy_set.values().cloned().collect()))
            } else {
                policy_set.get(resource_id).cloned()
            }
        }
        Event::ServiceTokenCreated(e) => Some(json!({
            "id": e.token_id, "client_id": e.client_id, "name": e.name,
            "duration": e.duration, "expires_at": e.expires_at, "secret_version": 1
        })),
        Event::ServiceTokenUpdated(e) => with(
            current,
            json!({"name": e.name, "duration": e.duration, "expires_at": e.expires_at}),
        ),
        Event::ServiceTokenRotated(_) => {
            let version = current.as_ref().and_then(|v| v["secret_version"].as_u64()).unwrap_or(1);
            with(current, json!({"secret_version": version + 1}))
        }
        Event::IdentityProviderCreated(e) => {
            with(Some(json!({"id": e.identity_provider_id.to_string()})), to_value(&e.settings))
        }
        Event::IdentityProviderUpdated(e) => {
            with(Some(json!({"id": e.identity_provider_id.to_string()})), to_value(&e.settings))
        }
        Event::AccessAppUpdated(e) => with(
            Some(json!({"id": access_app_id(&e.portal_id).to_string(), "portal_id": e.portal_id})),
            to_value(&e.configuration),
        ),
        Event::ServerRemoved(_)
        | Event::PortalRemoved(_)
        | Event::ApiTokenRevoked(_)
        | Event::ServiceTokenDeleted(_)
        | Event::IdentityProviderDeleted(_)
        | Event::LogpushJobDeleted(_) => None,
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Sets every field of `patch` (an object) on `target` (an object).
fn merge(target: &mut Value, patch: Value) {
    if let (Value::Object(target), Value::Object(patch)) = (target, patch) {
        target.extend(patch);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use portico_core::domain::ids::ServerId;
    use portico_core::domain::server::{
        AuthType, CredentialKind, ServerAdded, ServerCredentialSet, ServerRemoved, ServerSettings,
        ServerUpdated,
    };

    use super::*;

    #[test]
    fn values_before_and_after_follow_the_stream() {
        let id = ServerId::parse("docs").unwrap();
        let settings =
            |name: &str| ServerSettings { name: name.into(), ..ServerSettings::default() };
        let events = [
            Event::ServerAdded(ServerAdded {
                server_id: id.clone(),
                hostname: "https://docs.example.com/mcp".into(),
                auth_type: AuthType::Bearer,
                settings: settings("Docs"),
            }),
            Event::ServerCredentialSet(ServerCredentialSet {
                server_id: id.clone(),
                credential: CredentialKind::AuthCredentials,
                version: 1,
            }),
            Event::ServerUpdated(ServerUpdated {
                server_id: id.clone(),
                settings: settings("Docs 2"),
            }),
            Event::ServerRemoved(ServerRemoved { server_id: id.clone() }),
        ];
        let (old, new) = resource_values(&events[..1], "docs");
        assert_eq!(old, None);
        let new = new.unwrap();
        assert_eq!(new["hostname"], "https://docs.example.com/mcp");
        assert_eq!(new["auth_type"], "bearer");
        assert_eq!(new["name"], "Docs");

        let (old, new) = resource_values(&events[..2], "docs");
        assert_eq!(old.unwrap().get("auth_credentials_version"), None);
        assert_eq!(new.unwrap()["auth_credentials_version"], 1);

        let (old, new) = resource_values(&events[..3], "docs");
        assert_eq!(old.unwrap()["name"], "Docs");
        let new = new.unwrap();
        assert_eq!(new["name"], "Docs 2");
        assert_eq!(new["hostname"], "https://docs.example.com/mcp", "fixed fields carry over");
        assert_eq!(new["auth_credentials_version"], 1);

        let (old, new) = resource_values(&events, "docs");
        assert_eq!(old.unwrap()["name"], "Docs 2");
        assert_eq!(new, None);
        assert_eq!(classify(&events[3]).map(|c| c.0), Some(AuditAction::Delete));
        assert_eq!(
            classify(&events[1]),
            Some((AuditAction::Update, ResourceType::McpServer, "docs"))
        );
    }
}
