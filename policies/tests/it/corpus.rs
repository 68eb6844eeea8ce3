//! Runs `policies/tests/corpus.json`: requests against the example policies of the guide
//! (`docs/examples/policies`) with the expected decision and the ids of the policies that made
//! it.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use portico_policies::{
    Action, EntitiesBuilder, PolicyEngine, PortalFacts, Principal, PromptFacts, RequestContext,
    ServerFacts, ToolFacts, validate_policy,
};
use serde::Deserialize;

use crate::support::example_policies;

#[derive(Debug, Deserialize)]
pub struct Corpus {
    pub catalog: Catalog,
    pub principals: BTreeMap<String, Principal>,
    pub default_context: RequestContext,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub portals: Vec<PortalFacts>,
    pub servers: Vec<ServerFacts>,
    pub tools: Vec<ToolFacts>,
    pub prompts: Vec<PromptFacts>,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub principal: String,
    pub action: Action,
    /// `Portal::<id>`, `Server::<id>`, `Tool::<server>/<name>` or `Prompt::<server>/<name>`.
    pub resource: String,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub dlp_findings: Vec<String>,
    pub expected: Expected,
}

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub allowed: bool,
    pub policy_ids: Vec<String>,
}

pub fn load() -> Corpus {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_examples_validate_against_the_schema() {
    let examples = example_policies();
    assert!(examples.len() >= 8, "{} examples", examples.len());
    for policy in &examples {
        if let Err(e) = validate_policy(policy.id.as_str(), &policy.policy) {
            panic!("example `{}` does not validate: {e}", policy.id.as_str());
        }
    }
}

#[test]
fn the_corpus_gets_the_expected_decisions() {
    let corpus = load();
    assert!(corpus.cases.len() >= 25, "{} cases", corpus.cases.len());
    let engine = PolicyEngine::new(&example_policies()).unwrap();
    let mut failures = Vec::new();
    for case in &corpus.cases {
        let principal = &corpus.principals[&case.principal];
        let mut builder = EntitiesBuilder::new();
        builder.principal(principal).unwrap();
        for portal in &corpus.catalog.portals {
            builder.portal(portal).unwrap();
        }
        for server in &corpus.catalog.servers {
            builder.server(server).unwrap();
        }
        for tool in &corpus.catalog.tools {
            builder.tool(tool).unwrap();
        }
        for prompt in &corpus.catalog.prompts {
            builder.prompt(prompt).unwrap();
        }
        let entities = builder.build().unwrap();
        let mut context = corpus.default_context.clone();
        if let Some(time) = case.time {
            context.time = time;
        }
        context.dlp_findings.clone_from(&case.dlp_findings);
        let context = context.to_cedar(case.action).unwrap();
        let resource: cedar_policy::EntityUid = {
            let (ty, id) = case.resource.split_once("::").unwrap();
            format!("Portico::{ty}::{}", serde_json::Value::String(id.to_owned())).parse().unwrap()
        };
        let who = principal.uid().unwrap();
        let decision = engine.is_authorized(&who, case.action, &resource, &context, &entities);
        let whole =
            engine.is_authorized_unindexed(&who, case.action, &resource, &context, &entities);
        assert_eq!(decision, whole, "{}: the index disagrees with Cedar", case.name);
        let mut expected_ids = case.expected.policy_ids.clone();
        expected_ids.sort();
        if decision.allowed != case.expected.allowed
            || decision.policy_ids != expected_ids
            || !decision.errors.is_empty()
        {
            failures.push(format!(
                "{}: expected allowed={} by {:?}, got allowed={} by {:?} (errors {:?})",
                case.name,
                case.expected.allowed,
                expected_ids,
                decision.allowed,
                decision.policy_ids,
                decision.errors
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );
}
