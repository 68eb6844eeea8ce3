//! The audit event of a call through a portal, and what the client gets when it cannot be
//! recorded.

use std::time::{Duration, Instant};

use portico_core::domain::call::{AuditedMethod, CallStatus, CodeExecution, PortalRequestHandled};
use portico_core::domain::ids::ServerId;

use rmcp::model::ErrorData;

use super::PortalCaller;
use crate::Gateway;

/// The outcome counted for a request whose audit event could not be appended.
const NOT_RECORDED_OUTCOME: &str = "not_recorded";

/// What the client gets instead of the answer when the call's audit event cannot be appended:
/// says no more than that (the cause is logged), and carries nothing of the upstream's answer.
pub(super) const NOT_RECORDED: &str =
    "the call could not be recorded in the audit log, so its answer is withheld; try again later";

/// What an audited request was about.
pub(super) struct Audit<'a> {
    pub(super) caller: &'a PortalCaller,
    pub(super) method: AuditedMethod,
    pub(super) session_id: Option<String>,
    pub(super) name: String,
    pub(super) server: Option<(&'a ServerId, &'a str)>,
    pub(super) upstream_name: Option<String>,
    pub(super) policies: Vec<String>,
    pub(super) started: Instant,
    /// The code-mode execution a call was made from.
    pub(super) execution_id: Option<String>,
    /// The execution a `portal_codemode_*` call ran.
    pub(super) code_execution: Option<CodeExecution>,
}

impl<'a> Audit<'a> {
    /// The audit of a request by `caller` for `name` (a tool or prompt name, or a URI), started
    /// now; the server and the policies are filled in as the request is resolved.
    pub(super) fn new(
        caller: &'a PortalCaller,
        method: AuditedMethod,
        session_id: Option<String>,
        name: String,
    ) -> Self {
        Audit {
            caller,
            method,
            session_id,
            name,
            server: None,
            upstream_name: None,
            policies: Vec::new(),
            started: Instant::now(),
            execution_id: None,
            code_execution: None,
        }
    }

    /// Appends the request's audit event. An error means the event is not in the log: the
    /// caller must answer the client with that error, not with the request's outcome.
    pub(super) async fn record(
        self,
        gateway: &Gateway,
        status: CallStatus,
        error: Option<String>,
        upstream: Option<Duration>,
    ) -> Result<(), ErrorData> {
        let (portal, server, method) = (self.caller.portal_id.clone(), self.server, self.method);
        let (tool, prompt, uri) = match self.method {
            AuditedMethod::ToolsCall => (Some(self.name), None, None),
            AuditedMethod::PromptsGet => (None, Some(self.name), None),
            AuditedMethod::ResourcesRead => (None, None, Some(self.name)),
        };
        let portal_aud = gateway
            .models
            .read()
            .access_apps
            .settings(&self.caller.portal_id)
            .map(|settings| settings.aud);
        let event = PortalRequestHandled {
            portal_id: self.caller.portal_id.clone(),
            portal_aud,
            method: self.method,
            server_id: self.server.map(|(id, _)| id.clone()),
            server_url: self.server.map(|(_, url)| url.to_owned()),
            tool_call_name: tool,
            prompt_get_name: prompt,
            resource_read_uri: uri,
            upstream_name: self.upstream_name,
            session_id: self.session_id,
            client_ip: self.caller.client_ip.map(|ip| ip.to_string()),
            user_id: self.caller.user_id(),
            user_email: self.caller.user_email(),
            status,
            error: error.map(|e| truncate_error(&e)),
            policies: self.policies,
            duration_ms: millis(self.started.elapsed()),
            server_response_duration_ms: upstream.map(millis),
            execution_id: self.execution_id,
            code_execution: self.code_execution,
        };
        let recorded = gateway.audit(self.caller.actor(), event).await;
        let outcome = if recorded.is_ok() { status.as_str() } else { NOT_RECORDED_OUTCOME };
        let took = self.started.elapsed();
        crate::metrics::request(&portal, server.map(|(id, _)| id), method, outcome, upstream, took);
        recorded.map_err(|_| ErrorData::internal_error(NOT_RECORDED, None))
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn truncate_error(error: &str) -> String {
    const LIMIT: usize = 1000;
    crate::prefix(error, LIMIT).to_owned()
}
