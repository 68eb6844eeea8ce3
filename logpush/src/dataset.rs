//! The datasets a job can push, and their fields with their exact names and types:
//! `mcp_portal_logs` (every call through a portal: the product's 19 fields) and `audit_logs`
//! (every admin change: the 15 fields of Cloudflare's `audit_logs` dataset). Each also offers
//! Portico's own fields, under their own names, to jobs that ask for them in `field_names`.
//!
//! Everything that names a field (filters, `field_names`, record templates, the Parquet schema)
//! goes through [`Dataset::field`], so a name unknown to the job's dataset is refused in one
//! place, and a new field is one line of the `fields!` list.

use std::fmt;

/// The dataset's name, as a Logpush job's `dataset` spells it: the default dataset.
pub const DATASET: &str = "mcp_portal_logs";

/// A dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dataset {
    /// Every `tools/call`, `prompts/get` and `resources/read` through a portal.
    #[default]
    McpPortalLogs,
    /// Every admin change (the events of the audit-log API).
    AuditLogs,
}

impl Dataset {
    /// Every dataset.
    pub const ALL: [Dataset; 2] = [Dataset::McpPortalLogs, Dataset::AuditLogs];

    /// The dataset's name (`mcp_portal_logs`).
    pub fn name(self) -> &'static str {
        match self {
            Dataset::McpPortalLogs => DATASET,
            Dataset::AuditLogs => "audit_logs",
        }
    }

    /// The dataset named `name`.
    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dataset's own fields, in the order of its field list (alphabetical): what a job
    /// without `field_names` writes.
    pub fn fields(self) -> Vec<Field> {
        Field::ALL.into_iter().filter(|f| f.dataset() == self && !f.is_portico_extra()).collect()
    }

    /// Every field a job of the dataset may name: its own, then Portico's.
    pub fn all_fields(self) -> Vec<Field> {
        let mut fields = self.fields();
        fields
            .extend(Field::ALL.into_iter().filter(|f| f.dataset() == self && f.is_portico_extra()));
        fields
    }

    /// The dataset's field called `name` (case-sensitive).
    pub fn field(self, name: &str) -> Option<Field> {
        Field::from_name(name).filter(|f| f.dataset() == self)
    }

    /// The names of [`Self::all_fields`], for error messages: "`A`, `B`, ...".
    pub fn field_list(self) -> String {
        self.all_fields().iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    }

    /// The names of the datasets, for error messages.
    pub fn list() -> String {
        Dataset::ALL.iter().map(|d| format!("`{}`", d.name())).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// A JSON value (an object or a list): as is in NDJSON and templates, as its JSON text in
    /// CSV and Parquet. Filters cannot compare it.
    Json,
}

impl FieldType {
    /// How an error message names the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Timestamp => "timestamp",
            FieldType::Json => "object",
        }
    }
}

macro_rules! fields {
    ($($variant:ident => $name:literal, $ty:ident, $dataset:ident, $extra:literal, $doc:literal;)*) => {
        /// One field of a dataset.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $(#[doc = $doc] $variant,)*
        }

        impl Field {
            /// Every field of every dataset.
            pub const ALL: [Field; [$($name),*].len()] = [$(Field::$variant),*];

            /// The dataset the field belongs to.
            pub fn dataset(self) -> Dataset {
                match self {
                    $(Field::$variant => Dataset::$dataset,)*
                }
            }

            /// Whether the field is Portico's addition to its dataset (written only when a job
            /// names it in `field_names`).
            pub fn is_portico_extra(self) -> bool {
                match self {
                    $(Field::$variant => $extra,)*
                }
            }

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

            /// The field with this exact (case-sensitive) name, in any dataset (no two datasets
            /// share a name); [`Dataset::field`] looks in one.
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
    ClientCountry => "ClientCountry", String, McpPortalLogs, false, "Country code of the client IP address.";
    ClientIp => "ClientIP", String, McpPortalLogs, false, "IP address of the client that initiated the request.";
    ColoCode => "ColoCode", String, McpPortalLogs, false, "Code of the data center that processed the request.";
    Datetime => "Datetime", Timestamp, McpPortalLogs, false, "Date and time of the request.";
    Error => "Error", String, McpPortalLogs, false, "Error message when the request failed with extra information.";
    Method => "Method", String, McpPortalLogs, false, "JSON-RPC method (`tools/call`, `prompts/get`, `resources/read`).";
    PortalAud => "PortalAUD", String, McpPortalLogs, false, "Audience tag of the portal.";
    PortalId => "PortalID", String, McpPortalLogs, false, "Identifier of the portal.";
    PromptGetName => "PromptGetName", String, McpPortalLogs, false, "For `prompts/get`, the prompt name.";
    ResourceReadUri => "ResourceReadURI", String, McpPortalLogs, false, "For `resources/read`, the resource URI.";
    ServerAud => "ServerAUD", String, McpPortalLogs, false, "Audience tag of the upstream server.";
    ServerId => "ServerID", String, McpPortalLogs, false, "Identifier of the upstream server.";
    ServerResponseDurationMs => "ServerResponseDurationMs", Int, McpPortalLogs, false, "Upstream response time in ms.";
    ServerUrl => "ServerURL", String, McpPortalLogs, false, "URL of the upstream server.";
    SessionId => "SessionID", String, McpPortalLogs, false, "MCP session id of the request.";
    Success => "Success", Bool, McpPortalLogs, false, "Whether the request succeeded.";
    ToolCallName => "ToolCallName", String, McpPortalLogs, false, "For `tools/call`, the tool name.";
    UserEmail => "UserEmail", String, McpPortalLogs, false, "Email of the authenticated user.";
    UserId => "UserID", String, McpPortalLogs, false, "Id of the authenticated user (or service token).";
    DurationMs => "DurationMs", Int, McpPortalLogs, true, "Portico: time spent in the portal for the whole request, in ms.";
    EventId => "EventID", String, McpPortalLogs, true, "Portico: id of the event that recorded the call.";
    PolicyIds => "PolicyIDs", Json, McpPortalLogs, true, "Portico: the Cedar policies that decided the call (a list; empty for a default deny).";
    Status => "Status", String, McpPortalLogs, true, "Portico: how the call ended (`ok`, `tool_error`, `denied`, `not_found`, `invalid`, `upstream_error`, `unavailable`, `timeout`, `cancelled`).";
    ActionResult => "ActionResult", Bool, AuditLogs, false, "Whether the action was successful.";
    ActionType => "ActionType", String, AuditLogs, false, "Type of action taken (`create`, `update`, `delete`, `revoke`).";
    ActorEmail => "ActorEmail", String, AuditLogs, false, "Email of the actor (users only).";
    ActorId => "ActorID", String, AuditLogs, false, "Id of the actor: a user, an API token, a service token or a Portico component.";
    ActorIp => "ActorIP", String, AuditLogs, false, "Network address of the actor (Portico does not record it: always null).";
    ActorType => "ActorType", String, AuditLogs, false, "Type of actor (`user`, `api_token`, `service_token`, `system`).";
    Id => "ID", String, AuditLogs, false, "Unique identifier of the audit log (the id of the event that recorded the change).";
    Interface => "Interface", String, AuditLogs, false, "Where the change came from (`API`, `CLI`, `system`).";
    Metadata => "Metadata", Json, AuditLogs, false, "Where the change sits in the event log: `event_type`, `position`, `stream_id`, `stream_version`, `correlation_id`.";
    NewValue => "NewValue", Json, AuditLogs, false, "The resource after the change (null after a delete).";
    OldValue => "OldValue", Json, AuditLogs, false, "The resource before the change (null for a creation).";
    OwnerId => "OwnerID", String, AuditLogs, false, "The account the change belongs to.";
    ResourceId => "ResourceID", String, AuditLogs, false, "Identifier of the resource that changed.";
    ResourceType => "ResourceType", String, AuditLogs, false, "Type of the resource that changed (`mcp_server`, `mcp_portal`, ...).";
    When => "When", Timestamp, AuditLogs, false, "When the change was committed.";
    ActorName => "ActorName", String, AuditLogs, true, "Portico: the API token's name (API tokens only).";
    CorrelationId => "CorrelationID", String, AuditLogs, true, "Portico: ties together the events of one request.";
    EventType => "EventType", String, AuditLogs, true, "Portico: the event that recorded the change (`ServerUpdated`, ...).";
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
    fn mcp_portal_logs_has_its_nineteen_fields_in_alphabetical_order() {
        let fields = Dataset::McpPortalLogs.fields();
        assert_eq!(fields.len(), 19);
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn audit_logs_has_the_fifteen_fields_of_cloudflares_dataset() {
        let names: Vec<&str> = Dataset::AuditLogs.fields().iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "ActionResult",
                "ActionType",
                "ActorEmail",
                "ActorID",
                "ActorIP",
                "ActorType",
                "ID",
                "Interface",
                "Metadata",
                "NewValue",
                "OldValue",
                "OwnerID",
                "ResourceID",
                "ResourceType",
                "When",
            ]
        );
    }

    #[test]
    fn portico_fields_come_after_the_datasets_own_and_only_on_request() {
        let all = Dataset::McpPortalLogs.all_fields();
        assert_eq!(all.len(), 23);
        assert!(all[19..].iter().all(|f| f.is_portico_extra()));
        assert!(!Dataset::McpPortalLogs.fields().contains(&Field::Status));
        assert_eq!(Dataset::McpPortalLogs.field("Status"), Some(Field::Status));
        assert_eq!(Dataset::AuditLogs.all_fields().len(), 18);
    }

    #[test]
    fn names_round_trip_are_case_sensitive_and_belong_to_one_dataset() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
            assert_eq!(field.dataset().field(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("clientip"), None);
        assert_eq!(Field::from_name("RayID"), None);
        assert_eq!(Dataset::AuditLogs.field("ClientIP"), None);
        assert_eq!(Dataset::McpPortalLogs.field("ActorEmail"), None);
        for dataset in Dataset::ALL {
            assert_eq!(Dataset::from_name(dataset.name()), Some(dataset));
        }
    }

    #[test]
    fn types_follow_the_field_lists() {
        assert_eq!(Field::Datetime.field_type(), FieldType::Timestamp);
        assert_eq!(Field::Success.field_type(), FieldType::Bool);
        assert_eq!(Field::ServerResponseDurationMs.field_type(), FieldType::Int);
        let strings = Dataset::McpPortalLogs
            .fields()
            .iter()
            .filter(|f| f.field_type() == FieldType::String)
            .count();
        assert_eq!(strings, 16);
        assert_eq!(Field::When.field_type(), FieldType::Timestamp);
        assert_eq!(Field::ActionResult.field_type(), FieldType::Bool);
        assert_eq!(Field::NewValue.field_type(), FieldType::Json);
    }
}
