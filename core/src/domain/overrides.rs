//! Tool and prompt overrides (alias, description, enabled) and their rules.
//!
//! An override names an upstream tool or prompt by its original `name` and may give it an
//! `alias`, replace its `description`, or enable/disable it. Overrides exist at two levels:
//! on the server (they apply in every portal) and on a portal's mapping of the server. The
//! exposed name is `{server_id}_{portal alias | server alias | original name}`; the portal's
//! description beats the server's.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::truncate_for_message;
use super::validate;

/// The longest alias accepted.
pub const MAX_ALIAS_LEN: usize = 40;
/// The longest overridden description accepted.
pub const MAX_OVERRIDE_DESCRIPTION_LEN: usize = 4096;
/// The longest upstream tool or prompt name an override may reference.
pub const MAX_CAPABILITY_NAME_LEN: usize = 256;
/// The most overrides one list (`updated_tools` or `updated_prompts`) may hold.
pub const MAX_OVERRIDES: usize = 2000;

/// One entry of `updated_tools` or `updated_prompts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityOverride {
    /// The upstream tool or prompt name.
    pub name: String,
    /// Exposed name instead of `name`; `None` resets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Replaces the upstream description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the tool or prompt is exposed; `None` keeps the default of its level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Whether an override list is about tools or prompts. The two are separate namespaces: a tool
/// and a prompt may share a name or an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    Tool,
    Prompt,
}

impl Capability {
    /// The wire name of the override list (`updated_tools`, `updated_prompts`).
    pub fn list_field(self) -> &'static str {
        match self {
            Capability::Tool => "updated_tools",
            Capability::Prompt => "updated_prompts",
        }
    }

    /// The word used in messages (`tool`, `prompt`).
    pub fn noun(self) -> &'static str {
        match self {
            Capability::Tool => "tool",
            Capability::Prompt => "prompt",
        }
    }
}

/// Whether `alias` is a well-formed alias: 1 to [`MAX_ALIAS_LEN`] ASCII characters matching
/// `^[a-zA-Z0-9]+([_-][a-zA-Z0-9]+)*$`, i.e. letters and digits with single `_` or `-` between
/// them (never leading, trailing or doubled).
pub fn is_valid_alias(alias: &str) -> bool {
    if alias.is_empty() || alias.len() > MAX_ALIAS_LEN {
        return false;
    }
    // Starts as if a separator had just been seen, so a leading separator is refused.
    let mut after_separator = true;
    for b in alias.bytes() {
        if b.is_ascii_alphanumeric() {
            after_separator = false;
        } else if (b == b'_' || b == b'-') && !after_separator {
            after_separator = true;
        } else {
            return false;
        }
    }
    !after_separator
}

/// Checks one override list on its own: its length, each entry's fields, and that no upstream
/// name is overridden twice. `field` is the list's path (`updated_tools`,
/// `servers[2].updated_prompts`).
pub(crate) fn validate_list(field: &str, list: &[CapabilityOverride]) -> Result<(), DomainError> {
    if list.len() > MAX_OVERRIDES {
        return Err(DomainError::invalid(
            field,
            format!("has {} entries; at most {MAX_OVERRIDES} are allowed", list.len()),
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        validate_entry(&path, entry)?;
        if let Some(first) = seen.insert(entry.name.as_str(), i) {
            return Err(DomainError::invalid(
                format!("{path}.name"),
                format!(
                    "`{}` is already overridden at `{field}[{first}]`; merge the two entries",
                    truncate_for_message(&entry.name)
                ),
            ));
        }
    }
    Ok(())
}

fn validate_entry(path: &str, entry: &CapabilityOverride) -> Result<(), DomainError> {
    let name_field = format!("{path}.name");
    if entry.name.is_empty() {
        return Err(DomainError::invalid(name_field, "must not be empty"));
    }
    if entry.name.chars().count() > MAX_CAPABILITY_NAME_LEN {
        return Err(DomainError::invalid(
            name_field,
            format!(
                "`{}` is longer than {MAX_CAPABILITY_NAME_LEN} characters",
                truncate_for_message(&entry.name)
            ),
        ));
    }
    if entry.name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            name_field,
            format!("`{}` must not contain control characters", truncate_for_message(&entry.name)),
        ));
    }
    if let Some(alias) = &entry.alias {
        let alias_field = format!("{path}.alias");
        // An empty alias is refused rather than read as "reset": the wire has a way to reset
        // (leave `alias` out), and an empty string is more likely a client bug.
        if alias.is_empty() {
            return Err(DomainError::invalid(
                alias_field,
                "must not be empty; omit `alias` to reset it",
            ));
        }
        if alias.chars().count() > MAX_ALIAS_LEN {
            return Err(DomainError::invalid(
                alias_field,
                format!(
                    "`{}` is longer than {MAX_ALIAS_LEN} characters",
                    truncate_for_message(alias)
                ),
            ));
        }
        if !is_valid_alias(alias) {
            return Err(DomainError::invalid(
                alias_field,
                format!(
                    "`{}` is not a valid alias: use ASCII letters and digits, with single `_` or `-` \
                     between them",
                    truncate_for_message(alias)
                ),
            ));
        }
    }
    validate::description(
        &format!("{path}.description"),
        entry.description.as_deref(),
        MAX_OVERRIDE_DESCRIPTION_LEN,
    )?;
    Ok(())
}

/// Checks that the aliases of `list` keep the exposed names of one server unique: an alias may
/// not equal the original name of another tool (prompt), nor the alias another tool (prompt)
/// ends up with.
///
/// - `list` is the list being written, at path `field`.
/// - `underlying` is the server-level list when `list` is a portal's; a portal alias replaces
///   the server alias of the same upstream name, so only server aliases of names the portal
///   does not alias count. Empty for a server-level list.
/// - `known_names` are further upstream names (those found by sync).
///
/// An alias equal to its own tool's name is allowed (it changes nothing). Conflicts are
/// reported on the later entry of `list`. Both lists must have passed [`validate_list`].
pub(crate) fn validate_aliases_unique(
    field: &str,
    capability: Capability,
    list: &[CapabilityOverride],
    underlying: &[CapabilityOverride],
    known_names: &[String],
) -> Result<(), DomainError> {
    if list.iter().all(|entry| entry.alias.is_none()) {
        return Ok(());
    }
    let names: HashSet<&str> = list
        .iter()
        .chain(underlying)
        .map(|entry| entry.name.as_str())
        .chain(known_names.iter().map(String::as_str))
        .collect();
    let aliased_here: HashSet<&str> = list
        .iter()
        .filter(|entry| entry.alias.is_some())
        .map(|entry| entry.name.as_str())
        .collect();
    // alias -> the upstream name that carries it
    let mut aliases: HashMap<&str, &str> = underlying
        .iter()
        .filter(|entry| !aliased_here.contains(entry.name.as_str()))
        .filter_map(|entry| entry.alias.as_deref().map(|alias| (alias, entry.name.as_str())))
        .collect();
    let noun = capability.noun();
    for (i, entry) in list.iter().enumerate() {
        let Some(alias) = entry.alias.as_deref() else { continue };
        let conflict =
            |message: String| DomainError::invalid(format!("{field}[{i}].alias"), message);
        if alias != entry.name && names.contains(alias) {
            return Err(conflict(format!(
                "`{}` is already the name of another {noun} of this server; aliases must be \
                 unique across the server's {noun} names and aliases",
                truncate_for_message(alias)
            )));
        }
        if let Some(owner) = aliases.insert(alias, entry.name.as_str()) {
            if owner != entry.name {
                return Err(conflict(format!(
                    "`{}` is already the alias of {noun} `{}` of this server",
                    truncate_for_message(alias),
                    truncate_for_message(owner)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(name: &str, alias: Option<&str>) -> CapabilityOverride {
        CapabilityOverride {
            name: name.to_owned(),
            alias: alias.map(str::to_owned),
            description: None,
            enabled: None,
        }
    }

    fn invalid(result: Result<(), DomainError>) -> (String, String) {
        match result.unwrap_err() {
            DomainError::InvalidField { field, message } => (field, message),
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn alias_matcher_edge_cases() {
        let forty = "a".repeat(40);
        let forty_one = "a".repeat(41);
        for ok in ["a", "A", "9", "a_b", "a-b", "a-b_c-d", "getData", "x1_y2-z3", forty.as_str()] {
            assert!(is_valid_alias(ok), "{ok}");
        }
        for bad in [
            "",
            "_",
            "-",
            "a__b",
            "a--b",
            "a_-b",
            "-a",
            "a-",
            "_a",
            "a_",
            "a b",
            "a.b",
            "a/b",
            "é",
            "aé",
            "ａ",
            "a\u{0}",
            forty_one.as_str(),
        ] {
            assert!(!is_valid_alias(bad), "{bad}");
        }
    }

    /// The spec's regular expression, spelled out the obvious way.
    fn reference_alias(alias: &str) -> bool {
        let len_ok = (1..=MAX_ALIAS_LEN).contains(&alias.chars().count());
        let pieces_ok = alias
            .split(['_', '-'])
            .all(|piece| !piece.is_empty() && piece.chars().all(|c| c.is_ascii_alphanumeric()));
        len_ok && pieces_ok
    }

    proptest! {
        #[test]
        fn alias_matcher_agrees_with_the_reference(
            chars in prop::collection::vec(
                prop::sample::select(vec!['a', 'Z', '0', '9', '_', '-', '.', ' ', 'é', '\u{0}']),
                0..45,
            )
        ) {
            let alias: String = chars.into_iter().collect();
            prop_assert_eq!(is_valid_alias(&alias), reference_alias(&alias), "{:?}", alias);
        }
    }

    #[test]
    fn list_entries_are_checked_with_their_path() {
        let cases = [
            (entry("", None), "updated_tools[1].name", "must not be empty"),
            (
                entry(&"n".repeat(MAX_CAPABILITY_NAME_LEN + 1), None),
                "updated_tools[1].name",
                "longer than 256",
            ),
            (entry("a\nb", None), "updated_tools[1].name", "control characters"),
            (entry("x", Some("")), "updated_tools[1].alias", "omit `alias` to reset it"),
            (entry("x", Some(&"a".repeat(41))), "updated_tools[1].alias", "longer than 40"),
            (entry("x", Some("a__b")), "updated_tools[1].alias", "`a__b` is not a valid alias"),
            (entry("x", Some("ünï")), "updated_tools[1].alias", "`ünï` is not a valid alias"),
        ];
        for (bad, expected_field, expected) in cases {
            let list = vec![entry("ok", Some("fine")), bad];
            let (field, message) = invalid(validate_list("updated_tools", &list));
            assert_eq!(field, expected_field);
            assert!(message.contains(expected), "{message}");
        }
        let mut long_description = entry("x", None);
        long_description.description = Some("d".repeat(MAX_OVERRIDE_DESCRIPTION_LEN + 1));
        let (field, _) = invalid(validate_list("l", &[long_description]));
        assert_eq!(field, "l[0].description");
        let mut longest_description = entry("x", None);
        longest_description.description = Some("d".repeat(MAX_OVERRIDE_DESCRIPTION_LEN));
        assert!(validate_list("l", &[longest_description]).is_ok());
    }

    #[test]
    fn list_length_and_duplicate_names() {
        let full: Vec<_> = (0..MAX_OVERRIDES).map(|i| entry(&format!("t{i}"), None)).collect();
        assert!(validate_list("updated_prompts", &full).is_ok());
        let mut over = full;
        over.push(entry("one-more", None));
        let (field, message) = invalid(validate_list("updated_prompts", &over));
        assert_eq!(field, "updated_prompts");
        assert!(message.contains("at most 2000"), "{message}");

        let list = vec![entry("a", None), entry("b", None), entry("a", Some("x"))];
        let (field, message) = invalid(validate_list("updated_tools", &list));
        assert_eq!(field, "updated_tools[2].name");
        assert_eq!(
            message,
            "`a` is already overridden at `updated_tools[0]`; merge the two entries"
        );
    }

    #[test]
    fn aliases_are_unique_within_one_list() {
        let check = |list: &[CapabilityOverride]| {
            validate_aliases_unique("updated_tools", Capability::Tool, list, &[], &[])
        };
        assert!(check(&[entry("a", Some("x")), entry("b", Some("y"))]).is_ok());
        // An alias equal to its own name changes nothing and is allowed.
        assert!(check(&[entry("a", Some("a"))]).is_ok());

        let (field, message) = invalid(check(&[entry("a", Some("x")), entry("b", Some("x"))]));
        assert_eq!(field, "updated_tools[1].alias");
        assert_eq!(message, "`x` is already the alias of tool `a` of this server");

        let (field, message) = invalid(check(&[entry("a", None), entry("b", Some("a"))]));
        assert_eq!(field, "updated_tools[1].alias");
        assert!(message.starts_with("`a` is already the name of another tool"), "{message}");

        // The name may come after the alias in the list.
        let (field, _) = invalid(check(&[entry("b", Some("a")), entry("a", None)]));
        assert_eq!(field, "updated_tools[0].alias");
    }

    #[test]
    fn aliases_are_checked_against_known_names() {
        let known = vec!["search".to_owned()];
        let result = validate_aliases_unique(
            "updated_prompts",
            Capability::Prompt,
            &[entry("find", Some("search"))],
            &[],
            &known,
        );
        let (field, message) = invalid(result);
        assert_eq!(field, "updated_prompts[0].alias");
        assert!(message.contains("another prompt"), "{message}");
    }

    #[test]
    fn portal_aliases_are_checked_against_the_server_level() {
        let server = [entry("a", Some("sa")), entry("b", None)];
        let check = |list: &[CapabilityOverride]| {
            validate_aliases_unique(
                "servers[0].updated_tools",
                Capability::Tool,
                list,
                &server,
                &[],
            )
        };
        // Another tool's server alias is taken.
        let (field, message) = invalid(check(&[entry("c", Some("sa"))]));
        assert_eq!(field, "servers[0].updated_tools[0].alias");
        assert_eq!(message, "`sa` is already the alias of tool `a` of this server");
        // A name known only from the server level is taken.
        let (_, message) = invalid(check(&[entry("c", Some("b"))]));
        assert!(message.contains("already the name"), "{message}");
        // The same tool may take its server alias at portal level.
        assert!(check(&[entry("a", Some("sa"))]).is_ok());
        // A portal alias replaces the server alias, which frees it for another tool.
        assert!(check(&[entry("a", Some("pa")), entry("c", Some("sa"))]).is_ok());
        // Tools and prompts are separate namespaces: this list is about tools only.
        let prompts = [entry("p", Some("x"))];
        assert!(
            validate_aliases_unique("l", Capability::Tool, &[entry("t", Some("p"))], &[], &[])
                .is_ok()
                && validate_list("l", &prompts).is_ok()
        );
    }
}
