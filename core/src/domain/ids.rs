//! Identifiers of servers and portals.
//!
//! Both are slugs: lowercase ASCII letters, digits and single hyphens between them, 1 to 64
//! characters (`my-mcp-portal`). A server id never contains `_`, because the portal names each
//! upstream tool `{server_id}_{tool}` and splits on the first `_` to route a call.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 64;

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as a slug.
            pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
                let value = value.into();
                validate_slug($field, &value)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

slug_id!(
    /// The id of an upstream MCP server; also the namespace prefix of its tools and prompts.
    ServerId,
    "id"
);
slug_id!(
    /// The id of a portal.
    PortalId,
    "id"
);

fn validate_slug(field: &'static str, value: &str) -> Result<(), DomainError> {
    let invalid = |reason: &str| DomainError::InvalidField {
        field: field.to_owned(),
        message: format!("`{}` {reason}", truncate_for_message(value)),
    };
    if value.is_empty() {
        return Err(DomainError::InvalidField {
            field: field.to_owned(),
            message: "must not be empty".to_owned(),
        });
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(&format!("is longer than {MAX_ID_LEN} characters")));
    }
    if value.contains('_') {
        return Err(invalid(
            "contains `_`; use `-` instead, because tool names are `{server_id}_{tool}`",
        ));
    }
    let well_formed =
        value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-')
            && !value.contains("--");
    if !well_formed {
        return Err(invalid(
            "is not a slug: use lowercase letters, digits and single hyphens between them",
        ));
    }
    Ok(())
}

/// Shortens user input quoted in an error message, so a huge value does not become a huge error.
pub(crate) fn truncate_for_message(value: &str) -> String {
    const LIMIT: usize = 80;
    if value.chars().count() <= LIMIT {
        value.to_owned()
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}

slug_id!(
    /// The id of a Cedar policy (also its id inside the Cedar policy set).
    PolicyId,
    "id"
);

/// The namespace of the UUIDv5 ids Portico derives from names (the one-time PIN identity
/// provider's, the Access application of each portal), so that the same name always gives the
/// same id, on every instance and after every replay.
pub const PORTICO_UUID_NAMESPACE: uuid::Uuid = uuid::uuid!("263d3570-39b4-43eb-8dd1-3f74171762a9");

/// The UUIDv5 of `name` in [`PORTICO_UUID_NAMESPACE`].
pub fn derived_uuid(name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&PORTICO_UUID_NAMESPACE, name.as_bytes())
}
