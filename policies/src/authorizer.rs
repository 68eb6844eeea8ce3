//! The authorizer: Portico's enabled policies, indexed by the entities their scopes name, and
//! decisions that carry the ids of the policies that made them and any evaluation errors.
//!
//! # The index
//! Cedar evaluates every policy of a set, so a large set gets slow. A policy's scope can only
//! match a request if the entity its principal constraint names (`==`, `in`, `is .. in`) is the
//! request's principal or one of its ancestors (its groups), and likewise for the resource (the
//! tool, its server, the server's portals), and only if its action scope matches the request's
//! action. So the policies are partitioned into small pre-built [`PolicySet`]s keyed by
//! (action, principal key, resource key), where a key is the named
//! entity or "unconstrained" (which also holds `is` constraints). A request evaluates only the
//! sets whose keys are among the principal's and resource's own uid and ancestors, plus the
//! unconstrained ones, and combines their answers as Cedar does: any satisfied `forbid` denies
//! (the reasons are every satisfied forbid), else any satisfied `permit` allows (the reasons are
//! every satisfied permit), else deny with no reasons; errors are the union. A policy left out
//! has a scope that is false for the request, and Cedar evaluates the scope before the
//! conditions, so it can neither be satisfied nor error: the answer is exactly Cedar's
//! (`tests/it/differential.rs` checks it on random requests).

use std::collections::{BTreeSet, HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityUid,
    Policy, PolicyId, PolicySet, PrincipalConstraint, Request, ResourceConstraint,
};
use portico_core::domain::policy::PolicyRecord;

use crate::entities::{Action, EntityError};

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyEngineError {
    /// A policy's text did not parse as exactly one static policy.
    #[error("policy `{id}` does not parse: {message}")]
    Parse {
        /// The policy's id.
        id: String,
        /// Cedar's message.
        message: String,
    },
    /// Two policies have the same id.
    #[error("policy `{id}` is given twice")]
    Duplicate {
        /// The repeated id.
        id: String,
    },
    /// Portico's names could not be built (a bug).
    #[error(transparent)]
    Names(#[from] EntityError),
}

/// An authorization decision: not an error, whatever it says.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The ids of the policies that determined the decision, sorted: the satisfied permits when
    /// allowed, the satisfied forbids when a forbid denied, none when nothing applied.
    pub policy_ids: Vec<String>,
    /// Errors met while evaluating policies (those policies were skipped, as Cedar does).
    pub errors: Vec<String>,
}

impl Decision {
    /// A denial with an error and no reasons (the request could not be evaluated).
    fn error(message: String) -> Self {
        Self { allowed: false, policy_ids: Vec::new(), errors: vec![message] }
    }
}

/// What a policy's scope names on one side (principal or resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// No entity named (unconstrained, or only `is Type`).
    Any,
    /// The entity named by `==`, `in` or `is .. in`.
    Entity(EntityUid),
}

/// The enabled policies of an account, indexed, ready to answer requests.
#[derive(Debug, Default)]
pub struct PolicyEngine {
    /// Every enabled policy, for whole-set evaluation and introspection.
    all: PolicySet,
    /// Per action (by [`Action`]'s order), principal key -> resource key -> the policies whose
    /// action scope can match that action, with both keys.
    index: [HashMap<Key, HashMap<Key, PolicySet>>; 5],
    /// Each action's uid and ancestors (from the schema), to match action scopes.
    actions: Vec<(Action, EntityUid, Vec<EntityUid>)>,
    /// Policies by id, with their scope keys and actions (for "which policies to check").
    scopes: Vec<Scope>,
    /// Whether some policy's condition reads `context` (then decisions vary per request).
    reads_context: bool,
    /// Every enabled policy with what [`Narrowed`] needs, in load order.
    entries: Vec<Entry>,
    /// Per action, the positions in `entries` of the policies whose action scope matches it.
    by_action: [Vec<usize>; 5],
}

/// One enabled policy, as [`Narrowed`] sees it.
#[derive(Debug)]
struct Entry {
    policy: Policy,
    id: String,
    forbid: bool,
    principal: PrincipalConstraint,
    resource: ResourceConstraint,
    /// No `when`/`unless` clause: satisfied, without error, whenever its scope matches.
    unconditional: bool,
    /// The conditions name no entity literal and use `resource` only as `resource.h` or
    /// `resource has h` for a tool hint `h`: for a fixed principal, action and context, the
    /// outcome on a tool depends only on the tool's hints.
    hints_only: bool,
}

/// The tool attributes [`Entry::hints_only`] allows conditions to read.
const HINTS: [&str; 4] = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"];

/// Whether a policy's JSON conditions read `resource` only through its hints and name no entity.
fn hints_only(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for op in [".", "has"] {
                if let Some(Value::Object(inner)) = map.get(op) {
                    let left_is_resource = inner
                        .get("left")
                        .and_then(|l| l.get("Var"))
                        .and_then(Value::as_str)
                        .is_some_and(|v| v == "resource");
                    let attr = inner.get("attr").and_then(Value::as_str);
                    if left_is_resource && map.len() == 1 {
                        return attr.is_some_and(|a| HINTS.contains(&a));
                    }
                }
            }
            if map.contains_key("__entity")
                || map.get("Var").and_then(Value::as_str).is_some_and(|v| v == "resource")
            {
                return false;
            }
            map.values().all(hints_only)
        }
        Value::Array(items) => items.iter().all(hints_only),
        _ => true,
    }
}

/// One policy's scope, as the index sees it.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) id: String,
    pub(crate) resource: Option<EntityUid>,
    pub(crate) actions: ActionConstraint,
}

impl PolicyEngine {
    /// Loads the enabled policies of `policies`, each parsed with its id. The texts were
    /// validated against the schema when written; this only parses them.
    pub fn new(policies: &[PolicyRecord]) -> Result<Self, PolicyEngineError> {
        let mut engine = Self::default();
        let schema = crate::schema::schema().map_err(|e| EntityError::Schema(e.to_owned()))?;
        let action_entities =
            schema.action_entities().map_err(|e| EntityError::Schema(e.to_string()))?;
        for action in Action::ALL {
            let uid = action.uid()?;
            let ancestors =
                action_entities.ancestors(&uid).map(|a| a.cloned().collect()).unwrap_or_default();
            engine.actions.push((action, uid, ancestors));
        }
        for record in policies.iter().filter(|p| p.enabled) {
            let id = record.id.as_str();
            let policy = Policy::parse(Some(PolicyId::new(id)), &record.policy).map_err(|e| {
                PolicyEngineError::Parse { id: id.to_owned(), message: e.to_string() }
            })?;
            engine.add(policy)?;
        }
        Ok(engine)
    }

    fn add(&mut self, policy: Policy) -> Result<(), PolicyEngineError> {
        let id = policy.id().to_string();
        let principal = match policy.principal_constraint() {
            PrincipalConstraint::Any | PrincipalConstraint::Is(_) => Key::Any,
            PrincipalConstraint::In(e)
            | PrincipalConstraint::Eq(e)
            | PrincipalConstraint::IsIn(_, e) => Key::Entity(e),
        };
        let resource = match policy.resource_constraint() {
            ResourceConstraint::Any | ResourceConstraint::Is(_) => Key::Any,
            ResourceConstraint::In(e)
            | ResourceConstraint::Eq(e)
            | ResourceConstraint::IsIn(_, e) => Key::Entity(e),
        };
        self.reads_context |= reads_context(&policy);
        self.scopes.push(Scope {
            id: id.clone(),
            resource: match &resource {
                Key::Any => None,
                Key::Entity(e) => Some(e.clone()),
            },
            actions: policy.action_constraint(),
        });
        let duplicate = |_| PolicyEngineError::Duplicate { id: id.clone() };
        self.all.add(policy.clone()).map_err(duplicate)?;
        let constraint = policy.action_constraint();
        for (action, uid, ancestors) in &self.actions {
            // INVARIANT: a policy is left out of an action's index only if its action scope is
            // false for that action (`==` another, `in` neither it nor an ancestor).
            let matches = match &constraint {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == uid,
                ActionConstraint::In(list) => {
                    list.iter().any(|a| a == uid || ancestors.contains(a))
                }
            };
            if matches {
                self.by_action[*action as usize].push(self.entries.len());
                self.index[*action as usize]
                    .entry(principal.clone())
                    .or_default()
                    .entry(resource.clone())
                    .or_default()
                    .add(policy.clone())
                    .map_err(duplicate)?;
            }
        }
        let json = policy.to_json().ok();
        let conditions = json.as_ref().and_then(|j| j.get("conditions"));
        self.entries.push(Entry {
            id,
            forbid: policy.effect() == Effect::Forbid,
            principal: policy.principal_constraint(),
            resource: policy.resource_constraint(),
            // Conservative: a JSON failure counts as conditional.
            unconditional: conditions.and_then(|c| c.as_array()).is_some_and(Vec::is_empty),
            hints_only: conditions.is_some_and(hints_only),
            policy,
        });
        Ok(())
    }

    /// The policies that can match requests of `principal` for `action`, for asking about many
    /// resources at once (a portal's visibility). `entities` must hold the principal with its
    /// ancestors and the schema's actions.
    pub fn narrow(
        &self,
        principal: &EntityUid,
        action: Action,
        entities: &Entities,
    ) -> Result<Narrowed<'_>, EntityError> {
        let ancestors: HashSet<EntityUid> =
            entities.ancestors(principal).map(|a| a.cloned().collect()).unwrap_or_default();
        let mut any = Vec::new();
        let mut by_entity: HashMap<EntityUid, Vec<usize>> = HashMap::new();
        for &i in &self.by_action[action as usize] {
            let entry = &self.entries[i];
            let matches = match &entry.principal {
                PrincipalConstraint::Any => true,
                PrincipalConstraint::Is(t) => principal.type_name() == t,
                PrincipalConstraint::Eq(e) => principal == e,
                PrincipalConstraint::In(e) => principal == e || ancestors.contains(e),
                PrincipalConstraint::IsIn(t, e) => {
                    principal.type_name() == t && (principal == e || ancestors.contains(e))
                }
            };
            if !matches {
                continue;
            }
            match &entry.resource {
                ResourceConstraint::Any | ResourceConstraint::Is(_) => any.push(i),
                ResourceConstraint::In(e)
                | ResourceConstraint::Eq(e)
                | ResourceConstraint::IsIn(_, e) => by_entity.entry(e.clone()).or_default().push(i),
            }
        }
        Ok(Narrowed {
            engine: self,
            principal: principal.clone(),
            action: action.uid()?,
            any,
            by_entity,
            sets: HashMap::new(),
            authorizer: Authorizer::new(),
        })
    }

    /// How many policies are enabled.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether no policy is enabled (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Whether some policy's conditions read the request's `context` (time, IP, DLP), so that
    /// the same principal and resource can get different answers from one request to the next.
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The enabled policies' scopes.
    pub(crate) fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Would `principal` be allowed `action` on `resource`? Evaluates only the policies whose
    /// scope can match (see the module docs); the answer is Cedar's for the whole set.
    /// `entities` must hold the principal and resource with their ancestors, and the schema's
    /// actions ([`crate::EntitiesBuilder`] does both); `context` should come from
    /// [`crate::RequestContext::to_cedar`] for the same action.
    pub fn is_authorized(
        &self,
        principal: &EntityUid,
        action: Action,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        let request = match request(principal, action, resource, context) {
            Ok(request) => request,
            Err(decision) => return decision,
        };
        let principal_keys = keys(principal, entities);
        let resource_keys = keys(resource, entities);
        let authorizer = Authorizer::new();
        let mut combined = Combined::default();
        let index = &self.index[action as usize];
        for principal_key in &principal_keys {
            let Some(by_resource) = index.get(principal_key) else { continue };
            for resource_key in &resource_keys {
                if let Some(set) = by_resource.get(resource_key) {
                    combined.add(&authorizer.is_authorized(&request, set, entities));
                }
            }
        }
        combined.finish()
    }

    /// The same question answered by Cedar over the whole set, without the index (for tests
    /// and benchmarks).
    pub fn is_authorized_unindexed(
        &self,
        principal: &EntityUid,
        action: Action,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        let request = match request(principal, action, resource, context) {
            Ok(request) => request,
            Err(decision) => return decision,
        };
        let mut combined = Combined::default();
        combined.add(&Authorizer::new().is_authorized(&request, &self.all, entities));
        combined.finish()
    }
}

/// An engine narrowed to one principal and action (see [`PolicyEngine::narrow`]): the policies
/// whose principal and action scopes match, by the entity their resource scope names. A
/// resource's candidates are those whose resource scope matches too; the unconditional ones are
/// satisfied without evaluation (a scope never errors), and Cedar evaluates only the
/// conditional ones, in one call over a set built once per distinct candidate list. The
/// answers combine as in [`PolicyEngine::is_authorized`], so they are Cedar's.
#[derive(Debug)]
pub struct Narrowed<'a> {
    engine: &'a PolicyEngine,
    principal: EntityUid,
    action: EntityUid,
    /// Candidates whose resource scope names no entity.
    any: Vec<usize>,
    /// Candidates by the entity their resource scope names.
    by_entity: HashMap<EntityUid, Vec<usize>>,
    /// The conditional candidates of the resources asked so far, as Cedar sets.
    sets: HashMap<Vec<usize>, PolicySet>,
    authorizer: Authorizer,
}

impl Narrowed<'_> {
    /// Would the principal be allowed the action on `resource`? The same answer as
    /// [`PolicyEngine::is_authorized`]; `entities` must hold the resource with its ancestors
    /// (and be the set the engine was narrowed with, or agree with it on the principal).
    pub fn is_authorized(
        &mut self,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        let ancestors: Vec<&EntityUid> =
            entities.ancestors(resource).map(Iterator::collect).unwrap_or_default();
        let candidates = self.candidates(resource, &ancestors);
        self.evaluate(candidates, resource, context, entities)
    }

    /// The policies whose scope matches `resource` (with `ancestors`, all of them): the
    /// unconditional ones already combined, and the positions of the conditional ones, sorted.
    pub(crate) fn candidates(&self, resource: &EntityUid, ancestors: &[&EntityUid]) -> Candidates {
        let is_in = |e: &EntityUid| resource == e || ancestors.contains(&e);
        let mut combined = Combined::default();
        let mut conditional = Vec::new();
        let lists = std::iter::once(&self.any).chain(
            std::iter::once(resource)
                .chain(ancestors.iter().copied())
                .filter_map(|e| self.by_entity.get(e)),
        );
        for &i in lists.flatten() {
            let entry = &self.engine.entries[i];
            let matches = match &entry.resource {
                ResourceConstraint::Any => true,
                ResourceConstraint::Is(t) => resource.type_name() == t,
                ResourceConstraint::Eq(e) => resource == e,
                ResourceConstraint::In(e) => is_in(e),
                ResourceConstraint::IsIn(t, e) => resource.type_name() == t && is_in(e),
            };
            if !matches {
                continue;
            }
            if !entry.unconditional {
                conditional.push(i);
            } else if entry.forbid {
                combined.forbids.insert(entry.id.clone());
            } else {
                combined.permits.insert(entry.id.clone());
            }
        }
        conditional.sort_unstable();
        Candidates { combined, conditional }
    }

    /// Whether every conditional candidate reads the resource only through its hints.
    pub(crate) fn hints_only(&self, candidates: &Candidates) -> bool {
        candidates.conditional.iter().all(|&i| self.engine.entries[i].hints_only)
    }

    /// Cedar's answer for the conditional candidates alone (none if there are none), or the
    /// error that stopped the request.
    pub(crate) fn conditional(
        &mut self,
        candidates: &Candidates,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
    ) -> Result<Option<Combined>, Decision> {
        if candidates.conditional.is_empty() {
            return Ok(None);
        }
        let engine = self.engine;
        let set = self.sets.entry(candidates.conditional.clone()).or_insert_with_key(|positions| {
            let mut set = PolicySet::new();
            for &i in positions {
                // INVARIANT: positions are distinct, so ids are too.
                let _ = set.add(engine.entries[i].policy.clone());
            }
            set
        });
        let request = Request::new(
            self.principal.clone(),
            self.action.clone(),
            resource.clone(),
            context.clone(),
            None,
        )
        .map_err(|e| Decision::error(e.to_string()))?;
        let mut combined = Combined::default();
        combined.add(&self.authorizer.is_authorized(&request, set, entities));
        Ok(Some(combined))
    }

    /// The decision from the candidates, asking Cedar about the conditional ones.
    pub(crate) fn evaluate(
        &mut self,
        candidates: Candidates,
        resource: &EntityUid,
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        match self.conditional(&candidates, resource, context, entities) {
            Ok(answer) => candidates.finish(answer.as_ref()),
            Err(decision) => decision,
        }
    }
}

/// A resource's candidate policies (see [`Narrowed::candidates`]).
#[derive(Debug)]
pub(crate) struct Candidates {
    combined: Combined,
    conditional: Vec<usize>,
}

impl Candidates {
    /// The positions of the conditional candidates, sorted.
    pub(crate) fn conditional(&self) -> &[usize] {
        &self.conditional
    }

    /// The decision, given Cedar's answer for the conditional candidates.
    pub(crate) fn finish(mut self, answer: Option<&Combined>) -> Decision {
        if let Some(answer) = answer {
            self.combined.forbids.extend(answer.forbids.iter().cloned());
            self.combined.permits.extend(answer.permits.iter().cloned());
            self.combined.errors.extend(answer.errors.iter().cloned());
        }
        self.combined.finish()
    }
}

/// The request, unchecked against the schema: the entities and context were checked when built.
fn request(
    principal: &EntityUid,
    action: Action,
    resource: &EntityUid,
    context: &Context,
) -> Result<Request, Decision> {
    let action = action.uid().map_err(|e| Decision::error(e.to_string()))?;
    Request::new(principal.clone(), action, resource.clone(), context.clone(), None)
        .map_err(|e| Decision::error(e.to_string()))
}

/// The index keys a request's entity can match: unconstrained, itself, and its ancestors.
fn keys(uid: &EntityUid, entities: &Entities) -> Vec<Key> {
    let mut keys = vec![Key::Any, Key::Entity(uid.clone())];
    if let Some(ancestors) = entities.ancestors(uid) {
        keys.extend(ancestors.map(|a| Key::Entity(a.clone())));
    }
    keys
}

/// Cedar's answers over several disjoint sets, combined as Cedar combines policies.
#[derive(Debug, Default, Clone)]
pub(crate) struct Combined {
    forbids: BTreeSet<String>,
    permits: BTreeSet<String>,
    errors: Vec<String>,
}

impl Combined {
    fn add(&mut self, response: &cedar_policy::Response) {
        let reasons = response.diagnostics().reason().map(ToString::to_string);
        match response.decision() {
            // INVARIANT: Cedar's reasons for a deny are exactly the satisfied forbids (none
            // when nothing applied), and for an allow the satisfied permits.
            CedarDecision::Deny => self.forbids.extend(reasons),
            CedarDecision::Allow => self.permits.extend(reasons),
        }
        self.errors.extend(response.diagnostics().errors().map(ToString::to_string));
    }

    /// Whether some policy errored.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    fn finish(self) -> Decision {
        let (allowed, policy_ids) = if !self.forbids.is_empty() {
            (false, self.forbids)
        } else if !self.permits.is_empty() {
            (true, self.permits)
        } else {
            (false, BTreeSet::new())
        };
        Decision { allowed, policy_ids: policy_ids.into_iter().collect(), errors: self.errors }
    }
}

/// Whether a policy's conditions mention the `context` variable.
fn reads_context(policy: &Policy) -> bool {
    // Conservative: any `"Var": "context"` in the policy's JSON form (or a JSON failure).
    match policy.to_json() {
        Ok(json) => json.to_string().contains(r#""Var":"context""#),
        Err(_) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use chrono::Utc;
    use portico_core::domain::ids::PolicyId as RecordId;

    use super::*;
    use crate::entities::{EntitiesBuilder, Principal, RequestContext, ServerFacts};

    fn record(id: &str, text: &str, enabled: bool) -> PolicyRecord {
        PolicyRecord {
            id: RecordId::parse(id).unwrap(),
            name: id.into(),
            description: None,
            policy: text.into(),
            enabled,
        }
    }

    #[test]
    fn default_deny_and_reasons() {
        let user = Principal::User {
            id: "alice".into(),
            email: "a@x".into(),
            name: "A".into(),
            idp: "okta".into(),
            groups: vec!["eng".into()],
            claims: Default::default(),
        };
        let server = ServerFacts {
            id: "docs".into(),
            url: "https://docs".into(),
            auth_type: "none".into(),
            portals: vec!["main".into()],
        };
        let mut builder = EntitiesBuilder::new();
        builder.principal(&user).unwrap().server(&server).unwrap();
        let entities = builder.build().unwrap();
        let context = RequestContext::new(Utc::now(), IpAddr::V4(Ipv4Addr::LOCALHOST))
            .to_cedar(Action::UseServer)
            .unwrap();
        let ask = |engine: &PolicyEngine| {
            engine.is_authorized(
                &user.uid().unwrap(),
                Action::UseServer,
                &server.uid().unwrap(),
                &context,
                &entities,
            )
        };
        let empty = PolicyEngine::new(&[]).unwrap();
        assert_eq!(ask(&empty), Decision::default());

        let permit = r#"permit(principal in Portico::Group::"eng", action, resource in Portico::Portal::"main");"#;
        let forbid = r#"forbid(principal, action, resource == Portico::Server::"docs");"#;
        let engine = PolicyEngine::new(&[
            record("eng-main", permit, true),
            record("no-docs", forbid, false),
        ])
        .unwrap();
        assert_eq!(ask(&engine).policy_ids, vec!["eng-main".to_owned()]);
        assert!(ask(&engine).allowed);
        let engine =
            PolicyEngine::new(&[record("eng-main", permit, true), record("no-docs", forbid, true)])
                .unwrap();
        let decision = ask(&engine);
        assert!(!decision.allowed);
        assert_eq!(decision.policy_ids, vec!["no-docs".to_owned()]);
    }
}
