//! `portico policies ...` and the documentation's examples: every example policy validates,
//! the example test cases pass, a wrong expectation fails with a reason, and `push`/`pull`
//! round-trip a directory through a real HTTP server.

use std::path::PathBuf;

use portico::cli::policies::{self, ApiArgs, cases, validate_dir};

use crate::support::{ACCOUNT_ID, ADMIN_TOKEN, Served};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("docs").join("examples")
}

#[test]
fn every_example_policy_of_the_docs_validates() {
    let dir = examples().join("policies");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let id = path.file_stem().unwrap().to_str().unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = portico_policies::validate_policy(id, &text) {
                panic!("{}: {e}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 8, "the docs need at least eight examples, found {count}");
    let report = validate_dir(&dir).unwrap();
    assert!(report.ok(), "{report}");
}

/// The Cedar blocks of `docs/policies.md` are the example files, each once, and so validate too.
#[test]
fn the_cedar_blocks_of_the_guide_are_the_example_files() {
    let guide = std::fs::read_to_string(examples().join("..").join("policies.md")).unwrap();
    let mut blocks: Vec<&str> =
        guide.split("```cedar\n").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        if let Err(e) = portico_policies::validate_policy(&format!("block-{i}"), block) {
            panic!("cedar block {i} of docs/policies.md: {e}\n{block}");
        }
    }
    let mut files: Vec<String> = policies::read_dir(&examples().join("policies"))
        .unwrap()
        .into_iter()
        .map(|record| record.policy)
        .collect();
    blocks.sort_unstable();
    files.sort_unstable();
    assert_eq!(blocks, files, "the guide's Cedar blocks and docs/examples/policies differ");
}

#[test]
fn the_example_test_cases_pass() {
    let report =
        cases::run_file(&examples().join("policy-tests.yaml"), &examples().join("policies"))
            .unwrap();
    assert!(report.ok(), "{report}");
    assert!(report.lines.len() >= 16, "{report}");
}

#[test]
fn a_wrong_expectation_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let policies_dir = dir.path().join("policies");
    std::fs::create_dir(&policies_dir).unwrap();
    std::fs::copy(
        examples().join("policies").join("engineering-uses-docs.cedar"),
        policies_dir.join("engineering-uses-docs.cedar"),
    )
    .unwrap();
    let file = dir.path().join("cases.yaml");
    std::fs::write(
        &file,
        r#"
- name: wrong
  principal: {type: user, id: a, groups: [engineering]}
  action: use_server
  resource: {type: server, id: docs}
  expect: deny
- name: right
  principal: {type: user, id: a, groups: [sales]}
  action: use_server
  resource: {type: server, id: docs}
  expect: deny
- name: wrong resource for the action
  principal: {type: user, id: a}
  action: call_tool
  resource: {type: server, id: docs}
  expect: deny
"#,
    )
    .unwrap();
    let report = cases::run_file(&file, &policies_dir).unwrap();
    assert_eq!(report.failures, 2, "{report}");
    assert!(
        report.lines[0]
            .starts_with("✗ wrong: expected deny, got allow: decided by engineering-uses-docs"),
        "{report}"
    );
    assert!(report.lines[1].starts_with("✓ right: deny, no policy permits it"), "{report}");
    assert!(
        report.lines[2].starts_with(
            "✗ wrong resource for the action: cannot evaluate: action `call_tool` applies to a tool, not to a server"
        ),
        "{report}"
    );
}

#[actix_web::test]
async fn push_and_pull_round_trip_through_the_api() {
    let served = Served::start().await;
    let api = ApiArgs {
        url: served.url.clone(),
        account_id: ACCOUNT_ID.to_owned(),
        token: ADMIN_TOKEN.to_owned(),
    };

    let pushed = policies::push(&examples().join("policies"), api.clone()).await.unwrap();
    assert_eq!(pushed, 14);

    let out = tempfile::tempdir().unwrap();
    let pulled = policies::pull(out.path(), api.clone()).await.unwrap();
    assert_eq!(pulled, 14);
    let original = policies::read_dir(&examples().join("policies")).unwrap();
    let round_trip = policies::read_dir(out.path()).unwrap();
    assert_eq!(round_trip.len(), original.len());
    for (a, b) in original.iter().zip(&round_trip) {
        assert_eq!(
            (&a.id, &a.name, &a.description, a.enabled),
            (&b.id, &b.name, &b.description, b.enabled)
        );
        assert_eq!(a.policy.trim_end(), b.policy.trim_end());
    }

    // A bad token is refused with the API's message.
    let wrong = ApiArgs { token: "nope".to_owned(), ..api };
    let error = policies::pull(out.path(), wrong).await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    served.stop().await;
}

/// `policies push --local` writes into the storage of the configured data directory through the
/// application layer: one `PolicySetReplaced` by the `cli` actor; an invalid directory or a
/// directory without Portico data writes nothing.
#[actix_web::test]
async fn push_local_replaces_the_set_in_the_configured_storage() {
    use clap::Parser;
    use portico::cli::{self, Cli};
    use portico::storage::Storage;
    use portico_core::{Actor, Event};

    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let parse = |args: &[&str]| {
        let args = ["portico", "--data-dir", &data_dir].into_iter().chain(args.iter().copied());
        Cli::try_parse_from(args).unwrap()
    };
    let dir = examples().join("policies");
    let dir = dir.to_str().unwrap();

    // Nothing there yet: refused, and nothing is created.
    let refused = cli::run(parse(&["policies", "push", dir, "--local"])).await.unwrap_err();
    assert!(refused.to_string().contains("no Portico data"), "{refused}");
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);

    // An instance as `serve` leaves it (storage opened, account created).
    let config = parse(&["serve"]).resolve().unwrap();
    let storage = Storage::open(&config).await.unwrap();
    portico_app::account::bootstrap(storage.log.as_ref(), None, None).await.unwrap();
    drop(storage);

    let invalid = tempfile::tempdir().unwrap();
    std::fs::write(invalid.path().join("bad.cedar"), "permit(principal, action, resource").unwrap();
    let bad = cli::run(parse(&["policies", "push", invalid.path().to_str().unwrap(), "--local"]))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("nothing was pushed"), "{bad}");

    cli::run(parse(&["policies", "push", dir, "--local"])).await.unwrap();
    let storage = Storage::open(&config).await.unwrap();
    let events = storage.log.read_all(0, 1_000).await.unwrap();
    let pushed: Vec<_> = events.iter().filter(|e| e.stream_id == "policies").collect();
    assert_eq!(pushed.len(), 1, "one event for the whole set");
    assert_eq!(pushed[0].actor, Actor::system("cli"));
    let Event::PolicySetReplaced(set) = &pushed[0].event else {
        panic!("expected PolicySetReplaced, got {:?}", pushed[0].event)
    };
    assert_eq!(set.policies.len(), policies::read_dir(&examples().join("policies")).unwrap().len());
}
