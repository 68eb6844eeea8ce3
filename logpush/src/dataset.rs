//! The `mcp_portal_logs` dataset: its name and its 19 fields, with their exact names and types.
//!
//! Everything that names a field (filters, `field_names`, record templates, the Parquet schema)
//! goes through [`Field`], so an unknown name is refused in one place and a new field is one
//! line in [`Field::ALL`].

use std::fmt;

/// The dataset's name, as a Logpush job's `dataset` spells it.
pub const DATASET: &str = "mcp_portal_logs";

/// The type of a field, as the dataset's field list gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A UTF-8 string.
    String,
    /// A signed 64-bit integer.
    Int,
    /// A boolean.
    Bool,
    /// A point in time: an integer or a string in text outputs (per `timestamp_format`), a
    /// `TIMESTAMP(ns, UTC)` in Parquet.
    Timestamp,
}

impl FieldType {
    /// How an error message names the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Timestamp => "timestamp",
        }
    }
}

macro_rules! fields {
    ($($variant:ident => $name:literal, $ty:ident, $doc:literal;)*) => {
        /// One field of `mcp_portal_logs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $(#[doc = $doc] $variant,)*
        }

        impl Field {
            /// Every field, in the order of the dataset's field list (alphabetical).
            pub const ALL: [Field; [$($name),*].len()] = [$(Field::$variant),*];

            /// The field's name in the dataset (`ClientIP`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            /// What the field holds, as the dataset's field list describes it.
            pub fn description(self) -> &'static str {
                match self {
                    $(Field::$variant => $doc,)*
                }
            }

            /// The field's type.
            pub fn field_type(self) -> FieldType {
                match self {
                    $(Field::$variant => FieldType::$ty,)*
                }
            }

            /// The field with this exact (case-sensitive) name.
            pub fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    ClientCountry => "ClientCountry", String, "Country code of the client IP address.";
    ClientIp => "ClientIP", String, "IP address of the client that initiated the request.";
    ColoCode => "ColoCode", String, "Code of the data center that processed the request.";
    Datetime => "Datetime", Timestamp, "Date and time of the request.";
    Error => "Error", String, "Error message when the request failed with extra information.";
    Method => "Method", String, "JSON-RPC method (`tools/call`, `prompts/get`, `resources/read`).";
    PortalAud => "PortalAUD", String, "Audience tag of the portal.";
    PortalId => "PortalID", String, "Identifier of the portal.";
    PromptGetName => "PromptGetName", String, "For `prompts/get`, the prompt name.";
    ResourceReadUri => "ResourceReadURI", String, "For `resources/read`, the resource URI.";
    ServerAud => "ServerAUD", String, "Audience tag of the upstream server.";
    ServerId => "ServerID", String, "Identifier of the upstream server.";
    ServerResponseDurationMs => "ServerResponseDurationMs", Int, "Upstream response time in ms.";
    ServerUrl => "ServerURL", String, "URL of the upstream server.";
    SessionId => "SessionID", String, "MCP session id of the request.";
    Success => "Success", Bool, "Whether the request succeeded.";
    ToolCallName => "ToolCallName", String, "For `tools/call`, the tool name.";
    UserEmail => "UserEmail", String, "Email of the authenticated user.";
    UserId => "UserID", String, "Id of the authenticated user (or service token).";
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_has_nineteen_fields_in_alphabetical_order() {
        assert_eq!(Field::ALL.len(), 19);
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("clientip"), None);
        assert_eq!(Field::from_name("RayID"), None);
    }

    #[test]
    fn types_follow_the_field_list() {
        assert_eq!(Field::Datetime.field_type(), FieldType::Timestamp);
        assert_eq!(Field::Success.field_type(), FieldType::Bool);
        assert_eq!(Field::ServerResponseDurationMs.field_type(), FieldType::Int);
        let strings = Field::ALL.iter().filter(|f| f.field_type() == FieldType::String).count();
        assert_eq!(strings, 16);
    }
}
