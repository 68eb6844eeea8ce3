//! Calls through a portal: one [`PortalRequestHandled`] event per `tools/call`, `prompts/get`
//! and `resources/read`, allowed or denied, succeeded or failed.
//!
//! The fields follow Cloudflare's `mcp_portal_logs` dataset (named in snake case here; the
//! Logpush encoder maps them to the dataset's names), plus what the portal decided and why.
//! They are appended to one stream per portal ([`calls_stream`]) with no expected version:
//! calls never conflict with each other.

use serde::{Deserialize, Serialize};

use super::ids::{PortalId, ServerId};

/// The JSON-RPC methods that are audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditedMethod {
    #[serde(rename = "tools/call")]
    ToolsCall,
    #[serde(rename = "prompts/get")]
    PromptsGet,
    #[serde(rename = "resources/read")]
    ResourcesRead,
}

impl AuditedMethod {
    /// The JSON-RPC method name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditedMethod::ToolsCall => "tools/call",
            AuditedMethod::PromptsGet => "prompts/get",
            AuditedMethod::ResourcesRead => "resources/read",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The upstream answered with a result (for a tool: without `isError`).
    Ok,
    /// The upstream answered with a tool result that has `isError: true`.
    ToolError,
    /// Cedar (or a session toggle) did not allow the call; the upstream was not reached.
    Denied,
    /// The name or URI matched nothing the caller can see.
    NotFound,
    /// The request was malformed (bad arguments, bad name).
    Invalid,
    /// The upstream answered with a JSON-RPC error.
    UpstreamError,
    /// The upstream could not be reached or the connection broke.
    Unavailable,
    /// The upstream did not answer within the call timeout.
    Timeout,
    /// The client cancelled the request.
    Cancelled,
}

impl CallStatus {
    /// Whether the request succeeded, as the dataset's `Success` field means it.
    pub fn success(self) -> bool {
        matches!(self, CallStatus::Ok)
    }

    /// The status as events and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::ToolError => "tool_error",
            CallStatus::Denied => "denied",
            CallStatus::NotFound => "not_found",
            CallStatus::Invalid => "invalid",
            CallStatus::UpstreamError => "upstream_error",
            CallStatus::Unavailable => "unavailable",
            CallStatus::Timeout => "timeout",
            CallStatus::Cancelled => "cancelled",
        }
    }
}

/// One audited call through a portal. `Datetime` is the event's recorded time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRequestHandled {
    /// `PortalID`.
    pub portal_id: PortalId,
    /// `PortalAUD`: the audience tag of the portal's Access application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_aud: Option<String>,
    /// `Method`.
    pub method: AuditedMethod,
    /// `ServerID`: the upstream the name resolved to, if it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<ServerId>,
    /// `ServerURL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// `ToolCallName`: the name the client called (namespaced, possibly an alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_name: Option<String>,
    /// `PromptGetName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_get_name: Option<String>,
    /// `ResourceReadURI`: the URI the client read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_read_uri: Option<String>,
    /// The upstream's own name of the tool or prompt, or its own URI, when it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_name: Option<String>,
    /// `SessionID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `ClientIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `UserID`: the person's id, or the service token's id.
    pub user_id: String,
    /// `UserEmail`: empty for a service token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    /// How the call ended; `Success` is `status == ok`.
    pub status: CallStatus,
    /// `Error`: extra information when the call failed (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The ids of the policies that decided the call (permits when allowed, forbids when
    /// denied by one; empty for a default deny).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Time spent in the portal for the whole request, in milliseconds.
    pub duration_ms: u64,
    /// `ServerResponseDurationMs`: time spent waiting on the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_response_duration_ms: Option<u64>,
    /// The code-mode execution this call was made from ([`CodeExecution::id`]); none for a call
    /// the client made itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// For a call of `portal_codemode_search` or `portal_codemode_execute`: the execution it
    /// ran. Its inner calls are events of their own, each naming it in `execution_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_execution: Option<CodeExecution>,
}

/// One run of agent-written JavaScript in code mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeExecution {
    /// Unique per execution (a UUID); the inner calls' `execution_id`.
    pub id: String,
    /// The engine that ran it: `workerd` or `quickjs`.
    pub engine: String,
    /// The code as the client sent it (auditors need it; a tool's arguments inside the code
    /// are the client's own, as the arguments of a direct call would be).
    pub code: String,
    /// SHA-256 of `code`, hex: finds every run of the same code.
    pub code_sha256: String,
    /// Calls the code made through the bridge, refused ones included.
    pub calls: u32,
    /// How it ended: `ok`, `error` (the code threw or a tool's error was not caught),
    /// `timeout`, `out_of_memory`, `unserializable`, `cancelled` or `engine_error`.
    pub outcome: String,
}

impl PortalRequestHandled {
    /// `Success`.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// The stream that holds one portal's call events: `calls-{portal id}`.
pub fn calls_stream(portal_id: &PortalId) -> String {
    format!("calls-{portal_id}")
}

#[cfg(test)]
mod tests {
    use super::CallStatus;

    #[test]
    fn status_names_are_the_serialized_ones() {
        use CallStatus::*;
        for status in [
            Ok,
            ToolError,
            Denied,
            NotFound,
            Invalid,
            UpstreamError,
            Unavailable,
            Timeout,
            Cancelled,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
