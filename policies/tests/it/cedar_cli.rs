//! The official Cedar CLI (`cedar-policy-cli`) validates the committed schema and each example
//! policy. `scripts/test` installs it and sets `PORTICO_CEDAR_CLI`; set
//! `PORTICO_SKIP_CEDAR_CLI=1` to skip this test where the CLI is not available.

use std::path::Path;
use std::process::Command;

use crate::support::examples_dir;

#[test]
fn the_cedar_cli_validates_the_schema_and_the_examples() {
    let Some(cli) = std::env::var_os("PORTICO_CEDAR_CLI") else {
        if std::env::var("PORTICO_SKIP_CEDAR_CLI").as_deref() == Ok("1") {
            eprintln!("skipped: PORTICO_SKIP_CEDAR_CLI=1");
            return;
        }
        panic!(
            "PORTICO_CEDAR_CLI is not set: run scripts/test (it installs cedar-policy-cli), or set \
             PORTICO_CEDAR_CLI to a `cedar` binary, or PORTICO_SKIP_CEDAR_CLI=1 to skip"
        );
    };
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/portico.cedarschema");
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let output = Command::new(&cli)
            .arg("validate")
            .arg("--schema")
            .arg(&schema)
            .arg("--policies")
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&cli).display()));
        assert!(
            output.status.success(),
            "cedar validate rejects {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
