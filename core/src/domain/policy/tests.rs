//! Given/when/then tests of the policy set's rules, with a fake validator (the domain knows no
//! Cedar; the `policies` crate tests the real one).

use super::*;
use crate::domain::Aggregate;
use crate::domain::testing::{self, Given};

/// Refuses any text that contains `nosuch`, pointing at it (line 1 only, enough for tests).
struct FakeValidator;

impl PolicyValidator for FakeValidator {
    fn validate(&self, policy: &PolicyRecord) -> Result<(), PolicyRejection> {
        match policy.policy.find("nosuch") {
            Some(at) => Err(PolicyRejection {
                message: "unknown attribute `nosuch`".to_owned(),
                line: Some(1),
                column: Some(u32::try_from(at).unwrap() + 1),
            }),
            None => Ok(()),
        }
    }
}

fn given(events: impl IntoIterator<Item = Event>) -> Given<PolicySetState> {
    testing::given(events).with_validator(FakeValidator)
}

fn record(id: &str) -> PolicyRecord {
    PolicyRecord {
        id: PolicyId::parse(id).unwrap(),
        name: format!("Policy {id}"),
        description: None,
        policy: "permit(principal, action, resource);".to_owned(),
        enabled: true,
    }
}

fn created(id: &str) -> Event {
    Event::PolicyCreated(PolicyCreated { policy: record(id) })
}

#[test]
fn a_new_policy_is_created() {
    given([]).when(CreatePolicy(record("a"))).then_expect([created("a")]);
}

#[test]
fn creating_an_existing_id_is_refused() {
    given([created("a")])
        .when(CreatePolicy(record("a")))
        .then_expect_error(DomainError::AlreadyExists { kind: "policy", id: "a".to_owned() });
}

#[test]
fn a_deleted_id_may_be_created_again() {
    let deleted = Event::PolicyDeleted(PolicyDeleted { policy_id: PolicyId::parse("a").unwrap() });
    given([created("a"), deleted]).when(CreatePolicy(record("a"))).then_expect([created("a")]);
}

#[test]
fn update_and_delete_need_an_existing_policy() {
    let missing = DomainError::NotFound { kind: "policy", id: "a".to_owned() };
    given([]).when(UpdatePolicy(record("a"))).then_expect_error(missing.clone());
    given([]).when(DeletePolicy(PolicyId::parse("a").unwrap())).then_expect_error(missing);
    let mut changed = record("a");
    changed.enabled = false;
    given([created("a")])
        .when(UpdatePolicy(changed.clone()))
        .then_expect([Event::PolicyUpdated(PolicyUpdated { policy: changed })]);
    given([created("a")]).when(DeletePolicy(PolicyId::parse("a").unwrap())).then_expect([
        Event::PolicyDeleted(PolicyDeleted { policy_id: PolicyId::parse("a").unwrap() }),
    ]);
}

#[test]
fn names_descriptions_and_texts_are_bounded() {
    let mut p = record("a");
    p.name = " ".to_owned();
    given([]).when(CreatePolicy(p)).then_expect_invalid("name");
    let mut p = record("a");
    p.name = "n".repeat(256);
    given([]).when(CreatePolicy(p)).then_expect_invalid("name");
    let mut p = record("a");
    p.description = Some("d".repeat(1025));
    given([]).when(CreatePolicy(p)).then_expect_invalid("description");
    let mut p = record("a");
    p.policy = "  \n".to_owned();
    given([]).when(CreatePolicy(p)).then_expect_invalid("policy");
    let mut p = record("a");
    p.policy = format!("permit(principal, action, resource);{}", " ".repeat(MAX_POLICY_TEXT_BYTES));
    let message = given([]).when(CreatePolicy(p)).then_expect_invalid("policy");
    assert!(message.contains("65536"), "{message}");
}

#[test]
fn a_rejected_text_names_the_line_and_column() {
    let mut p = record("a");
    p.policy = "permit(principal, action, resource) when { resource.nosuch };".to_owned();
    p.enabled = false; // disabled policies are validated too
    let message = given([]).when(CreatePolicy(p.clone())).then_expect_invalid("policy");
    assert_eq!(message, "line 1, column 53: unknown attribute `nosuch`");
    given([created("a")]).when(UpdatePolicy(p)).then_expect_invalid("policy");
}

#[test]
fn a_replace_is_one_event_or_nothing() {
    let set: Vec<PolicyRecord> = ["a", "b", "c"].into_iter().map(record).collect();
    given([created("x")])
        .when(ReplacePolicies(set.clone()))
        .then_expect([Event::PolicySetReplaced(PolicySetReplaced { policies: set.clone() })]);
    let mut bad = set.clone();
    bad[2].policy = "permit(principal, action, resource) when { nosuch };".to_owned();
    let message = given([]).when(ReplacePolicies(bad)).then_expect_invalid("policies[2].policy");
    assert!(message.starts_with("line 1, column "), "{message}");
    let mut dup = set.clone();
    dup.push(record("b"));
    given([]).when(ReplacePolicies(dup)).then_expect_invalid("policies[3].id");
    let mut unnamed = set;
    unnamed[1].name = String::new();
    given([]).when(ReplacePolicies(unnamed)).then_expect_invalid("policies[1].name");
    given([created("x")])
        .when(ReplacePolicies(Vec::new()))
        .then_expect([Event::PolicySetReplaced(PolicySetReplaced { policies: Vec::new() })]);
}

#[test]
fn at_most_ten_thousand_policies() {
    let many: Vec<PolicyRecord> = (0..=MAX_POLICIES).map(|i| record(&format!("p{i}"))).collect();
    given([]).when(ReplacePolicies(many.clone())).then_expect_invalid("policies");
    let full =
        Event::PolicySetReplaced(PolicySetReplaced { policies: many[..MAX_POLICIES].to_vec() });
    given([full]).when(CreatePolicy(record("one-more"))).then_expect_invalid("id");
}

#[test]
fn apply_folds_every_policy_event() {
    let state = PolicySetState::fold([
        created("a"),
        created("b"),
        Event::PolicyDeleted(PolicyDeleted { policy_id: PolicyId::parse("a").unwrap() }),
    ]);
    assert_eq!(state.stream_version, 3);
    assert_eq!(state.policies.keys().map(PolicyId::as_str).collect::<Vec<_>>(), ["b"]);
    let replaced = PolicySetState::fold([
        created("a"),
        Event::PolicySetReplaced(PolicySetReplaced { policies: vec![record("c")] }),
    ]);
    assert_eq!(replaced.policies.keys().map(PolicyId::as_str).collect::<Vec<_>>(), ["c"]);
}
