//! `portico policies test FILE`: a YAML list of cases, each a request and the decision the
//! policies must reach:
//!
//! ```yaml
//! - name: engineers may call docs tools
//!   principal: {type: user, id: alice, email: alice@example.com, groups: [engineering]}
//!   action: call_tool             # connect | use_server | list_tool | call_tool | get_prompt
//!   resource: {type: tool, id: search, server: docs, portals: [main],
//!              hints: {readOnlyHint: true}}
//!   context: {time: "2026-01-05T10:00:00Z", ip: 192.0.2.10}   # optional
//!   expect: allow                 # allow | deny
//!   policies: [engineering-uses-docs]  # optional: ids that must be among the deciding ones
//! ```
//!
//! `principal.type` is `user` (with optional `email` and `groups`) or `service_token`.
//! `resource.type` is `portal`, `server`, `tool` or `prompt`; a tool or prompt names its
//! `server` (its Cedar id is `<server>/<id>`), and a server (or a tool's server) may name the
//! `portals` it is in. Tool `hints` default to MCP's (`readOnlyHint: false`,
//! `destructiveHint: true`, `idempotentHint: false`, `openWorldHint: true`). The context time
//! defaults to Monday 2026-01-05 12:00 UTC and the IP to 192.0.2.1, so results do not depend on
//! when the test runs.

use std::path::Path;

use anyhow::Context;
use portico_policies::ResourceKind;
use serde::Deserialize;

use super::Report;
use super::evaluate::{self, Evaluation};

/// One case of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub principal: CasePrincipal,
    pub action: String,
    pub resource: CaseResource,
    #[serde(default)]
    pub context: CaseContext,
    pub expect: Expect,
    /// Ids of policies that must be among those that decided.
    #[serde(default)]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ServiceToken,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePrincipal {
    #[serde(rename = "type")]
    pub kind: PrincipalKind,
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseResource {
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    pub id: String,
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub portals: Vec<String>,
    #[serde(default)]
    pub hints: Hints,
}

/// MCP tool annotation hints; absent ones take MCP's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hints {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseContext {
    /// RFC 3339.
    pub time: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
}

/// Runs the cases of `file` against the enabled policies of `dir`.
pub fn run_file(file: &Path, dir: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cases: Vec<Case> =
        serde_norway::from_str(&text).with_context(|| format!("invalid {}", file.display()))?;
    let records = super::read_dir(dir)?;
    let policies = evaluate::engine(&records)?;
    let mut report = Report::default();
    for case in &cases {
        let line = match evaluate::evaluate(&policies, case) {
            Ok(evaluation) => judge(case, &evaluation),
            Err(e) => Err(format!("cannot evaluate: {e:#}")),
        };
        match line {
            Ok(line) => report.lines.push(format!("✓ {}: {line}", case.name)),
            Err(line) => {
                report.failures += 1;
                report.lines.push(format!("✗ {}: {line}", case.name));
            }
        }
    }
    Ok(report)
}

/// `Ok(explanation)` when the case holds, `Err(why not)` otherwise.
fn judge(case: &Case, evaluation: &Evaluation) -> Result<String, String> {
    let got = if evaluation.allowed { "allow" } else { "deny" };
    let why = if evaluation.reasons.is_empty() {
        "no policy permits it (default deny)".to_owned()
    } else {
        format!("decided by {}", evaluation.reasons.join(", "))
    };
    let errors = if evaluation.errors.is_empty() {
        String::new()
    } else {
        format!("; evaluation errors: {}", evaluation.errors.join("; "))
    };
    let expected = case.expect == Expect::Allow;
    if expected != evaluation.allowed {
        let want = if expected { "allow" } else { "deny" };
        return Err(format!("expected {want}, got {got}: {why}{errors}"));
    }
    let missing: Vec<&str> = case
        .policies
        .iter()
        .filter(|p| !evaluation.reasons.contains(p))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!("{got} as expected, but not by {}: {why}{errors}", missing.join(", ")));
    }
    Ok(format!("{got}, {why}{errors}"))
}
