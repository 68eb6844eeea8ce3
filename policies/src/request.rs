//! One authorization question described by Portico's facts, and the one place it becomes Cedar:
//! the principal, the resource with its ancestors, the schema's actions and the context. The
//! admin API's `cedar/authorize`, the CLI's policy tests and the data plane's `tools/call` all
//! ask through [`PolicyEngine::decide`].

use serde::{Deserialize, Serialize};

use crate::authorizer::{Decision, PolicyEngine};
use crate::entities::{
    Action, EntitiesBuilder, EntityError, PortalFacts, Principal, PromptFacts, RequestContext,
    ServerFacts, ToolFacts,
};

/// The kinds of resource the schema's actions apply to (in JSON: `"portal"`, `"tool"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Portal,
    Server,
    Tool,
    Prompt,
}

impl ResourceKind {
    /// The kind's name in JSON and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portal => "portal",
            Self::Server => "server",
            Self::Tool => "tool",
            Self::Prompt => "prompt",
        }
    }
}

impl Action {
    /// The kind of resource the schema lets this action apply to.
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            Self::Connect => ResourceKind::Portal,
            Self::UseServer => ResourceKind::Server,
            Self::ListTool | Self::CallTool => ResourceKind::Tool,
            Self::GetPrompt => ResourceKind::Prompt,
        }
    }
}

/// A server as a resource or as the parent of one: its facts and the portals it is in (the
/// portals become entities too, so that a policy can read their attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInPortals {
    pub server: ServerFacts,
    pub portals: Vec<PortalFacts>,
}

/// What a question is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Portal(PortalFacts),
    Server(ServerInPortals),
    Tool { server: ServerInPortals, tool: ToolFacts },
    Prompt { server: ServerInPortals, prompt: PromptFacts },
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Portal(_) => ResourceKind::Portal,
            Self::Server(_) => ResourceKind::Server,
            Self::Tool { .. } => ResourceKind::Tool,
            Self::Prompt { .. } => ResourceKind::Prompt,
        }
    }
}

/// May `principal` do `action` on `resource`, in `context`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub principal: Principal,
    pub action: Action,
    pub resource: Resource,
    pub context: RequestContext,
}

impl PolicyEngine {
    /// Decides `request`: builds its entities (the principal and its groups, the resource, its
    /// server and that server's portals) and its context, then evaluates. An action asked about
    /// a resource it does not apply to (`connect` on a tool) is an error, not a silent deny.
    pub fn decide(&self, request: &Request) -> Result<Decision, EntityError> {
        let kind = request.resource.kind();
        if request.action.resource_kind() != kind {
            return Err(EntityError::Mismatch {
                action: request.action.name(),
                applies_to: request.action.resource_kind().name(),
                resource: kind.name(),
            });
        }
        let mut builder = EntitiesBuilder::new();
        builder.principal(&request.principal)?;
        let add_server = |builder: &mut EntitiesBuilder, s: &ServerInPortals| {
            for portal in &s.portals {
                builder.portal(portal)?;
            }
            builder.server(&s.server)?;
            Ok::<_, EntityError>(())
        };
        let resource = match &request.resource {
            Resource::Portal(portal) => {
                builder.portal(portal)?;
                portal.uid()?
            }
            Resource::Server(server) => {
                add_server(&mut builder, server)?;
                server.server.uid()?
            }
            Resource::Tool { server, tool } => {
                add_server(&mut builder, server)?;
                builder.tool(tool)?;
                tool.uid()?
            }
            Resource::Prompt { server, prompt } => {
                add_server(&mut builder, server)?;
                builder.prompt(prompt)?;
                prompt.uid()?
            }
        };
        let entities = builder.build()?;
        let context = request.context.to_cedar(request.action)?;
        Ok(self.is_authorized(
            &request.principal.uid()?,
            request.action,
            &resource,
            &context,
            &entities,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;
    use portico_core::domain::ids::PolicyId;
    use portico_core::domain::policy::PolicyRecord;

    use super::*;

    fn engine(policies: &[(&str, &str)]) -> PolicyEngine {
        let records: Vec<PolicyRecord> = policies
            .iter()
            .map(|(id, text)| PolicyRecord {
                id: PolicyId::parse(*id).unwrap(),
                name: (*id).into(),
                description: None,
                policy: (*text).into(),
                enabled: true,
            })
            .collect();
        PolicyEngine::new(&records).unwrap()
    }

    fn alice() -> Principal {
        Principal::User {
            id: "alice".into(),
            email: "alice@example.com".into(),
            name: "Alice".into(),
            idp: "test".into(),
            groups: vec!["engineering".into()],
            claims: Default::default(),
        }
    }

    fn docs() -> ServerInPortals {
        ServerInPortals {
            server: ServerFacts {
                id: "docs".into(),
                url: "https://docs.example.com/mcp".into(),
                auth_type: "unauthenticated".into(),
                portals: vec!["main".into()],
            },
            portals: vec![PortalFacts { id: "main".into(), hostname: "main.example.com".into() }],
        }
    }

    fn context() -> RequestContext {
        RequestContext::new(
            chrono::Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap(),
            "192.0.2.1".parse().unwrap(),
        )
    }

    #[test]
    fn a_tool_call_sees_the_group_the_server_the_portal_and_the_hints() {
        let engine = engine(&[(
            "engineers-read-docs",
            r#"permit(principal in Portico::Group::"engineering", action == Portico::Action::"call_tool", resource)
               when { resource in Portico::Portal::"main" && resource.readOnlyHint };"#,
        )]);
        let ask = |read_only| Request {
            principal: alice(),
            action: Action::CallTool,
            resource: Resource::Tool {
                server: docs(),
                tool: ToolFacts { read_only, ..ToolFacts::with_mcp_defaults("docs", "search") },
            },
            context: context(),
        };
        let allowed = engine.decide(&ask(true)).unwrap();
        assert!(allowed.allowed);
        assert_eq!(allowed.policy_ids, ["engineers-read-docs"]);
        assert!(!engine.decide(&ask(false)).unwrap().allowed);
    }

    #[test]
    fn a_user_s_kept_claims_are_tags_policies_can_read() {
        let engine = engine(&[(
            "research-connects",
            r#"permit(principal is Portico::User, action == Portico::Action::"connect", resource)
               when { principal.hasTag("department") && principal.getTag("department") == "research" };"#,
        )]);
        let ask = |claims: &[(&str, &str)]| {
            let Principal::User { id, email, name, idp, groups, .. } = alice() else {
                unreachable!()
            };
            let claims = claims.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            Request {
                principal: Principal::User { id, email, name, idp, groups, claims },
                action: Action::Connect,
                resource: Resource::Portal(PortalFacts {
                    id: "main".into(),
                    hostname: "main.example.com".into(),
                }),
                context: context(),
            }
        };
        assert!(engine.decide(&ask(&[("department", "research")])).unwrap().allowed);
        assert!(!engine.decide(&ask(&[("department", "sales")])).unwrap().allowed);
        assert!(!engine.decide(&ask(&[])).unwrap().allowed, "no tag: `hasTag` is false");
    }

    #[test]
    fn an_action_on_a_resource_it_does_not_apply_to_is_an_error() {
        let engine = engine(&[]);
        let request = Request {
            principal: alice(),
            action: Action::Connect,
            resource: Resource::Server(docs()),
            context: context(),
        };
        let error = engine.decide(&request).unwrap_err();
        assert_eq!(error.to_string(), "action `connect` applies to a portal, not to a server");
    }
}
