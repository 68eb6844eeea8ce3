//! Cedar entities and contexts built from Portico's facts (principals, portals, servers, tools,
//! prompts, the request's time and IP), with plain input types so that callers need not depend
//! on the projections.
//!
//! Entity uids: `Portico::User::"<id>"`, `Portico::Group::"<name>"`,
//! `Portico::ServiceToken::"<id>"`, `Portico::Portal::"<id>"`, `Portico::Server::"<id>"`,
//! `Portico::Tool::"<server>/<name>"`, `Portico::Prompt::"<server>/<name>"`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::schema::schema;

/// Why entities or a context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// The committed schema did not parse (a bug; a test parses it).
    #[error("the schema is invalid: {0}")]
    Schema(String),
    /// An entity did not conform to the schema, or was given twice.
    #[error("invalid entities: {0}")]
    Entities(String),
    /// The context did not conform to the schema for the action.
    #[error("invalid context for `{action}`: {message}")]
    Context {
        /// The action the context was built for.
        action: &'static str,
        /// Cedar's message.
        message: String,
    },
    /// An action was asked about a kind of resource it does not apply to.
    #[error("action `{action}` applies to a {applies_to}, not to a {resource}")]
    Mismatch {
        /// The action's name.
        action: &'static str,
        /// The kind of resource it applies to.
        applies_to: &'static str,
        /// The kind of resource given.
        resource: &'static str,
    },
}

/// Who is asking. In JSON: `{"type": "user", "id": ..., "groups": [...], ...}` or
/// `{"type": "service_token", "id": ..., "name": ..., "client_id": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    /// A person who logged in through an identity provider.
    User {
        /// The user's id.
        id: String,
        /// Their email address.
        email: String,
        /// Their display name.
        name: String,
        /// The identity provider they logged in with.
        idp: String,
        /// The names of the groups the identity provider puts them in.
        #[serde(default)]
        groups: Vec<String>,
        /// Claims of the identity provider kept at sign-in (its `claims` setting): the
        /// entity's tags, read with `principal.getTag("<claim>")`.
        #[serde(default)]
        claims: BTreeMap<String, String>,
    },
    /// A machine client.
    ServiceToken {
        /// The token's id.
        id: String,
        /// Its name.
        name: String,
        /// Its `CF-Access-Client-Id`.
        client_id: String,
    },
}

impl Principal {
    /// The principal's Cedar uid (`Portico::User::"<id>"` or `Portico::ServiceToken::"<id>"`).
    pub fn uid(&self) -> Result<EntityUid, EntityError> {
        match self {
            Self::User { id, .. } => uid(Type::User, id),
            Self::ServiceToken { id, .. } => uid(Type::ServiceToken, id),
        }
    }

    /// The principal's id (a user id or a service-token id).
    pub fn id(&self) -> &str {
        match self {
            Self::User { id, .. } | Self::ServiceToken { id, .. } => id,
        }
    }
}

/// A portal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortalFacts {
    /// The portal's id.
    pub id: String,
    /// Its hostname.
    pub hostname: String,
}

/// An upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerFacts {
    /// The server's id.
    pub id: String,
    /// Its URL; the entity's `host` is derived from it.
    pub url: String,
    /// Its auth type (`unauthenticated`, `bearer`, `oauth`, ...).
    pub auth_type: String,
    /// The ids of the portals that include it (its parents).
    pub portals: Vec<String>,
}

/// A tool of a server, with its MCP annotation hints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolFacts {
    /// The id of the server that offers it.
    pub server_id: String,
    /// Its upstream name.
    pub name: String,
    /// `readOnlyHint`.
    pub read_only: bool,
    /// `destructiveHint`.
    pub destructive: bool,
    /// `idempotentHint`.
    pub idempotent: bool,
    /// `openWorldHint`.
    pub open_world: bool,
}

impl ToolFacts {
    /// A tool with MCP's defaults for absent hints: not read-only, destructive, not idempotent,
    /// open-world.
    pub fn with_mcp_defaults(server_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            server_id: server_id.into(),
            name: name.into(),
            read_only: false,
            destructive: true,
            idempotent: false,
            open_world: true,
        }
    }

    /// The tool's Cedar uid, `Portico::Tool::"<server>/<name>"`.
    pub fn uid(&self) -> Result<EntityUid, EntityError> {
        uid(Type::Tool, &format!("{}/{}", self.server_id, self.name))
    }
}

/// A prompt of a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptFacts {
    /// The id of the server that offers it.
    pub server_id: String,
    /// Its upstream name.
    pub name: String,
}

impl PromptFacts {
    /// The prompt's Cedar uid, `Portico::Prompt::"<server>/<name>"`.
    pub fn uid(&self) -> Result<EntityUid, EntityError> {
        uid(Type::Prompt, &format!("{}/{}", self.server_id, self.name))
    }
}

impl PortalFacts {
    /// The portal's Cedar uid, `Portico::Portal::"<id>"`.
    pub fn uid(&self) -> Result<EntityUid, EntityError> {
        uid(Type::Portal, &self.id)
    }
}

impl ServerFacts {
    /// The server's Cedar uid, `Portico::Server::"<id>"`.
    pub fn uid(&self) -> Result<EntityUid, EntityError> {
        uid(Type::Server, &self.id)
    }

    /// The host of the server's URL (empty when the URL has none).
    pub fn host(&self) -> &str {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        if let Some(bracketed) = authority.strip_prefix('[') {
            return bracketed.split(']').next().unwrap_or_default();
        }
        authority.split(':').next().unwrap_or_default()
    }
}

/// Portico's actions (in JSON, their names in the schema: `"call_tool"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `connect` to a portal.
    Connect,
    /// `use_server`: see and use a server (covers the three below).
    UseServer,
    /// `list_tool`: see a tool in `tools/list`.
    ListTool,
    /// `call_tool`: call a tool.
    CallTool,
    /// `get_prompt`: get a prompt.
    GetPrompt,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] =
        [Self::Connect, Self::UseServer, Self::ListTool, Self::CallTool, Self::GetPrompt];

    /// The action's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::UseServer => "use_server",
            Self::ListTool => "list_tool",
            Self::CallTool => "call_tool",
            Self::GetPrompt => "get_prompt",
        }
    }

    /// The action's Cedar uid, `Portico::Action::"<name>"`.
    pub fn uid(self) -> Result<EntityUid, EntityError> {
        let names = names()?;
        Ok(names.actions[self as usize].clone())
    }
}

/// The request's facts that go into Cedar's `context`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestContext {
    /// When the request arrived.
    pub time: DateTime<Utc>,
    /// The client's IP address.
    pub ip: IpAddr,
    /// What data-loss prevention found in a tool call's arguments (`call_tool` only).
    #[serde(default)]
    pub dlp_findings: Vec<String>,
}

impl RequestContext {
    /// A context with no DLP findings.
    pub fn new(time: DateTime<Utc>, ip: IpAddr) -> Self {
        Self { time, ip, dlp_findings: Vec::new() }
    }

    /// The Cedar context for `action`, validated against the schema: `time`, `weekday` (ISO,
    /// 1 = Monday, of `time` in UTC), `ip`, and for `call_tool` `dlp.findings`.
    pub fn to_cedar(&self, action: Action) -> Result<Context, EntityError> {
        let schema = schema().map_err(|e| EntityError::Schema(e.to_owned()))?;
        let mut json = serde_json::json!({
            "time": self.time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "weekday": self.time.weekday().number_from_monday(),
            "ip": self.ip.to_string(),
        });
        if action == Action::CallTool
            && let Some(object) = json.as_object_mut()
        {
            object.insert("dlp".into(), serde_json::json!({ "findings": self.dlp_findings }));
        }
        let action_uid = action.uid()?;
        Context::from_json_value(json, Some((schema, &action_uid)))
            .map_err(|e| EntityError::Context { action: action.name(), message: e.to_string() })
    }
}

/// Builds the entity set of one request or one visibility computation: the principal (and its
/// groups), then whatever resources are added, validated against the schema when built.
#[derive(Debug, Default)]
pub struct EntitiesBuilder {
    entities: Vec<Entity>,
    seen: HashSet<EntityUid>,
}

impl EntitiesBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the principal, and for a user each of its groups.
    pub fn principal(&mut self, principal: &Principal) -> Result<&mut Self, EntityError> {
        match principal {
            Principal::User { id, email, name, idp, groups, claims } => {
                let mut parents = HashSet::new();
                for group in groups {
                    let group_uid = uid(Type::Group, group)?;
                    if !self.seen.contains(&group_uid) {
                        let attrs =
                            attrs([("name", RestrictedExpression::new_string(group.clone()))]);
                        self.push(entity(group_uid.clone(), attrs, HashSet::new())?);
                    }
                    parents.insert(group_uid);
                }
                let attrs = attrs([
                    ("email", RestrictedExpression::new_string(email.clone())),
                    ("name", RestrictedExpression::new_string(name.clone())),
                    ("idp", RestrictedExpression::new_string(idp.clone())),
                ]);
                let tags = claims.iter().map(|(claim, value)| {
                    (claim.clone(), RestrictedExpression::new_string(value.clone()))
                });
                let user = Entity::new_with_tags(uid(Type::User, id)?, attrs, parents, tags)
                    .map_err(|e| EntityError::Entities(e.to_string()))?;
                self.push(user);
            }
            Principal::ServiceToken { id, name, client_id } => {
                let attrs = attrs([
                    ("name", RestrictedExpression::new_string(name.clone())),
                    ("client_id", RestrictedExpression::new_string(client_id.clone())),
                ]);
                self.push(entity(uid(Type::ServiceToken, id)?, attrs, HashSet::new())?);
            }
        }
        Ok(self)
    }

    /// Adds a portal.
    pub fn portal(&mut self, portal: &PortalFacts) -> Result<&mut Self, EntityError> {
        let attrs =
            attrs([("hostname", RestrictedExpression::new_string(portal.hostname.clone()))]);
        self.push(entity(portal.uid()?, attrs, HashSet::new())?);
        Ok(self)
    }

    /// Adds a server, `in` each of its portals (portals that are not added are still parents:
    /// Cedar only needs their uids).
    pub fn server(&mut self, server: &ServerFacts) -> Result<&mut Self, EntityError> {
        let parents =
            server.portals.iter().map(|p| uid(Type::Portal, p)).collect::<Result<_, _>>()?;
        let attrs = attrs([
            ("url", RestrictedExpression::new_string(server.url.clone())),
            ("host", RestrictedExpression::new_string(server.host().to_owned())),
            ("auth_type", RestrictedExpression::new_string(server.auth_type.clone())),
        ]);
        self.push(entity(server.uid()?, attrs, parents)?);
        Ok(self)
    }

    /// Adds a tool, `in` its server.
    pub fn tool(&mut self, tool: &ToolFacts) -> Result<&mut Self, EntityError> {
        let attrs = attrs([
            ("name", RestrictedExpression::new_string(tool.name.clone())),
            ("readOnlyHint", RestrictedExpression::new_bool(tool.read_only)),
            ("destructiveHint", RestrictedExpression::new_bool(tool.destructive)),
            ("idempotentHint", RestrictedExpression::new_bool(tool.idempotent)),
            ("openWorldHint", RestrictedExpression::new_bool(tool.open_world)),
        ]);
        let parents = HashSet::from([uid(Type::Server, &tool.server_id)?]);
        self.push(entity(tool.uid()?, attrs, parents)?);
        Ok(self)
    }

    /// Adds a prompt, `in` its server.
    pub fn prompt(&mut self, prompt: &PromptFacts) -> Result<&mut Self, EntityError> {
        let attrs = attrs([("name", RestrictedExpression::new_string(prompt.name.clone()))]);
        let parents = HashSet::from([uid(Type::Server, &prompt.server_id)?]);
        self.push(entity(prompt.uid()?, attrs, parents)?);
        Ok(self)
    }

    /// The entities, with the schema's action entities (and their hierarchy).
    ///
    /// Not checked against the schema again: this builder gives every entity exactly the
    /// attributes and parents the schema declares (a test checks it with
    /// [`EntitiesBuilder::build_checked`]), and the check costs more than the rest of a
    /// portal's visibility.
    pub fn build(mut self) -> Result<Entities, EntityError> {
        let actions = ACTION_ENTITIES.as_ref().map_err(|e| EntityError::Schema(e.clone()))?;
        self.entities.extend(actions.iter().cloned());
        Entities::from_entities(self.entities, None)
            .map_err(|e| EntityError::Entities(e.to_string()))
    }

    /// The entities, checked against the schema, with the schema's action entities.
    pub fn build_checked(self) -> Result<Entities, EntityError> {
        let schema = schema().map_err(|e| EntityError::Schema(e.to_owned()))?;
        Entities::from_entities(self.entities, Some(schema))
            .map_err(|e| EntityError::Entities(e.to_string()))
    }

    fn push(&mut self, entity: Entity) {
        // A second fact about the same uid (a tool listed twice) keeps the first.
        if self.seen.insert(entity.uid()) {
            self.entities.push(entity);
        }
    }
}

fn attrs<const N: usize>(
    pairs: [(&str, RestrictedExpression); N],
) -> HashMap<String, RestrictedExpression> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, EntityError> {
    Entity::new(uid, attrs, parents).map_err(|e| EntityError::Entities(e.to_string()))
}

/// Portico's entity types.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Type {
    Group,
    User,
    ServiceToken,
    Portal,
    Server,
    Tool,
    Prompt,
}

/// Parsed type names and action uids (parsing a name runs Cedar's parser: do it once).
#[derive(Debug)]
struct Names {
    types: [EntityTypeName; 7],
    actions: [EntityUid; 5],
}

/// The schema's action entities (`list_tool` `in` `use_server`, ...).
static ACTION_ENTITIES: LazyLock<Result<Vec<Entity>, String>> = LazyLock::new(|| {
    let schema = schema().map_err(str::to_owned)?;
    let actions = schema.action_entities().map_err(|e| e.to_string())?;
    Ok(actions.iter().cloned().collect())
});

static NAMES: LazyLock<Result<Names, String>> = LazyLock::new(|| {
    let ty = |name: &str| EntityTypeName::from_str(name).map_err(|e| e.to_string());
    let types = [
        ty("Portico::Group")?,
        ty("Portico::User")?,
        ty("Portico::ServiceToken")?,
        ty("Portico::Portal")?,
        ty("Portico::Server")?,
        ty("Portico::Tool")?,
        ty("Portico::Prompt")?,
    ];
    let action_type = ty("Portico::Action")?;
    let actions = Action::ALL
        .map(|a| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.name())));
    Ok(Names { types, actions })
});

fn names() -> Result<&'static Names, EntityError> {
    NAMES.as_ref().map_err(|e| EntityError::Schema(e.clone()))
}

/// The uid of an entity of type `ty` with id `id`.
pub(crate) fn uid(ty: Type, id: &str) -> Result<EntityUid, EntityError> {
    let names = names()?;
    Ok(EntityUid::from_type_name_and_id(names.types[ty as usize].clone(), EntityId::new(id)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server(url: &str) -> ServerFacts {
        ServerFacts { id: "s".into(), url: url.into(), auth_type: "bearer".into(), portals: vec![] }
    }

    #[test]
    fn host_is_derived_from_the_url() {
        assert_eq!(server("https://mcp.example.com/sse").host(), "mcp.example.com");
        assert_eq!(server("http://user:pw@10.0.0.1:8080/mcp").host(), "10.0.0.1");
        assert_eq!(server("http://[::1]:9000/").host(), "::1");
        assert_eq!(server("example.org").host(), "example.org");
    }

    #[test]
    fn entities_validate_against_the_schema() {
        let mut builder = EntitiesBuilder::new();
        let user = Principal::User {
            id: "alice".into(),
            email: "alice@example.com".into(),
            name: "Alice".into(),
            idp: "okta".into(),
            groups: vec!["eng".into(), "oncall".into()],
            claims: Default::default(),
        };
        builder.principal(&user).unwrap();
        builder.portal(&PortalFacts { id: "p".into(), hostname: "p.example.com".into() }).unwrap();
        let mut s = server("https://x.example.com");
        s.portals = vec!["p".into()];
        builder.server(&s).unwrap();
        builder.tool(&ToolFacts::with_mcp_defaults("s", "rm")).unwrap();
        builder.prompt(&PromptFacts { server_id: "s".into(), name: "hello".into() }).unwrap();
        let entities = builder.build_checked().unwrap();
        let tool = uid(Type::Tool, "s/rm").unwrap();
        let ancestors: HashSet<_> = entities.ancestors(&tool).unwrap().cloned().collect();
        assert!(ancestors.contains(&uid(Type::Server, "s").unwrap()));
        assert!(ancestors.contains(&uid(Type::Portal, "p").unwrap()));
        assert!(entities.ancestors(&Action::CallTool.uid().unwrap()).is_some());
    }

    #[test]
    fn contexts_validate_for_each_action() {
        let time = DateTime::parse_from_rfc3339("2026-11-26T15:04:05Z").unwrap().to_utc();
        let mut context = RequestContext::new(time, "192.0.2.1".parse().unwrap());
        context.dlp_findings = vec!["credit_card".into()];
        for action in Action::ALL {
            context.to_cedar(action).unwrap();
        }
    }
}
