//! Shared helpers: the example policies and the corpus's catalog.

use std::path::{Path, PathBuf};

use portico_core::domain::ids::PolicyId;
use portico_core::domain::policy::PolicyRecord;

/// `docs/examples/policies`: the example policies of the guide (`docs/policies.md`), the one
/// example set of the project.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/policies")
}

/// The example policies, one per `.cedar` file, the id being the file's stem; sorted by id.
pub fn example_policies() -> Vec<PolicyRecord> {
    let mut records: Vec<PolicyRecord> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "cedar"))
        .map(|path| {
            let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
            record(&id, &std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    records.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    records
}

/// An enabled policy record.
pub fn record(id: &str, text: &str) -> PolicyRecord {
    PolicyRecord {
        id: PolicyId::parse(id).unwrap(),
        name: id.to_owned(),
        description: None,
        policy: text.to_owned(),
        enabled: true,
    }
}
